package scheduler

import (
	"fmt"
	"testing"
	"time"
)

func TestQueueOrderAndStates(t *testing.T) {
	q := newQueue()
	pods := make([]*PodInfo, 4)
	for i := range pods {
		pods[i] = NewPodInfo(testPod(fmt.Sprintf("p%d", i)))
		q.add(pods[i], true)
	}
	// A newer version keeps its predecessor's place.
	q.add(NewPodInfo(testPod("p1")), true)
	var order []string
	for p := q.pop(); p != nil; p = q.pop() {
		order = append(order, p.name)
	}
	if fmt.Sprint(order) != "[p0 p1 p2 p3]" {
		t.Fatalf("popped %v", order)
	}

	now := time.Now()
	p := pods[0]
	p.attempts, p.lastTry = 1, now
	q.park(p, unschedulable)
	q.promote(now.Add(time.Hour))
	if q.hasActive() {
		t.Fatal("an unschedulable pod became active without a change in the cluster")
	}
	// An update that leaves the spec alone does not retry it; a change does.
	q.add(NewPodInfo(testPod("p0")), false)
	if q.hasActive() || q.get(p.key).state != unschedulable {
		t.Fatal("a status update retried an unschedulable pod")
	}
	q.moveUnschedulable()
	q.promote(now.Add(500 * time.Millisecond))
	if q.hasActive() {
		t.Fatal("a pod became active before its back-off passed")
	}
	q.promote(now.Add(time.Second))
	if got := q.pop(); got == nil || got.name != "p0" || q.waiting != 0 {
		t.Fatalf("after back-off popped %v, %d waiting", got, q.waiting)
	}
	q.park(p, backingOff)
	q.remove(p.key)
	if q.waiting != 0 || q.get(p.key) != nil {
		t.Fatal("removed pod still waiting")
	}
}

func TestBackoff(t *testing.T) {
	for attempts, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 50: 10 * time.Second} {
		if got := backoff(attempts); got != want {
			t.Errorf("backoff(%d) = %s, want %s", attempts, got, want)
		}
	}
}

package agent

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// eventRepeat is how often the same event (pod, reason, message) may be posted again:
// back-off and probe failures repeat every pass, and Events are for people.
const eventRepeat = time.Minute

// eventMemory is how many recent events the agent remembers before it forgets the ones
// that may repeat anyway.
const eventMemory = 4096

// CreateEvent posts an Event.
func (c *Client) CreateEvent(ctx context.Context, ev *corev1.Event) error {
	return c.do(ctx, http.MethodPost, "/api/v1/namespaces/"+ev.Namespace+"/events", ev, nil)
}

// event records what happened to a pod as a Kubernetes Event (what `kubectl describe pod`
// shows). It never blocks the sync loop: the post runs in the background, best effort.
func (a *Agent) event(pod *corev1.Pod, typ, reason, message string) {
	key := string(pod.UID) + "\x00" + reason + "\x00" + message
	now := time.Now()
	a.eventsMu.Lock()
	if last, ok := a.lastEvent[key]; ok && now.Sub(last) < eventRepeat {
		a.eventsMu.Unlock()
		return
	}
	a.lastEvent[key] = now
	if len(a.lastEvent) > eventMemory {
		// Keys of pods long gone, and of messages that changed, would pile up forever.
		for k, t := range a.lastEvent {
			if now.Sub(t) >= eventRepeat {
				delete(a.lastEvent, k)
			}
		}
	}
	a.eventsMu.Unlock()
	t := metav1.NewTime(now)
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", pod.Name, now.UnixNano()), Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
			UID: pod.UID, ResourceVersion: pod.ResourceVersion},
		Reason: reason, Message: message, Type: typ, Count: 1,
		FirstTimestamp: t, LastTimestamp: t,
		Source:              corev1.EventSource{Component: "skiff-agent", Host: a.cfg.Name},
		ReportingController: "skiff.io/agent", ReportingInstance: a.cfg.Name,
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.cfg.Client.CreateEvent(ctx, ev); err != nil {
			a.log.Debug("posting event failed", "reason", reason, "error", err)
		}
	}()
}

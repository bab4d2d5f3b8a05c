package podstatus

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func pod(phase corev1.PodPhase, conds ...corev1.PodCondition) *corev1.Pod {
	return &corev1.Pod{Status: corev1.PodStatus{Phase: phase, Conditions: conds}}
}

func ready(status corev1.ConditionStatus, since time.Time) corev1.PodCondition {
	return corev1.PodCondition{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.NewTime(since)}
}

func TestReady(t *testing.T) {
	scheduled := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want bool
	}{
		{"no conditions", pod(corev1.PodPending), false},
		{"other conditions only", pod(corev1.PodRunning, scheduled), false},
		{"ready false", pod(corev1.PodRunning, scheduled, ready(corev1.ConditionFalse, now)), false},
		{"ready unknown", pod(corev1.PodRunning, ready(corev1.ConditionUnknown, now)), false},
		{"ready true", pod(corev1.PodRunning, scheduled, ready(corev1.ConditionTrue, now)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Ready(tc.pod); got != tc.want {
				t.Fatalf("Ready = %v, want %v", got, tc.want)
			}
			if c := ReadyCondition(tc.pod); (c != nil && c.Status == corev1.ConditionTrue) != tc.want {
				t.Fatalf("ReadyCondition = %+v", c)
			}
		})
	}
}

func TestTerminalAndActive(t *testing.T) {
	deleting := metav1.NewTime(now)
	for _, tc := range []struct {
		phase            corev1.PodPhase
		deleting         bool
		terminal, active bool
	}{
		{corev1.PodPending, false, false, true},
		{corev1.PodRunning, false, false, true},
		{corev1.PodUnknown, false, false, true},
		{corev1.PodRunning, true, false, false},
		{corev1.PodSucceeded, false, true, false},
		{corev1.PodFailed, false, true, false},
		{corev1.PodFailed, true, true, false},
	} {
		p := pod(tc.phase)
		if tc.deleting {
			p.DeletionTimestamp = &deleting
		}
		if Terminal(p) != tc.terminal || Active(p) != tc.active {
			t.Errorf("%s deleting=%v: terminal %v active %v, want %v %v", tc.phase, tc.deleting, Terminal(p), Active(p), tc.terminal, tc.active)
		}
	}
}

func TestAvailable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pod      *corev1.Pod
		minReady int32
		ok       bool
		wait     time.Duration
	}{
		{"not ready", pod(corev1.PodRunning, ready(corev1.ConditionFalse, now.Add(-time.Hour))), 0, false, 0},
		{"ready, no minReadySeconds", pod(corev1.PodRunning, ready(corev1.ConditionTrue, now)), 0, true, 0},
		{"ready long enough", pod(corev1.PodRunning, ready(corev1.ConditionTrue, now.Add(-11*time.Second))), 10, true, 0},
		{"ready exactly minReadySeconds: not yet", pod(corev1.PodRunning, ready(corev1.ConditionTrue, now.Add(-10*time.Second))), 10, false, time.Millisecond},
		{"ready recently", pod(corev1.PodRunning, ready(corev1.ConditionTrue, now.Add(-4*time.Second))), 10, false, 6*time.Second + time.Millisecond},
		{"ready since an unknown time", pod(corev1.PodRunning, ready(corev1.ConditionTrue, time.Time{})), 10, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, wait := Available(tc.pod, tc.minReady, now)
			if ok != tc.ok || wait != tc.wait {
				t.Fatalf("Available = %v, %v; want %v, %v", ok, wait, tc.ok, tc.wait)
			}
			if !ok && wait > 0 {
				if later, _ := Available(tc.pod, tc.minReady, now.Add(wait)); !later {
					t.Fatalf("not available after waiting %v", wait)
				}
			}
		})
	}
}

package agent

import "time"

// crashBackoff is kubelet's CrashLoopBackOff for one pod's containers, keyed by container
// name: after each failure a container waits, counted from when it exited, for a delay
// that starts at backoffBase and doubles up to backoffMax; a container that ran for
// 2×backoffMax between two failures starts over at backoffBase. The first restart is
// immediate. It is not safe for concurrent use; the pod's worker owns it.
type crashBackoff struct {
	delay map[string]time.Duration
	// since is when the failure the delay was set for ended.
	since map[string]time.Time
}

func newCrashBackoff() *crashBackoff {
	return &crashBackoff{delay: map[string]time.Duration{}, since: map[string]time.Time{}}
}

// wait returns how much longer container name must wait at now after a failure that
// ended at finished; zero means it may restart.
func (b *crashBackoff) wait(name string, finished, now time.Time) time.Duration {
	d, ok := b.delay[name]
	if !ok || b.expired(name, finished) {
		return 0
	}
	return max(0, finished.Add(d).Sub(now))
}

// restarted records that container name is restarted after a failure that ended at
// finished, and returns the delay the next failure will wait for.
func (b *crashBackoff) restarted(name string, finished time.Time) time.Duration {
	d, ok := b.delay[name]
	switch {
	case !ok || b.expired(name, finished):
		d = backoffBase
	default:
		d = min(2*d, backoffMax)
	}
	b.delay[name], b.since[name] = d, finished
	return d
}

// current is the delay container name waits after its latest failure (zero before any).
func (b *crashBackoff) current(name string) time.Duration { return b.delay[name] }

// expired reports whether container name ran long enough before the failure that ended at
// finished for that failure to count as a first one again: kubelet forgets a back-off once
// two maximum back-offs passed between the failures it was set for.
func (b *crashBackoff) expired(name string, finished time.Time) bool {
	return finished.Sub(b.since[name]) > 2*backoffMax
}

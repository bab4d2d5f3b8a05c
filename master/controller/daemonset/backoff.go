package daemonset

import (
	"sync"
	"time"
)

// backoff spaces out the replacement of daemon pods that keep failing on the same node (a
// node that rejects the pod would otherwise see it deleted and recreated in a hot loop), as
// Kubernetes' failedPodsBackoff does: the first failure is replaced at once, each further
// one waits twice as long as the last, up to max; a node quiet for twice max starts over.
// It is safe for concurrent use.
type backoff struct {
	initial, max time.Duration
	mu           sync.Mutex
	entries      map[string]backoffEntry
}

type backoffEntry struct {
	delay time.Duration
	last  time.Time
}

func newBackoff(initial, max time.Duration) *backoff {
	return &backoff{initial: initial, max: max, entries: map[string]backoffEntry{}}
}

// wait returns how long the replacement for key must still wait at now (0: go ahead).
func (b *backoff) wait(key string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok || b.expired(e, now) {
		return 0
	}
	return max(0, e.last.Add(e.delay).Sub(now))
}

// next records a replacement for key at now and lengthens the next wait.
func (b *backoff) next(key string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok || b.expired(e, now) {
		e.delay = b.initial
	} else {
		e.delay = min(2*e.delay, b.max)
	}
	e.last = now
	b.entries[key] = e
	if len(b.entries) > 1024 {
		for k, old := range b.entries {
			if b.expired(old, now) {
				delete(b.entries, k)
			}
		}
	}
}

func (b *backoff) expired(e backoffEntry, now time.Time) bool {
	return now.Sub(e.last) > 2*b.max
}

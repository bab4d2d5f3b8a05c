package fsm

import "sync"

// hub keeps the bounded event history and the open watches. Apply publishes to it; it never
// blocks Apply on a consumer.
type hub struct {
	mu sync.Mutex
	// history is a ring of the most recent events, oldest at start.
	history []Event
	start   int
	size    int
	// compacted is the highest revision whose events may be missing from history: a watch
	// can resume from any revision >= compacted.
	compacted uint64
	watches   map[*Watch]struct{}
	// queueLimit is how many undelivered events a watch may hold before it is cut off.
	queueLimit int
}

func newHub(historySize, queueLimit int) *hub {
	return &hub{history: make([]Event, historySize), watches: map[*Watch]struct{}{}, queueLimit: queueLimit}
}

// publish appends events to the history and hands each watch its matching ones.
// The caller holds no locks; the state holding these events is already visible.
func (h *hub) publish(evs []Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range evs {
		if h.size == len(h.history) {
			// Every event of the evicted revision may not be gone yet, so resuming from just
			// below it stays refused until the last of them leaves the ring.
			h.compacted = h.history[h.start].Revision
			h.start = (h.start + 1) % len(h.history)
			h.size--
		}
		h.history[(h.start+h.size)%len(h.history)] = ev
		h.size++
	}
	var matched []Event
	for w := range h.watches {
		matched = matched[:0]
		for _, ev := range evs {
			if fev, ok := w.opts.filter(ev); ok {
				matched = append(matched, fev)
			}
		}
		if len(matched) > 0 && !w.push(matched, h.queueLimit) {
			delete(h.watches, w)
		}
	}
}

// watch registers a new watch whose backlog (events after opts.From) and live events form
// one gap-free sequence: both are taken under the same lock publish holds. The backlog is
// always taken from the history rather than only when opts.From is below a revision read
// before the lock: an entry published in between would otherwise be lost.
func (h *hub) watch(opts WatchOptions) (*Watch, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if opts.From < h.compacted {
		return nil, ErrTooOld
	}
	w := &Watch{
		hub:     h,
		opts:    opts,
		events:  make(chan Event, 64),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	for i := 0; i < h.size; i++ {
		ev := h.history[(h.start+i)%len(h.history)]
		if ev.Revision <= opts.From {
			continue
		}
		if fev, ok := opts.filter(ev); ok {
			w.pending = append(w.pending, fev)
		}
	}
	h.watches[w] = struct{}{}
	go w.pump()
	return w, nil
}

func (h *hub) remove(w *Watch) {
	h.mu.Lock()
	delete(h.watches, w)
	h.mu.Unlock()
}

// reset forgets the history after a restore: every open watch ends with ErrTooOld, so its
// client relists, and resuming from before revision is refused.
func (h *hub) reset(revision uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watches {
		w.end(ErrTooOld)
	}
	h.watches = map[*Watch]struct{}{}
	for i := range h.history {
		h.history[i] = Event{}
	}
	h.start, h.size, h.compacted = 0, 0, revision
}

// oldest reports the lowest revision a watch may resume from.
func (h *hub) oldest() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.compacted
}

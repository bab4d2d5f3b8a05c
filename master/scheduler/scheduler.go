// Package scheduler is skiff's pod scheduler, a leader routine. It keeps an in-memory cache
// of nodes and placed pods, fed by the leader FSM's watch, places pending pods one at a time
// with kube-scheduler's filters and scores (placement.go, filters.go, scores.go: pure logic
// over the cache), and writes the binds concurrently (binder.go) so that many of them share
// a Raft entry.
package scheduler

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
	"skiff/master/registry"
)

var (
	podsResource       = registry.Lookup("", "v1", "pods")
	nodesResource      = registry.Lookup("", "v1", "nodes")
	namespacesResource = registry.Lookup("", "v1", "namespaces")
)

// Scheduler binds pending pods to nodes. Run is its leader routine.
type Scheduler struct {
	client *controller.Client
	rec    *controller.Recorder
	opts   Options
	log    *slog.Logger

	// Owned by Run's goroutine.
	cache *Cache
	queue *queue
	// running counts bind and status writes in flight; results receives their outcomes.
	running int
	results chan writeResult
	// move is set when something changed that may let unschedulable pods fit.
	move bool
	wg   sync.WaitGroup
}

// New returns a scheduler writing through client and recording events with rec (whose
// component should be "default-scheduler").
func New(client *controller.Client, rec *controller.Recorder, opts Options, logger *slog.Logger) *Scheduler {
	opts.setDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		client:  client,
		rec:     rec,
		opts:    opts,
		log:     logger,
		results: make(chan writeResult, opts.MaxInFlight),
	}
}

// closed is always ready; selecting on it means "there is work to do now".
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Run schedules until ctx ends, then waits for the writes it started.
func (s *Scheduler) Run(ctx context.Context) {
	defer s.wg.Wait()
	for ctx.Err() == nil {
		err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		s.log.Debug("watch ended; rebuilding the cache", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// session builds the cache from the current state and keeps it current from the watch
// until the watch ends (a restore, or the scheduler fell behind) or ctx does.
func (s *Scheduler) session(ctx context.Context) error {
	f := s.client.Store.FSM()
	st := f.State()
	podW, err := f.Watch(fsm.WatchOptions{Resource: objects.StoreResource(podsResource), From: st.Revision()})
	if err != nil {
		return err
	}
	defer podW.Stop()
	nodeW, err := f.Watch(fsm.WatchOptions{Resource: objects.StoreResource(nodesResource), From: st.Revision()})
	if err != nil {
		return err
	}
	defer nodeW.Stop()
	s.rebuild(st)

	retry := time.NewTicker(s.opts.RetryInterval)
	defer retry.Stop()
	promote := time.NewTicker(200 * time.Millisecond)
	defer promote.Stop()
	for {
		var ready <-chan struct{}
		if s.running < s.opts.MaxInFlight && s.queue.hasActive() {
			ready = closed
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-podW.Events():
			if !ok {
				return podW.Err()
			}
			s.podChanged(ev.Record, ev.Type == fsm.Deleted)
		case ev, ok := <-nodeW.Events():
			if !ok {
				return nodeW.Err()
			}
			s.nodeChanged(ev)
		case r := <-s.results:
			s.finish(r)
		case <-retry.C:
			s.queue.moveUnschedulable()
		case now := <-promote.C:
			s.queue.promote(now)
		case <-ready:
			for range 32 {
				if s.running >= s.opts.MaxInFlight {
					break
				}
				p := s.queue.pop()
				if p == nil {
					break
				}
				s.schedule(ctx, p)
			}
		}
		if s.move {
			s.move = false
			s.queue.moveUnschedulable()
		}
	}
}

// rebuild replaces the cache and queue with what st holds. Pods whose bind is still being
// written stay assumed where they were placed.
func (s *Scheduler) rebuild(st *fsm.State) {
	var inflight []*PodInfo
	if s.cache != nil {
		for _, p := range s.cache.pods {
			if p.inflight {
				inflight = append(inflight, p)
			}
		}
	}
	s.cache = NewCache(s.opts)
	s.queue = newQueue()
	nodes, _ := st.List(fsm.ListOptions{Resource: objects.StoreResource(nodesResource)})
	for _, rec := range nodes {
		s.nodeChanged(fsm.Event{Type: fsm.Added, Record: rec})
	}
	pods, _ := st.List(fsm.ListOptions{Resource: objects.StoreResource(podsResource)})
	for _, rec := range pods {
		s.podChanged(rec, false)
	}
	for _, p := range inflight {
		if s.cache.pods[p.key] == nil {
			s.queue.remove(p.key)
			s.cache.add(p, p.nodeName)
		}
	}
	s.move = false
}

func (s *Scheduler) nodeChanged(ev fsm.Event) {
	if ev.Type == fsm.Deleted {
		s.cache.RemoveNode(ev.Record.Key.Name)
		return
	}
	obj, err := objects.Decode(nodesResource, ev.Record)
	if err != nil {
		s.log.Warn("skipping undecodable node", "node", ev.Record.Key.Name, "error", err)
		return
	}
	s.cache.SetNode(obj.(*corev1.Node))
	s.move = true
}

// podChanged brings the cache and queue in line with one pod's new state. It reads the
// indexed fields first, and decodes the object only when the pod is new to the cache or
// changed in a way that matters: the common updates (a bind confirmed, a status written
// by the agent) cost a few map lookups.
func (s *Scheduler) podChanged(rec *fsm.Record, deleted bool) {
	k := rec.Key
	phase := corev1.PodPhase(rec.Meta.Fields["status.phase"])
	node := rec.Meta.Fields["spec.nodeName"]
	if deleted || phase == corev1.PodSucceeded || phase == corev1.PodFailed {
		if p := s.cache.pods[k]; p != nil {
			s.cache.remove(p)
			s.move = true
		}
		s.queue.remove(k)
		return
	}
	cached := s.cache.pods[k]
	if node != "" {
		s.queue.remove(k)
		if cached != nil && cached.nodeName == node && maps.Equal(cached.labels, rec.Meta.Labels) {
			cached.rev = rec.ModRevision
			return
		}
		pod := s.decode(rec)
		if pod == nil {
			return
		}
		p := newPodInfo(pod, s.resolveNamespaces)
		if cached != nil && cached.inflight && cached.nodeName == node {
			// Our bind, with new labels: keep the identity the bind result refers to.
			cached.labels = p.labels
			cached.rev = p.rev
			return
		}
		s.cache.add(p, node)
		return
	}
	if cached != nil {
		// Assumed: a version older than our bind, or a newer one that makes the bind fail.
		if cached.inflight {
			if pod := s.decode(rec); pod != nil && s.owns(pod) {
				cached.next = newPodInfo(pod, s.resolveNamespaces)
				cached.next.pod = pod
			}
		}
		return
	}
	pod := s.decode(rec)
	if pod == nil || !s.owns(pod) {
		s.queue.remove(k)
		return
	}
	p := newPodInfo(pod, s.resolveNamespaces)
	p.pod = pod
	old := s.queue.get(k)
	requeue := old == nil || old.pod == nil || !equality.Semantic.DeepEqual(old.pod.Spec, pod.Spec) || !maps.Equal(old.labels, p.labels)
	s.queue.add(p, requeue)
}

func (s *Scheduler) decode(rec *fsm.Record) *corev1.Pod {
	obj, err := objects.Decode(podsResource, rec)
	if err != nil {
		s.log.Warn("skipping undecodable pod", "pod", rec.Key.String(), "error", err)
		return nil
	}
	return obj.(*corev1.Pod)
}

// owns reports whether a pending pod is this scheduler's to place: it names the default
// scheduler, is not being deleted, and has no scheduling gates left.
func (s *Scheduler) owns(pod *corev1.Pod) bool {
	return (pod.Spec.SchedulerName == "" || pod.Spec.SchedulerName == corev1.DefaultSchedulerName) &&
		pod.DeletionTimestamp == nil && len(pod.Spec.SchedulingGates) == 0 && pod.Spec.NodeName == ""
}

// resolveNamespaces lists the namespaces whose labels sel matches, for affinity terms with
// a namespaceSelector; it reads the labels the store indexes, without decoding.
func (s *Scheduler) resolveNamespaces(sel labels.Selector) []string {
	recs, _ := s.client.State().List(fsm.ListOptions{
		Resource:  objects.StoreResource(namespacesResource),
		Predicate: func(r *fsm.Record) bool { return sel.Matches(labels.Set(r.Meta.Labels)) },
	})
	names := make([]string, len(recs))
	for i, r := range recs {
		names[i] = r.Key.Name
	}
	return names
}

// schedule places one pod: on success it assumes the pod on the node and starts writing the
// bind; otherwise it reports why and parks the pod until the cluster changes.
func (s *Scheduler) schedule(ctx context.Context, p *PodInfo) {
	p.attempts++
	p.lastTry = time.Now()
	node, ferr := s.cache.place(p)
	if ferr != nil {
		s.unschedulable(ctx, p, ferr)
		return
	}
	s.cache.add(p, node.name)
	p.inflight = true
	pod, name := p.pod, node.name
	s.start(func() writeResult { return writeResult{pod: p, err: s.bind(ctx, pod, name)} })
}

// finish takes in the outcome of a write.
func (s *Scheduler) finish(r writeResult) {
	s.running--
	p := r.pod
	if p == nil {
		return // a status write; the watch shows its effect
	}
	p.inflight = false
	next := p.next
	p.next = nil
	if r.err == nil {
		p.pod = nil // bound: the cache no longer needs the object
		return
	}
	if s.cache.pods[p.key] != p {
		return // the store has moved on: the pod is gone or placed by a newer version
	}
	s.cache.remove(p)
	s.move = true
	stale := controller.IsStale(r.err)
	if !stale {
		s.log.Warn("binding pod", "pod", p.namespace+"/"+p.name, "node", p.nodeName, "error", r.err)
	}
	p.node, p.nodeName = nil, ""
	switch {
	case next != nil:
		// A newer version arrived while the bind was written (and made it fail).
		s.queue.add(next, true)
	case !stale:
		s.queue.park(p, backingOff)
	}
	// A stale bind with no newer version seen yet: the watch brings it, or its deletion.
}

// unschedulable records why p fits nowhere: a FailedScheduling event each attempt, and the
// PodScheduled=False condition when it changes.
func (s *Scheduler) unschedulable(ctx context.Context, p *PodInfo, ferr *FitError) {
	msg := ferr.Error()
	s.rec.Eventf(p.pod, corev1.EventTypeWarning, "FailedScheduling", "%s", msg)
	s.queue.park(p, unschedulable)
	if s.running >= s.opts.MaxInFlight {
		return // written on a later attempt
	}
	cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: msg}
	if !conditionDiffers(&p.pod.Status, &cond) {
		return
	}
	pod := p.pod
	s.start(func() writeResult { return writeResult{err: s.writeCondition(ctx, pod, cond)} })
}

// start runs a write in its own goroutine; its result comes back through s.results.
func (s *Scheduler) start(write func() writeResult) {
	s.running++
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.results <- write()
	}()
}

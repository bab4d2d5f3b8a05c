package master

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"skiff/master/controller"
	"skiff/master/controller/cronjob"
	"skiff/master/controller/daemonset"
	"skiff/master/controller/deployment"
	"skiff/master/controller/disruption"
	"skiff/master/controller/endpoints"
	"skiff/master/controller/gc"
	"skiff/master/controller/job"
	"skiff/master/controller/replicaset"
	"skiff/master/controller/statefulset"
	"skiff/master/scheduler"
	"skiff/raft"
)

// controllerSpec is one controller the leader runs: its name (also the events' source
// component) and how to build its reconciler.
type controllerSpec struct {
	name    string
	workers int
	build   func(*controller.Client, *controller.Recorder) controller.Reconciler
	resync  time.Duration // zero: the Runner's default
}

// controllerSpecs lists every level-triggered controller, in the order they start.
var controllerSpecs = []controllerSpec{
	{"replicaset-controller", 4, withEvents(replicaset.New), 0},
	{"deployment-controller", 2, withEvents(deployment.New), 0},
	{"endpoints-controller", 2, withoutEvents(endpoints.New), 0},
	{"daemonset-controller", 2, daemonset.New, 0},
	{"statefulset-controller", 2, statefulset.New, 0},
	{"job-controller", 2, job.New, 0},
	{"cronjob-controller", 1, cronjob.New, 0},
	// The collector's resync walks every object, so it runs rarely; deletions reach it
	// through the owner index as they happen.
	{"garbage-collector", 2, withoutEvents(gc.New), 5 * time.Minute},
	{"disruption-controller", 1, withEvents(disruption.New), 0},
}

// withEvents adapts a constructor returning its concrete controller type.
func withEvents[T controller.Reconciler](build func(*controller.Client, *controller.Recorder) T) func(*controller.Client, *controller.Recorder) controller.Reconciler {
	return func(c *controller.Client, r *controller.Recorder) controller.Reconciler { return build(c, r) }
}

// withoutEvents adapts the constructor of a controller that records no events.
func withoutEvents[T controller.Reconciler](build func(*controller.Client) T) func(*controller.Client, *controller.Recorder) controller.Reconciler {
	return func(c *controller.Client, _ *controller.Recorder) controller.Reconciler { return build(c) }
}

// registerControllers makes every controller a leader routine of node: each starts after
// the leader's barrier, reads the leader's own FSM, writes only while this node leads (a
// proposal is never forwarded, so a deposed leader's late decision fails), and stops when
// leadership is lost.
func registerControllers(node *raft.Node, logger *slog.Logger) {
	client := &controller.Client{Store: controller.LeaderStore{Node: node}}
	for _, spec := range controllerSpecs {
		node.OnLeader(spec.name, func(ctx context.Context) {
			withRecorder(ctx, client, spec.name, logger, func(rec *controller.Recorder) {
				r := &controller.Runner{Name: spec.name, Reconciler: spec.build(client, rec), Store: client.Store, Workers: spec.workers, Resync: spec.resync, Logger: logger}
				r.Run(ctx)
			})
		})
	}
	node.OnLeader("scheduler", func(ctx context.Context) {
		withRecorder(ctx, client, "default-scheduler", logger, func(rec *controller.Recorder) {
			scheduler.New(client, rec, scheduler.Options{}, logger.With("component", "scheduler")).Run(ctx)
		})
	})
	node.OnLeader("event-ttl", func(ctx context.Context) { controller.ExpireEvents(ctx, client, time.Hour) })
}

// withRecorder runs fn with an event recorder for component whose writer runs beside it
// and is waited for, so a leader routine leaves nothing running when it returns.
func withRecorder(ctx context.Context, client *controller.Client, component string, logger *slog.Logger, fn func(*controller.Recorder)) {
	rec := controller.NewRecorder(client, component, logger)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); rec.Run(ctx) }()
	fn(rec)
	wg.Wait()
}

package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"skiff/fsm"
	"skiff/raft"
	"skiff/raft/rafttest"
)

const (
	singleClientWrites = 1000
	manyClients        = 64
	writesPerClient    = 200
)

// writeRun is the outcome of one write workload.
type writeRun struct {
	lat        durations
	throughput float64 // acknowledged writes per second
}

// runWrites has clients goroutines each do n writes with write(client, i) and times them.
func runWrites(tb testing.TB, clients, n int, write func(client, i int) error) writeRun {
	var mu sync.Mutex
	var all durations
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			lat := make(durations, 0, n)
			for i := 0; i < n; i++ {
				t0 := time.Now()
				if err := write(c, i); err != nil {
					tb.Errorf("write %d/%d: %v", c, i, err)
					return
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	return writeRun{lat: all, throughput: float64(len(all)) / time.Since(start).Seconds()}
}

// BenchmarkWrites compares writes through skiff's Propose on a 3-node cluster with one
// bbolt fsync commit on the same disk (DESIGN.md §8 R1, R2) and with a 3-member etcd doing
// the same writes. The figures are printed; nothing passes or fails on time.
func BenchmarkWrites(b *testing.B) {
	dir := b.TempDir()
	value := make([]byte, valueSize)
	rep := &report{title: fmt.Sprintf("writes: %d-byte values, 3 replicas on loopback, data in %s", valueSize, dir)}

	base := bboltCommit(b, dir, 300)
	rep.add("baseline bbolt commit (fsync):   %s  → %.0f commits/s", base, float64(time.Second)/float64(base.pct(50)))
	chain := bboltCommitChain(b, dir, 300, 2)
	rep.add("two commits in sequence:         %s  = %.2f× one commit: the floor of a write that a leader and then a follower make durable",
		chain, float64(chain.pct(50))/float64(base.pct(50)))

	c := rafttest.New(b, rafttest.Options{Dir: dir + "/skiff"})
	leader := c.Node(c.WaitLeader())
	ctx := context.Background()
	put := func(n *raft.Node, client, i int) error {
		k := fsm.Key{Resource: "bench", Name: fmt.Sprintf("c%d-k%d", client, i%16)}
		res, err := n.Propose(ctx, &fsm.Txn{Ops: []fsm.Op{fsm.DeleteIfExists(k), fsm.Create(k, value, fsm.Meta{})}})
		if err == nil && res.Err != nil {
			err = res.Err
		}
		return err
	}
	one := runWrites(b, 1, singleClientWrites, func(cl, i int) error { return put(leader, cl, i) })
	rep.add("skiff 1 client (leader):         %s  %.0f writes/s", one.lat, one.throughput)
	follower := c.Any(true)
	oneF := runWrites(b, 1, singleClientWrites/2, func(cl, i int) error { return put(follower, cl, i) })
	rep.add("skiff 1 client (via follower):   %s  %.0f writes/s", oneF.lat, oneF.throughput)
	before := leader.Stats()
	many := runWrites(b, manyClients, writesPerClient, func(cl, i int) error { return put(c.Node(cl%c.Size()), cl, i) })
	after := leader.Stats()
	fsyncs := float64(max(1, after.LogWrites-before.LogWrites))
	rep.add("skiff %d clients (all nodes):    %s  %.0f writes/s, %.1f writes and %.1f log entries per leader fsync",
		manyClients, many.lat, many.throughput, float64(len(many.lat))/fsyncs, float64(after.LogEntries-before.LogEntries)/fsyncs)
	r1 := float64(one.lat.pct(50)) / float64(base.pct(50))
	r2 := many.throughput / one.throughput
	rep.add("R1 skiff 1-client p50 / bbolt commit p50 = %.2f× (target ≤ 3×)", r1)
	rep.add("R2 skiff %d-client / 1-client throughput = %.1f× (target ≥ 20×)", manyClients, r2)
	c.ShutdownAll()

	e := startEtcd(b, dir+"/etcd")
	cli := e.client(e.clients[e.leader(-1)])
	defer cli.Close()
	eput := func(cli *clientv3.Client, client, i int) error {
		_, err := cli.Put(ctx, fmt.Sprintf("c%d-k%d", client, i%16), string(value))
		return err
	}
	eOne := runWrites(b, 1, singleClientWrites, func(cl, i int) error { return eput(cli, cl, i) })
	rep.add("etcd  1 client (leader):         %s  %.0f writes/s", eOne.lat, eOne.throughput)
	clis := make([]*clientv3.Client, len(e.clients))
	for i := range clis {
		clis[i] = e.client(e.clients[i])
		defer clis[i].Close()
	}
	eMany := runWrites(b, manyClients, writesPerClient, func(cl, i int) error { return eput(clis[cl%len(clis)], cl, i) })
	rep.add("etcd  %d clients (all members):  %s  %.0f writes/s", manyClients, eMany.lat, eMany.throughput)
	rep.add("etcd 1-client p50 / bbolt commit p50 = %.2f× (R1's measure applied to etcd)", float64(eOne.lat.pct(50))/float64(base.pct(50)))
	rep.add("skiff/etcd 1-client latency p50 = %.2f× (below 1: skiff faster)", float64(one.lat.pct(50))/float64(eOne.lat.pct(50)))
	rep.add("skiff/etcd %d-client throughput = %.2f× (above 1: skiff faster)", manyClients, many.throughput/eMany.throughput)
	fmt.Fprint(os.Stdout, rep)
	b.ReportMetric(r1, "R1-x")
	b.ReportMetric(r2, "R2-x")
}

package raft_test

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"skiff/fsm"
	"skiff/raft"
	"skiff/raft/rafttest"
	"skiff/test/verify"
)

// kvClient performs model operations against the store and records them for porcupine.
type kvClient struct {
	id    int
	c     *rafttest.Cluster
	rng   *rand.Rand
	start time.Time
}

func (k *kvClient) now() int64 { return int64(time.Since(k.start)) }

func (k *kvClient) node() *raft.Node {
	for {
		up := k.c.Up()
		if len(up) > 0 {
			if n := k.c.Node(up[k.rng.Intn(len(up))]); n != nil {
				return n
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// do runs one random operation and returns its record.
func (k *kvClient) do(keys []string, seq int) porcupine.Operation {
	key := keys[k.rng.Intn(len(keys))]
	fk := fsm.Key{Resource: "kv", Name: key}
	n := k.node()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	op := porcupine.Operation{ClientId: k.id, Call: k.now()}
	value := fmt.Sprintf("c%d-%d", k.id, seq)
	var in verify.KVInput
	var out verify.KVOutput
	propose := func(o fsm.Op) {
		res, err := n.Propose(ctx, &fsm.Txn{Ops: []fsm.Op{o}})
		if err != nil {
			// Some errors (no leader) prove the write did not happen, but modelling every
			// error as unknown is always sound: porcupine tries both outcomes.
			out.Unknown = true
			return
		}
		out.OK = res.Err == nil
	}
	switch r := k.rng.Intn(10); {
	case r < 4:
		in = verify.KVInput{Op: verify.KVGet, Key: key}
		st, err := n.LinearizableRead(ctx)
		if err != nil {
			// A read that fails tells nothing; leave it out of the history.
			return porcupine.Operation{ClientId: -1}
		}
		rec := st.Get(fk)
		if rec != nil {
			out = verify.KVOutput{OK: true, Value: string(rec.Value)}
		}
	case r < 6:
		in = verify.KVInput{Op: verify.KVCreate, Key: key, Value: value}
		propose(fsm.Create(fk, []byte(value), fsm.Meta{}))
	case r < 9:
		// Compare-and-set: read the current version, then update only that version.
		st, err := n.LinearizableRead(ctx)
		if err != nil {
			return porcupine.Operation{ClientId: -1}
		}
		rec := st.Get(fk)
		if rec == nil {
			// Nothing to swap: what was observed is a read of an absent key.
			in = verify.KVInput{Op: verify.KVGet, Key: key}
			break
		}
		op.Call = k.now()
		in = verify.KVInput{Op: verify.KVCAS, Key: key, Value: value, Prev: string(rec.Value)}
		propose(fsm.Update(fk, rec.ModRevision, []byte(value), fsm.Meta{}))
	default:
		in = verify.KVInput{Op: verify.KVDelete, Key: key}
		propose(fsm.Delete(fk, 0))
	}
	op.Input, op.Output = in, out
	op.Return = k.now()
	if out.Unknown {
		op.Return = math.MaxInt64 // it may take effect at any point after its call
	}
	return op
}

// TestLinearizableUnderRotatingFaults drives create / compare-and-set / delete /
// linearizable get through random nodes while partitions, cut links, delays and leader
// kills rotate, and has porcupine check the history.
func TestLinearizableUnderRotatingFaults(t *testing.T) {
	c := rafttest.New(t, rafttest.Options{})
	keys := []string{"a", "b", "c", "d"}
	start := time.Now()
	var mu sync.Mutex
	var history []porcupine.Operation
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for id := 0; id < 6; id++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			cl := &kvClient{id: id, c: c, rng: rand.New(rand.NewSource(int64(id) + 1)), start: start}
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				op := cl.do(keys, seq)
				if op.ClientId < 0 {
					continue
				}
				mu.Lock()
				history = append(history, op)
				mu.Unlock()
			}
		}(id)
	}
	rng := rand.New(rand.NewSource(42))
	faults := []func(){
		func() { c.Partition(c.WaitLeader()) },
		func() { c.Partition(rng.Intn(c.Size())) },
		func() { c.Cut(0, 1) },
		func() { c.Delay(rng.Intn(c.Size()), 30*time.Millisecond) },
		func() {
			i := c.WaitLeader()
			c.Kill(i)
			time.Sleep(800 * time.Millisecond)
			c.Restart(i)
		},
	}
	for round := 0; round < 10; round++ {
		faults[round%len(faults)]()
		time.Sleep(700 * time.Millisecond)
		c.Heal()
		c.WaitLeader()
		time.Sleep(300 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	ok := 0
	for _, op := range history {
		if !op.Output.(verify.KVOutput).Unknown {
			ok++
		}
	}
	if ok < 100 {
		t.Fatalf("only %d operations with known outcomes; the workload did not run", ok)
	}
	t.Logf("%d operations, %d with known outcomes", len(history), ok)
	verify.Linearizable(t, verify.KVModel, history, 60*time.Second)
	c.Verify()
}

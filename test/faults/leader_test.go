package faults

import (
	"math/rand"
	"sync/atomic"
	"testing"
	"time"

	"skiff/test/cluster"
	"skiff/test/verify"
)

// kill -9 the leader under writes, four times: a new leader takes over, writes continue, the
// killed master comes back and catches up, nothing acknowledged is lost.
func TestKillLeaderUnderWrites(t *testing.T) {
	c := start(t, 3)
	w := c.StartWorkload(cluster.WorkloadOptions{})
	progress(t, w, 20, 30*time.Second, "before any fault")
	for round := 0; round < 4; round++ {
		old := waitLeader(t, c, -1)
		c.Kill(old)
		t.Logf("killed the leader %s", c.Names[old])
		waitLeader(t, c, old)
		progress(t, w, 20, 30*time.Second, "after the leader was killed")
		c.Restart(old)
		c.WaitReady(old)
		progress(t, w, 20, 30*time.Second, "after the old leader came back")
	}
	finish(t, c, w)
}

// Partition the leader from the other masters for 10 s while writes go to every master:
// the majority elects a new leader and keeps acknowledging writes; the old leader, which
// the test still reaches, acknowledges none of the writes sent to it while it is cut off;
// after the heal it rejoins and converges.
func TestPartitionLeader(t *testing.T) {
	c := start(t, 3)
	// Once the old leader is cut off, clients 0 to 2 send it creates (reads, and so
	// compare-and-sets, fail there before writing) and the others spread over the
	// majority, as clients that failed over would.
	var pinned atomic.Int32
	pinned.Store(-1)
	const toOld = 3
	w := c.StartWorkload(cluster.WorkloadOptions{Clients: 6,
		Target: func(client int, rng *rand.Rand) int {
			p := int(pinned.Load())
			if p >= 0 && client < toOld {
				return p
			}
			for {
				if i := rng.Intn(len(c.Names)); i != p {
					return i
				}
			}
		},
		Op: func(client int, rng *rand.Rand) string {
			if client < toOld && pinned.Load() >= 0 {
				return verify.KVCreate
			}
			return []string{verify.KVGet, verify.KVCreate, verify.KVCAS, verify.KVCAS}[rng.Intn(4)]
		},
	})
	progress(t, w, 20, 30*time.Second, "before any fault")
	old := waitLeader(t, c, -1)
	c.Partition(old)
	cut := time.Now()
	pinned.Store(int32(old))
	t.Logf("partitioned the leader %s", c.Names[old])
	newLeader := waitLeader(t, c, old)
	t.Logf("%s leads the majority", c.Names[newLeader])
	progress(t, w, 20, 10*time.Second, "through the majority while the leader is partitioned")
	time.Sleep(time.Until(cut.Add(10 * time.Second)))
	healed := time.Now()
	c.Heal()
	pinned.Store(-1)
	if n := w.Acked(old, cut, healed); n > 0 {
		t.Errorf("the partitioned old leader %s acknowledged %d writes sent to it while cut off", c.Names[old], n)
	}
	sent := 0
	for _, o := range w.Ops() {
		if o.Master == old && o.Write() && o.Call.After(cut) && o.Call.Before(healed) {
			sent++
		}
	}
	if sent == 0 {
		t.Errorf("no write was sent to the partitioned old leader; the check above proved nothing")
	}
	t.Logf("%d writes acknowledged by the majority during the partition, %d sent to the old leader (none acknowledged)",
		w.Acked(-1, cut, healed), sent)
	progress(t, w, 20, 30*time.Second, "after the heal")
	finish(t, c, w)
}

// SIGSTOP the leader for three election timeouts, then SIGCONT, three times: the others
// elect a new leader meanwhile; the resumed master steps down, acknowledges nothing it should not and
// catches up.
func TestPauseLeader(t *testing.T) {
	c := start(t, 3)
	w := c.StartWorkload(cluster.WorkloadOptions{})
	progress(t, w, 20, 30*time.Second, "before any fault")
	for round := 0; round < 3; round++ {
		old := waitLeader(t, c, -1)
		c.Pause(old)
		t.Logf("stopped the leader %s", c.Names[old])
		time.Sleep(3 * electionTimeout)
		if l := c.Leader(old); l >= 0 {
			t.Logf("%s was elected while %s was stopped", c.Names[l], c.Names[old])
		}
		c.Resume(old)
		t.Logf("resumed %s", c.Names[old])
		waitLeader(t, c, -1)
		progress(t, w, 20, 30*time.Second, "after the stopped leader resumed")
	}
	finish(t, c, w)
}

// kill -9 every master at once, under writes, and restart them all, three times: the
// cluster elects a leader again from what is on disk, and nothing acknowledged before the
// crash is lost.
func TestKillAllMasters(t *testing.T) {
	c := start(t, 3)
	w := c.StartWorkload(cluster.WorkloadOptions{})
	for round := 0; round < 3; round++ {
		progress(t, w, 30, 30*time.Second, "before killing every master")
		c.KillAll()
		t.Logf("killed every master")
		for i := range c.Names {
			c.Restart(i)
		}
		for i := range c.Names {
			c.WaitReady(i)
		}
		waitLeader(t, c, -1)
		progress(t, w, 30, 30*time.Second, "after every master restarted")
	}
	finish(t, c, w)
}

package faults

import (
	"math/rand"
	"os"
	"testing"
	"time"

	"skiff/test/cluster"
)

// rotateDuration is how long TestRotatingPartitions runs its faults: $SKIFF_FAULT_ROTATE
// (a Go duration), 60 s by default.
func rotateDuration(t *testing.T) time.Duration {
	v := os.Getenv("SKIFF_FAULT_ROTATE")
	if v == "" {
		return 60 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("SKIFF_FAULT_ROTATE=%q is not a positive Go duration", v)
	}
	return d
}

// Partitions rotate under writes for SKIFF_FAULT_ROTATE: the leader cut off, a random
// master cut off, a split into groups, a non-transitive split (two masters that cannot see each other, both
// seen by the third), the leader's link taken down; each for one to three seconds, then
// healed for a moment. The history stays linearizable and the masters converge.
func TestRotatingPartitions(t *testing.T) {
	d := rotateDuration(t)
	c := start(t, 3)
	w := c.StartWorkload(cluster.WorkloadOptions{})
	progress(t, w, 20, 30*time.Second, "before any fault")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	t.Logf("rotating partitions for %s", d)
	faults := []struct {
		name  string
		apply func() (heal func())
	}{
		{"leader isolated", func() func() {
			if l := c.Leader(-1); l >= 0 {
				c.Partition(l)
			}
			return c.Heal
		}},
		{"random master isolated", func() func() {
			c.Partition(rng.Intn(3))
			return c.Heal
		}},
		{"split into a minority and a majority", func() func() {
			a := rng.Intn(3)
			c.Split([]int{a}, []int{(a + 1) % 3, (a + 2) % 3})
			return c.Heal
		}},
		{"non-transitive split", func() func() {
			a := rng.Intn(3)
			b := (a + 1 + rng.Intn(2)) % 3
			c.Net.Block(c.Host(a), []*cluster.Host{c.Host(b)})
			c.Net.Block(c.Host(b), []*cluster.Host{c.Host(a)})
			return c.Heal
		}},
		{"leader's link down", func() func() {
			l := c.Leader(-1)
			if l < 0 {
				return func() {}
			}
			h := c.Host(l)
			h.LinkDown()
			return h.LinkUp
		}},
	}
	end := time.Now().Add(d)
	rounds := 0
	for time.Now().Before(end) {
		f := faults[rng.Intn(len(faults))]
		hold := time.Second + time.Duration(rng.Int63n(int64(2*time.Second)))
		heal := f.apply()
		time.Sleep(hold)
		heal()
		t.Logf("round %d: %s for %s", rounds, f.name, hold.Round(time.Millisecond))
		rounds++
		time.Sleep(time.Duration(rng.Int63n(int64(time.Second))))
	}
	waitLeader(t, c, -1)
	progress(t, w, 20, 30*time.Second, "after the last heal")
	finish(t, c, w)
}

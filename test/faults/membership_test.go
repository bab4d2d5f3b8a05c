package faults

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"skiff/test/cluster"
)

// voters returns master i's view of the Raft configuration, as sorted IDs.
func voters(c *cluster.Cluster, i int) ([]string, error) {
	st, err := c.Stats(i)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, p := range st.Peers {
		if p.Voter {
			ids = append(ids, p.ID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// waitVoters waits until every master in on agrees the voters are want.
func waitVoters(t *testing.T, c *cluster.Cluster, on []int, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(30 * time.Second)
	for _, i := range on {
		for {
			got, err := voters(c, i)
			if err == nil && slices.Equal(got, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's voters are %v (err %v), want %v", c.Names[i], got, err, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// removePeer removes master id from the Raft configuration through master via, and
// waits until the masters left agree on the voters; then it kills the removed master, as
// an operator would stop it.
func removePeer(t *testing.T, c *cluster.Cluster, via, id int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, via, http.MethodPost, "/skiff/v1/raft/remove-peer?id="+c.Names[id], "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("removing %s through %s: %s", c.Names[id], c.Names[via], resp.Status)
	}
	before, err := voters(c, via)
	if err != nil {
		t.Fatal(err)
	}
	var rest []int
	var restNames []string
	for i, name := range c.Names {
		if i != id && c.Running(i) && slices.Contains(before, name) {
			rest = append(rest, i)
			restNames = append(restNames, name)
		}
	}
	waitVoters(t, c, rest, restNames...)
	c.Kill(id)
	t.Logf("removed %s; the voters are %v", c.Names[id], restNames)
}

// Under writes: a fourth master joins and becomes a voter; the leader itself is removed
// through /skiff/v1/raft/remove-peer (asked of another master) and stopped; a fifth master
// joins; a follower is removed. Every step keeps a leader and the writes going, and the
// history stays linearizable throughout.
func TestAddRemoveMasterUnderWrites(t *testing.T) {
	c := start(t, 3)
	w := c.StartWorkload(cluster.WorkloadOptions{})
	progress(t, w, 20, 30*time.Second, "before any change")

	m4 := c.AddMaster()
	waitVoters(t, c, []int{0, 1, 2, m4}, "m1", "m2", "m3", "m4")
	t.Logf("m4 joined as a voter")
	progress(t, w, 20, 30*time.Second, "after m4 joined")

	old := waitLeader(t, c, -1)
	via := m4
	if via == old {
		via = (old + 1) % 3
	}
	removePeer(t, c, via, old)
	waitLeader(t, c, old)
	progress(t, w, 20, 30*time.Second, fmt.Sprintf("after the leader %s was removed", c.Names[old]))

	m5 := c.AddMaster()
	var up []int
	var upNames []string
	for i, name := range c.Names {
		if c.Running(i) {
			up = append(up, i)
			upNames = append(upNames, name)
		}
	}
	waitVoters(t, c, up, upNames...)
	t.Logf("m5 joined as a voter: %v", upNames)
	progress(t, w, 20, 30*time.Second, "after m5 joined")

	leader := waitLeader(t, c, -1)
	follower := -1
	for _, i := range up {
		if i != leader && i != m5 && follower < 0 {
			follower = i
		}
	}
	removePeer(t, c, m5, follower)
	waitLeader(t, c, follower)
	progress(t, w, 20, 30*time.Second, fmt.Sprintf("after the follower %s was removed", c.Names[follower]))
	finish(t, c, w)
}

// A master partitioned for longer than the dead-server cleanup is removed by the leader's
// autopilot; once the partition heals it notices it has known no leader for a while and
// asks to be kept, so the cluster grows back to four voters on its own, under writes.
func TestPartitionedMasterRemovedThenReturns(t *testing.T) {
	cleanup := []string{"--dead-server-cleanup", "2s"}
	c := start(t, 3, cleanup...)
	m4 := c.AddMaster(cleanup...)
	all := []int{0, 1, 2, m4}
	waitVoters(t, c, all, "m1", "m2", "m3", "m4")
	w := c.StartWorkload(cluster.WorkloadOptions{})
	progress(t, w, 20, 30*time.Second, "before the partition")

	leader := waitLeader(t, c, -1)
	cut := m4
	if cut == leader {
		cut = (leader + 1) % 3
	}
	var rest []int
	var restNames []string
	for _, i := range all {
		if i != cut {
			rest = append(rest, i)
			restNames = append(restNames, c.Names[i])
		}
	}
	c.Partition(cut)
	waitVoters(t, c, rest, restNames...)
	t.Logf("%s partitioned and removed by the autopilot; voters %v", c.Names[cut], restNames)
	progress(t, w, 20, 30*time.Second, "while it is cut off")
	c.Heal()

	deadline := time.Now().Add(90 * time.Second)
	for {
		got, err := voters(c, leader)
		if err == nil && len(got) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never came back after the partition healed: voters %v (err %v)", c.Names[cut], got, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitVoters(t, c, all, "m1", "m2", "m3", "m4")
	progress(t, w, 20, 30*time.Second, "after it came back")
	finish(t, c, w)
}

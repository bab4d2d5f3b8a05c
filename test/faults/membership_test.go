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

// A fourth master joins under writes and becomes a voter; then the leader itself is
// removed through /skiff/v1/raft/remove-peer (asked of another master) and stopped. The
// three left elect a leader and carry on, and the history stays linearizable throughout.
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, via, http.MethodPost, "/skiff/v1/raft/remove-peer?id="+c.Names[old], "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("removing the leader %s through %s: %s", c.Names[old], c.Names[via], resp.Status)
	}
	var rest []int
	var restNames []string
	for i := range c.Names {
		if i != old {
			rest = append(rest, i)
			restNames = append(restNames, c.Names[i])
		}
	}
	waitVoters(t, c, rest, restNames...)
	t.Logf("removed the leader %s; %v remain", c.Names[old], restNames)
	c.Kill(old)
	waitLeader(t, c, old)
	progress(t, w, 20, 30*time.Second, fmt.Sprintf("after %s was removed", c.Names[old]))
	finish(t, c, w)
}

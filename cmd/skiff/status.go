package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"skiff/raft"
)

// masterInfo is what /skiff/v1/masters lists.
type masterInfo struct {
	ID      string `json:"id"`
	API     string `json:"api"`
	Raft    string `json:"raft"`
	Voter   bool   `json:"voter"`
	Unknown bool   `json:"unknown,omitempty"`
}

func runStatus(args []string) error {
	fs := flag.NewFlagSet("skiff status", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", defaultKubeconfig(), "kubeconfig of the cluster")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: skiff status [--kubeconfig FILE]\n\nShows every master's Raft state, the leader, and how many masters the cluster can still lose.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	c, err := loadClient(*kubeconfig)
	if err != nil {
		return err
	}
	var masters []masterInfo
	if err := c.getJSON("", "/skiff/v1/masters", &masters); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MASTER\tSTATE\tTERM\tLEADER\tCOMMIT\tAPPLIED\tLAG\tAPI")
	var voters, up int
	var leaderCommit uint64
	rows := map[string]raft.Stats{}
	for _, m := range masters {
		if m.Voter {
			voters++
		}
		var st raft.Stats
		if m.API == "" || c.getJSON("https://"+m.API, "/skiff/v1/raft", &st) != nil {
			continue
		}
		up++
		rows[m.ID] = st
		if st.State == "Leader" {
			leaderCommit = st.CommitIndex
		}
	}
	for _, m := range masters {
		st, ok := rows[m.ID]
		if !ok {
			fmt.Fprintf(tw, "%s\tunreachable\t-\t-\t-\t-\t-\t%s\n", m.ID, m.API)
			continue
		}
		var lag uint64
		if leaderCommit > st.AppliedIndex {
			lag = leaderCommit - st.AppliedIndex
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%s\n", st.ID, st.State, st.Term, st.LeaderID, st.CommitIndex, st.AppliedIndex, lag, m.API)
	}
	tw.Flush()
	quorum := voters/2 + 1
	switch {
	case leaderCommit == 0:
		fmt.Println("\nWARNING: no reachable master is the leader")
	case up-quorum <= 0:
		fmt.Printf("\nWARNING: %d of %d masters needed, %d up: losing one more stops the cluster\n", quorum, voters, up)
	default:
		fmt.Printf("\n%d of %d masters needed, %d up: %d more can be lost\n", quorum, voters, up, up-quorum)
	}
	return nil
}

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"skiff/raft"
)

func runStatus(args []string) error {
	fs := flag.NewFlagSet("skiff status", flag.ContinueOnError)
	servers := fs.String("servers", "http://127.0.0.1:7480", "comma-separated API URLs of the masters to ask")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: skiff status [--servers URL,…]\n\nShows each master's Raft state and what quorum can still lose.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	client := &http.Client{Timeout: 3 * time.Second}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MASTER\tSTATE\tTERM\tLEADER\tCOMMIT\tAPPLIED\tLAG\tSERVER")
	var voters, up int
	var leaderCommit uint64
	type row struct {
		st     raft.Stats
		server string
	}
	var rows []row
	var failed []string
	for _, s := range strings.Split(*servers, ",") {
		s = strings.TrimRight(strings.TrimSpace(s), "/")
		var st raft.Stats
		resp, err := client.Get(s + "/skiff/v1/raft")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", s, err))
			continue
		}
		up++
		rows = append(rows, row{st, s})
		if st.State == "Leader" {
			leaderCommit = st.CommitIndex
			voters = 0
			for _, p := range st.Peers {
				if p.Voter {
					voters++
				}
			}
		}
	}
	for _, r := range rows {
		st := r.st
		var lag uint64
		if leaderCommit > st.AppliedIndex {
			lag = leaderCommit - st.AppliedIndex
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%s\n", st.ID, st.State, st.Term, st.LeaderID, st.CommitIndex, st.AppliedIndex, lag, r.server)
	}
	tw.Flush()
	for _, f := range failed {
		fmt.Printf("unreachable: %s\n", f)
	}
	if voters > 0 {
		quorum := voters/2 + 1
		fmt.Printf("\n%d voters; quorum needs %d; %d answered; %d more can be lost\n", voters, quorum, up, max(0, up-quorum))
	} else {
		fmt.Println("\nWARNING: no master that answered is the leader")
	}
	return nil
}

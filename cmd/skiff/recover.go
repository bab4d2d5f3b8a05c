package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"skiff/raft"
)

func runRecover(args []string) error {
	fs := flag.NewFlagSet("skiff recover", flag.ContinueOnError)
	host, _ := os.Hostname()
	dataDir := fs.String("data-dir", "/var/lib/skiff", "data dir of the surviving master (the master must be stopped)")
	name := fs.String("name", host, "the surviving master's --name")
	raftAddr := fs.String("raft-addr", "", "the survivor's Raft address from now on (default: the one the cluster knew)")
	peersFrom := fs.String("peers-from", "", "data dirs of other surviving masters (stopped; copies will do), comma-separated: recovery refuses a survivor that lacks entries one of them has")
	dryRun := fs.Bool("dry-run", false, "only show what the data dir holds and what recovery would do")
	yes := fs.Bool("yes", false, "really rewrite the Raft configuration")
	force := fs.Bool("force", false, "recover even if other masters still answer or another survivor is more up to date")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: skiff recover --data-dir DIR [--name ID] [--peers-from DIR,...] [--dry-run | --yes]

Recovers a cluster that lost its quorum: more than half of its masters are gone for good,
so no leader can be elected and nothing can be written. Run it on the machine of a
surviving master, with that master stopped. It

  1. reads DIR: the newest entry it holds (index and term), its latest snapshot, and the
     last Raft configuration it knows;
  2. dials the Raft address of every other master of that configuration: if enough still
     answer to form a quorum with this one, it refuses (start this master instead);
  3. compares DIR with the other survivors' data dirs given with --peers-from and refuses
     if one of them holds entries this one lacks (recover from that one instead);
  4. says what may be lost: writes the lost masters committed after this survivor's newest
     entry, which nothing can bring back;
  5. with --yes, rewrites the configuration so that this master is the only voter
     (hashicorp/raft RecoverCluster): every entry in its log is applied and kept, whether or
     not the old cluster had committed it.

Then start the master again with its usual flags: it elects itself and serves alone. Each
other master rejoins after its data dir is wiped: start it with --join (this master's Raft
address, or a gossip address with --gossip-addr), without --peers or --bootstrap-expect.
Run with --dry-run on every survivor first to see which one is the most up to date.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	info, err := raft.ReadDataDir(*dataDir)
	if err != nil {
		return err
	}
	self, ok := info.Peer(*name)
	if !ok {
		var ids []string
		for _, p := range info.Peers {
			ids = append(ids, p.ID)
		}
		return fmt.Errorf("%q is not in the last configuration of %s (%s): pass the master's --name with --name", *name, *dataDir, strings.Join(ids, ", "))
	}
	printDataDir(info, *name)

	// Who still answers?
	var others []raft.Peer
	voters := 0
	for _, p := range info.Peers {
		if p.Voter {
			voters++
		}
		if p.ID != *name {
			others = append(others, p)
		}
	}
	fmt.Println("\nOther masters of that configuration:")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	probes := raft.ProbePeers(ctx, others, 2*time.Second)
	cancel()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	reachable := 0
	var answering []string
	for _, pr := range probes {
		state := "unreachable"
		if pr.Reachable {
			state = "ANSWERS: a master still runs there"
			answering = append(answering, pr.ID)
			if pr.Voter {
				reachable++
			}
		} else if pr.Err != nil {
			state += " (" + recoverShortErr(pr.Err) + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", pr.ID, pr.Address, recoverSuffrage(pr.Voter), state)
	}
	tw.Flush()
	quorum := voters/2 + 1
	selfVotes := 0
	if self.Voter {
		selfVotes = 1
	}
	var refusals []string
	if reachable+selfVotes >= quorum {
		refusals = append(refusals, fmt.Sprintf(
			"%d of the %d voters answer besides this one: started again, this master and they have a quorum (%d) and the cluster recovers by itself. Start this master instead.", reachable, voters, quorum))
	} else if len(answering) > 0 {
		fmt.Printf("\nWARNING: %s still answer(s). Stop them and wipe their data dirs before they rejoin; if one is more up to date than this survivor (compare skiff recover --dry-run there), recover from it instead.\n", strings.Join(answering, ", "))
	}

	// Is another survivor more up to date?
	if *peersFrom != "" {
		fmt.Println("\nOther survivors' data dirs:")
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		for _, dir := range strings.Split(*peersFrom, ",") {
			dir = strings.TrimSpace(dir)
			if dir == "" {
				continue
			}
			o, err := raft.ReadDataDir(dir)
			if err != nil {
				return fmt.Errorf("--peers-from: %w", err)
			}
			verdict := "this survivor has everything it has"
			if o.NewerThan(info) {
				verdict = "HOLDS ENTRIES THIS ONE LACKS"
				refusals = append(refusals, fmt.Sprintf(
					"%s holds entries up to index %d (term %d), beyond this survivor's index %d (term %d): recover from that master instead.", dir, o.LastIndex, o.LastTerm, info.LastIndex, info.LastTerm))
			}
			fmt.Fprintf(tw, "  %s\tlast entry index %d, term %d\t%s\n", dir, o.LastIndex, o.LastTerm, verdict)
		}
		tw.Flush()
	}

	fmt.Printf(`
What may be lost:
  This master holds the log up to index %d (term %d). Writes the lost masters committed
  after that are gone, and nothing here can tell whether there were any: hashicorp/raft does
  not record the commit index.
`, info.LastIndex, info.LastTerm)
	if info.SnapshotIndex > 0 {
		fmt.Printf("  Entries up to index %d (its latest snapshot) were committed; later ones may not have\n  been, and recovering commits them.\n", info.SnapshotIndex)
	} else {
		fmt.Println("  It has no snapshot, so any of its entries may not have been committed; recovering\n  commits them all.")
	}

	if len(refusals) > 0 {
		for _, r := range refusals {
			fmt.Printf("\nREFUSED: %s\n", r)
		}
		if !*force {
			return errors.New("not recovering (pass --force to recover anyway, at the risk of two diverging clusters or lost entries)")
		}
		fmt.Println("\n--force given: recovering anyway.")
	}
	addr := *raftAddr
	if addr == "" {
		addr = self.Address
	}
	if *dryRun {
		fmt.Printf("\nDry run: nothing changed. With --yes, %s (%s) becomes the only voter.\n", *name, addr)
		return nil
	}
	if !*yes {
		return fmt.Errorf("nothing changed: rerun with --yes to make %s (%s) the only voter", *name, addr)
	}

	fmt.Printf("\nRewriting the Raft configuration to %s (%s) alone...\n", *name, addr)
	logf, err := os.OpenFile(filepath.Join(*dataDir, "raft.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	res, err := raft.RecoverDataDir(*dataDir, *name, addr, info, logf)
	if err != nil {
		return err
	}
	fmt.Printf("Recovered: %s is the only voter. Its state is at revision %d: %d objects, state hash %s.\n", *name, res.Revision, res.Objects, res.Hash)
	fmt.Printf(`
Next:
  1. Start this master again with its usual flags: it elects itself and serves alone.
  2. For every other master: stop it if it still runs, wipe its data dir, and start it with
     --join %s (or --join <a gossip address> with --gossip-addr), without --peers or
     --bootstrap-expect. It joins as a voter and copies the state.
  3. 'skiff status' shows the masters as they come back.
`, addr)
	return nil
}

// printDataDir shows what a data dir holds.
func printDataDir(info *raft.DataDirInfo, self string) {
	fmt.Printf("Data dir %s of master %s\n", info.Dir, self)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  newest entry\tindex %d, term %d\n", info.LastIndex, info.LastTerm)
	if info.SnapshotIndex > 0 {
		fmt.Fprintf(tw, "  latest snapshot\tindex %d, term %d\n", info.SnapshotIndex, info.SnapshotTerm)
	} else {
		fmt.Fprintf(tw, "  latest snapshot\tnone\n")
	}
	fmt.Fprintf(tw, "  current term\t%d\n", info.CurrentTerm)
	fmt.Fprintf(tw, "  configuration\tfrom entry %d, %d servers\n", info.ConfigurationIndex, len(info.Peers))
	tw.Flush()
}

func recoverSuffrage(voter bool) string {
	if voter {
		return "voter"
	}
	return "non-voter"
}

func recoverShortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

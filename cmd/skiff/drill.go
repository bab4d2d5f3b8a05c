package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// drillCatalog lists the drills `skiff drill` knows, with what each does.
var drillCatalog = []struct{ name, summary string }{
	{"leader-transfer", "hand leadership to another master (a planned change: nothing should fail)"},
	{"leader-crash", "kill -9 the leader; its supervisor (skiff dev, systemd) restarts it"},
	{"leader-partition", "cut the leader off Raft, gossip and its clients for --duration"},
	{"master-pause", "stop the leader (or --target) for --duration: SIGSTOP when it runs on this machine, else emulated"},
	{"agent-partition", "cut an agent (--target, default the first Ready one) off gossip and the masters for --duration"},
}

func runDrill(args []string) error {
	fs := flag.NewFlagSet("skiff drill", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", defaultKubeconfig(), "kubeconfig of the cluster (admin token)")
	duration := fs.Duration("duration", 10*time.Second, "how long partitions and pauses last (they heal themselves after it)")
	timeout := fs.Duration("timeout", 60*time.Second, "time limit for the cluster to recover, from the fault")
	target := fs.String("target", "", "master-pause: the master to pause (default: the leader); agent-partition: the agent (default: the first Ready one)")
	output := fs.String("o", "text", "output: text or json")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: skiff drill NAME [flags]
       skiff drill list [--kubeconfig FILE] [-o json]
       skiff drill show ID [--kubeconfig FILE] [-o json]

Runs a failover drill against a live cluster and measures how it rides it out.

While the fault is on, a probe workload runs through the masters that are not the
target: unique writes (ConfigMaps in namespace skiff-system), a linearizable read of
each acknowledged write through another master, and a watch. When agents are Ready, the
canary Deployment skiff-system/skiff-drill-canary (3 replicas, created on first use and
left running for the next drill) is followed too.

The report gives the time to a new leader, to the first acknowledged write issued after
the fault, and until the scheduler and the ReplicaSet controller act (on a probe pod and
a probe ReplicaSet created once a new leader is known); acknowledged writes lost (must
be 0); watch gaps (none: every acknowledged write seen once, in order); the canary's
ready replicas over the drill; and whether every master converged on the same applied
index and state hash. Reports are kept in the cluster (ConfigMaps in skiff-system
labelled skiff.dev/drill-report) for 'skiff drill list'. The command exits with an
error when the drill found a problem.

Faults are carried out by the targeted process itself, which must run with
--allow-drills ('skiff dev --allow-drills' passes it on). Partitions and pauses heal
themselves after --duration even if this command dies; Ctrl-C heals at once. A crashed
master needs its supervisor (skiff dev, systemd) to come back; the drill waits for it
until --timeout. master-pause sends SIGSTOP/SIGCONT itself when the master runs on this
machine, and otherwise asks the master to emulate a pause (Raft and gossip cut, API
requests held); the report says which.

Drills:
`)
		for _, d := range drillCatalog {
			fmt.Fprintf(fs.Output(), "  %-17s %s\n", d.name, d.summary)
		}
		fmt.Fprintf(fs.Output(), "\nFlags:\n")
		fs.PrintDefaults()
	}
	// Flags may come before or after the drill's name.
	var positional []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("-o %s: want text or json", *output)
	}
	if len(positional) == 0 {
		fs.Usage()
		return errors.New("name a drill, or 'list'")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch positional[0] {
	case "list":
		return listDrills(ctx, *kubeconfig, "", *output)
	case "show":
		if len(positional) != 2 {
			return errors.New("usage: skiff drill show ID")
		}
		return listDrills(ctx, *kubeconfig, positional[1], *output)
	}
	known := false
	for _, d := range drillCatalog {
		known = known || d.name == positional[0]
	}
	if !known {
		var all []string
		for _, d := range drillCatalog {
			all = append(all, d.name)
		}
		return fmt.Errorf("unknown drill %q (drills: %s, or list)", positional[0], strings.Join(all, ", "))
	}
	if len(positional) > 1 {
		return fmt.Errorf("unexpected arguments after the drill's name: %s", strings.Join(positional[1:], " "))
	}
	if *duration < 100*time.Millisecond || *duration > 10*time.Minute {
		return fmt.Errorf("--duration %s: want between 100ms and 10m", *duration)
	}
	if *timeout < time.Second {
		return fmt.Errorf("--timeout %s: too short", *timeout)
	}
	r := &drillRunner{name: positional[0], opts: drillOptions{kubeconfig: *kubeconfig, duration: *duration, timeout: *timeout, target: *target, progress: os.Stderr}}
	rep, err := r.run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted; the fault was healed and the probe objects deleted")
		}
		return err
	}
	if *output == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(os.Stdout, rep)
	}
	if !rep.Passed {
		return fmt.Errorf("the drill found %d problem(s)", len(rep.Problems))
	}
	return nil
}

// printReport writes a report for people.
func printReport(w io.Writer, r *DrillReport) {
	result := "PASSED"
	if !r.Passed {
		result = "FAILED"
	}
	fmt.Fprintf(w, "\ndrill %s  %s  %s  (%s)\n", r.Drill, r.ID, result, r.Started.Local().Format(time.DateTime))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("target", "%s (%s); %s", r.Target, r.TargetRole, r.Method)
	row("cluster", "%d masters, leader %s (term %d) before, %s (term %d) after; %d Ready agents", r.Masters, r.LeaderBefore, r.TermBefore, r.LeaderAfter, r.TermAfter, r.Agents)
	if r.TargetRole == "leader" {
		row("new leader", "%s", drillAfter(r.NewLeaderMs))
	}
	row("writes back", "%s (first acknowledged write issued after the fault)", drillAfter(r.WritesBackMs))
	row("scheduler", "%s", drillAfter(r.SchedulerMs))
	row("controllers", "%s", drillAfter(r.ControllersMs))
	if r.NodeUnreachableMs != nil {
		row("node not Ready", "%s", drillAfter(r.NodeUnreachableMs))
	}
	if r.Drill != "leader-transfer" {
		row(r.Target+" back", "%s", drillAfter(r.HealedMs))
	}
	ws := r.Writes
	row("writes", "%d acknowledged, %d found afterwards, %d lost; %d failed, %d unknown outcome (%d of them applied)",
		ws.Acknowledged, ws.Found, ws.Lost, ws.Failed, ws.Unknown, ws.UnknownApplied)
	if len(ws.NotAcknowledged) > 0 {
		var reasons []string
		for reason, n := range ws.NotAcknowledged {
			reasons = append(reasons, fmt.Sprintf("%d × %s", n, reason))
		}
		sort.Strings(reasons)
		row("not acked", "%s; issued from %s to %s", strings.Join(reasons, ", "), drillOffset(ws.UnavailableFromMs), drillOffset(ws.UnavailableToMs))
	}
	row("reads", "%d linearizable reads of acknowledged writes, %d stale, %d errors", r.Reads.Reads, r.Reads.Stale, r.Reads.Errors)
	row("watch", "%d events, %d gaps (missing %d, out of order %d, duplicated %d, expired %d); resumed %d times",
		r.Watch.Events, r.Watch.Gaps(), r.Watch.Missing, r.Watch.OutOfOrder, r.Watch.Duplicates, r.Watch.Expired, r.Watch.Resumed)
	if r.Canary.Enabled {
		full := ""
		if r.Canary.FullAgainMs != nil {
			full = ", all ready again " + drillAfter(r.Canary.FullAgainMs)
		}
		row("canary", "%d replicas: %d ready at the fault, at least %d ready throughout%s", r.Canary.Replicas, r.Canary.ReadyBefore, r.Canary.MinReady, full)
	} else {
		row("canary", "skipped (no Ready agents)")
	}
	c := r.Convergence
	conv := "no"
	if c.Converged {
		conv = fmt.Sprintf("yes: %d masters at revision %d, state hash %s", len(c.Masters), c.Revision, drillShortHash(c.Masters[0].Hash))
	}
	if c.OneLeaderPerTerm {
		conv += "; one leader per term"
	}
	row("converged", "%s", conv)
	tw.Flush()
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  PROBLEM: %s\n", p)
	}
}

func drillAfter(v *float64) string {
	if v == nil {
		return "not observed"
	}
	return "after " + drillMs(time.Duration(*v*float64(time.Millisecond)))
}

// listDrills prints the stored reports (all, or the one with id).
func listDrills(ctx context.Context, kubeconfig, id, output string) error {
	creds, err := readDrillCreds(kubeconfig)
	if err != nil {
		return err
	}
	m := creds.master("", creds.server)
	var list struct {
		Items []struct {
			Data map[string]string `json:"data"`
		} `json:"items"`
	}
	q := "?labelSelector=" + url.QueryEscape(reportLabel+"=true")
	err = m.call(ctx, 10*time.Second, http.MethodGet, drillConfigMaps()+q, nil, &list)
	if drillCode(err) == http.StatusNotFound {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("listing drill reports: %w", err)
	}
	var reports []*DrillReport
	for _, it := range list.Items {
		var r DrillReport
		if json.Unmarshal([]byte(it.Data["report.json"]), &r) == nil && (id == "" || r.ID == id) {
			reports = append(reports, &r)
		}
	}
	sort.Slice(reports, func(i, j int) bool { return reports[i].Started.Before(reports[j].Started) })
	if id != "" && len(reports) == 0 {
		return fmt.Errorf("no drill report %s", id)
	}
	if output == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if id != "" {
			return enc.Encode(reports[0])
		}
		if reports == nil {
			reports = []*DrillReport{}
		}
		return enc.Encode(reports)
	}
	if id != "" {
		printReport(os.Stdout, reports[0])
		return nil
	}
	if len(reports) == 0 {
		fmt.Println("No drills recorded yet. Run one: skiff drill leader-crash")
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDRILL\tTARGET\tSTARTED\tNEW LEADER\tWRITES BACK\tACTED\tACKED\tLOST\tGAPS\tCANARY MIN\tCONVERGED\tRESULT")
	for _, r := range reports {
		acted := r.SchedulerMs
		if r.ControllersMs != nil && (acted == nil || *r.ControllersMs > *acted) {
			acted = r.ControllersMs
		}
		canary := "-"
		if r.Canary.Enabled {
			canary = fmt.Sprintf("%d/%d", r.Canary.MinReady, r.Canary.Replicas)
		}
		result := "passed"
		if !r.Passed {
			result = fmt.Sprintf("FAILED (%d)", len(r.Problems))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%v\t%s\n", r.ID, r.Drill, r.Target, r.Started.Local().Format(time.DateTime),
			drillShort(r.NewLeaderMs), drillShort(r.WritesBackMs), drillShort(acted), r.Writes.Acknowledged, r.Writes.Lost, r.Watch.Gaps(), canary, r.Convergence.Converged, result)
	}
	tw.Flush()
	return nil
}

// drillOffset prints a time relative to the fault, "+1.25s" or "-120ms".
func drillOffset(v *float64) string {
	if v == nil {
		return "?"
	}
	d := time.Duration(*v * float64(time.Millisecond))
	if d < 0 {
		return "-" + drillMs(-d)
	}
	return "+" + drillMs(d)
}

func drillShort(v *float64) string {
	if v == nil {
		return "-"
	}
	return drillMs(time.Duration(*v * float64(time.Millisecond)))
}

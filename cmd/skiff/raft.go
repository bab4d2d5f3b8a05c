package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"skiff/raft"
)

// runRaft dispatches `skiff raft <subcommand>`: Raft membership operations against a
// running cluster through any master's operations API.
func runRaft(args []string) error {
	subs := []struct {
		name, summary string
		run           func([]string) error
	}{
		{"peers", "list the Raft servers with their role, last contact, applied index and lag", runRaftPeers},
		{"remove-peer", "remove a server from the Raft configuration (skiff raft remove-peer ID)", runRaftRemovePeer},
		{"transfer-leadership", "hand leadership to another master (--to ID, or the most up-to-date one)", runRaftTransfer},
	}
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: skiff raft <subcommand> [flags]\n\nRaft membership of the masters.\n\nSubcommands:\n")
		for _, s := range subs {
			fmt.Fprintf(w, "  %-20s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(w, "\nRun 'skiff raft <subcommand> --help' for its flags.\n")
	}
	if len(args) == 0 {
		usage(os.Stderr)
		return errors.New("missing subcommand")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stdout)
		return nil
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(args[1:])
		}
	}
	usage(os.Stderr)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

// peerView is one server of the Raft configuration with the status its master reports.
type peerView struct {
	ID      string `json:"id"`
	Address string `json:"address"` // Raft address in the configuration
	Voter   bool   `json:"voter"`
	API     string `json:"api,omitempty"`
	// Reachable is whether the master answered its /skiff/v1/raft; Error says why not.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// State is "leader", "follower", "candidate", … as the master reports it, or
	// "unreachable".
	State        string    `json:"state"`
	Term         uint64    `json:"term,omitempty"`
	LeaderID     string    `json:"leaderID,omitempty"`
	CommitIndex  uint64    `json:"commitIndex,omitempty"`
	AppliedIndex uint64    `json:"appliedIndex,omitempty"`
	LastIndex    uint64    `json:"lastIndex,omitempty"`
	LastContact  time.Time `json:"lastContact,omitzero"`
	// Lag is how many entries the leader has committed that this master has not applied;
	// nil when unknown (no leader reachable, or this master unreachable).
	Lag *uint64 `json:"lag,omitempty"`
}

// clusterView is the Raft configuration as seen through the kubeconfig's master, with
// every master's own report.
type clusterView struct {
	Peers []peerView
	// Leader is the reachable master that reports itself leader in the highest term, or
	// empty; LeaderHint is the leader the reachable masters name when the leader itself
	// does not answer.
	Leader, LeaderHint string
	LeaderTerm         uint64
}

// gatherPeers reads the Raft configuration from the kubeconfig's master and asks every
// master, in parallel, for its Raft status.
func gatherPeers(c *apiClient) (*clusterView, error) {
	var masters []masterInfo
	if err := c.getJSON("", "/skiff/v1/masters", &masters); err != nil {
		return nil, fmt.Errorf("reading the masters from %s: %w", c.server, err)
	}
	v := &clusterView{Peers: make([]peerView, len(masters))}
	var wg sync.WaitGroup
	for i, m := range masters {
		p := &v.Peers[i]
		*p = peerView{ID: m.ID, Address: m.Raft, Voter: m.Voter, API: m.API, State: "unreachable"}
		if m.API == "" {
			p.Error = "its API address is not recorded yet"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st raft.Stats
			if err := c.getJSON("https://"+m.API, "/skiff/v1/raft", &st); err != nil {
				p.Error = err.Error()
				var ue *url.Error
				if errors.As(err, &ue) {
					p.Error = ue.Err.Error() // without the method and URL
				}
				return
			}
			p.Reachable = true
			p.State = strings.ToLower(st.State)
			p.Term, p.LeaderID = st.Term, st.LeaderID
			p.CommitIndex, p.AppliedIndex, p.LastIndex = st.CommitIndex, st.AppliedIndex, st.LastIndex
			p.LastContact = st.LastContact
		}()
	}
	wg.Wait()
	var leaderCommit uint64
	hints := map[string]int{}
	for _, p := range v.Peers {
		if p.State == "leader" && p.Term >= v.LeaderTerm {
			v.Leader, v.LeaderTerm, leaderCommit = p.ID, p.Term, p.CommitIndex
		}
		if p.LeaderID != "" {
			hints[p.LeaderID]++
		}
	}
	for id, n := range hints {
		if v.LeaderHint == "" || n > hints[v.LeaderHint] || n == hints[v.LeaderHint] && id < v.LeaderHint {
			v.LeaderHint = id
		}
	}
	if v.Leader != "" {
		for i := range v.Peers {
			p := &v.Peers[i]
			if !p.Reachable {
				continue
			}
			lag := uint64(0)
			if leaderCommit > p.AppliedIndex {
				lag = leaderCommit - p.AppliedIndex
			}
			p.Lag = &lag
		}
	}
	sort.SliceStable(v.Peers, func(i, j int) bool { return v.Peers[i].ID < v.Peers[j].ID })
	return v, nil
}

// lastContactText shows how long ago a follower last heard from the leader ("-" for the
// leader itself and for masters that did not answer). It compares with this machine's
// clock, so clock skew between hosts shows up in it.
func lastContactText(p peerView, now time.Time) string {
	if !p.Reachable || p.State == "leader" || p.LastContact.IsZero() {
		return "-"
	}
	d := now.Sub(p.LastContact)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String() + " ago"
	case d < time.Minute:
		return d.Round(100*time.Millisecond).String() + " ago"
	}
	return d.Round(time.Second).String() + " ago"
}

func lagText(p peerView) string {
	if p.Lag == nil {
		return "-"
	}
	return fmt.Sprint(*p.Lag)
}

func dashIfZero[T comparable](v T) string {
	var zero T
	if v == zero {
		return "-"
	}
	return fmt.Sprint(v)
}

func runRaftPeers(args []string) error {
	fs := flag.NewFlagSet("skiff raft peers", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", defaultKubeconfig(), "kubeconfig of the cluster")
	output := fs.String("o", "table", "output format: table or json")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: skiff raft peers [--kubeconfig FILE] [-o table|json]

Lists the servers of the Raft configuration, as the kubeconfig's master knows it, with what
each master reports about itself: its role, when it last heard from the leader, the index
it has applied, and how many committed entries it has not applied yet (lag). A master that
does not answer is listed as unreachable.

Flags:
`)
		fs.PrintDefaults()
	}
	if done, err := parseFlags(fs, args); done {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o must be table or json, got %q", *output)
	}
	c, err := loadClient(*kubeconfig)
	if err != nil {
		return err
	}
	v, err := gatherPeers(c)
	if err != nil {
		return err
	}
	if *output == "json" {
		return writeJSON(os.Stdout, v.Peers)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tVOTER\tSTATE\tTERM\tLAST CONTACT\tAPPLIED\tLAG")
	for _, p := range v.Peers {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Address, p.Voter, p.State, dashIfZero(p.Term),
			lastContactText(p, now), dashIfZero(p.AppliedIndex), lagText(p))
	}
	return tw.Flush()
}

func runRaftRemovePeer(args []string) error {
	fs := flag.NewFlagSet("skiff raft remove-peer", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", defaultKubeconfig(), "kubeconfig of the cluster")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: skiff raft remove-peer [--kubeconfig FILE] ID

Removes the server ID from the Raft configuration, for a master that is gone for good (the
leader's autopilot does this by itself for masters gossip reports dead long enough, see
skiff master --dead-server-cleanup). The cluster then needs a majority of the remaining
voters. A removed master that is started again from its data dir asks to be added back.

Flags:
`)
		fs.PrintDefaults()
	}
	if done, err := parseFlags(fs, args); done {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want exactly one server ID")
	}
	id := fs.Arg(0)
	c, err := loadClient(*kubeconfig)
	if err != nil {
		return err
	}
	v, err := gatherPeers(c)
	if err != nil {
		return err
	}
	var target *peerView
	var ids []string
	voters := 0
	for i, p := range v.Peers {
		ids = append(ids, p.ID)
		if p.Voter {
			voters++
		}
		if p.ID == id {
			target = &v.Peers[i]
		}
	}
	if target == nil {
		return fmt.Errorf("no server %q in the raft configuration (servers: %s)", id, strings.Join(ids, ", "))
	}
	if target.Reachable {
		fmt.Fprintf(os.Stderr, "warning: %s still answers (%s); it will sit outside the cluster until restarted, then ask to be added back\n", id, target.State)
	}
	if err := c.post("", "/skiff/v1/raft/remove-peer?id="+url.QueryEscape(id), nil); err != nil {
		return fmt.Errorf("removing %s: %w", id, err)
	}
	left := voters
	if target.Voter {
		left--
	}
	fmt.Printf("removed %s from the raft configuration; %d voters remain, %d needed for a quorum\n", id, left, left/2+1)
	return nil
}

func runRaftTransfer(args []string) error {
	fs := flag.NewFlagSet("skiff raft transfer-leadership", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", defaultKubeconfig(), "kubeconfig of the cluster")
	to := fs.String("to", "", "ID of the master to lead (default: the most up-to-date follower)")
	wait := fs.Duration("timeout", 30*time.Second, "how long to wait for the new leader")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: skiff raft transfer-leadership [--kubeconfig FILE] [--to ID]

Asks the leader to hand leadership over (before maintenance on its machine, or to move
leader-only work), to the master --to names or else to the most up-to-date follower, and
waits until the new leader is in place. Writes pause for about one round trip meanwhile.

Flags:
`)
		fs.PrintDefaults()
	}
	if done, err := parseFlags(fs, args); done {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (the target goes in --to)", fs.Args())
	}
	c, err := loadClient(*kubeconfig)
	if err != nil {
		return err
	}
	v, err := gatherPeers(c)
	if err != nil {
		return err
	}
	if *to != "" {
		found := false
		for _, p := range v.Peers {
			if p.ID == *to {
				found = true
				if !p.Voter {
					return fmt.Errorf("%s is not a voter and cannot lead", *to)
				}
				if !p.Reachable {
					return fmt.Errorf("%s does not answer (%s); pick a reachable master", *to, p.Error)
				}
			}
		}
		if !found {
			return fmt.Errorf("no server %q in the raft configuration", *to)
		}
		if *to == v.Leader {
			fmt.Printf("%s already leads (term %d)\n", *to, v.LeaderTerm)
			return nil
		}
	}
	old := v.Leader
	if old == "" {
		old = v.LeaderHint
	}
	fmt.Printf("asking leader %s to hand over leadership", dashIfZero(old))
	if *to != "" {
		fmt.Printf(" to %s", *to)
	}
	fmt.Println("…")
	if err := c.post("", "/skiff/v1/raft/transfer-leadership?to="+url.QueryEscape(*to), nil); err != nil {
		return fmt.Errorf("transferring leadership: %w", err)
	}
	deadline := time.Now().Add(*wait)
	for {
		v, err := gatherPeers(c)
		if err == nil && v.Leader != "" && v.Leader != old && (*to == "" || v.Leader == *to) {
			fmt.Printf("%s now leads (term %d)\n", v.Leader, v.LeaderTerm)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the transfer was accepted but no new leader showed within %s; run skiff raft peers", *wait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// post POSTs to path on server (empty: the kubeconfig's) and decodes a JSON reply into out
// unless out is nil. Membership changes can take longer than a read, so it allows 30 s.
// A refusal carries the master's message.
func (c *apiClient) post(server, path string, out any) error {
	if server == "" {
		server = c.server
	}
	req, err := http.NewRequest(http.MethodPost, server+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := *c.http
	hc.Timeout = 30 * time.Second
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var msg struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &msg) == nil && msg.Message != "" {
			return fmt.Errorf("%s: %s", resp.Status, msg.Message)
		}
		return fmt.Errorf("POST %s%s: %s", server, path, resp.Status)
	}
	if out == nil || len(body) == 0 {
		return nil
	}
	return json.Unmarshal(body, out)
}

// getJSONStatus GETs path from server (empty: the kubeconfig's) into out and also returns
// the HTTP status (0 if there was no response), so callers can tell "not there" apart.
func (c *apiClient) getJSONStatus(server, path string, out any) (int, error) {
	if server == "" {
		server = c.server
	}
	req, err := http.NewRequest(http.MethodGet, server+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s%s: %s", server, path, resp.Status)
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
}

// parseFlags parses args. done is true when the command should stop: after --help (which
// printed the usage; err is nil then) or on a flag error.
func parseFlags(fs *flag.FlagSet, args []string) (done bool, err error) {
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	return err != nil, err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

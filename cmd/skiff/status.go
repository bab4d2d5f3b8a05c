package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"text/tabwriter"
)

// masterInfo is what /skiff/v1/masters lists.
type masterInfo struct {
	ID      string `json:"id"`
	API     string `json:"api"`
	Raft    string `json:"raft"`
	Voter   bool   `json:"voter"`
	Unknown bool   `json:"unknown,omitempty"`
}

// memberInfo is what /skiff/v1/members lists: one gossip member.
type memberInfo struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	State   string `json:"state"`
	Addr    string `json:"addr"`
	API     string `json:"api,omitempty"`
	Raft    string `json:"raft,omitempty"`
	Version string `json:"version,omitempty"`
}

// lagWarnEntries is how far behind the leader a master may be before status warns (Consul
// autopilot's MaxTrailingLogs default).
const lagWarnEntries = 250

// masterStatus is one master in `skiff status`: its Raft report and its gossip state.
type masterStatus struct {
	peerView
	Gossip string `json:"gossip,omitempty"` // alive, suspect, dead, left; empty if gossip does not list it
}

// quorumStatus says how many masters the cluster needs and can still lose.
type quorumStatus struct {
	Voters  int `json:"voters"`
	Needed  int `json:"needed"`
	Up      int `json:"up"`
	CanLose int `json:"canLose"` // negative: the quorum is lost
}

// statusReport is everything `skiff status` shows; -o json prints it as is.
type statusReport struct {
	Leader     string         `json:"leader"`
	LeaderTerm uint64         `json:"leaderTerm,omitempty"`
	Masters    []masterStatus `json:"masters"`
	// Agents is nil when the masters run without gossip (GossipNote says so).
	Agents     []memberInfo `json:"agents"`
	GossipNote string       `json:"gossipNote,omitempty"`
	Quorum     quorumStatus `json:"quorum"`
	Warnings   []string     `json:"warnings"`
}

func runStatus(args []string) error {
	fs := flag.NewFlagSet("skiff status", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", defaultKubeconfig(), "kubeconfig of the cluster")
	output := fs.String("o", "table", "output format: table or json")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: skiff status [--kubeconfig FILE] [-o table|json]

Shows the cluster's health at a glance: the leader; every master's role, term, commit and
applied index and how far it trails the leader; the agents and their gossip state; how many
masters the cluster needs and how many more it can lose; and warnings (no leader, a master
unreachable or far behind, an agent gone). The kubeconfig's master is asked for the
members; each master is then asked for its own Raft status.

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
	r, err := gatherStatus(c)
	if err != nil {
		return err
	}
	if *output == "json" {
		return writeJSON(os.Stdout, r)
	}
	return printStatus(os.Stdout, r)
}

// gatherStatus collects the report: masters and their Raft status (gatherPeers), gossip
// members as the leader sees them (the kubeconfig's master if the leader does not
// answer), then quorum and warnings.
func gatherStatus(c *apiClient) (*statusReport, error) {
	v, err := gatherPeers(c)
	if err != nil {
		return nil, err
	}
	r := &statusReport{Leader: v.Leader, LeaderTerm: v.LeaderTerm}
	server := ""
	for _, p := range v.Peers {
		if p.ID == v.Leader && p.API != "" {
			server = "https://" + p.API
		}
	}
	var members []memberInfo
	if code, err := c.getJSONStatus(server, "/skiff/v1/members", &members); err != nil {
		if code == http.StatusNotFound {
			r.GossipNote = "the masters run without gossip; no agents are known"
		} else {
			r.GossipNote = "could not read gossip members: " + err.Error()
		}
	} else {
		r.Agents = []memberInfo{}
	}
	gossipState := map[string]string{}
	for _, m := range members {
		switch m.Role {
		case "master":
			gossipState[m.Name] = m.State
		case "agent":
			r.Agents = append(r.Agents, m)
		}
	}
	for _, p := range v.Peers {
		r.Masters = append(r.Masters, masterStatus{peerView: p, Gossip: gossipState[p.ID]})
	}
	r.Quorum = quorumOf(v.Peers)
	r.Warnings = statusWarnings(r, v.LeaderHint)
	return r, nil
}

// quorumOf counts voters, the quorum they need and how many of them answer.
func quorumOf(peers []peerView) quorumStatus {
	var q quorumStatus
	for _, p := range peers {
		if !p.Voter {
			continue
		}
		q.Voters++
		if p.Reachable {
			q.Up++
		}
	}
	q.Needed = q.Voters/2 + 1
	q.CanLose = q.Up - q.Needed
	return q
}

// quorumLine is the one-line quorum summary, e.g. "2 of 3 masters needed, 3 up, 1 left to
// lose".
func quorumLine(q quorumStatus) string {
	noun := "masters"
	if q.Voters == 1 {
		noun = "master"
	}
	if q.CanLose < 0 {
		return fmt.Sprintf("quorum lost: %d of %d %s needed, only %d up", q.Needed, q.Voters, noun, q.Up)
	}
	return fmt.Sprintf("%d of %d %s needed, %d up, %d left to lose", q.Needed, q.Voters, noun, q.Up, q.CanLose)
}

// statusWarnings lists what an operator should look at, most serious first.
func statusWarnings(r *statusReport, leaderHint string) []string {
	w := []string{}
	if r.Leader == "" {
		msg := "no leader: no reachable master leads"
		if leaderHint != "" {
			msg += fmt.Sprintf(" (masters last heard from %s, which does not answer)", leaderHint)
		}
		w = append(w, msg)
	}
	switch {
	case r.Quorum.CanLose < 0:
		w = append(w, quorumLine(r.Quorum)+": the cluster cannot commit writes")
	case r.Quorum.CanLose == 0 && r.Quorum.Voters > 1:
		w = append(w, quorumLine(r.Quorum)+": losing one more master stops the cluster")
	}
	for _, m := range r.Masters {
		switch {
		case !m.Reachable:
			w = append(w, fmt.Sprintf("master %s unreachable: %s", m.ID, m.Error))
		case m.Lag != nil && *m.Lag > lagWarnEntries:
			w = append(w, fmt.Sprintf("master %s is %d entries behind the leader", m.ID, *m.Lag))
		}
		if m.Gossip != "" && m.Gossip != "alive" && m.Gossip != "suspect" && m.Reachable {
			w = append(w, fmt.Sprintf("master %s answers but gossip reports it %s", m.ID, m.Gossip))
		}
	}
	for _, a := range r.Agents {
		if a.State != "alive" && a.State != "suspect" {
			w = append(w, fmt.Sprintf("agent %s is %s in gossip", a.Name, a.State))
		}
	}
	return w
}

// printStatus writes the report as aligned tables.
func printStatus(out io.Writer, r *statusReport) error {
	if r.Leader != "" {
		fmt.Fprintf(out, "Leader: %s (term %d)\n\n", r.Leader, r.LeaderTerm)
	} else {
		fmt.Fprintf(out, "Leader: none\n\n")
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MASTER\tROLE\tTERM\tCOMMIT\tAPPLIED\tLAG\tGOSSIP\tRAFT\tAPI")
	for _, m := range r.Masters {
		role := m.State
		if !m.Voter {
			role += " (non-voter)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, role, dashIfZero(m.Term), dashIfZero(m.CommitIndex),
			dashIfZero(m.AppliedIndex), lagText(m.peerView), dashIfZero(m.Gossip), m.Address, dashIfZero(m.API))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	switch {
	case r.Agents == nil:
		fmt.Fprintf(out, "Agents: unknown (%s)\n", r.GossipNote)
	case len(r.Agents) == 0:
		fmt.Fprintln(out, "Agents: none in gossip")
	default:
		fmt.Fprintln(tw, "AGENT\tSTATE\tGOSSIP ADDRESS\tAPI\tVERSION")
		for _, a := range r.Agents {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.State, dashIfZero(a.Addr), dashIfZero(a.API), dashIfZero(a.Version))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\nQuorum: %s\n", quorumLine(r.Quorum))
	if len(r.Warnings) > 0 {
		fmt.Fprintln(out, "\nWarnings:")
		for _, w := range r.Warnings {
			fmt.Fprintf(out, "  ! %s\n", w)
		}
	}
	return nil
}

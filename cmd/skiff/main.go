// Command skiff is the single skiff binary: masters, the local dev cluster and the
// operator's commands. Each subcommand lives in its own file; this one only dispatches.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(args []string) error
}

func commands() []command {
	return []command{
		{"master", "run a master: Raft node, cluster state and API", runMaster},
		{"agent", "run a node agent: registers a Node and runs its pods through containerd", runAgent},
		{"dev", "run a local HA cluster (masters and agents) in the foreground", runDev},
		{"status", "show cluster health: leader, masters, agents, quorum, warnings", runStatus},
		{"raft", "Raft membership: peers, remove-peer, transfer-leadership", runRaft},
		{"drill", "run a failover drill against a live cluster and report what it measured", runDrill},
		{"snapshot", "save, inspect and restore backups of the cluster state", runSnapshot},
		{"recover", "make a surviving master the only one after the cluster lost its quorum", runRecover},
		{"kubeconfig", "print the admin kubeconfig of a master's data dir", runKubeconfig},
		{"log-writer", "(internal) write a container's log with a time on each line; the agent and containerd run it", runLogWriter},
		{"image", "import image archives into an agent's containerd (skiff image import FILE)", runImage},
		{"version", "print the version", func([]string) error { fmt.Println("skiff", version); return nil }},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "skiff — a highly available container orchestrator with the Kubernetes API.\n\nUsage: skiff <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'skiff <command> --help' for a command's flags.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	for _, c := range commands() {
		if c.name == os.Args[1] {
			if err := c.run(os.Args[2:]); err != nil {
				fmt.Fprintf(os.Stderr, "skiff %s: %v\n", c.name, err)
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "skiff: unknown command %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}

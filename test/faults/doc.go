// Package faults holds the multi-process fault scenarios: the built skiff binary runs as
// masters (and agents), each in a network namespace of its own on a private bridge with its
// data dir on a small tmpfs (test/cluster's isolated clusters), while a workload of
// create / compare-and-set / linearizable get runs through the API and the test kills,
// stops, partitions, starves of disk and restarts them for real. Every scenario ends with
// the shared verifiers: porcupine over the recorded history, every acknowledged write
// present, the same state hash on every master, at most one leader per term.
//
// The scenarios need root, iproute2, nftables and util-linux; without them they fail (CI
// installs them), they never skip. SKIFF_FAULT_ROTATE sets how long the rotating
// partitions run (a Go duration, default 60s); SKIFF_ARTIFACTS where a failing scenario
// leaves the masters' logs and the history.
package faults

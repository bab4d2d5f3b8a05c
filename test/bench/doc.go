// Package bench holds skiff's benchmarks. Each one measures its own baseline in the same
// run (a raw bbolt fsync commit, etcd on the same disk) and prints ratios against it; none
// passes or fails on time. Run them with `make bench`.
package bench

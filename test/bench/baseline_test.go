package bench

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bboltCommit measures single-key bbolt commits with fsync in dir: the cost of one durable
// write on this disk, which every replicated write pays at least once.
func bboltCommit(tb testing.TB, dir string, n int) durations {
	return bboltCommitChain(tb, dir, n, 1)
}

// bboltCommitChain measures chains of `files` single-key commits, one per bbolt file, each
// started after the previous one is durable: the floor of a replicated write in
// hashicorp/raft, which makes the leader's log write durable before it sends the entry to
// a follower, whose write must be durable before the entry commits (files = 2).
func bboltCommitChain(tb testing.TB, dir string, n, files int) durations {
	dbs := make([]*bolt.DB, files)
	for f := range dbs {
		db, err := bolt.Open(filepath.Join(dir, fmt.Sprintf("baseline-%d-of-%d.db", f, files)), 0o600, nil)
		if err != nil {
			tb.Fatal(err)
		}
		defer db.Close()
		dbs[f] = db
	}
	value := make([]byte, valueSize)
	var lat durations
	for i := 0; i < n; i++ {
		start := time.Now()
		for _, db := range dbs {
			err := db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("b"))
				if err != nil {
					return err
				}
				return b.Put([]byte(fmt.Sprintf("k%d", i%64)), value)
			})
			if err != nil {
				tb.Fatal(err)
			}
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

// valueSize is the size of every written value, for skiff and etcd alike.
const valueSize = 256

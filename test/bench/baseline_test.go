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
	db, err := bolt.Open(filepath.Join(dir, "baseline.db"), 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	value := make([]byte, valueSize)
	var lat durations
	for i := 0; i < n; i++ {
		start := time.Now()
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
		lat = append(lat, time.Since(start))
	}
	return lat
}

// valueSize is the size of every written value, for skiff and etcd alike.
const valueSize = 256

package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// fillFile is the file FillDisk writes into a data dir.
const fillFile = "skiff-test-fill"

// MountTmpfs mounts a tmpfs of the given size (mount's size= syntax: "64m") on dir,
// creating dir, and unmounts it in t.Cleanup, so a test can fill a data dir without
// touching the machine's disks. Register it before anything that must stop using dir
// first: cleanups run last-registered first.
func MountTmpfs(t testing.TB, dir, size string) {
	t.Helper()
	RequireFaultTools(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := run("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "skiff-test", dir); err != nil {
		t.Fatalf("mounting a tmpfs data dir: %v", err)
	}
	t.Cleanup(func() {
		var err error
		for try := 0; try < 20; try++ {
			if err = run("umount", dir); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("cleanup: %v; detaching it lazily", err)
		_ = run("umount", "-l", dir)
	})
}

// FillDisk writes a file into dir until its file system refuses with ENOSPC, and returns
// how many bytes that took. Other writers to the file system now fail too, until FreeDisk.
func FillDisk(dir string) (int64, error) {
	f, err := os.OpenFile(filepath.Join(dir, fillFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var total int64
	for len(buf) > 0 {
		n, err := f.Write(buf)
		total += int64(n)
		switch {
		case errors.Is(err, syscall.ENOSPC):
			// Take the last partial pages too: halve the chunk until nothing fits.
			buf = buf[:len(buf)/2]
		case err != nil:
			return total, fmt.Errorf("filling %s: %w", dir, err)
		}
	}
	return total, nil
}

// FreeDisk removes what FillDisk wrote.
func FreeDisk(dir string) error {
	err := os.Remove(filepath.Join(dir, fillFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

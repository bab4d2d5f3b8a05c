package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"skiff/test/cluster"
)

// drillFigures is the part of `skiff drill -o json` the benchmark reads.
type drillFigures struct {
	NewLeaderMs   *float64 `json:"newLeaderMs"`
	WritesBackMs  *float64 `json:"writesBackMs"`
	SchedulerMs   *float64 `json:"schedulerActedMs"`
	ControllersMs *float64 `json:"controllersActedMs"`
	Writes        struct {
		Acknowledged, Lost int
	} `json:"writes"`
	Reads struct{ Stale int } `json:"reads"`
	Watch struct {
		Missing, OutOfOrder, Duplicates, Expired, WrongRevision int
	} `json:"watch"`
	Convergence struct {
		Converged bool `json:"converged"`
	} `json:"convergence"`
	Problems []string `json:"problems"`
}

func msDuration(v *float64) time.Duration { return time.Duration(*v * float64(time.Millisecond)) }

// BenchmarkDrillLeaderCrash runs `skiff drill leader-crash` 20 times against a `skiff dev`
// cluster of 3 masters with drills allowed (dev supervises them, so each crashed leader is
// restarted, as in production under systemd), then the etcd kill-the-leader loop of
// BenchmarkFailover in the same run, and prints the drills' figures beside etcd's time to
// first write (DESIGN.md §8 F1: p50 ≤ 1.5 s, p99 ≤ 3 s; F2: controllers ≤ F1 + 0.5 s).
// Every drill must also lose no acknowledged write, show no watch gap and converge.
func BenchmarkDrillLeaderCrash(b *testing.B) {
	rounds := 20
	if s := os.Getenv("SKIFF_BENCH_DRILL_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	bin := cluster.Binary(b)
	dir := b.TempDir()
	kc := startDev(b, bin, filepath.Join(dir, "dev"))

	var toLeader, toWrite, toAct durations
	var acked, lost, gaps, stale, converged int
	for r := 0; r < rounds; r++ {
		cmd := exec.Command(bin, "drill", "leader-crash", "--kubeconfig", kc, "--timeout", "60s", "-o", "json")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var f drillFigures
		if jerr := json.Unmarshal(stdout.Bytes(), &f); jerr != nil {
			b.Fatalf("round %d: skiff drill leader-crash: %v (%v)\n%s", r, err, jerr, stderr.String())
		}
		if f.NewLeaderMs == nil || f.WritesBackMs == nil || f.SchedulerMs == nil || f.ControllersMs == nil {
			b.Fatalf("round %d: a figure was not observed: %q\n%s", r, f.Problems, stderr.String())
		}
		if len(f.Problems) > 0 {
			b.Errorf("round %d: %q", r, f.Problems)
		}
		toLeader = append(toLeader, msDuration(f.NewLeaderMs))
		toWrite = append(toWrite, msDuration(f.WritesBackMs))
		toAct = append(toAct, max(msDuration(f.SchedulerMs), msDuration(f.ControllersMs)))
		acked += f.Writes.Acknowledged
		lost += f.Writes.Lost
		stale += f.Reads.Stale
		gaps += f.Watch.Missing + f.Watch.OutOfOrder + f.Watch.Duplicates + f.Watch.Expired + f.Watch.WrongRevision
		if f.Convergence.Converged {
			converged++
		}
	}
	et := &etcdTarget{startEtcd(b, filepath.Join(dir, "etcd"))}
	etRes := failoverLoop(b, et, rounds)

	rep := &report{title: fmt.Sprintf("drill: skiff drill leader-crash %d times on skiff dev (3 supervised masters), light probe load", rounds)}
	rep.add("skiff  crash → new leader:          %s", toLeader)
	rep.add("skiff  crash → first acked write:   %s  (target p50 ≤ 1500ms, p99 ≤ 3000ms)", toWrite)
	rep.add("skiff  crash → scheduler and ReplicaSet controller acted: %s  (target ≤ time to first write + 500ms: p50 %s)",
		toAct, (toWrite.pct(50) + 500*time.Millisecond).Round(time.Millisecond))
	rep.add("skiff  probe writes: %d acknowledged, %d lost, %d stale reads, %d watch gaps; converged %d of %d", acked, lost, stale, gaps, converged, rounds)
	rep.add("etcd   kill → first acked write:    %s", etRes.toWrite)
	rep.add("skiff drill/etcd time to first write: p50 %.2f×, p99 %.2f× (below 1: skiff faster)",
		float64(toWrite.pct(50))/float64(etRes.toWrite.pct(50)), float64(toWrite.pct(99))/float64(etRes.toWrite.pct(99)))
	rep.add("the drill times from the moment the crashed leader's port refuses connections; the etcd loop from the SIGKILL")
	fmt.Fprint(os.Stdout, rep)
	b.ReportMetric(float64(toWrite.pct(50))/1e6, "drill-write-p50-ms")
	b.ReportMetric(float64(toWrite.pct(99))/1e6, "drill-write-p99-ms")
	b.ReportMetric(float64(toAct.pct(50))/1e6, "drill-acted-p50-ms")
}

// startDev runs `skiff dev --agents 0 --allow-drills` until the benchmark ends and returns
// its kubeconfig once the API answers.
func startDev(tb testing.TB, bin, dir string) string {
	logf, err := os.Create(dir + ".log")
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "dev", "--agents", "0", "--allow-drills", "--data-dir", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT) // dev stops its masters
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	kc := filepath.Join(dir, "kubeconfig")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(kc); err == nil {
			// dev writes it once a master answers /readyz; status checks them all.
			if out, err := exec.Command(bin, "status", "--kubeconfig", kc).CombinedOutput(); err == nil && bytes.Contains(out, []byte("Leader")) {
				return kc
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(dir + ".log")
			tb.Fatalf("skiff dev exited:\n%s", b)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatal("skiff dev not ready within 2 minutes")
		}
	}
}

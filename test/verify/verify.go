// Package verify holds the checks every cluster test ends with: at most one leader per
// term, the same state hash on every replica, every acknowledged write present, and a
// linearizable history. They take plain values so in-process and multi-process tests share
// them.
package verify

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TermLeader says that node ID led term Term.
type TermLeader struct {
	Term uint64
	ID   string
}

// OneLeaderPerTerm fails t if two different nodes claim the same term.
func OneLeaderPerTerm(t testing.TB, claims []TermLeader) {
	t.Helper()
	byTerm := map[uint64]string{}
	for _, c := range claims {
		if prev, ok := byTerm[c.Term]; ok && prev != c.ID {
			t.Errorf("verify: term %d has two leaders: %s and %s", c.Term, prev, c.ID)
		}
		byTerm[c.Term] = c.ID
	}
}

// SameHash fails t unless every replica reports the same state hash. hashes maps a
// replica's name to its hash taken at the same applied revision.
func SameHash(t testing.TB, hashes map[string]string) {
	t.Helper()
	var names []string
	for n := range hashes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names[1:] {
		if hashes[n] != hashes[names[0]] {
			t.Errorf("verify: replica %s has state hash %s, replica %s has %s", n, hashes[n], names[0], hashes[names[0]])
		}
	}
}

// AckedWritesPresent fails t if any acknowledged write is missing from the final state.
// acked maps a key to the value last acknowledged for it; read returns the final value.
// Keys whose later writes had unknown outcomes belong in maybe, which lists every value
// the key may legitimately hold instead.
func AckedWritesPresent(t testing.TB, acked map[string]string, maybe map[string][]string, read func(key string) (string, bool)) {
	t.Helper()
	missing := 0
	for k, want := range acked {
		got, ok := read(k)
		if ok && got == want {
			continue
		}
		allowed := false
		for _, v := range maybe[k] {
			allowed = allowed || (ok && v == got)
		}
		if !allowed {
			missing++
			if missing <= 10 {
				t.Errorf("verify: acknowledged write %s=%q lost (found %q, present=%v)", k, want, got, ok)
			}
		}
	}
	if missing > 10 {
		t.Errorf("verify: %d acknowledged writes lost in all", missing)
	}
}

// Linearizable checks history against model with porcupine. On failure, or when it cannot
// decide within the timeout, it saves an HTML visualisation under ArtifactsDir and fails t.
func Linearizable(t testing.TB, model porcupine.Model, history []porcupine.Operation, timeout time.Duration) {
	t.Helper()
	res, info := porcupine.CheckOperationsVerbose(model, history, timeout)
	if res == porcupine.Ok {
		return
	}
	path := filepath.Join(ArtifactsDir(t), "history.html")
	if f, err := os.Create(path); err == nil {
		_ = porcupine.Visualize(model, info, f)
		f.Close()
	}
	t.Errorf("verify: history of %d operations is %v (porcupine); visualisation saved to %s", len(history), res, path)
}

// ArtifactsDir is where a failing test keeps what explains it: $SKIFF_ARTIFACTS/<test>, or
// a directory under the system temp dir that outlives the test.
func ArtifactsDir(t testing.TB) string {
	base := os.Getenv("SKIFF_ARTIFACTS")
	if base == "" {
		base = filepath.Join(os.TempDir(), "skiff-artifacts")
	}
	dir := filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_"))
	_ = os.MkdirAll(dir, 0o755)
	return dir
}

// KeepOnFailure copies the named files into the artifacts dir if t has failed. Call it
// from t.Cleanup registered before the files' owners clean up.
func KeepOnFailure(t testing.TB, files ...string) {
	if !t.Failed() {
		return
	}
	dir := ArtifactsDir(t)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		_ = os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
	}
	t.Logf("artifacts kept in %s", dir)
}

// Describe renders a short summary for logs.
func Describe(claims []TermLeader) string {
	var b strings.Builder
	for _, c := range claims {
		fmt.Fprintf(&b, "t%d:%s ", c.Term, c.ID)
	}
	return b.String()
}

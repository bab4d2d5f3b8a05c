package master

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"skiff/fsm"
	"skiff/master/api"
)

func getSnapshot(t *testing.T, m *Master) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "https://"+m.APIAddr()+"/skiff/v1/snapshot", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET snapshot: %s %s", resp.Status, b)
	}
	return b
}

func postRestore(t *testing.T, m *Master, query string, file []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "https://"+m.APIAddr()+"/skiff/v1/snapshot/restore"+query, bytes.NewReader(file))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// restoreEvents parses a restore's progress stream.
func restoreEvents(t *testing.T, body []byte) []RestoreEvent {
	t.Helper()
	var out []RestoreEvent
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var ev RestoreEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("bad progress line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

// withoutKept is st's objects minus those a restore keeps from the running cluster.
func withoutKept(st *fsm.State) map[string]string {
	out := map[string]string{}
	st.Walk(func(r *fsm.Record) bool {
		for _, sel := range RestoreKeep {
			if sel.Matches(r.Key) {
				return true
			}
		}
		out[r.Key.String()] = string(r.Value)
		return true
	})
	return out
}

func TestSnapshotSaveAndRestoreThroughTheAPI(t *testing.T) {
	m := startSingle(t)
	base := "https://" + m.APIAddr()
	for _, kv := range [][2]string{{"a", "one"}, {"b", "two"}} {
		if code, body, _ := do(t, "PUT", base+"/skiff/v1/kv/"+kv[0], kv[1]); code != 204 {
			t.Fatalf("put: %d %s", code, body)
		}
	}
	file := getSnapshot(t, m)
	b, err := fsm.ReadBackup(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("the served snapshot does not verify: %v", err)
	}
	if b.Info.Node != "m1" || b.Info.Term == 0 || b.Info.Index < b.Info.Revision || b.State.Get(fsm.Key{Resource: "debugkv", Name: "a"}) == nil {
		t.Fatalf("snapshot info %+v", b.Info)
	}
	for _, kv := range [][2]string{{"a", "changed"}, {"c", "three"}} {
		if code, body, _ := do(t, "PUT", base+"/skiff/v1/kv/"+kv[0], kv[1]); code != 204 {
			t.Fatalf("put: %d %s", code, body)
		}
	}
	before := m.Node().FSM().State()

	// A damaged file is refused and changes nothing.
	for name, bad := range map[string][]byte{"truncated": file[:len(file)/2], "flipped": flip(file, len(file)/3), "empty": nil} {
		code, body := postRestore(t, m, "", bad)
		if code != http.StatusBadRequest || !strings.Contains(string(body), "refusing the snapshot") {
			t.Fatalf("%s file: %d %s", name, code, body)
		}
	}
	if m.Node().FSM().State().Hash() != before.Hash() {
		t.Fatal("a refused restore changed the state")
	}

	// A dry run shows the plan and changes nothing.
	code, body := postRestore(t, m, "?dryRun=true", file)
	if code != http.StatusOK {
		t.Fatalf("dry run: %d %s", code, body)
	}
	var plan RestorePlan
	if err := json.Unmarshal(body, &plan); err != nil {
		t.Fatal(err)
	}
	if plan.Current.Resources["debugkv"] != 3 || plan.SnapshotState.Resources["debugkv"] != 2 || plan.Snapshot.Revision != b.Info.Revision || plan.Leader != "m1" {
		t.Fatalf("plan %+v", plan)
	}
	kept := strings.Join(plan.Kept, ",")
	for _, k := range []string{"skiff.internal/ca", "skiff.internal/admin-token", "skiff.internal/master-api.m1"} {
		if !strings.Contains(kept, k) {
			t.Fatalf("plan keeps %v, not %s", plan.Kept, k)
		}
	}
	if m.Node().FSM().State().Hash() != before.Hash() {
		t.Fatal("a dry run changed the state")
	}

	// The restore streams its plan, its progress and its outcome.
	code, body = postRestore(t, m, "", file)
	if code != http.StatusOK {
		t.Fatalf("restore: %d %s", code, body)
	}
	evs := restoreEvents(t, body)
	if len(evs) < 3 || evs[0].Plan == nil || evs[len(evs)-1].Result == nil || evs[1].Progress == nil {
		t.Fatalf("restore stream %s", body)
	}
	res := evs[len(evs)-1].Result
	if res.Revision <= before.Revision() || res.Objects != b.State.Len() {
		t.Fatalf("restored %+v; the cluster was at %d", res, before.Revision())
	}
	// The same token still works (the identity was kept) and the data is the snapshot's.
	for key, want := range map[string]string{"a": "one", "b": "two"} {
		if code, got, _ := do(t, "GET", base+"/skiff/v1/kv/"+key, ""); code != 200 || got != want {
			t.Fatalf("after restore %s = %d %q, want %q", key, code, got, want)
		}
	}
	if code, _, _ := do(t, "GET", base+"/skiff/v1/kv/c", ""); code != 404 {
		t.Fatalf("a key written after the snapshot survived the restore: %d", code)
	}
	if got, want := withoutKept(m.Node().FSM().State()), withoutKept(b.State); !equalMaps(got, want) {
		t.Fatalf("restored objects differ from the snapshot's")
	}
}

func TestSnapshotRestoreIntoAnotherClusterKeepsItsIdentity(t *testing.T) {
	src := startSingle(t)
	if code, body, _ := do(t, "PUT", "https://"+src.APIAddr()+"/skiff/v1/kv/from-src", "1"); code != 204 {
		t.Fatalf("put: %d %s", code, body)
	}
	file := getSnapshot(t, src)
	b, err := fsm.ReadBackup(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}

	dst := startSingle(t) // from here on, testClient and testToken are dst's
	// A master records its API address shortly after it starts serving; the restore must
	// find it there to keep it.
	deadline := time.Now().Add(30 * time.Second)
	for dst.Node().FSM().State().Get(fsm.Key{Resource: api.InternalResource, Name: masterAPIKey("m1")}) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the master never recorded its API address")
		}
		time.Sleep(10 * time.Millisecond)
	}
	dstCA, _ := api.ClusterCA(dst.Node().FSM().State())
	srcCA, _ := api.ClusterCA(src.Node().FSM().State())
	if bytes.Equal(dstCA.CertPEM, srcCA.CertPEM) {
		t.Fatal("fixture: both clusters have the same CA")
	}
	code, body := postRestore(t, dst, "", file)
	if evs := restoreEvents(t, body); code != 200 || evs[len(evs)-1].Result == nil {
		t.Fatalf("restore: %d %s", code, body)
	}
	st := dst.Node().FSM().State()
	if got, want := withoutKept(st), withoutKept(b.State); !equalMaps(got, want) {
		t.Fatalf("restored objects differ from the snapshot's")
	}
	if ca, _ := api.ClusterCA(st); !bytes.Equal(ca.CertPEM, dstCA.CertPEM) {
		t.Fatal("the restore replaced the running cluster's CA")
	}
	if rec := st.Get(fsm.Key{Resource: api.InternalResource, Name: masterAPIKey("m1")}); rec == nil || string(rec.Value) != dst.APIAddr() {
		t.Fatalf("the restore replaced the running masters' addresses: %v", rec)
	}
	// dst's own credentials still work; the data is src's.
	if code, got, _ := do(t, "GET", "https://"+dst.APIAddr()+"/skiff/v1/kv/from-src", ""); code != 200 || got != "1" {
		t.Fatalf("after restore: %d %q", code, got)
	}
}

func flip(b []byte, i int) []byte {
	out := append([]byte{}, b...)
	out[i] ^= 1
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

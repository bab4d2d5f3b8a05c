package master

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"skiff/fsm"
	"skiff/master/api"
	"skiff/raft"
)

// Backups and restores of the whole cluster state (skiff snapshot save|inspect|restore).
// A backup is an fsm backup file (fsm/backup.go) streamed by any master after a
// linearizable read. A restore is uploaded to the leader, verified, and committed through
// Raft (raft.Node.Restore): it replaces every object except the running cluster's identity.

// maxRestoreUpload bounds a snapshot uploaded for a restore: the leader holds it in memory
// while it commits it.
const maxRestoreUpload = 2 << 30

// RestoreKeep selects what a restore keeps from the running cluster instead of taking it
// from the snapshot: the cluster CA and the admin token (the masters serve with
// certificates from that CA and every kubeconfig and agent holds both), and the masters'
// API addresses (they describe the masters running now, not those of the snapshot).
// Everything else, service IP claims included, comes from the snapshot.
var RestoreKeep = []fsm.KeySelector{
	{Resource: api.InternalResource, Name: api.CAKey},
	{Resource: api.InternalResource, Name: api.AdminTokenKey},
	{Resource: api.InternalResource, Name: masterAPIKey(""), Prefix: true},
}

// StateSummary counts a state's objects per store resource.
type StateSummary struct {
	Revision  uint64         `json:"revision"`
	Objects   int            `json:"objects"`
	Resources map[string]int `json:"resources"`
	Hash      string         `json:"hash,omitempty"`
}

// SummarizeState counts st's objects per resource and hashes it.
func SummarizeState(st *fsm.State) StateSummary {
	s := StateSummary{Revision: st.Revision(), Objects: st.Len(), Resources: map[string]int{}, Hash: st.Hash()}
	st.Walk(func(r *fsm.Record) bool {
		s.Resources[r.Key.Resource]++
		return true
	})
	return s
}

// RestorePlan is what a restore replaces with what: the answer to a dry run and the first
// line of a restore's progress stream.
type RestorePlan struct {
	// Snapshot is the uploaded file's header; SnapshotState its content.
	Snapshot      fsm.BackupInfo `json:"snapshot"`
	SnapshotState StateSummary   `json:"snapshotState"`
	// Current is the cluster's state now, which the restore replaces.
	Current StateSummary `json:"current"`
	// Kept lists the keys of the running cluster that survive the restore.
	Kept []string `json:"kept"`
	// Leader is the master that would carry the restore out.
	Leader string `json:"leader"`
}

// RestoreOutcome is the last line of a successful restore's progress stream.
type RestoreOutcome struct {
	// Revision is the restored state's revision: above every revision the cluster handed
	// out before, so clients' resourceVersions keep increasing.
	Revision uint64 `json:"revision"`
	Objects  int    `json:"objects"`
	// Hash is the restored state's hash (empty if writes already changed it).
	Hash string `json:"hash,omitempty"`
}

// RestoreEvent is one line of a restore's progress stream (newline-delimited JSON): the
// plan first, progress, then the outcome or an error.
type RestoreEvent struct {
	Plan     *RestorePlan          `json:"plan,omitempty"`
	Progress *raft.RestoreProgress `json:"progress,omitempty"`
	Result   *RestoreOutcome       `json:"result,omitempty"`
	Error    string                `json:"error,omitempty"`
	// OutcomeUnknown marks an Error after which the restore may still have completed
	// (leadership was lost with its last entry in flight); otherwise an Error left the
	// state unchanged.
	OutcomeUnknown bool `json:"outcomeUnknown,omitempty"`
}

// NotLeaderError is the 421 answer of a master asked to restore while another leads.
type NotLeaderError struct {
	Message   string `json:"message"`
	Leader    string `json:"leader"`
	LeaderAPI string `json:"leaderAPI"`
}

// snapshotSave streams a backup of the cluster state, current as of the request: it is
// taken after a linearizable read, so every write acknowledged before the request is in
// it. The state is an immutable view, so a long download never holds up writes. A failure
// half way leaves the client a file without its trailer, which inspect and restore refuse.
func (m *Master) snapshotSave(c echo.Context) error {
	st, err := m.node.LinearizableRead(c.Request().Context())
	if err != nil {
		return storeError(c, err)
	}
	stats := m.node.Stats()
	info := fsm.BackupInfo{Term: stats.Term, Index: stats.AppliedIndex, Node: m.cfg.Raft.ID, Version: Version, CreatedAt: time.Now().UTC()}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "application/vnd.skiff.snapshot")
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="skiff-%d.snap"`, st.Revision()))
	h.Set("X-Skiff-Revision", strconv.FormatUint(st.Revision(), 10))
	h.Set("X-Skiff-Objects", strconv.Itoa(st.Len()))
	c.Response().WriteHeader(http.StatusOK)
	if _, err := fsm.WriteBackup(c.Response(), st, info); err != nil {
		m.log.Warn("streaming a snapshot failed", "revision", st.Revision(), "error", err)
	}
	return nil
}

// snapshotRestore verifies an uploaded backup and, unless ?dryRun=true, replaces the
// cluster state with it through Raft. A damaged file is refused with 400 before anything
// changes. Only the leader restores; another master answers 421 naming it (a dry run works
// anywhere). The answer to a restore is a stream of RestoreEvent lines, so the operator
// sees it progress; it ends with the outcome or the error.
func (m *Master) snapshotRestore(c echo.Context) error {
	ctx := c.Request().Context()
	dryRun := c.QueryParam("dryRun") == "true"
	data, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxRestoreUpload))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("snapshot over %d bytes", maxRestoreUpload))
		}
		return echo.NewHTTPError(http.StatusBadRequest, "reading the snapshot: "+err.Error())
	}
	err = fsm.VerifyBackup(bytes.NewReader(data))
	var b *fsm.Backup
	if err == nil {
		b, err = fsm.ReadBackup(bytes.NewReader(data))
	}
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("refusing the snapshot, nothing was changed: %v", err))
	}
	data = nil
	if !dryRun && !m.node.IsLeader() {
		return c.JSON(http.StatusMisdirectedRequest, m.notLeader())
	}
	cur, err := m.node.LinearizableRead(ctx)
	if err != nil {
		return storeError(c, err)
	}
	leader, _ := m.node.Leader()
	plan := &RestorePlan{Snapshot: b.Info, SnapshotState: SummarizeState(b.State), Current: SummarizeState(cur), Leader: leader}
	cur.Walk(func(r *fsm.Record) bool {
		for _, sel := range RestoreKeep {
			if sel.Matches(r.Key) {
				plan.Kept = append(plan.Kept, r.Key.String())
				break
			}
		}
		return true
	})
	if dryRun {
		return c.JSON(http.StatusOK, plan)
	}

	resp := c.Response()
	resp.Header().Set(echo.HeaderContentType, "application/x-ndjson")
	resp.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(resp)
	send := func(ev RestoreEvent) {
		_ = enc.Encode(ev)
		resp.Flush()
	}
	send(RestoreEvent{Plan: plan})
	m.log.Warn("restoring a snapshot", "snapshot_revision", b.Info.Revision, "objects", b.State.Len(), "taken_by", b.Info.Node, "replacing_revision", cur.Revision())
	res, err := m.node.Restore(ctx, b.State, raft.RestoreOptions{
		Keep:     RestoreKeep,
		Progress: func(p raft.RestoreProgress) { send(RestoreEvent{Progress: &p}) },
	})
	if err != nil {
		m.log.Error("snapshot restore failed", "error", err)
		// Once an entry was handed to Raft and leadership or the node went away, the next
		// leader may still commit it: the restore may have completed.
		unknown := errors.Is(err, raft.ErrUnknownOutcome) || errors.Is(err, raft.ErrShutdown)
		send(RestoreEvent{Error: err.Error(), OutcomeUnknown: unknown})
		return nil
	}
	out := &RestoreOutcome{Revision: res.Revision, Objects: res.Objects}
	if st := m.node.FSM().State(); st.Revision() == res.Revision {
		out.Hash = st.Hash()
	}
	m.log.Warn("snapshot restored", "revision", res.Revision, "objects", res.Objects)
	send(RestoreEvent{Result: out})
	return nil
}

// notLeader names the leader and its API address for a client that asked a follower.
func (m *Master) notLeader() NotLeaderError {
	id, _ := m.node.Leader()
	e := NotLeaderError{Message: "only the leader restores snapshots", Leader: id}
	if rec := m.node.FSM().State().Get(fsm.Key{Resource: api.InternalResource, Name: masterAPIKey(id)}); id != "" && rec != nil {
		e.LeaderAPI = string(rec.Value)
		e.Message += "; send the restore to " + id + " at " + e.LeaderAPI
	}
	return e
}

package raft

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	hraft "github.com/hashicorp/raft"
	"skiff/fsm"
)

// ErrRestoreInProgress is returned when a snapshot restore is asked of a node that is
// already running one.
var ErrRestoreInProgress = errors.New("a snapshot restore is already running on this master")

// ErrWritesPaused is returned for a proposal made while a snapshot restore replaces the
// state; it was not applied and may be retried once the restore is over.
var ErrWritesPaused = errors.New("writes are paused while a snapshot restore replaces the cluster state")

// indexJumpMargin is how far past the larger of the snapshot's revisions and the log's
// last index a restore moves the log index when the log is too short (see advancePast).
// Writes appended between reading the last index and Raft taking the jump land below the
// target as long as there are fewer of them than this.
const indexJumpMargin = 1 << 16

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Keep selects records of the current state that survive the restore in place of the
	// snapshot's (the running cluster's identity: its CA, its token, its masters).
	Keep []fsm.KeySelector
	// ChunkSize is how many snapshot bytes go into one log entry (default
	// fsm.DefaultRestoreChunkSize).
	ChunkSize int
	// Progress, when set, is told about each step; it runs on Restore's goroutine.
	Progress func(RestoreProgress)
}

// RestoreProgress is one step of a restore.
type RestoreProgress struct {
	// Phase is "advance" while the log index is moved past the snapshot's revisions and
	// "replicate" while the chunks are committed.
	Phase string
	// Done and Total count committed chunks.
	Done, Total int
	// Message says what happens, for an operator.
	Message string
}

// Restore replaces the whole cluster state with st through the log, on the leader only
// (ErrNotLeader elsewhere). st is cut into RestoreType entries committed one after another;
// the last one swaps the state in on every replica at once, ends every watch with
// fsm.ErrTooOld and leaves the state at the last entry's index, which is above every
// revision in st, so resourceVersions keep increasing. Ordinary writes continue meanwhile
// and are replaced by the restore — so ordinary writes are refused with ErrWritesPaused
// from the start of the restore to its end.
//
// When the log is too short for that (restoring a long-lived cluster's snapshot into a
// young cluster), Restore first moves the log index past st's revisions with a
// hashicorp/raft user restore of the current state (advancePast), which leaves a hole in
// the log instead of writing one entry per missing index.
//
// It blocks until the restore completed or failed. If it fails half way, it drops what it
// staged (best effort; a new leader drops an abandoned restore too), and the state is
// unchanged. One restore runs per node at a time (ErrRestoreInProgress).
func (n *Node) Restore(ctx context.Context, st *fsm.State, opts RestoreOptions) (*fsm.RestoreResult, error) {
	if !n.restoreMu.TryLock() {
		return nil, ErrRestoreInProgress
	}
	defer n.restoreMu.Unlock()
	if err := n.leadership.waitReady(ctx); err != nil {
		return nil, err
	}
	// From here to the end no ordinary write is acknowledged: it would be replaced by the
	// restore (or, when the index must move first, rolled back by advancePast). The barrier
	// lets the writes already handed to Raft apply before the state is read.
	// Holding the batcher's slots closes the window between its pause check and
	// raft.Apply; the writes that queued meanwhile go out once the restore is over.
	n.writesPaused.Store(true)
	release, err := n.batcher.holdSlots(ctx)
	if err != nil {
		n.writesPaused.Store(false)
		return nil, err
	}
	defer func() {
		n.writesPaused.Store(false)
		release()
	}()
	if err := n.await(n.raft.Barrier(0)); err != nil {
		return nil, err
	}
	term := n.raft.CurrentTerm()
	report := func(p RestoreProgress) {
		if opts.Progress != nil {
			opts.Progress(p)
		}
	}

	var body bytes.Buffer
	if err := fsm.WriteSnapshot(&body, st); err != nil {
		return nil, fmt.Errorf("encoding the snapshot: %w", err)
	}
	id := restoreID()
	entries := fsm.EncodeRestore(id, body.Bytes(), opts.Keep, opts.ChunkSize)
	top := fsm.MaxRevision(st)
	if last := n.raft.LastIndex(); last+uint64(len(entries)) <= top {
		report(RestoreProgress{Phase: "advance", Total: len(entries), Message: fmt.Sprintf(
			"the log (last index %d) is behind the snapshot's revision %d: moving the index past it", last, top)})
		if err := n.advancePast(ctx, top); err != nil {
			return nil, fmt.Errorf("moving the log index past revision %d: %w", top, err)
		}
	}
	report(RestoreProgress{Phase: "replicate", Total: len(entries), Message: fmt.Sprintf(
		"committing %d bytes in %d log entries", body.Len(), len(entries))})
	for i, e := range entries {
		if err := ctx.Err(); err != nil {
			n.abortRestore(id)
			return nil, err
		}
		if n.raft.CurrentTerm() != term || !n.IsLeader() {
			n.abortRestore(id)
			return nil, fmt.Errorf("%w: leadership changed during the restore", ErrNotLeader)
		}
		f := n.raft.Apply(e, 0)
		if err := n.await(f); err != nil {
			n.abortRestore(id)
			return nil, fmt.Errorf("committing restore entry %d of %d: %w", i+1, len(entries), err)
		}
		res, ok := f.Response().(*fsm.RestoreResult)
		if !ok {
			n.abortRestore(id)
			return nil, fmt.Errorf("restore entry %d applied as %T", i+1, f.Response())
		}
		if res.Err != nil {
			n.abortRestore(id)
			return nil, fmt.Errorf("restore entry %d of %d: %w", i+1, len(entries), res.Err)
		}
		report(RestoreProgress{Phase: "replicate", Done: i + 1, Total: len(entries)})
		if res.Done {
			return res, nil
		}
	}
	return nil, errors.New("the last restore entry did not complete the restore")
}

// advancePast moves the log index past top by a hashicorp/raft user restore of the current
// state claiming a revision above both top and the last index: Raft leaves a hole in the
// log up to there and sends followers the snapshot. The state's objects stay as they are
// (writes committed meanwhile may be reverted, which the restore that follows does anyway).
func (n *Node) advancePast(ctx context.Context, top uint64) error {
	target := max(top, n.raft.LastIndex()) + indexJumpMargin
	var buf bytes.Buffer
	if err := fsm.WriteSnapshotAt(&buf, n.fsm.State(), target); err != nil {
		return err
	}
	meta := &hraft.SnapshotMeta{Version: hraft.SnapshotVersionMax, Index: target, Size: int64(buf.Len())}
	for {
		done := make(chan error, 1)
		go func() { done <- n.raft.Restore(meta, bytes.NewReader(buf.Bytes()), 0) }()
		var err error
		select {
		case err = <-done:
		case <-ctx.Done():
			// Raft's restore cannot be called back: wait for it, so that no index jump
			// happens after the caller was told the restore ended (writes resume then).
			<-done
			return ctx.Err()
		case <-n.ctx.Done():
			return ErrShutdown
		}
		if err == nil {
			return nil
		}
		// Raft refuses while a configuration change is uncommitted; that passes.
		if !strings.Contains(err.Error(), "wait until the configuration entry") {
			return translate(err)
		}
		if perr := n.pause(ctx); perr != nil {
			return perr
		}
	}
}

// abortRestore drops restore id from the replicated state, best effort: a node that no
// longer leads leaves it to the next leader (dropAbandonedRestore).
func (n *Node) abortRestore(id uint64) {
	if !n.IsLeader() {
		return
	}
	f := n.raft.Apply(fsm.EncodeRestoreAbort(id), 5*time.Second)
	done := make(chan struct{})
	go func() { _ = f.Error(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	case <-n.ctx.Done():
	}
}

// dropAbandonedRestore runs whenever this node starts leading. Restores are proposed by
// the leader only, so a restore still staged then was abandoned by an earlier leader (or
// by this node in an earlier term): its remaining chunks will never come, and its staged
// chunks would otherwise stay in memory and in every snapshot.
func (n *Node) dropAbandonedRestore(ctx context.Context) {
	id, staged, total := n.fsm.State().PendingRestore()
	if id == 0 {
		return
	}
	if !n.restoreMu.TryLock() {
		return // a restore runs here; it aborts itself once it sees the new term
	}
	defer n.restoreMu.Unlock()
	n.cfg.Logger.Warn("dropping an abandoned snapshot restore", "restore", id, "staged", staged, "chunks", total)
	if err := n.await(n.raft.Apply(fsm.EncodeRestoreAbort(id), 0)); err != nil && ctx.Err() == nil {
		n.cfg.Logger.Warn("dropping an abandoned snapshot restore failed", "restore", id, "error", err)
	}
}

// restoreID picks a random non-zero restore id.
func restoreID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

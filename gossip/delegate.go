package gossip

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"github.com/hashicorp/memberlist"
)

// metaDelegate is the Pool seen as a memberlist.Delegate: it only supplies the node meta.
// Every method returns at once; none takes a lock another goroutine holds for long.
type metaDelegate Pool

func (d *metaDelegate) NodeMeta(limit int) []byte {
	p := (*Pool)(d)
	p.metaMu.Lock()
	b := p.metaBytes
	p.metaMu.Unlock()
	if len(b) > limit {
		// Start and UpdateMeta keep it within MetaMaxSize, which is what memberlist
		// passes; returning more would make memberlist panic.
		p.log.Error("gossip: node meta exceeds memberlist's limit; announcing none", "size", len(b), "limit", limit)
		return nil
	}
	return b
}

func (d *metaDelegate) NotifyMsg([]byte)                           {}
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *metaDelegate) LocalState(join bool) []byte                { return nil }
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// mergeDelegate is the Pool seen as a memberlist.MergeDelegate. On a join memberlist
// hands it the remote member list before merging; a record of this member at another
// address means a previous incarnation of it is still remembered there (see
// reannouncer). It never cancels a merge.
type mergeDelegate Pool

func (d *mergeDelegate) NotifyMerge(peers []*memberlist.Node) error {
	p := (*Pool)(d)
	p.mu.Lock()
	self, ok := p.members[p.cfg.Name]
	p.mu.Unlock()
	for _, n := range peers {
		if ok && n.Name == p.cfg.Name && n.Address() != self.Addr && n.State != memberlist.StateLeft {
			p.requestReannounce()
		}
	}
	return nil
}

// conflictDelegate is the Pool seen as a memberlist.ConflictDelegate. memberlist calls
// it (with its node lock held) when an alive message names a known member at another
// address; memberlist logs it too.
type conflictDelegate Pool

func (d *conflictDelegate) NotifyConflict(existing, other *memberlist.Node) {
	p := (*Pool)(d)
	if existing.Name == p.cfg.Name {
		p.requestReannounce()
	}
}

// eventDelegate is the Pool seen as a memberlist.EventDelegate. memberlist calls it with
// its node lock held, so it only updates the member map (a short critical section) and
// pokes the Changes channel without blocking.
type eventDelegate Pool

func (d *eventDelegate) NotifyJoin(n *memberlist.Node) {
	(*Pool)(d).observe(n, StateAlive)
}

func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) {
	(*Pool)(d).observe(n, StateAlive)
}

// NotifyLeave fires both when a member is declared dead and when it left gracefully.
func (d *eventDelegate) NotifyLeave(n *memberlist.Node) {
	(*Pool)(d).observe(n, leaveState(n))
}

// observe records a member as memberlist reports it and signals a change if anything a
// consumer can see changed.
func (p *Pool) observe(n *memberlist.Node, st State) {
	m := Member{Name: n.Name, Addr: n.Address(), State: st}
	if len(n.Meta) > 0 {
		if err := json.Unmarshal(n.Meta, &m.Meta); err != nil {
			p.log.Warn("gossip: undecodable member meta", "member", n.Name, "err", err)
			m.Meta = Meta{}
		}
	}
	p.mu.Lock()
	old, ok := p.members[n.Name]
	changed := !ok || old.Member != m
	if changed {
		since := time.Now()
		if ok && old.State == m.State {
			since = old.since
		}
		p.members[n.Name] = memberEntry{Member: m, since: since}
	}
	p.mu.Unlock()
	if changed {
		p.log.Debug("gossip: member", "member", m.Name, "addr", m.Addr, "state", m.State.String(), "role", m.Meta.Role)
		p.notify()
	}
}

// notify sends the coalescing change signal; it never blocks.
func (p *Pool) notify() {
	select {
	case p.changes <- struct{}{}:
	default:
	}
}

// Telling "left" from "dead".
//
// memberlist v0.6.0 calls NotifyLeave for both and never fills memberlist.Node.State (it
// is shadowed by the State field of its unexported nodeState, which embeds Node as its
// first field, and the Node it hands to the event delegate is &nodeState.Node). The real
// state is therefore readable from that pointer while the callback runs: memberlist holds
// its node lock and has just written the state. nodeStateHead mirrors the head of
// nodeState; nodeStateLayoutOK checks, by reflection on memberlist's own types, that the
// mirror matches field for field (name, type, offset), so an upgrade that changes the
// layout degrades to reporting every departure as StateDead instead of reading garbage.
type nodeStateHead struct {
	memberlist.Node
	Incarnation uint32
	State       memberlist.NodeStateType
}

var nodeStateLayoutOK = checkNodeStateLayout()

func checkNodeStateLayout() bool {
	f, ok := reflect.TypeFor[memberlist.Memberlist]().FieldByName("nodeMap")
	if !ok {
		return false
	}
	t := f.Type
	if t.Kind() != reflect.Map || t.Elem().Kind() != reflect.Pointer || t.Elem().Elem().Kind() != reflect.Struct {
		return false
	}
	actual, mirror := t.Elem().Elem(), reflect.TypeFor[nodeStateHead]()
	if actual.Size() < mirror.Size() || actual.NumField() < mirror.NumField() {
		return false
	}
	for i := range mirror.NumField() {
		a, b := actual.Field(i), mirror.Field(i)
		if a.Name != b.Name || a.Type != b.Type || a.Offset != b.Offset || a.Anonymous != b.Anonymous {
			return false
		}
	}
	return true
}

// leaveState is the state of a node handed to NotifyLeave (see above).
func leaveState(n *memberlist.Node) State {
	if !nodeStateLayoutOK {
		return StateDead
	}
	head := (*nodeStateHead)(unsafe.Pointer(n))
	if s, ok := fromMemberlist(head.State); ok && (s == StateDead || s == StateLeft) {
		return s
	}
	return StateDead
}

func fromMemberlist(s memberlist.NodeStateType) (State, bool) {
	switch s {
	case memberlist.StateAlive:
		return StateAlive, true
	case memberlist.StateSuspect:
		return StateSuspect, true
	case memberlist.StateDead:
		return StateDead, true
	case memberlist.StateLeft:
		return StateLeft, true
	}
	return StateDead, false
}

// slogWriter turns memberlist's "[LEVEL] memberlist: message" log lines into slog records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	msg := strings.TrimSpace(string(b))
	level := slog.LevelInfo
	for _, p := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[TRACE]", slog.LevelDebug - 4},
		{"[DEBUG]", slog.LevelDebug},
		{"[INFO]", slog.LevelInfo},
		{"[WARN]", slog.LevelWarn},
		{"[ERR]", slog.LevelError},
		{"[ERROR]", slog.LevelError},
	} {
		if strings.HasPrefix(msg, p.prefix) {
			level, msg = p.level, strings.TrimSpace(msg[len(p.prefix):])
			break
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	w.l.Log(context.Background(), level, msg, "component", "memberlist")
	return len(b), nil
}

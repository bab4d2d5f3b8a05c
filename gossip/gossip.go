package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Roles.
const (
	RoleMaster = "master"
	RoleAgent  = "agent"
)

// Meta is what a member tells the others about itself. It travels as JSON in memberlist's
// node meta and must encode to at most memberlist.MetaMaxSize (512) bytes.
type Meta struct {
	Role    string `json:"role"`
	Name    string `json:"name"`
	API     string `json:"api,omitempty"`  // host:port of the member's HTTPS API (masters) or of its own log/exec server (agents)
	Raft    string `json:"raft,omitempty"` // masters: Raft address
	Version string `json:"version,omitempty"`
}

// State is a member's liveness as this member's gossip sees it.
type State int

const (
	StateAlive State = iota
	// StateSuspect exists for completeness of the mapping from memberlist's states.
	// memberlist v0.6.0 raises no event when it starts suspecting a member, so a Pool
	// reports a suspect member as alive until it is declared dead or refutes the
	// suspicion (memberlist's own Members() also counts suspect members as live).
	StateSuspect
	StateDead
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Member is one member of the pool.
type Member struct {
	Name  string
	Addr  string // gossip host:port
	Meta  Meta
	State State
}

var (
	// ErrShutdown is returned by calls on a Pool that has been shut down.
	ErrShutdown = errors.New("gossip: pool is shut down")
	// ErrMetaTooLarge is returned (wrapped) when a Meta encodes to more than
	// memberlist.MetaMaxSize bytes.
	ErrMetaTooLarge = errors.New("gossip: meta too large")
)

// Pool is this process's membership in the gossip pool. All methods are safe for
// concurrent use.
type Pool struct {
	cfg      Config
	log      *slog.Logger
	mlLogger *log.Logger
	ml       *memberlist.Memberlist
	addr     string

	metaMu    sync.Mutex // guards metaBytes (read by memberlist through NodeMeta)
	metaBytes []byte

	mu      sync.Mutex // guards members; held only for map updates and copies
	members map[string]memberEntry

	changes chan struct{}

	lifeMu   sync.Mutex // serializes UpdateMeta, Leave, re-announcing and Shutdown
	left     bool
	shutdown atomic.Bool
	stop     chan struct{}
	wg       sync.WaitGroup // janitor and reannouncer

	// reannounce asks the reannouncer to re-announce this member for a while (see
	// reannouncer); buffer 1, sends never block.
	reannounce    chan struct{}
	reannounceFor time.Duration
}

type memberEntry struct {
	Member
	since time.Time // when the member entered its current State
}

// Start creates this member's memberlist and starts listening. It does not join anyone:
// call Join, or wait for others to join through this member.
func Start(cfg Config) (*Pool, error) {
	cfg.SecretKey = append([]byte(nil), cfg.SecretKey...)
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	metaBytes, err := encodeMeta(cfg.Meta)
	if err != nil {
		return nil, err
	}
	p := &Pool{
		cfg:       cfg,
		log:       cfg.Logger,
		mlLogger:  log.New(slogWriter{cfg.Logger}, "", 0),
		metaBytes: metaBytes,
		members:   make(map[string]memberEntry),
		changes:   make(chan struct{}, 1),
		stop:      make(chan struct{}),

		reannounce: make(chan struct{}, 1),
		// Long enough for the others to declare a stale record of us dead: a probe
		// round, a failed probe and the longest suspicion, with a 4x margin.
		reannounceFor: 4 * cfg.ProbeInterval * time.Duration(2+cfg.SuspicionMult*suspicionMaxTimeoutMult),
	}
	mc := cfg.memberlistConfig(p)
	nt, err := cfg.setupTransport(mc)
	if err != nil {
		return nil, err
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		if nt != nil {
			_ = nt.Shutdown()
		}
		return nil, fmt.Errorf("gossip: start memberlist: %w", err)
	}
	p.ml = ml
	p.addr = ml.LocalNode().Address()
	p.wg.Add(2)
	go p.janitor()
	go p.reannouncer()
	p.log.Info("gossip: started", "member", cfg.Name, "addr", p.addr, "encrypted", len(cfg.SecretKey) > 0)
	return p, nil
}

func encodeMeta(m Meta) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("gossip: encode meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, limit %d", ErrMetaTooLarge, len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// Join contacts the given gossip addresses (host:port) and exchanges full state with each
// that answers, which joins this member to their pool. It returns how many answered.
// The error is nil when at least one answered (failures of the others are logged); when
// none did, it names the addresses that failed and wraps memberlist's errors. An empty
// list is a no-op.
func (p *Pool) Join(addrs []string) (int, error) {
	if p.shutdown.Load() {
		return 0, ErrShutdown
	}
	var (
		n      int
		failed []string
		errs   []error
	)
	for _, a := range addrs {
		k, err := p.ml.Join([]string{a})
		n += k
		if err != nil || k == 0 {
			failed = append(failed, a)
			if err == nil {
				err = fmt.Errorf("no answer from %s", a)
			}
			errs = append(errs, err)
		}
	}
	if len(failed) == 0 {
		return n, nil
	}
	joined := errors.Join(errs...)
	if n > 0 {
		p.log.Warn("gossip: some join addresses failed", "failed", failed, "answered", n, "err", joined)
		return n, nil
	}
	return 0, fmt.Errorf("gossip: join failed, no member answered at %s: %w", strings.Join(failed, ", "), joined)
}

// Members returns every known member including this one, with its state, sorted by name.
// Dead and left members stay listed with that state until memberlist reaps them (it
// gossips to the dead for 30 s).
func (p *Pool) Members() []Member {
	return p.list(func(Member) bool { return true })
}

// Alive returns the alive members with the given role (all roles when role is empty),
// including this member if it matches, sorted by name.
func (p *Pool) Alive(role string) []Member {
	return p.list(func(m Member) bool {
		return m.State == StateAlive && (role == "" || m.Meta.Role == role)
	})
}

func (p *Pool) list(keep func(Member) bool) []Member {
	p.mu.Lock()
	out := make([]Member, 0, len(p.members))
	for _, e := range p.members {
		if keep(e.Member) {
			out = append(out, e.Member)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Local returns this member as the pool sees it (StateLeft after Leave).
func (p *Pool) Local() Member {
	p.mu.Lock()
	e, ok := p.members[p.cfg.Name]
	p.mu.Unlock()
	if ok {
		return e.Member
	}
	p.metaMu.Lock()
	var m Meta
	_ = json.Unmarshal(p.metaBytes, &m)
	p.metaMu.Unlock()
	return Member{Name: p.cfg.Name, Addr: p.addr, Meta: m, State: StateAlive}
}

// Changes returns a channel that receives a value whenever a member joins, leaves, dies,
// comes back or changes its meta (also when a dead or left member is finally dropped from
// Members). It has a buffer of one and sends never block, so several changes may arrive
// as one signal: treat it as "something changed", then read Members or Alive. The same
// channel is returned every time; it is never closed.
func (p *Pool) Changes() <-chan struct{} { return p.changes }

// UpdateMeta replaces this member's meta and re-announces it. It applies locally at once
// (Local and Members reflect it) and queues the announcement for gossip; it does not wait
// for others to hear it. Meta.Name defaults to the member's name.
func (p *Pool) UpdateMeta(m Meta) error {
	if m.Name == "" {
		m.Name = p.cfg.Name
	}
	b, err := encodeMeta(m)
	if err != nil {
		return err
	}
	p.lifeMu.Lock()
	defer p.lifeMu.Unlock()
	if p.shutdown.Load() {
		return ErrShutdown
	}
	if p.left {
		return errors.New("gossip: UpdateMeta after Leave")
	}
	p.metaMu.Lock()
	p.metaBytes = b
	p.metaMu.Unlock()
	// UpdateNode applies the new meta and queues an alive message, then waits until that
	// broadcast has been retransmitted enough times or the timeout passes; its only
	// error is that timeout. A nanosecond timeout makes it "queue and return": gossip
	// and the periodic push/pull deliver the message, and a newer UpdateMeta supersedes it.
	_ = p.ml.UpdateNode(time.Nanosecond)
	return nil
}

// Leave broadcasts that this member is leaving and waits (up to timeout; 5 s if timeout
// <= 0) until the broadcast has gone out. Others then list it as StateLeft. The member
// keeps answering gossip until Shutdown, which should follow.
func (p *Pool) Leave(timeout time.Duration) error {
	if timeout <= 0 {
		timeout = defaultLeaveTimeout
	}
	p.lifeMu.Lock()
	defer p.lifeMu.Unlock()
	if p.shutdown.Load() {
		return ErrShutdown
	}
	p.left = true
	if err := p.ml.Leave(timeout); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops gossiping and closes the listeners without saying goodbye (others
// declare this member dead after the probe and suspicion timeouts; call Leave first for
// a graceful exit). It waits for a Leave in progress. Safe to call more than once.
func (p *Pool) Shutdown() error {
	p.lifeMu.Lock()
	if p.shutdown.Load() {
		p.lifeMu.Unlock()
		return nil
	}
	p.shutdown.Store(true)
	close(p.stop)
	err := p.ml.Shutdown()
	p.lifeMu.Unlock()
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}

// Addr returns the advertised gossip address (host:port), the one to give others to Join.
func (p *Pool) Addr() string { return p.addr }

// janitor drops dead and left members once memberlist has stopped gossiping about them
// (memberlist reaps them silently, without an event).
func (p *Pool) janitor() {
	defer p.wg.Done()
	t := time.NewTicker(deadRetention / 4)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.prune(now)
		}
	}
}

// prune removes other members that have been dead or left for longer than deadRetention.
func (p *Pool) prune(now time.Time) {
	removed := false
	p.mu.Lock()
	for name, e := range p.members {
		if name == p.cfg.Name || (e.State != StateDead && e.State != StateLeft) {
			continue
		}
		if now.Sub(e.since) > deadRetention {
			delete(p.members, name)
			removed = true
		}
	}
	p.mu.Unlock()
	if removed {
		p.notify()
	}
}

// Coming back on a new address.
//
// A member that restarts under its old name but on another address (a new port) is
// refused by the others as a name conflict for as long as they still hold its old
// record as alive or suspect, and memberlist does not re-send the refused alive message;
// they would accept it only at the next periodic push/pull. So when this member learns
// that the others hold a record of it at another address (MergeDelegate on join,
// ConflictDelegate on gossip), the reannouncer re-announces it every ProbeInterval for
// reannounceFor. Once the others have declared the old record dead they accept the
// new address at once (DeadNodeReclaimTime is minimal) and see the member join.
func (p *Pool) reannouncer() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case <-p.reannounce:
		}
		p.log.Info("gossip: others hold a stale record of this member at another address; re-announcing")
		deadline := time.Now().Add(p.reannounceFor)
		t := time.NewTicker(p.cfg.ProbeInterval)
		for time.Now().Before(deadline) {
			select {
			case <-p.stop:
				t.Stop()
				return
			case <-p.reannounce:
				deadline = time.Now().Add(p.reannounceFor)
			case <-t.C:
				p.lifeMu.Lock()
				if !p.left && !p.shutdown.Load() {
					_ = p.ml.UpdateNode(time.Nanosecond) // see UpdateMeta
				}
				p.lifeMu.Unlock()
			}
		}
		t.Stop()
	}
}

func (p *Pool) requestReannounce() {
	select {
	case p.reannounce <- struct{}{}:
	default:
	}
}

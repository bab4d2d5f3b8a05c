package agent

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/gossip"
)

// Config configures an agent.
type Config struct {
	Name    string
	DataDir string
	// Address is the node's IP as other nodes and masters reach it.
	Address string
	Labels  map[string]string
	Taints  []corev1.Taint
	Runtime Runtime
	Client  *Client
	Logger  *slog.Logger
	// Resync is how often the sync loop looks at every pod without a change (default 1 s).
	Resync time.Duration
	// InsecureRegistries are registry hosts (host:port) pulled from over plain HTTP.
	InsecureRegistries []string
	// Listener, when set, serves container logs to the masters (announced in gossip);
	// Token is the cluster token masters present.
	Listener net.Listener
	Token    string
	// Network gives pods their addresses (CNI); nil runs pods with loopback only.
	Network *PodNetwork

	// AllowDrills lets `skiff drill agent-partition` cut this agent off (drill.go); Gossip
	// is the agent's pool, isolated during such a partition.
	AllowDrills bool
	Gossip      *gossip.Pool
}

// Agent registers its Node and runs the pods bound to it. Run blocks; everything else is
// internal.
type Agent struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	pods map[string]*corev1.Pod // by UID: the pods bound to this node, as last seen
	// synced is set once pods holds a complete list: before that, a container without a
	// pod is not an orphan, merely not yet matched (a restarted agent adopts, never kills).
	synced  bool
	changed chan struct{}
	// finishedDeletes remembers, per pod UID, the resourceVersion at which the agent sent
	// the final DELETE of a pod whose containers are gone (guarded by mu).
	finishedDeletes map[string]string

	// workers hold per-pod memory the store does not: restart back-off, when containers
	// were first seen running. The map is guarded by workersMu; each worker is used by the
	// one goroutine syncing its pod.
	workersMu sync.Mutex
	workers   map[string]*podWorker

	// syncs counts the goroutines syncing or tearing down pods; syncSlots bounds how many
	// work at once.
	syncs     sync.WaitGroup
	syncSlots chan struct{}

	eventsMu  sync.Mutex
	lastEvent map[string]time.Time // recent events, so repeats are not re-posted

	drills *drills // nil unless Config.AllowDrills
}

// New returns an agent; call Run.
func New(cfg Config) *Agent {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resync == 0 {
		cfg.Resync = time.Second
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, pods: map[string]*corev1.Pod{}, finishedDeletes: map[string]string{}, changed: make(chan struct{}, 1), workers: map[string]*podWorker{}, syncSlots: make(chan struct{}, syncParallelism), lastEvent: map[string]time.Time{}}
	a.armDrills()
	return a
}

// KubeletVersion is what the agent reports as its kubelet version.
const KubeletVersion = "v1.32.0-skiff"

// Run registers the Node, then keeps the pods bound to it running until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	for {
		err := a.register(ctx)
		if err == nil {
			break
		}
		a.log.Warn("registering node failed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	a.log.Info("node registered", "node", a.cfg.Name)
	go a.watchPods(ctx)
	if a.cfg.Network != nil {
		go a.routeNodes(ctx)
	}
	if a.cfg.Listener != nil {
		go func() {
			if err := a.serve(ctx, a.cfg.Listener, a.cfg.Token); err != nil {
				a.log.Error("log server stopped", "error", err)
			}
		}()
	}
	t := time.NewTicker(a.cfg.Resync)
	defer t.Stop()
	for {
		a.syncAll(ctx)
		// Passes are cheap to start but each lists every container; under a burst of
		// watch events (every status write comes back as one) space them out.
		sleepCtx(ctx, minPassInterval)
		select {
		case <-ctx.Done():
			a.syncs.Wait() // no pod work outlives Run
			return nil
		case <-a.changed:
		case <-t.C:
		}
	}
}

// minPassInterval is the least time between two sync passes.
const minPassInterval = 100 * time.Millisecond

func (a *Agent) nudge() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// nodeObject is the Node this agent reports: capacity, addresses, system info, images.
func (a *Agent) nodeObject(ctx context.Context) *corev1.Node {
	labels := map[string]string{
		"kubernetes.io/hostname": a.cfg.Name,
		"kubernetes.io/os":       runtime.GOOS,
		"kubernetes.io/arch":     runtime.GOARCH,
	}
	for k, v := range a.cfg.Labels {
		labels[k] = v
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memTotal(), resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	version, _ := a.cfg.Runtime.Version(ctx)
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.Name, Labels: labels},
		Spec:       corev1.NodeSpec{Taints: a.cfg.Taints},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: capacity.DeepCopy(),
			Phase: corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "AgentReady",
				Message: "skiff agent is running", LastHeartbeatTime: now, LastTransitionTime: now}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: a.cfg.Address}, {Type: corev1.NodeHostName, Address: a.cfg.Name}},
			NodeInfo: corev1.NodeSystemInfo{OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
				ContainerRuntimeVersion: version, KubeletVersion: KubeletVersion, KubeProxyVersion: KubeletVersion},
		},
	}
	if imgs, err := a.cfg.Runtime.Images(ctx); err == nil {
		for _, img := range imgs {
			n.Status.Images = append(n.Status.Images, corev1.ContainerImage{Names: []string{img.Ref, img.ID}, SizeBytes: img.Size})
		}
	}
	return n
}

// register creates the Node, or brings an existing one up to date (labels, taints, status).
func (a *Agent) register(ctx context.Context) error {
	want := a.nodeObject(ctx)
	cur, err := a.cfg.Client.GetNode(ctx, a.cfg.Name)
	if IsNotFound(err) {
		// A create keeps no status (it has its own subresource), so the status follows.
		cur, err = a.cfg.Client.CreateNode(ctx, want)
	}
	if err != nil {
		return err
	}
	for k, v := range want.Labels {
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		cur.Labels[k] = v
	}
	if len(a.cfg.Taints) > 0 {
		cur.Spec.Taints = a.cfg.Taints
	}
	if n := a.cfg.Network; n != nil {
		switch cidr := n.CIDR.String(); cur.Spec.PodCIDR {
		case "":
			cur.Spec.PodCIDR, cur.Spec.PodCIDRs = cidr, []string{cidr}
		case cidr:
		default:
			// The API keeps a Node's podCIDR once set; pods here still use the agent's.
			a.log.Error("the Node's podCIDR differs from the agent's; pass --pod-cidr "+cur.Spec.PodCIDR+" or delete the Node",
				"node", cur.Spec.PodCIDR, "agent", cidr)
		}
	}
	if cur, err = a.cfg.Client.UpdateNode(ctx, cur); err != nil {
		return err
	}
	want.ResourceVersion = cur.ResourceVersion
	want.ObjectMeta = cur.ObjectMeta
	want.Spec = cur.Spec
	_, err = a.cfg.Client.UpdateNodeStatus(ctx, want)
	return err
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// watchPods keeps a.pods equal to the pods bound to this node: list, then watch; on 410 or
// a broken stream it relists, through whichever master answers.
func (a *Agent) watchPods(ctx context.Context) {
	for ctx.Err() == nil {
		items, rv, err := a.cfg.Client.ListPods(ctx, a.cfg.Name)
		if err != nil {
			a.log.Warn("listing pods failed", "error", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		a.mu.Lock()
		a.pods = map[string]*corev1.Pod{}
		for i := range items {
			a.pods[string(items[i].UID)] = &items[i]
		}
		a.synced = true
		a.mu.Unlock()
		a.nudge()
		for ctx.Err() == nil {
			err = a.cfg.Client.WatchPods(ctx, a.cfg.Name, rv, func(ev PodEvent) error {
				if ev.Type == "BOOKMARK" {
					rv = ev.Pod.ResourceVersion
					return nil
				}
				a.mu.Lock()
				if ev.Type == "DELETED" {
					delete(a.pods, string(ev.Pod.UID))
				} else {
					p := ev.Pod
					a.pods[string(p.UID)] = &p
				}
				a.mu.Unlock()
				rv = ev.Pod.ResourceVersion
				a.nudge()
				return nil
			})
			if IsGone(err) {
				break // relist
			}
			if ctx.Err() == nil {
				a.log.Debug("pod watch ended; resuming", "error", err)
				sleepCtx(ctx, 200*time.Millisecond)
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Describe is a one-line summary for logs.
func (a *Agent) Describe() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return fmt.Sprintf("agent %s: %d pods", a.cfg.Name, len(a.pods))
}

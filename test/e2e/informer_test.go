package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"skiff/test/cluster"
)

func clientFor(t *testing.T, kubeconfig string) *kubernetes.Clientset {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 10 * time.Second
	cfg.QPS, cfg.Burst = 1000, 1000 // client-go throttles to 5 requests/s by default
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// A client-go informer on a follower keeps receiving every change, in order, while the
// leader is killed and a new one is elected; writes keep flowing through the survivors.
func TestInformerSurvivesLeaderKill(t *testing.T) {
	c := cluster.Start(t, 3)
	leader := c.Leader(-1)
	if leader < 0 {
		t.Fatal("no leader")
	}
	watcher := (leader + 1) % 3
	writer := (leader + 2) % 3
	ic := clientFor(t, c.WriteKubeconfig(watcher))
	wc := clientFor(t, c.WriteKubeconfig(writer))

	var mu sync.Mutex
	seen := map[string]bool{}
	var order []int64
	var outOfOrder []string
	factory := informers.NewSharedInformerFactoryWithOptions(ic, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().ConfigMaps().Informer()
	record := func(obj any) {
		cm := obj.(*corev1.ConfigMap)
		rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
		mu.Lock()
		defer mu.Unlock()
		if n := len(order); n > 0 && rv <= order[n-1] {
			outOfOrder = append(outOfOrder, fmt.Sprintf("%s@%d after %d", cm.Name, rv, order[n-1]))
		}
		order = append(order, rv)
		seen[cm.Name] = true
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    record,
		UpdateFunc: func(_, obj any) { record(obj) },
	})
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatal("informer did not sync")
	}

	create := func(name string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for {
			_, err := wc.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("creating %s: %v", name, err)
			}
			time.Sleep(50 * time.Millisecond) // no leader for a moment: retry, as clients do
		}
	}
	const n = 60
	for i := 0; i < n; i++ {
		if i == n/3 {
			c.Kill(leader)
		}
		create(fmt.Sprintf("cm-%02d", i))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("informer saw %d of %d configmaps", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(outOfOrder) > 0 {
		t.Fatalf("events out of order: %v", outOfOrder)
	}
	if nl := c.Leader(leader); nl < 0 {
		t.Fatal("no new leader after the kill")
	}
	// Every master that is up returns the latest object version right after a write.
	c.Restart(leader)
	c.WaitReady(leader)
	cm, err := wc.CoreV1().ConfigMaps("default").Update(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cm-00"}, Data: map[string]string{"v": "2"}}, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Names {
		got, err := clientFor(t, c.WriteKubeconfig(i)).CoreV1().ConfigMaps("default").Get(context.Background(), "cm-00", metav1.GetOptions{})
		if err != nil || got.ResourceVersion != cm.ResourceVersion {
			t.Fatalf("master %d read rv %v (err %v) right after a write at %s", i, got.ResourceVersion, err, cm.ResourceVersion)
		}
	}
	c.Verify()
}

// A watch resumed from before the retained history ends with 410 Gone, so clients relist.
func TestWatchFromBeforeHistoryIsGone(t *testing.T) {
	c := cluster.Start(t, 3, "--watch-history", "100")
	cs := clientFor(t, c.WriteKubeconfig(0))
	ctx := context.Background()
	cm, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "churn"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old := cm.ResourceVersion
	for i := 0; i < 150; i++ {
		cm.Data = map[string]string{"i": strconv.Itoa(i)}
		if cm, err = cs.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.Names {
		w, err := clientFor(t, c.WriteKubeconfig(i)).CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: old})
		if err != nil {
			if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
				continue
			}
			t.Fatalf("master %d: %v", i, err)
		}
		select {
		case ev := <-w.ResultChan():
			st, ok := ev.Object.(*metav1.Status)
			if ev.Type != watch.Error || !ok || st.Code != 410 {
				t.Fatalf("master %d: first event %v %+v, want ERROR 410", i, ev.Type, ev.Object)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("master %d: no event", i)
		}
		w.Stop()
	}
}

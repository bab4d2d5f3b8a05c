package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"skiff/fsm"
	"skiff/master/api/apitest"
	"skiff/raft/rafttest"
)

// apiCluster is a 3-node in-process store with the API served over TLS on every node.
type apiCluster struct {
	c       *rafttest.Cluster
	servers []*httptest.Server
	token   string
}

func startAPICluster(b *testing.B) *apiCluster {
	ac := apitest.Start(b, 3, true, nil)
	for _, srv := range ac.Servers {
		srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 256
	}
	return &apiCluster{c: ac.Store, servers: ac.Servers, token: ac.Token}
}

func (ac *apiCluster) do(i int, method, path string, body []byte) (int, []byte, error) {
	req, _ := http.NewRequest(method, ac.servers[i].URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ac.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := ac.servers[i].Client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func configMapJSON(name string) []byte {
	return []byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":%q,"labels":{"app":"bench"}},"data":{"v":%q}}`, name, string(bytes.Repeat([]byte("x"), 200))))
}

// BenchmarkAPI measures what the Kubernetes API layer costs on top of the store: creates
// through the API vs Propose directly (1 and 64 clients), listing 10,000 pods, and the
// delay from a write to its delivery at 1,000 watchers on one master.
func BenchmarkAPI(b *testing.B) {
	ac := startAPICluster(b)
	rep := &report{title: "API: 3 masters in-process, HTTPS, configmaps of ~300 bytes"}
	leader := ac.c.WaitLeader()

	apiCreate := func(node int, name string) error {
		code, body, err := ac.do(node, "POST", "/api/v1/namespaces/default/configmaps", configMapJSON(name))
		if err == nil && code != http.StatusCreated {
			err = fmt.Errorf("create %s: %d %s", name, code, body)
		}
		return err
	}
	propose := func(node int, name string) error {
		k := fsm.Key{Resource: "bench", Namespace: "default", Name: name}
		res, err := ac.c.Node(node).Propose(context.Background(), &fsm.Txn{Ops: []fsm.Op{fsm.Create(k, configMapJSON(name), fsm.Meta{Labels: map[string]string{"app": "bench"}})}})
		if err == nil && res.Err != nil {
			err = res.Err
		}
		return err
	}
	pOne := runWrites(b, 1, 500, func(cl, i int) error { return propose(leader, fmt.Sprintf("p1-%d", i)) })
	aOne := runWrites(b, 1, 500, func(cl, i int) error { return apiCreate(leader, fmt.Sprintf("a1-%d", i)) })
	pMany := runWrites(b, 64, 100, func(cl, i int) error { return propose(cl%3, fmt.Sprintf("p64-%d-%d", cl, i)) })
	aMany := runWrites(b, 64, 100, func(cl, i int) error { return apiCreate(cl%3, fmt.Sprintf("a64-%d-%d", cl, i)) })
	rep.add("Propose  1 client:   %s  %.0f creates/s", pOne.lat, pOne.throughput)
	rep.add("API      1 client:   %s  %.0f creates/s", aOne.lat, aOne.throughput)
	rep.add("Propose 64 clients:  %s  %.0f creates/s", pMany.lat, pMany.throughput)
	rep.add("API     64 clients:  %s  %.0f creates/s", aMany.lat, aMany.throughput)
	rep.add("API overhead, 1 client p50 latency = %.2f× Propose (target ≤ 1.5×)", float64(aOne.lat.pct(50))/float64(pOne.lat.pct(50)))
	rep.add("API overhead, 64 clients throughput = %.2f× Propose", pMany.throughput/aMany.throughput)

	// 10,000 pods, then full lists through a follower (linearizable) and locally (rv=0).
	podJSON := func(name string) []byte {
		return []byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q,"labels":{"app":"bench"}},"spec":{"nodeName":"node-%d","containers":[{"name":"c","image":"registry.local/app:1","ports":[{"containerPort":8080}]}]}}`, name, len(name)%50))
	}
	start := time.Now()
	runWrites(b, 64, 10000/64+1, func(cl, i int) error {
		name := fmt.Sprintf("pod-%d-%d", cl, i)
		code, body, err := ac.do(cl%3, "POST", "/api/v1/namespaces/default/pods", podJSON(name))
		if err == nil && code != http.StatusCreated {
			err = fmt.Errorf("create pod: %d %s", code, body)
		}
		return err
	})
	rep.add("created %d pods through the API in %s", 64*(10000/64+1), time.Since(start).Round(time.Millisecond))
	follower := (leader + 1) % 3
	var list, local durations
	var size int
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		code, body, err := ac.do(follower, "GET", "/api/v1/pods", nil)
		if err != nil || code != 200 {
			b.Fatalf("list: %d %v", code, err)
		}
		list = append(list, time.Since(t0))
		size = len(body)
		t0 = time.Now()
		if code, _, err := ac.do(follower, "GET", "/api/v1/pods?resourceVersion=0", nil); err != nil || code != 200 {
			b.Fatalf("list rv=0: %d %v", code, err)
		}
		local = append(local, time.Since(t0))
	}
	var items struct {
		Items []json.RawMessage `json:"items"`
	}
	_, body, _ := ac.do(follower, "GET", "/api/v1/pods", nil)
	_ = json.Unmarshal(body, &items)
	rep.add("list %d pods (%.1f MB), linearizable via a follower: %s (target p99 ≤ 300ms)", len(items.Items), float64(size)/1e6, list)
	rep.add("list %d pods, resourceVersion=0:                   %s", len(items.Items), local)

	// 1,000 watchers on one follower; each write's delivery time at every watcher.
	const watchers = 1000
	const writes = 30
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := make([]time.Time, writes)
	var delivery durations
	ready := make(chan struct{}, watchers)
	cancelled := make(chan struct{})
	for w := 0; w < watchers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", ac.servers[follower].URL+"/api/v1/namespaces/default/configmaps?watch=true&labelSelector=w%3Dyes&resourceVersion=0", nil)
			req.Header.Set("Authorization", "Bearer "+ac.token)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { <-cancelled; cancel() }()
			resp, err := ac.servers[follower].Client().Do(req.WithContext(ctx))
			if err != nil {
				ready <- struct{}{}
				return
			}
			defer resp.Body.Close()
			ready <- struct{}{}
			r := bufio.NewReader(resp.Body)
			for got := 0; got < writes; got++ {
				line, err := r.ReadBytes('\n')
				if err != nil {
					return
				}
				now := time.Now()
				var ev struct {
					Object struct {
						Data map[string]string `json:"data"`
					} `json:"object"`
				}
				if json.Unmarshal(line, &ev) != nil {
					return
				}
				var i int
				fmt.Sscan(ev.Object.Data["i"], &i)
				mu.Lock()
				delivery = append(delivery, now.Sub(sent[i]))
				mu.Unlock()
			}
		}()
	}
	for w := 0; w < watchers; w++ {
		<-ready
	}
	time.Sleep(500 * time.Millisecond)
	for i := 0; i < writes; i++ {
		body := []byte(fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"watched-%d","labels":{"w":"yes"}},"data":{"i":"%d"}}`, i, i))
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		if code, resp, err := ac.do(leader, "POST", "/api/v1/namespaces/default/configmaps", body); err != nil || code != 201 {
			b.Fatalf("watched write: %d %v %s", code, err, resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitUntil := time.Now().Add(30 * time.Second)
	for time.Now().Before(waitUntil) {
		mu.Lock()
		n := len(delivery)
		mu.Unlock()
		if n >= watchers*writes {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(cancelled)
	wg.Wait()
	rep.add("%d watchers on one follower, %d writes through the leader: write → delivery %s, %d of %d deliveries (target p99 ≤ 100ms)",
		watchers, writes, delivery, len(delivery), watchers*writes)
	fmt.Fprint(os.Stdout, rep)
	b.ReportMetric(float64(aOne.lat.pct(50))/float64(pOne.lat.pct(50)), "api-overhead-x")
	b.ReportMetric(float64(list.pct(99))/1e6, "list10k-p99-ms")
	b.ReportMetric(float64(delivery.pct(99))/1e6, "watch-p99-ms")
}

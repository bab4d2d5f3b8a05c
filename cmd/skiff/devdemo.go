package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"skiff/agent/testimage"
)

// demoDeployment is what `skiff dev --demo` deploys: three busybox pods that print the
// time every few seconds, so `kubectl logs` and a watch have something to show.
func demoDeployment() map[string]any {
	labels := map[string]any{"app": "demo"}
	return map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "demo", "namespace": "default", "labels": labels},
		"spec": map[string]any{
			"replicas": 3,
			"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{
				"metadata": map[string]any{"labels": labels},
				"spec": map[string]any{
					"terminationGracePeriodSeconds": 2,
					"containers": []any{map[string]any{"name": "demo", "image": testimage.BusyboxRef,
						"command": []string{"sh", "-c", "while true; do echo \"$(date) $HOSTNAME\"; sleep 5; done"}}},
				},
			},
		},
	}
}

// deployDemo creates the demo Deployment (unless it exists) and prints how to watch it
// and drill the cluster. Failures are reported, not fatal: the cluster keeps running.
func deployDemo(ctx context.Context, dir string, agents int, drillsAllowed bool) {
	kc := filepath.Join(dir, "kubeconfig")
	creds, err := readDrillCreds(kc)
	if err != nil {
		fmt.Fprintf(os.Stderr, "skiff dev: demo: %v\n", err)
		return
	}
	m := creds.master("", creds.server)
	var derr error
	for attempt := 0; attempt < 20 && ctx.Err() == nil; attempt++ {
		derr = m.call(ctx, 5*time.Second, http.MethodPost, "/apis/apps/v1/namespaces/default/deployments", demoDeployment(), nil)
		if derr == nil || drillCode(derr) == http.StatusConflict {
			derr = nil
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if derr != nil {
		fmt.Fprintf(os.Stderr, "skiff dev: demo: creating Deployment demo: %v\n", derr)
		return
	}
	self := "skiff"
	if exe, err := os.Executable(); err == nil {
		self = exe
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, exe); err == nil && !filepath.IsAbs(rel) && rel[0] != '.' {
				self = "./" + rel
			}
		}
	}
	fmt.Printf("\nDemo: Deployment 'demo' (3 replicas of %s) in namespace default.\n", testimage.BusyboxRef)
	if agents == 0 {
		fmt.Println("  (no agents: its pods stay Pending; run with --agents 1 or more to see them run)")
	}
	fmt.Printf("  watch it: kubectl --kubeconfig %s get pods -w\n", kc)
	fmt.Printf("  logs:     kubectl --kubeconfig %s logs deploy/demo -f\n", kc)
	if drillsAllowed {
		fmt.Printf("  drill:    %s drill leader-crash --kubeconfig %s\n", self, kc)
		fmt.Printf("            (also leader-transfer, leader-partition, master-pause, agent-partition; '%s drill list' shows past reports)\n", self)
	} else {
		fmt.Println("  drills:   restart with --allow-drills to try 'skiff drill leader-crash'")
	}
	fmt.Println()
}

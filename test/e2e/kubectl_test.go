package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff/test/cluster"
)

// kubectl runs one kubectl binary against a cluster's kubeconfig.
type kubectl struct {
	t          *testing.T
	bin        string
	kubeconfig string
	env        []string
}

func (k *kubectl) run(args ...string) (string, error) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), k.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), fmt.Errorf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// ok runs kubectl and fails the test unless it succeeds and prints every want.
func (k *kubectl) ok(args []string, want ...string) string {
	k.t.Helper()
	out, err := k.run(args...)
	if err != nil {
		k.t.Fatal(err)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			k.t.Fatalf("kubectl %s: output lacks %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
	return out
}

// fails runs kubectl and fails the test unless it fails with every want in its output.
func (k *kubectl) fails(args []string, want ...string) {
	k.t.Helper()
	out, err := k.run(args...)
	if err == nil {
		k.t.Fatalf("kubectl %s succeeded, want failure:\n%s", strings.Join(args, " "), out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			k.t.Fatalf("kubectl %s: error lacks %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
}

func (k *kubectl) file(name, content string) string {
	p := filepath.Join(k.t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		k.t.Fatal(err)
	}
	return p
}

const appYAML = `apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  labels: {app: web}
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.local/web:1
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
`

// TestKubectl drives the kubectl verbs skiff supports against a 3-master cluster of the
// built binary, each verb through a different master.
func TestKubectl(t *testing.T) {
	c := cluster.Start(t, 3)
	kcs := []string{c.WriteKubeconfig(0), c.WriteKubeconfig(1), c.WriteKubeconfig(2)}
	k := &kubectl{t: t, bin: "/usr/bin/kubectl", kubeconfig: kcs[0]}
	on := func(i int) *kubectl { return &kubectl{t: t, bin: k.bin, kubeconfig: kcs[i%3]} }

	k.ok([]string{"version"}, "Server Version: v1.32")
	k.ok([]string{"api-versions"}, "apps/v1", "batch/v1", "coordination.k8s.io/v1", "v1")
	k.ok([]string{"api-resources"}, "deployments", "deploy", "apps/v1", "configmaps", "cronjobs")
	k.ok([]string{"cluster-info"}, "is running at")
	k.ok([]string{"get", "namespaces"}, "default", "kube-system", "kube-public", "Active")
	k.ok([]string{"config", "view"}, "current-context")

	app := k.file("app.yaml", appYAML)
	on(1).ok([]string{"apply", "-f", app}, "configmap/web-config created", "deployment.apps/web created", "service/web created")
	on(2).ok([]string{"apply", "-f", app}, "configmap/web-config unchanged", "deployment.apps/web unchanged")
	changed := k.file("app2.yaml", strings.Replace(strings.Replace(appYAML, "replicas: 2", "replicas: 3", 1), "greeting: hello", "greeting: bonjour", 1))
	on(0).ok([]string{"apply", "-f", changed}, "configmap/web-config configured", "deployment.apps/web configured")
	if out := on(1).ok([]string{"get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"}); out != "3 2" {
		t.Fatalf("after apply: replicas and generation %q, want \"3 2\"", out)
	}
	on(2).ok([]string{"get", "cm", "web-config", "-o", "yaml"}, "greeting: bonjour", "kubectl.kubernetes.io/last-applied-configuration")
	on(0).ok([]string{"get", "deploy", "web", "-o", "json"}, `"kind": "Deployment"`, `"maxSurge": "25%"`)
	on(1).ok([]string{"get", "deploy"}, "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "web")
	on(2).ok([]string{"get", "deploy", "-o", "wide"}, "CONTAINERS", "IMAGES", "registry.local/web:1")
	on(0).ok([]string{"get", "svc", "web"}, "ClusterIP", "80/TCP")
	on(1).ok([]string{"get", "all", "-l", "app=web"}, "deployment.apps/web", "service/web")

	on(2).ok([]string{"create", "namespace", "team"}, "namespace/team created")
	on(0).ok([]string{"create", "configmap", "settings", "-n", "team", "--from-literal=a=1"}, "configmap/settings created")
	on(1).ok([]string{"create", "secret", "generic", "pw", "-n", "team", "--from-literal=p=s3cret"}, "secret/pw created")
	on(2).ok([]string{"get", "secret", "pw", "-n", "team", "-o", "jsonpath={.data.p}"}, "czNjcmV0")
	on(0).ok([]string{"get", "cm", "-A"}, "team", "settings", "web-config")
	on(1).ok([]string{"label", "cm", "settings", "-n", "team", "tier=gold"}, "labeled")
	on(2).ok([]string{"annotate", "cm", "settings", "-n", "team", "note=hi"}, "annotated")
	on(0).ok([]string{"get", "cm", "-n", "team", "-l", "tier=gold", "-o", "name"}, "configmap/settings")
	on(1).ok([]string{"get", "pods", "--field-selector", "status.phase=Running", "-A"})

	on(2).ok([]string{"patch", "deploy", "web", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"registry.local/web:2"}]}}}}`}, "patched")
	on(0).ok([]string{"patch", "deploy", "web", "--type", "merge", "-p", `{"metadata":{"labels":{"track":"stable"}}}`}, "patched")
	on(1).ok([]string{"patch", "deploy", "web", "--type", "json", "-p", `[{"op":"replace","path":"/spec/replicas","value":4}]`}, "patched")
	on(2).ok([]string{"get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.labels.track}"}, "4 registry.local/web:2 stable")
	on(0).ok([]string{"scale", "deploy", "web", "--replicas=6"}, "scaled")
	on(1).ok([]string{"get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"}, "6")
	on(2).ok([]string{"describe", "deploy", "web"}, "Name:", "web", "Replicas:", "StrategyType:", "RollingUpdate")
	on(0).ok([]string{"describe", "cm", "settings", "-n", "team"}, "tier=gold", "note: hi")

	editor := k.file("editor.sh", "#!/bin/sh\nsed -i 's/a: \"1\"/a: \"2\"/' \"$1\"\n")
	if err := os.Chmod(editor, 0o755); err != nil {
		t.Fatal(err)
	}
	ed := &kubectl{t: t, bin: k.bin, kubeconfig: kcs[1], env: []string{"KUBE_EDITOR=" + editor}}
	ed.ok([]string{"edit", "cm", "settings", "-n", "team"}, "edited")
	on(2).ok([]string{"get", "cm", "settings", "-n", "team", "-o", "jsonpath={.data.a}"}, "2")

	on(0).ok([]string{"wait", "--for=jsonpath={.data.a}=2", "cm/settings", "-n", "team", "--timeout=30s"}, "condition met")

	// A watch sees a change made through another master.
	w := exec.Command(k.bin, "--kubeconfig", kcs[2], "get", "cm", "-n", "team", "-w", "--request-timeout=40s")
	var wout bytes.Buffer
	w.Stdout, w.Stderr = &wout, &wout
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	on(0).ok([]string{"create", "configmap", "watched", "-n", "team"}, "created")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(wout.String(), "watched") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	_ = w.Process.Kill()
	_ = w.Wait()
	if !strings.Contains(wout.String(), "watched") {
		t.Fatalf("kubectl get -w did not show the new configmap:\n%s", wout.String())
	}

	// Bad input: clear errors.
	bad := k.file("bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n")
	k.fails([]string{"apply", "-f", bad}, "Invalid value", "Bad_Name")
	unknown := k.file("unknown.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\nbogus: 1\n")
	k.fails([]string{"apply", "-f", unknown}, "unknown field", "bogus")
	k.fails([]string{"get", "pod", "nope"}, "NotFound", "nope")
	pod := k.file("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\nspec:\n  containers:\n  - name: c\n    image: busybox\n")
	k.ok([]string{"apply", "-f", pod}, "pod/p1 created")
	k.fails([]string{"logs", "p1"}, "p1")
	k.fails([]string{"exec", "p1", "--", "true"}, "p1")

	// Deletion: by file, by label, orphaning dependents.
	on(1).ok([]string{"delete", "-f", app}, "deleted")
	on(2).fails([]string{"get", "deploy", "web"}, "NotFound")
	on(0).ok([]string{"delete", "cm", "-n", "team", "-l", "tier=gold"}, "configmap \"settings\" deleted")
	on(1).ok([]string{"delete", "pod", "p1", "--cascade=orphan"}, "deleted")
	on(2).ok([]string{"delete", "namespace", "team"}, "deleted")
	on(0).fails([]string{"get", "cm", "watched", "-n", "team"}, "NotFound")
}

// TestKubectlVersionSkew runs the basic verbs with the oldest and newest kubectl installed.
func TestKubectlVersionSkew(t *testing.T) {
	c := cluster.Start(t, 1)
	kc := c.WriteKubeconfig(0)
	for _, v := range []string{"1.27", "1.33"} {
		bin := "/usr/lib/google-cloud-sdk/bin/kubectl." + v
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("kubectl %s is not installed at %s", v, bin)
		}
		k := &kubectl{t: t, bin: bin, kubeconfig: kc}
		name := "skew-" + strings.ReplaceAll(v, ".", "-")
		cm := k.file(name+".yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "+name+"\ndata:\n  k: v\n")
		k.ok([]string{"apply", "-f", cm}, "created")
		k.ok([]string{"get", "cm", name}, name, "DATA")
		k.ok([]string{"get", "cm", name, "-o", "jsonpath={.data.k}"}, "v")
		k.ok([]string{"delete", "cm", name}, "deleted")
	}
}

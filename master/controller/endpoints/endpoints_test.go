package endpoints

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"skiff/master/controller"
	"skiff/master/controller/controllertest"
	"skiff/master/objects"
)

func service(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"svc": name}},
		Spec: corev1.ServiceSpec{Selector: selector, ClusterIP: "None", Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("web"), Protocol: corev1.ProtocolTCP},
			{Name: "admin", Port: 9000, TargetPort: intstr.FromInt32(9001), Protocol: corev1.ProtocolTCP},
		}},
	}
}

func testPod(name, ip string, ready bool, webPort int32) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "busybox",
			Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: webPort, Protocol: corev1.ProtocolTCP}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	return p
}

func TestSubsetsGroupReadyAndNotReadyByResolvedPorts(t *testing.T) {
	svc := service("web", map[string]string{"app": "web"})
	got := Subsets(svc, []*corev1.Pod{
		testPod("b", "10.0.0.2", true, 8080),
		testPod("a", "10.0.0.1", true, 8080),
		testPod("c", "10.0.0.3", false, 8080),
		testPod("d", "10.0.0.4", true, 8081), // same name, other number: its own subset
		testPod("noip", "", true, 8080),
	})
	if len(got) != 2 {
		t.Fatalf("want 2 subsets, got %d: %+v", len(got), got)
	}
	first := got[0]
	if len(first.Addresses) != 2 || first.Addresses[0].IP != "10.0.0.1" || first.Addresses[1].IP != "10.0.0.2" {
		t.Fatalf("ready addresses not sorted or wrong: %+v", first.Addresses)
	}
	if len(first.NotReadyAddresses) != 1 || first.NotReadyAddresses[0].TargetRef.Name != "c" {
		t.Fatalf("not-ready addresses wrong: %+v", first.NotReadyAddresses)
	}
	if first.Ports[0].Port != 8080 || first.Ports[1].Port != 9001 {
		t.Fatalf("ports not resolved: %+v", first.Ports)
	}
	if got[1].Ports[0].Port != 8081 || got[1].Addresses[0].TargetRef.Name != "d" {
		t.Fatalf("second subset wrong: %+v", got[1])
	}
	svc.Spec.PublishNotReadyAddresses = true
	if got := Subsets(svc, []*corev1.Pod{testPod("c", "10.0.0.3", false, 8080)}); len(got[0].Addresses) != 1 {
		t.Fatalf("publishNotReadyAddresses: not-ready pod not published as ready: %+v", got)
	}
}

func TestReconcileCreatesUpdatesAndDeletes(t *testing.T) {
	ctx := context.Background()
	env := controllertest.NewEnv(t)
	c := env.Client
	ctl := New(c)
	env.Create(services, service("web", map[string]string{"app": "web"}))
	env.CreatePod(testPod("a", "10.0.0.1", true, 8080))
	key := objects.Key(services, "default", "web")
	if err := ctl.Reconcile(ctx, key); err != nil {
		t.Fatal(err)
	}
	ep, _ := controller.Get[*corev1.Endpoints](c.State(), endpoints, "default", "web")
	if ep == nil || len(ep.Subsets) != 1 || ep.Subsets[0].Addresses[0].IP != "10.0.0.1" || ep.Labels["svc"] != "web" {
		t.Fatalf("endpoints after create: %+v", ep)
	}
	rev := c.State().Revision()
	if err := ctl.Reconcile(ctx, key); err != nil {
		t.Fatal(err)
	}
	if c.State().Revision() != rev {
		t.Fatal("reconcile with nothing changed wrote anyway")
	}
	// A matching pod's change maps to the service.
	p := testPod("b", "10.0.0.2", false, 8080)
	env.CreatePod(p)
	if err := ctl.Reconcile(ctx, key); err != nil {
		t.Fatal(err)
	}
	ep, _ = controller.Get[*corev1.Endpoints](c.State(), endpoints, "default", "web")
	if len(ep.Subsets[0].NotReadyAddresses) != 1 {
		t.Fatalf("new unready pod missing: %+v", ep.Subsets)
	}
	svc, _ := controller.Get[*corev1.Service](c.State(), services, "default", "web")
	if err := c.Delete(ctx, services, svc, ""); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Reconcile(ctx, key); err != nil {
		t.Fatal(err)
	}
	if ep, _ := controller.Get[*corev1.Endpoints](c.State(), endpoints, "default", "web"); ep != nil {
		t.Fatal("endpoints of a deleted service remain")
	}
	// A service without a selector is not ours.
	env.Create(services, service("manual", nil))
	if err := ctl.Reconcile(ctx, objects.Key(services, "default", "manual")); err != nil {
		t.Fatal(err)
	}
	if ep, _ := controller.Get[*corev1.Endpoints](c.State(), endpoints, "default", "manual"); ep != nil {
		t.Fatal("endpoints written for a service without a selector")
	}
}

func TestRunnerFollowsPods(t *testing.T) {
	env := controllertest.NewEnv(t)
	controllertest.Go(t, (&controller.Runner{Name: "endpoints", Reconciler: New(env.Client), Store: env.Store}).Run)
	env.Create(services, service("web", map[string]string{"app": "web"}))
	for i, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		env.CreatePod(testPod(string(rune('a'+i)), ip, true, 8080))
	}
	controllertest.WaitFor(t, "the endpoints listing the 3 pods", func() bool {
		ep, _ := controller.Get[*corev1.Endpoints](env.Client.State(), endpoints, "default", "web")
		return ep != nil && len(ep.Subsets) == 1 && len(ep.Subsets[0].Addresses) == 3
	})
}

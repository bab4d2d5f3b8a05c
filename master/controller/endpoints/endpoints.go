// Package endpoints keeps the Endpoints object of every Service with a selector equal to
// the pods it selects: ready pods as addresses, the others as notReadyAddresses, with each
// Service port resolved against the pod's named container ports, as Kubernetes' endpoints
// controller does. Services without a selector are left to their owners.
package endpoints

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"skiff/fsm"
	"skiff/master/controller"
	"skiff/master/objects"
	"skiff/master/podstatus"
	"skiff/master/registry"
)

var (
	services  = registry.Lookup("", "v1", "services")
	pods      = registry.Lookup("", "v1", "pods")
	endpoints = registry.Lookup("", "v1", "endpoints")
)

// Controller is the endpoints controller; it implements controller.Reconciler.
type Controller struct {
	client *controller.Client
}

// New returns the endpoints controller writing through client.
func New(client *controller.Client) *Controller { return &Controller{client: client} }

// Watches implements controller.Reconciler.
func (c *Controller) Watches() []string {
	return []string{objects.StoreResource(services), objects.StoreResource(pods)}
}

// Primary implements controller.Reconciler: every Service.
func (c *Controller) Primary(st *fsm.State) []fsm.Key { return controller.AllKeys(st, services) }

// Keys implements controller.Reconciler: a Service concerns itself; a pod concerns every
// Service of its namespace whose selector matches its labels before or after the change.
func (c *Controller) Keys(st *fsm.State, ev fsm.Event) []fsm.Key {
	if ev.Record.Key.Resource == objects.StoreResource(services) {
		return controller.SelfKey(ev)
	}
	recs, _ := st.List(fsm.ListOptions{Resource: objects.StoreResource(services), Namespace: ev.Record.Key.Namespace})
	var keys []fsm.Key
	for _, rec := range recs {
		var svc struct {
			Spec struct {
				Selector map[string]string `json:"selector"`
			} `json:"spec"`
		}
		if json.Unmarshal(rec.Value, &svc) != nil || len(svc.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		if sel.Matches(labels.Set(ev.Record.Meta.Labels)) || ev.Prev != nil && sel.Matches(labels.Set(ev.Prev.Meta.Labels)) {
			keys = append(keys, rec.Key)
		}
	}
	return keys
}

// Reconcile implements controller.Reconciler.
func (c *Controller) Reconcile(ctx context.Context, key fsm.Key) error {
	st := c.client.State()
	svc, err := controller.Get[*corev1.Service](st, services, key.Namespace, key.Name)
	if err != nil {
		return err
	}
	current, err := controller.Get[*corev1.Endpoints](st, endpoints, key.Namespace, key.Name)
	if err != nil {
		return err
	}
	if svc == nil {
		if current == nil {
			return nil
		}
		return c.client.Delete(ctx, endpoints, current, "")
	}
	if svc.Spec.Selector == nil {
		return nil
	}
	selected, err := controller.List[*corev1.Pod](st, pods, svc.Namespace, labels.SelectorFromSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	subsets := Subsets(svc, selected)
	if current == nil {
		ep := &corev1.Endpoints{}
		ep.Name, ep.Namespace, ep.Labels = svc.Name, svc.Namespace, svc.Labels
		ep.Subsets = subsets
		return c.client.Create(ctx, endpoints, ep)
	}
	if reflect.DeepEqual(current.Subsets, subsets) && reflect.DeepEqual(current.Labels, svc.Labels) {
		return nil
	}
	current.Subsets, current.Labels = subsets, svc.Labels
	return c.client.Update(ctx, endpoints, current, false)
}

// Subsets computes the endpoint subsets of svc over the pods its selector matched: pods are
// grouped by the ports they resolve to, addresses sorted, so equal inputs give equal output
// and the controller writes only on real changes. Pods without an IP, finished pods and
// pods being deleted are left out (unless the Service publishes not-ready addresses).
func Subsets(svc *corev1.Service, selected []*corev1.Pod) []corev1.EndpointSubset {
	type group struct {
		ports           []corev1.EndpointPort
		ready, notReady []corev1.EndpointAddress
	}
	groups := map[string]*group{}
	for _, pod := range selected {
		if pod.Status.PodIP == "" || podstatus.Terminal(pod) {
			continue
		}
		if pod.DeletionTimestamp != nil && !svc.Spec.PublishNotReadyAddresses {
			continue
		}
		ports := resolvePorts(svc, pod)
		if len(ports) == 0 && len(svc.Spec.Ports) > 0 {
			continue
		}
		sig := portSignature(ports)
		g := groups[sig]
		if g == nil {
			g = &group{ports: ports}
			groups[sig] = g
		}
		addr := corev1.EndpointAddress{
			IP:        pod.Status.PodIP,
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		}
		if pod.Spec.NodeName != "" {
			node := pod.Spec.NodeName
			addr.NodeName = &node
		}
		if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name {
			addr.Hostname = pod.Spec.Hostname
		}
		if svc.Spec.PublishNotReadyAddresses || podstatus.Ready(pod) {
			g.ready = append(g.ready, addr)
		} else {
			g.notReady = append(g.notReady, addr)
		}
	}
	sigs := make([]string, 0, len(groups))
	for sig := range groups {
		sigs = append(sigs, sig)
	}
	sort.Strings(sigs)
	var out []corev1.EndpointSubset
	for _, sig := range sigs {
		g := groups[sig]
		sortAddresses(g.ready)
		sortAddresses(g.notReady)
		out = append(out, corev1.EndpointSubset{Addresses: g.ready, NotReadyAddresses: g.notReady, Ports: g.ports})
	}
	return out
}

// resolvePorts maps each Service port onto the pod: a numeric targetPort as is, a named one
// through the pod's container ports (a pod without that name is not an endpoint for it).
func resolvePorts(svc *corev1.Service, pod *corev1.Pod) []corev1.EndpointPort {
	var out []corev1.EndpointPort
	for _, sp := range svc.Spec.Ports {
		port, ok := targetPort(sp, pod)
		if !ok {
			continue
		}
		out = append(out, corev1.EndpointPort{Name: sp.Name, Port: port, Protocol: sp.Protocol, AppProtocol: sp.AppProtocol})
	}
	return out
}

func targetPort(sp corev1.ServicePort, pod *corev1.Pod) (int32, bool) {
	switch {
	case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
		for _, c := range pod.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == sp.TargetPort.StrVal && cp.Protocol == sp.Protocol {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	case sp.TargetPort.IntVal != 0:
		return sp.TargetPort.IntVal, true
	}
	return sp.Port, true
}

func portSignature(ports []corev1.EndpointPort) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = fmt.Sprintf("%s/%d/%s", p.Name, p.Port, p.Protocol)
	}
	return strings.Join(parts, ",")
}

func sortAddresses(a []corev1.EndpointAddress) {
	sort.Slice(a, func(i, j int) bool {
		if a[i].IP != a[j].IP {
			return a[i].IP < a[j].IP
		}
		return a[i].TargetRef.Name < a[j].TargetRef.Name
	})
}

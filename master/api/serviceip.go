package api

import (
	"crypto/rand"
	"encoding/binary"
	"net"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"skiff/fsm"
)

// ServiceCIDR is the range cluster IPs are allocated from (Kubernetes' default).
var ServiceCIDR = mustCIDR("10.96.0.0/12")

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

func serviceIPKey(ip string) fsm.Key {
	return fsm.Key{Resource: InternalResource, Name: "serviceip." + ip}
}

// allocateClusterIP picks a free cluster IP for a new service and returns the store
// operation that claims it. The claim is created in the same transaction as the service,
// so two masters picking the same address concurrently cannot both succeed: the loser's
// create fails and the client retries.
func allocateClusterIP(st *fsm.State, obj runtime.Object) []fsm.Op {
	svc, ok := obj.(*corev1.Service)
	if !ok || svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil
	}
	if svc.Spec.ClusterIP == "" {
		base := binary.BigEndian.Uint32(ServiceCIDR.IP.To4())
		ones, bits := ServiceCIDR.Mask.Size()
		size := uint32(1) << (bits - ones)
		for try := 0; try < 64; try++ {
			var b [4]byte
			_, _ = rand.Read(b[:])
			off := binary.BigEndian.Uint32(b[:])%(size-3) + 2 // skip the network, .1 and broadcast
			ip := make(net.IP, 4)
			binary.BigEndian.PutUint32(ip, base+off)
			if st.Get(serviceIPKey(ip.String())) == nil {
				svc.Spec.ClusterIP = ip.String()
				break
			}
		}
	}
	if svc.Spec.ClusterIP == "" {
		return nil
	}
	svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	return []fsm.Op{fsm.Create(serviceIPKey(svc.Spec.ClusterIP), []byte(svc.Namespace+"/"+svc.Name), fsm.Meta{})}
}

// releaseClusterIP returns the operation freeing a deleted service's cluster IP.
func releaseClusterIP(obj runtime.Object) []fsm.Op {
	svc, ok := obj.(*corev1.Service)
	if !ok || svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil
	}
	return []fsm.Op{fsm.DeleteIfExists(serviceIPKey(svc.Spec.ClusterIP))}
}

// keepAllocated carries a service's allocated addresses over an update that left them out.
func keepAllocated(obj, old runtime.Object) {
	svc, ok := obj.(*corev1.Service)
	prev, ok2 := old.(*corev1.Service)
	if !ok || !ok2 {
		return
	}
	if svc.Spec.ClusterIP == "" {
		svc.Spec.ClusterIP = prev.Spec.ClusterIP
	}
	if len(svc.Spec.ClusterIPs) == 0 {
		svc.Spec.ClusterIPs = prev.Spec.ClusterIPs
	}
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].NodePort == 0 && i < len(prev.Spec.Ports) {
			svc.Spec.Ports[i].NodePort = prev.Spec.Ports[i].NodePort
		}
	}
}

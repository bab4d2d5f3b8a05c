package api

import (
	"fmt"

	"github.com/labstack/echo/v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// podProxySubresources are served by the agent that runs the pod; the master proxies them.
var podProxySubresources = map[string]bool{"log": true, "exec": true, "attach": true, "portforward": true}

// podProxy answers pods/{log,exec,attach,portforward}. Until agents run pods, every such
// request gets a clear error naming why, instead of a bare 404.
func (s *Server) podProxy(c echo.Context, info requestInfo) error {
	st, err := s.readState(c)
	if err != nil {
		return writeStatus(c, err)
	}
	obj, err := s.getFrom(st, info)
	if err != nil {
		return writeStatus(c, err)
	}
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" {
		return writeStatus(c, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name)))
	}
	return writeStatus(c, apierrors.NewServiceUnavailable(fmt.Sprintf(
		"pod %s is bound to node %s, but no agent serves %s for it: node agents are not part of this skiff build yet", pod.Name, pod.Spec.NodeName, info.Subresource)))
}

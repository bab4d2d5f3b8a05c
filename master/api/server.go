// Package api serves the Kubernetes REST API from a master's replicated store: discovery,
// CRUD, list, watch, patch, subresources and table output for the resources in
// master/registry. Writes go through Raft (forwarded to the leader by the raft package);
// reads are linearizable unless the client asks for resourceVersion=0.
package api

import (
	"crypto/subtle"
	"errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"skiff/fsm"
	"skiff/raft"
)

// Internal store keys that the API never serves: cluster secrets replicated to every master.
const (
	InternalResource = "skiff.internal"
	CAKey            = "ca"
	AdminTokenKey    = "admin-token"
)

// Server answers Kubernetes API requests from one master. It is safe for concurrent use.
type Server struct {
	node *raft.Node
	now  func() time.Time
	// advertise is the address clients reach this master on, for /api's
	// serverAddressByClientCIDRs.
	advertise string

	// listStates keeps the states that continue tokens refer to, so a paged list reads
	// one consistent revision, as Kubernetes guarantees.
	listMu     sync.Mutex
	listStates map[uint64]retainedState

	// agents finds the agent of a node, for pods/log; nil until the master has gossip.
	agents AgentLocator

	transportMu sync.Mutex
	transport   *http.Transport // to agents; see agentTransport
}

type retainedState struct {
	st   *fsm.State
	used time.Time
}

// New returns a Server reading and writing through node.
func New(node *raft.Node, advertise string) *Server {
	return &Server{node: node, now: time.Now, advertise: advertise, listStates: map[uint64]retainedState{}}
}

// Register adds the API's routes to e.
func (s *Server) Register(e *echo.Echo) {
	e.GET("/version", s.version)
	for _, p := range []string{"/healthz", "/livez"} {
		e.GET(p, func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	}
	e.GET("/readyz", s.readyz)
	g := e.Group("", s.Authenticate)
	g.GET("/api", s.apiVersions)
	g.GET("/apis", s.apiGroups)
	g.GET("/openapi/v3", s.openAPIRoot)
	g.GET("/openapi/v3/*", s.openAPIGroupVersion)
	g.GET("/openapi/v2", s.openAPIV2)
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		g.Add(m, "/api/*", s.dispatch)
		g.Add(m, "/apis/*", s.dispatch)
	}
	// A path nothing serves is answered as kube-apiserver does, with a Status kubectl can
	// show; every other error keeps echo's handling.
	next := e.HTTPErrorHandler
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if (errors.Is(err, echo.ErrNotFound) || errors.Is(err, echo.ErrMethodNotAllowed)) && !c.Response().Committed {
			_ = writeStatus(c, apierrors.NewGenericServerResponse(http.StatusNotFound, strings.ToLower(c.Request().Method), schema.GroupResource{}, "", "", 0, false))
			return
		}
		next(err, c)
	}
}

// Authenticate admits requests that carry the cluster's bearer token; others get 401.
func (s *Server) Authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get("Authorization")
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || !s.validToken(strings.TrimSpace(token)) {
			return writeStatus(c, apierrors.NewUnauthorized("Unauthorized"))
		}
		return next(c)
	}
}

func (s *Server) validToken(token string) bool {
	if token == "" {
		return false
	}
	rec := s.node.FSM().State().Get(fsm.Key{Resource: InternalResource, Name: AdminTokenKey})
	return rec != nil && subtle.ConstantTimeCompare(rec.Value, []byte(token)) == 1
}

// readyz answers 200 once this master knows a leader and has applied up to its read index.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := contextWithTimeout(c, 2*time.Second)
	defer cancel()
	if _, err := s.node.LinearizableRead(ctx); err != nil {
		return c.String(http.StatusServiceUnavailable, "not ready: "+err.Error())
	}
	return c.String(http.StatusOK, "ok")
}

// dispatch routes a resource request by method and URL shape.
func (s *Server) dispatch(c echo.Context) error {
	info, isResource, err := parsePath(c.Request().URL.Path)
	if err != nil {
		return writeStatus(c, err)
	}
	if !isResource {
		if c.Request().Method != http.MethodGet {
			return writeStatus(c, apierrors.NewMethodNotSupported(groupResource(info.Group, ""), c.Request().Method))
		}
		return s.discovery(c, info)
	}
	if c.QueryParam("watch") == "true" || c.QueryParam("watch") == "1" {
		info.Watch = true
	}
	if err := validateWriteOptions(c); err != nil {
		return writeStatus(c, err)
	}
	r := c.Request()
	switch {
	case info.Subresource == "status":
		return s.statusSubresource(c, info)
	case info.Subresource == "scale":
		return s.scaleSubresource(c, info)
	case info.Subresource == "eviction":
		return s.evict(c, info)
	case info.Resource.Resource == "pods" && podProxySubresources[info.Subresource]:
		return s.podProxy(c, info)
	case r.Method == http.MethodGet && info.Watch:
		return s.watch(c, info)
	case r.Method == http.MethodGet && info.Name == "":
		return s.list(c, info)
	case r.Method == http.MethodGet:
		return s.get(c, info)
	case r.Method == http.MethodPost && info.Name == "":
		return s.create(c, info)
	case r.Method == http.MethodPut && info.Name != "":
		return s.update(c, info)
	case r.Method == http.MethodPatch && info.Name != "":
		return s.patch(c, info)
	case r.Method == http.MethodDelete && info.Name != "":
		return s.delete(c, info)
	case r.Method == http.MethodDelete:
		return s.deleteCollection(c, info)
	}
	return writeStatus(c, apierrors.NewMethodNotSupported(grOf(info.Resource), verb(r.Method, info)))
}

package master

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"skiff/fsm"
	"skiff/master/api"
	"skiff/raft"
)

// maxDebugValue bounds a debug key/value body.
const maxDebugValue = 1 << 20

// opsRoutes adds skiff's operations API (Raft status and membership, a key/value debug
// surface for drills and benchmarks), behind the same authentication as the Kubernetes API.
func (m *Master) opsRoutes(e *echo.Echo) {
	g := e.Group("/skiff/v1", m.api.Authenticate)
	g.GET("/raft", m.raftStatus)
	g.GET("/raft/state-hash", m.stateHash)
	g.GET("/raft/leadership-history", m.leadershipHistory)
	g.GET("/masters", m.masters)
	g.GET("/members", m.members)
	g.POST("/agent-certificate", m.agentCertificate)
	g.POST("/raft/transfer-leadership", m.transferLeadership)
	g.POST("/raft/remove-peer", m.removePeer)
	g.GET("/kv/:key", m.kvGet)
	g.PUT("/kv/:key", m.kvPut)
	g.GET("/snapshot", m.snapshotSave)
	g.POST("/snapshot/restore", m.snapshotRestore)
	m.drillRoutes(e, g)
}

// masterInfo is one master as /skiff/v1/masters lists it.
type masterInfo struct {
	ID    string `json:"id"`
	API   string `json:"api"`
	Raft  string `json:"raft"`
	Voter bool   `json:"voter"`
}

// masters lists the Raft configuration with each master's API address, as the masters
// recorded them in the store.
func (m *Master) masters(c echo.Context) error {
	peers, err := m.node.Peers()
	if err != nil {
		return storeError(c, err)
	}
	st := m.node.FSM().State()
	out := []masterInfo{}
	for _, p := range peers {
		info := masterInfo{ID: p.ID, Raft: p.Address, Voter: p.Voter}
		if rec := st.Get(fsm.Key{Resource: api.InternalResource, Name: masterAPIKey(p.ID)}); rec != nil {
			info.API = string(rec.Value)
		}
		out = append(out, info)
	}
	return c.JSON(http.StatusOK, out)
}

func masterAPIKey(id string) string { return "master-api." + id }

// agentCertRequest is what an agent sends to get a serving certificate from the cluster CA.
type agentCertRequest struct {
	Name         string   `json:"name"`
	PublicKeyPEM string   `json:"publicKeyPEM"`
	Hosts        []string `json:"hosts"`
}

// agentCertificate signs an agent's serving certificate with the cluster CA, so masters can
// verify the agent they proxy logs from. Only holders of the cluster token may ask.
func (m *Master) agentCertificate(c echo.Context) error {
	var req agentCertRequest
	if err := json.NewDecoder(io.LimitReader(c.Request().Body, 64<<10)).Decode(&req); err != nil || req.Name == "" || req.PublicKeyPEM == "" {
		return echo.NewHTTPError(http.StatusBadRequest, "want {name, publicKeyPEM, hosts}")
	}
	ca, err := api.ClusterCA(m.node.FSM().State())
	if err != nil || ca == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the cluster CA is not ready")
	}
	cert, err := ca.SignServing(req.Name, []byte(req.PublicKeyPEM), req.Hosts)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	return c.JSON(http.StatusOK, map[string]string{"certificatePEM": string(cert), "caPEM": string(ca.CertPEM)})
}

func (m *Master) raftStatus(c echo.Context) error {
	return c.JSON(http.StatusOK, m.node.Stats())
}

// StateHash is a master's state fingerprint: masters that applied the same revision must
// report the same hash, which is how tests and drills check that replicas converged.
type StateHash struct {
	Revision uint64 `json:"revision"`
	Hash     string `json:"hash"`
}

// stateHash hashes one immutable state, so revision and hash always belong together.
func (m *Master) stateHash(c echo.Context) error {
	st := m.node.FSM().State()
	return c.JSON(http.StatusOK, StateHash{Revision: st.Revision(), Hash: st.Hash()})
}

// leadershipHistory lists the terms this master led (since it started), for the
// one-leader-per-term check.
func (m *Master) leadershipHistory(c echo.Context) error {
	return c.JSON(http.StatusOK, m.node.LeadershipHistory())
}

func (m *Master) transferLeadership(c echo.Context) error {
	if err := m.node.TransferLeadership(c.Request().Context(), c.QueryParam("to")); err != nil {
		return storeError(c, err)
	}
	return c.JSON(http.StatusOK, m.node.Stats())
}

func (m *Master) removePeer(c echo.Context) error {
	id := c.QueryParam("id")
	if id == "" {
		return echo.NewHTTPError(http.StatusBadRequest, "query parameter id is required")
	}
	if err := m.node.RemovePeer(c.Request().Context(), id); err != nil {
		return storeError(c, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// kvGet reads a debug key: linearizable by default, local with ?stale=true.
func (m *Master) kvGet(c echo.Context) error {
	st := m.node.FSM().State()
	if c.QueryParam("stale") != "true" {
		var err error
		if st, err = m.node.LinearizableRead(c.Request().Context()); err != nil {
			return storeError(c, err)
		}
	}
	rec := st.Get(fsm.Key{Resource: "debugkv", Name: c.Param("key")})
	c.Response().Header().Set("X-Skiff-Revision", strconv.FormatUint(st.Revision(), 10))
	if rec == nil {
		return echo.NewHTTPError(http.StatusNotFound, "key not found")
	}
	c.Response().Header().Set("X-Skiff-Mod-Revision", strconv.FormatUint(rec.ModRevision, 10))
	return c.Blob(http.StatusOK, "application/octet-stream", rec.Value)
}

// kvPut writes a debug key unconditionally, or only at ?revision=N (0: only if absent).
func (m *Master) kvPut(c echo.Context) error {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxDebugValue+1))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "reading body: "+err.Error())
	}
	if len(body) > maxDebugValue {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "value over 1 MiB")
	}
	k := fsm.Key{Resource: "debugkv", Name: c.Param("key")}
	ops := []fsm.Op{fsm.DeleteIfExists(k), fsm.Create(k, body, fsm.Meta{})}
	if r := c.QueryParam("revision"); r != "" {
		rev, err := strconv.ParseUint(r, 10, 64)
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "revision must be a number")
		}
		ops = []fsm.Op{fsm.Update(k, rev, body, fsm.Meta{})}
		if rev == 0 {
			ops = []fsm.Op{fsm.Create(k, body, fsm.Meta{})}
		}
	}
	res, err := m.node.Propose(c.Request().Context(), &fsm.Txn{Ops: ops})
	if err != nil {
		return storeError(c, err)
	}
	switch res.Err {
	case nil:
	case fsm.ErrConflict, fsm.ErrAlreadyExists:
		return echo.NewHTTPError(http.StatusConflict, res.Err.Error())
	case fsm.ErrNotFound:
		return echo.NewHTTPError(http.StatusNotFound, res.Err.Error())
	default:
		return echo.NewHTTPError(http.StatusInternalServerError, res.Err.Error())
	}
	c.Response().Header().Set("X-Skiff-Mod-Revision", strconv.FormatUint(res.Revision, 10))
	return c.NoContent(http.StatusNoContent)
}

// storeError maps the store's errors onto HTTP: no leader, or a data dir too full to write
// the Raft log, is a retryable 503; an unknown outcome a 504 the client must not assume
// failed.
func storeError(c echo.Context, err error) error {
	switch {
	case errors.Is(err, raft.ErrNoLeader), errors.Is(err, raft.ErrShutdown), errors.Is(err, raft.ErrDiskFull), errors.Is(err, raft.ErrWritesPaused):
		c.Response().Header().Set("Retry-After", "1")
		return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, raft.ErrUnknownOutcome), errors.Is(err, context.DeadlineExceeded):
		return echo.NewHTTPError(http.StatusGatewayTimeout, err.Error())
	}
	return echo.NewHTTPError(http.StatusInternalServerError, err.Error())
}

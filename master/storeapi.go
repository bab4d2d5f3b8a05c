package master

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"skiff/fsm"
	"skiff/raft"
)

// maxDebugValue bounds a debug key/value body.
const maxDebugValue = 1 << 20

func (m *Master) routes(e *echo.Echo) {
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	e.GET("/readyz", m.readyz)
	g := e.Group("/skiff/v1")
	g.GET("/raft", m.raftStatus)
	g.POST("/raft/transfer-leadership", m.transferLeadership)
	g.POST("/raft/remove-peer", m.removePeer)
	g.GET("/kv/:key", m.kvGet)
	g.PUT("/kv/:key", m.kvPut)
}

// readyz answers 200 once this master knows a leader and has applied up to its read index.
func (m *Master) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if _, err := m.node.LinearizableRead(ctx); err != nil {
		return c.String(http.StatusServiceUnavailable, "not ready: "+err.Error())
	}
	return c.String(http.StatusOK, "ok")
}

func (m *Master) raftStatus(c echo.Context) error {
	return c.JSON(http.StatusOK, m.node.Stats())
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

// storeError maps the store's errors onto HTTP: no leader is a retryable 503, an unknown
// outcome a 504 the client must not assume failed.
func storeError(c echo.Context, err error) error {
	switch {
	case errors.Is(err, raft.ErrNoLeader), errors.Is(err, raft.ErrShutdown):
		c.Response().Header().Set("Retry-After", "1")
		return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, raft.ErrUnknownOutcome), errors.Is(err, context.DeadlineExceeded):
		return echo.NewHTTPError(http.StatusGatewayTimeout, err.Error())
	}
	return echo.NewHTTPError(http.StatusInternalServerError, err.Error())
}

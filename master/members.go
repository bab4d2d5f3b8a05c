package master

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// memberInfo is one gossip member as /skiff/v1/members lists it.
type memberInfo struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	State   string `json:"state"` // alive, suspect, dead or left
	Addr    string `json:"addr"`  // gossip host:port
	API     string `json:"api,omitempty"`
	Raft    string `json:"raft,omitempty"`
	Version string `json:"version,omitempty"`
}

// members lists the gossip members (masters and agents) as this master's gossip pool sees
// them, dead and left ones included until gossip forgets them (30 s). A master without
// gossip answers 404.
func (m *Master) members(c echo.Context) error {
	if m.pool == nil {
		return echo.NewHTTPError(http.StatusNotFound, "gossip is disabled on this master")
	}
	out := []memberInfo{}
	for _, mm := range m.pool.Members() {
		out = append(out, memberInfo{Name: mm.Name, Role: mm.Meta.Role, State: mm.State.String(), Addr: mm.Addr,
			API: mm.Meta.API, Raft: mm.Meta.Raft, Version: mm.Meta.Version})
	}
	return c.JSON(http.StatusOK, out)
}

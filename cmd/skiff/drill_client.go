package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"syscall"
	"time"
)

// drillAPI talks to one master's HTTPS API with the kubeconfig's credentials. Each master
// has its own connection pool, so a master that hangs (crashed, paused) holds up only the
// requests sent to it; every request carries its own deadline.
type drillAPI struct {
	name  string // the master's ID ("" until known)
	base  string // https://host:port
	token string
	http  *http.Client
}

// drillAPIError is a non-2xx answer.
type drillAPIError struct {
	Code    int
	Message string
}

func (e *drillAPIError) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

// codeOf is the HTTP status of an API error, 0 for transport errors.
func drillCode(err error) int {
	var ae *drillAPIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// drillCreds are what a kubeconfig gives: the first cluster's server and CA, the
// first user's token.
type drillCreds struct {
	server string
	token  string
	pool   *x509.CertPool
}

func readDrillCreds(path string) (*drillCreds, error) {
	server, token, pool, err := readKubeconfig(path)
	if err != nil {
		return nil, err
	}
	return &drillCreds{server: strings.TrimRight(server, "/"), token: token, pool: pool}, nil
}

func (k *drillCreds) master(name, base string) *drillAPI {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: k.pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	return &drillAPI{name: name, base: base, token: k.token, http: &http.Client{Transport: tr}}
}

func (m *drillAPI) String() string {
	if m.name != "" {
		return m.name
	}
	return m.base
}

// call sends one request with timeout and decodes a 2xx JSON answer into out (when not nil).
func (m *drillAPI) call(ctx context.Context, timeout time.Duration, method, path string, body any, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := m.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &drillAPIError{Code: resp.StatusCode, Message: drillMessage(b)}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (m *drillAPI) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	if method == http.MethodPatch {
		ct = "application/merge-patch+json"
	}
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	return m.http.Do(req)
}

// messageOf extracts the message of a Status (or any JSON with "message") body.
func drillMessage(b []byte) string {
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &st) == nil && st.Message != "" {
		return st.Message
	}
	return strings.TrimSpace(string(b))
}

// watchLines streams a watch and hands fn each event line until the stream ends, ctx ends
// or fn returns an error.
func (m *drillAPI) watchLines(ctx context.Context, path string, fn func(line []byte) error) error {
	resp, err := m.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return &drillAPIError{Code: resp.StatusCode, Message: drillMessage(b)}
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if ferr := fn(line); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			return err
		}
	}
}

// notSent reports whether a request surely never reached the server (so a write cannot
// have been applied): the connection was refused.
func drillNotSent(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// drillMaster is one master as the drill knows it.
type drillMaster struct {
	*drillAPI
	raftAddr string
}

// drillRaftStatus is the part of /skiff/v1/raft the drill reads.
type drillRaftStatus struct {
	ID           string
	State        string
	Term         uint64
	LeaderID     string
	AppliedIndex uint64
}

// discoverDrillMasters lists the cluster's masters through the kubeconfig's server (or, if
// that one does not answer, through none: the caller gets the error).
func discoverDrillMasters(ctx context.Context, creds *drillCreds) ([]*drillMaster, error) {
	entry := creds.master("", creds.server)
	var list []masterInfo
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = entry.call(ctx, 5*time.Second, http.MethodGet, "/skiff/v1/masters", nil, &list); err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("listing the masters through %s: %w", creds.server, err)
	}
	var out []*drillMaster
	for _, mi := range list {
		if mi.API == "" {
			return nil, fmt.Errorf("master %s has not recorded its API address yet; try again in a moment", mi.ID)
		}
		out = append(out, &drillMaster{drillAPI: creds.master(mi.ID, "https://"+mi.API), raftAddr: mi.Raft})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

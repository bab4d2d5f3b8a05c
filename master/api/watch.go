package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"skiff/fsm"
	"skiff/master/objects"
	"skiff/master/registry"
)

// maxWatchDuration ends watches so clients spread their reconnects, as Kubernetes does.
const maxWatchDuration = 30 * time.Minute

// bookmarkInterval is how often an idle watch that allows bookmarks is told the current
// revision, so it can resume from a recent point.
const bookmarkInterval = 15 * time.Second

type watchEvent struct {
	Type   string `json:"type"`
	Object any    `json:"object"`
}

// watch streams changes to a collection as newline-separated JSON events. Without a
// resourceVersion (or with "0") it first sends the matching objects as ADDED events, as
// Kubernetes does; with one it resumes after it, or ends with a 410 ERROR event when that
// revision has left the history.
func (s *Server) watch(c echo.Context, info requestInfo) error {
	r := info.Resource
	if err := validateListOptions(c, true); err != nil {
		return writeStatus(c, err)
	}
	sel, err := parseSelection(c, r)
	if err != nil {
		return writeStatus(c, err)
	}
	if info.Name != "" {
		// GET .../pods/x?watch=true watches one object.
		sel.fields = andName(sel.fields, info.Name)
	}
	timeout := maxWatchDuration
	if ts := c.QueryParam("timeoutSeconds"); ts != "" {
		if n, err := strconv.Atoi(ts); err == nil && n > 0 && time.Duration(n)*time.Second < timeout {
			timeout = time.Duration(n) * time.Second
		}
	}
	bookmarks := c.QueryParam("allowWatchBookmarks") == "true"
	table := wantsTable(c)

	var initial []*fsm.Record
	var from uint64
	// sendInitialEvents (the watch-list protocol client-go uses): the current objects as
	// ADDED events, then a bookmark marking their end, then changes.
	streamList := c.QueryParam("sendInitialEvents") == "true"
	switch rv := c.QueryParam("resourceVersion"); {
	case rv == "" || rv == "0" || streamList:
		st, err := s.readState(c)
		if err != nil {
			return writeStatus(c, err)
		}
		opts := fsm.ListOptions{Resource: objects.StoreResource(r), Predicate: sel.matches}
		if r.Namespaced {
			opts.Namespace = info.Namespace
		}
		initial, _ = st.List(opts)
		from = st.Revision()
	default:
		if from, err = objects.ParseRV(rv); err != nil {
			return writeStatus(c, apierrors.NewBadRequest(err.Error()))
		}
	}
	wopts := fsm.WatchOptions{Resource: objects.StoreResource(r), From: from, Predicate: sel.matches}
	if r.Namespaced {
		wopts.Namespace = info.Namespace
	}
	w, werr := s.node.FSM().Watch(wopts)

	resp := c.Response()
	resp.Header().Set("Content-Type", "application/json")
	resp.Header().Set("Cache-Control", "no-cache")
	resp.WriteHeader(http.StatusOK)
	resp.Flush() // clients return from the request once the headers arrive
	enc := json.NewEncoder(resp)
	line := make([]byte, 0, 4096)
	send := func(ev watchEvent) error {
		if raw, ok := ev.Object.(json.RawMessage); ok {
			// Stored JSON needs no encoding pass: one write per event, even with a
			// thousand watchers on the same change.
			line = append(append(append(append(line[:0], `{"type":"`...), ev.Type...), `","object":`...), raw...)
			line = append(line, "}\n"...)
			if _, err := resp.Write(line); err != nil {
				return err
			}
		} else if err := enc.Encode(ev); err != nil {
			return err
		}
		resp.Flush()
		return nil
	}
	if werr != nil {
		// A resume from before the history: the client relists.
		return send(watchEvent{Type: "ERROR", Object: statusObject(tooOld(from, s.node.FSM().OldestWatchRevision()))})
	}
	defer w.Stop()
	for _, rec := range initial {
		obj, err := s.eventObject(c, r, rec, rec.ModRevision, table)
		if err != nil || send(watchEvent{Type: "ADDED", Object: obj}) != nil {
			return nil
		}
	}
	if streamList {
		end := bookmark(r, from)
		objects.Accessor(end).SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
		if send(watchEvent{Type: "BOOKMARK", Object: end}) != nil {
			return nil
		}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(bookmarkInterval)
	defer tick.Stop()
	last := from
	ctx := c.Request().Context()
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				err := w.Err()
				if errors.Is(err, fsm.ErrWatchStopped) {
					return nil
				}
				// Cut off (too slow) or the state was replaced by a snapshot: relist.
				_ = send(watchEvent{Type: "ERROR", Object: statusObject(apierrors.NewResourceExpired(fmt.Sprintf("watch ended: %v; relist", err)))})
				return nil
			}
			obj, err := s.eventObject(c, r, ev.Record, ev.Revision, table)
			if err != nil {
				return nil
			}
			if send(watchEvent{Type: ev.Type.String(), Object: obj}) != nil {
				return nil
			}
			last = ev.Revision
		case <-tick.C:
			if bookmarks {
				rev := max(last, s.node.FSM().Revision())
				if send(watchEvent{Type: "BOOKMARK", Object: bookmark(r, rev)}) != nil {
					return nil
				}
			}
		case <-deadline.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

func tooOld(from, oldest uint64) error {
	return apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", from, oldest))
}

// eventObject renders a record for a watch event with its resourceVersion set to the
// revision of the change (for a deletion, the deletion's).
func (s *Server) eventObject(c echo.Context, r *registry.Resource, rec *fsm.Record, rev uint64, table bool) (any, error) {
	if !table {
		if raw := objects.RawWithRV(rec.Value, rev); raw != nil {
			return json.RawMessage(raw), nil
		}
	}
	obj, err := objects.Decode(r, rec)
	if err != nil {
		return nil, err
	}
	objects.Accessor(obj).SetResourceVersion(strconv.FormatUint(rev, 10))
	if table {
		return s.table(c, r, []runtime.Object{obj}, strconv.FormatUint(rev, 10)), nil
	}
	return obj, nil
}

func bookmark(r *registry.Resource, rev uint64) runtime.Object {
	obj := r.New()
	obj.GetObjectKind().SetGroupVersionKind(r.GroupVersionKind())
	acc := objects.Accessor(obj)
	acc.SetResourceVersion(strconv.FormatUint(rev, 10))
	acc.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "false"})
	return obj
}

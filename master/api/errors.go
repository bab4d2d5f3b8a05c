package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"skiff/raft"
)

// writeStatus answers with err as a metav1.Status, the shape every Kubernetes client
// understands. Store errors map onto the codes the API conventions give them: no leader is
// a retryable 503, an unknown outcome a 504 the client must not take as a failure.
func writeStatus(c echo.Context, err error) error {
	st := statusObject(err)
	if st.Code == http.StatusServiceUnavailable || st.Code == http.StatusTooManyRequests || st.Code == http.StatusGatewayTimeout {
		retry := 1
		if st.Details != nil && st.Details.RetryAfterSeconds > 0 {
			retry = int(st.Details.RetryAfterSeconds)
		}
		c.Response().Header().Set("Retry-After", strconv.Itoa(retry))
	}
	return c.JSON(int(st.Code), st)
}

func toStatus(err error) *metav1.Status {
	var apiStatus apierrors.APIStatus
	switch {
	case errors.As(err, &apiStatus):
		st := apiStatus.Status()
		return &st
	case errors.Is(err, raft.ErrNoLeader), errors.Is(err, raft.ErrShutdown):
		st := apierrors.NewServiceUnavailable("no leader elected in the control plane; retry shortly: " + err.Error()).Status()
		if st.Details == nil {
			st.Details = &metav1.StatusDetails{}
		}
		st.Details.RetryAfterSeconds = 1
		return &st
	case errors.Is(err, raft.ErrDiskFull), errors.Is(err, raft.ErrWritesPaused):
		// Not applied; another master (the new leader, if this one led) can take it, or
		// this one once the restore is over.
		st := apierrors.NewServiceUnavailable("not applied, retry: " + err.Error()).Status()
		if st.Details == nil {
			st.Details = &metav1.StatusDetails{}
		}
		st.Details.RetryAfterSeconds = 1
		return &st
	case errors.Is(err, raft.ErrUnknownOutcome), errors.Is(err, context.DeadlineExceeded):
		st := apierrors.NewTimeoutError("the write may or may not have been applied: "+err.Error(), 1).Status()
		st.Code = http.StatusGatewayTimeout
		return &st
	case errors.Is(err, context.Canceled):
		st := apierrors.NewTimeoutError("request cancelled", 1).Status()
		return &st
	}
	st := apierrors.NewInternalError(err).Status()
	return &st
}

// statusObject builds a Status with TypeMeta set, for watch ERROR events.
func statusObject(err error) *metav1.Status {
	st := toStatus(err)
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	return st
}

package fsm

import "errors"

// ErrAlreadyExists is returned when a create names a key that is already present.
var ErrAlreadyExists = errors.New("already exists")

// ErrNotFound is returned when an update, delete or get names a key that is absent.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when an operation's expected revision is not the key's current revision.
var ErrConflict = errors.New("revision conflict")

// ErrTooOld is returned when a watch asks to resume from a revision the event history no longer holds.
var ErrTooOld = errors.New("requested revision is older than the retained watch history")

// ErrSlowWatcher is returned by a watch whose consumer fell so far behind that it was cut off.
var ErrSlowWatcher = errors.New("watcher fell behind and was cut off")

// ErrWatchStopped is returned by a watch that its owner stopped.
var ErrWatchStopped = errors.New("watch stopped")

// errorCode maps the business errors onto stable wire codes so results survive forwarding
// between masters. Codes are never reused.
var errorCodes = []error{nil, ErrAlreadyExists, ErrNotFound, ErrConflict}

func codeOf(err error) uint64 {
	for i, e := range errorCodes {
		if e == err {
			return uint64(i)
		}
	}
	panic("fsm: unencodable error " + err.Error())
}

func errorOf(code uint64) error {
	if code >= uint64(len(errorCodes)) {
		panic("fsm: unknown error code")
	}
	return errorCodes[code]
}

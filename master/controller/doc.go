// Package controller holds the leader's controllers. Each is level-triggered: it compares
// what the store says with what should be and writes the difference, with preconditions,
// so a new leader simply resumes and a deposed leader's late write fails instead of
// clobbering newer state. They read the leader's own FSM; they never call the HTTP API.
package controller

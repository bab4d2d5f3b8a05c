package raft

import (
	"net"
	"testing"
	"time"
)

func TestIdleConnAliveSeesPeerClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	server := <-accepted
	if !idleConnAlive(c) {
		t.Fatal("an open idle connection looks dead")
	}
	server.Close()
	deadline := time.Now().Add(10 * time.Second)
	for idleConnAlive(c) {
		if time.Now().After(deadline) {
			t.Fatal("a connection closed by the peer still looks alive")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

package raft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	hraft "github.com/hashicorp/raft"
	"skiff/fsm"
)

// AddVoter adds (or re-addresses) server id at addr as a voter. Any node may call it; it
// runs on the leader.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	return n.onLeader(ctx, rpcAddVoter, 0, encodeStrings(id, addr))
}

// RemovePeer removes server id from the configuration. Any node may call it.
func (n *Node) RemovePeer(ctx context.Context, id string) error {
	return n.onLeader(ctx, rpcRemove, 0, encodeStrings(id))
}

// TransferLeadership asks the leader to hand leadership to id (empty: the most
// up-to-date follower). Any node may call it.
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	return n.onLeader(ctx, rpcTransfer, 0, encodeStrings(id))
}

// Join asks the cluster member at addr to add this node as a voter. The member forwards
// the request to its leader. This node must have no state of its own.
func (n *Node) Join(ctx context.Context, addr string) error {
	for {
		_, err := n.rpc.call(ctx, addr, rpcAddVoter, 0, encodeStrings(n.cfg.ID, n.Addr()))
		if err == nil || !errors.Is(err, errSendFailed) && !errors.Is(err, ErrNoLeader) {
			return err
		}
		if perr := n.pause(ctx); perr != nil {
			return fmt.Errorf("joining through %s: %w (last error: %v)", addr, perr, err)
		}
	}
}

// Leave removes this node from the cluster (handing leadership over first if it leads)
// and shuts it down.
func (n *Node) Leave(ctx context.Context) error {
	if n.IsLeader() {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			return fmt.Errorf("handing over leadership before leaving: %w", err)
		}
	}
	if err := n.RemovePeer(ctx, n.cfg.ID); err != nil {
		return err
	}
	return n.Shutdown()
}

// onLeader runs a membership call on the leader: here if this node leads, else by RPC.
func (n *Node) onLeader(ctx context.Context, m rpcMethod, hops byte, payload []byte) error {
	for {
		if n.IsLeader() {
			_, err := n.localCall(m, payload)
			if !errors.Is(err, ErrNotLeader) {
				return err
			}
		} else if hops > 0 {
			return ErrNotLeader
		}
		_, addr, err := n.waitLeader(ctx)
		if err != nil {
			return err
		}
		if addr != n.Addr() {
			_, err = n.rpc.call(ctx, addr, m, hops+1, payload)
			if !errors.Is(err, ErrNotLeader) && !errors.Is(err, errSendFailed) {
				return err
			}
		}
		if err := n.pause(ctx); err != nil {
			return err
		}
	}
}

// handleRPC answers a peer's request. Proposals and read indexes are answered only by the
// leader (the caller retries elsewhere); membership calls are forwarded once.
func (n *Node) handleRPC(ctx context.Context, m rpcMethod, hops byte, payload []byte) ([]byte, error) {
	switch m {
	case rpcPropose:
		if !n.IsLeader() {
			return nil, ErrNotLeader
		}
		res, err := n.batcher.submit(ctx, payload)
		if err != nil {
			return nil, err
		}
		return fsm.EncodeTxnResult(res), nil
	case rpcReadIndex:
		if !n.IsLeader() {
			return nil, ErrNotLeader
		}
		idx, err := n.localReadIndex(ctx)
		if err != nil {
			return nil, err
		}
		return binary.AppendUvarint(nil, idx), nil
	case rpcAddVoter, rpcRemove, rpcTransfer:
		return nil, n.onLeader(ctx, m, hops, payload)
	case rpcWhoAmI:
		return []byte(n.cfg.ID), nil
	}
	return nil, fmt.Errorf("unknown rpc method %d", m)
}

// localCall carries out a membership call on this node as leader.
func (n *Node) localCall(m rpcMethod, payload []byte) ([]byte, error) {
	args, err := decodeStrings(payload)
	if err != nil {
		return nil, err
	}
	var f hraft.Future
	switch {
	case m == rpcAddVoter && len(args) == 2:
		return nil, n.addVoter(args[0], args[1]) // idempotent; re-addresses a moved server (rejoin.go)
	case m == rpcRemove && len(args) == 1:
		f = n.raft.RemoveServer(hraft.ServerID(args[0]), 0, 0)
	case m == rpcTransfer && len(args) == 1 && args[0] == "":
		f = n.raft.LeadershipTransfer()
	case m == rpcTransfer && len(args) == 1:
		addr, err := n.peerAddress(args[0])
		if err != nil {
			return nil, err
		}
		f = n.raft.LeadershipTransferToServer(hraft.ServerID(args[0]), hraft.ServerAddress(addr))
	default:
		return nil, fmt.Errorf("malformed rpc %d", m)
	}
	return nil, translate(f.Error())
}

func (n *Node) peerAddress(id string) (string, error) {
	peers, err := n.Peers()
	if err != nil {
		return "", err
	}
	for _, p := range peers {
		if p.ID == id {
			return p.Address, nil
		}
	}
	return "", fmt.Errorf("no server %q in the raft configuration", id)
}

func encodeStrings(ss ...string) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeStrings(b []byte) ([]string, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > 16 {
		return nil, errors.New("malformed string list")
	}
	b = b[k:]
	out := make([]string, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, errors.New("malformed string list")
		}
		out = append(out, string(b[k:k+int(l)]))
		b = b[k+int(l):]
	}
	return out, nil
}

// Package gossip is how skiff's masters and agents find each other and learn who is
// alive: a thin layer over hashicorp/memberlist (SWIM gossip with Lifeguard extensions).
//
// Every process runs one Pool. It announces a small Meta (role, name, API and Raft
// addresses, version) and keeps a view of every other member with its State: alive,
// dead (stopped answering probes) or left (said goodbye with Leave). Dead and left
// members stay listed with that state until memberlist stops gossiping about them
// (30 s), so a consumer can tell "gone" from "never existed".
//
// Consumers are level-triggered: Changes delivers a coalesced "something changed"
// signal and the consumer then reads Members or Alive and reconciles against that
// snapshot. Missing a signal is harmless; the next read shows the current state.
//
// Gossip establishes liveness facts; it decides nothing. Which agent's pods to
// reschedule, or which master to remove from Raft, is policy for the Raft leader,
// which reads these facts (and may apply its own grace periods).
//
// The timing defaults declare a silent member dead in about 2-3 s on a LAN; see
// DefaultProbeInterval. With Config.SecretKey all gossip is AES-GCM encrypted and
// authenticated, and members without the key cannot join. See DESIGN.md.
package gossip

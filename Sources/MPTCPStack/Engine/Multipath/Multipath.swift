// Multipath connections (more than one uplink configured).
//
// The translator is the TCP endpoint of every subflow: its own sequence
// space, RTT estimate, congestion window and retransmissions per subflow.
// The client's bytes are copied into the connection's send buffer and the
// client's segment is consumed; the scheduler sends them on the subflows as
// their windows allow. The client is acknowledged only when the peer's
// DATA_ACK covers its bytes (end-to-end semantics are kept). Peer data is
// acknowledged per subflow and moved onto the client's connection at its
// data-level place; the client's own TCP puts segments from different
// subflows back in order.
//
// Scheduler (`Scheduler/SubflowScheduler.swift`): the lowest smoothed RTT
// among subflows with congestion window room, but never a subflow whose RTT
// is more than `slowPathFactor` times the best one's (the fast path would
// deliver sooner once it has room; sending on the slow one only provokes
// data-level reordering at the receiver).
// Congestion control: RFC 6356 LIA (coupled, so subflows sharing a
// bottleneck take no more than one TCP would), NewReno-style recovery with
// SACK-guided retransmission, RFC 6298 RTO with backoff.
// Failure: on an RTO the subflow's data goes out again on the others and the
// subflow gets no new data until it acknowledges something; after
// `maxBackoff` RTOs without progress it is reset and a new MP_JOIN is tried
// from the same uplink every `rejoinInterval`.

// The tunables named here are in `EngineTuning` (Types.swift).

extension Engine {
    @inline(__always) func ms(_ now: Instant) -> UInt32 { UInt32(truncatingIfNeeded: now.nanoseconds / 1_000_000) }
}

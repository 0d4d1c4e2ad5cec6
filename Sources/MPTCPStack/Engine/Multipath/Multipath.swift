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
// Scheduler: the lowest smoothed RTT among subflows with congestion window
// room, but never a subflow whose RTT is more than `slowPathFactor` times the
// best one's (the fast path would deliver sooner once it has room; sending on
// the slow one only provokes data-level reordering at the receiver).
// Congestion control: RFC 6356 LIA (coupled, so subflows sharing a
// bottleneck take no more than one TCP would), NewReno-style recovery with
// SACK-guided retransmission, RFC 6298 RTO with backoff.
// Failure: on an RTO the subflow's data goes out again on the others and the
// subflow gets no new data until it acknowledges something; after
// `maxBackoff` RTOs without progress it is reset and a new MP_JOIN is tried
// from the same uplink every `rejoinInterval`.

extension Engine {
    static var slowPathFactor: Double { 3.0 }
    static var maxBackoff: Int { 3 }
    static var rejoinInterval: Duration { .seconds(1) }
    /// MP_JOIN SYN / third ACK retransmission: every second, four times,
    /// then a fresh join (so a restored uplink is back within about 1 s).
    static var joinRetransmit: Duration { .seconds(1) }
    /// After the peer refuses a join (RST): wait this long before the next.
    static var refusedJoinRetry: Duration { .seconds(10) }
    /// A subflow silent this long while another one of the connection is
    /// receiving gets keepalive probes (the peer must answer them, RFC 9293
    /// §3.8.4; Linux rate-limits such answers to one per 500 ms) ...
    static var silentAfter: Duration { .seconds(1) }
    static var probeInterval: Duration { .milliseconds(600) }
    /// ... and is given up after this many go unanswered: this is how a
    /// dead uplink is noticed when the translator has nothing to send on it.
    static var maxProbes: Int { 2 }
    /// Sooner when the download has stalled: the client's cumulative ACK has
    /// not moved for `stallAfter` though we forwarded data beyond it (a
    /// data-level hole the peer's other subflows cannot fill), and a subflow
    /// has been silent as long. It gets one probe, and is given up if that
    /// goes unanswered for `stallProbeWait` (at least twice its RTT): the
    /// peer then hears a REMOVE_ADDR, closes its side and sends the hole
    /// again on another subflow, where its own timers would take seconds
    /// (Linux marks a subflow stale only after several RTOs).
    static var stallAfter: Duration { .milliseconds(150) }
    static var stallProbeWait: Double { 0.12 }
    /// Linux answers out-of-window segments at most once per 500 ms
    /// (`tcp_invalid_ratelimit`): probes on one subflow are further apart.
    static var probeSpacing: Duration { .milliseconds(550) }
    static var minRTO: Double { 0.2 }

    @inline(__always) func ms(_ now: Instant) -> UInt32 { UInt32(truncatingIfNeeded: now.nanoseconds / 1_000_000) }
}

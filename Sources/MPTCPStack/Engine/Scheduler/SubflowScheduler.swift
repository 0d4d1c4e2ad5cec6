// Which subflow sends the next segment: a protocol in the shape of Linux's
// `struct mptcp_sched_ops` (net/mptcp/sched.c), whose `get_subflow` picks
// among a connection's subflows, and today's rule as its one implementation.

/// What a scheduler reads of a subflow.
public protocol SchedulableSubflow {
    /// Established, not given up or suspected after an RTO, not closing.
    var usable: Bool { get }
    /// Marked backup (MP_JOIN or MP_PRIO B bit, RFC 8684 §3.3.8).
    var backup: Bool { get }
    /// Congestion window, bytes.
    var cwnd: Double { get }
    /// Bytes in the network: in flight less what the peer has SACKed.
    var pipe: Int { get }
    /// Payload bytes per segment.
    var mss: Int { get }
    /// Smoothed RTT, seconds (0: no sample yet).
    var srtt: Double { get }
    /// Retransmission timeout, seconds (the RTT guess before a sample).
    var rto: Double { get }
}

/// Picks the subflow for the next segment (Linux: `get_subflow`). Pure: it
/// reads the subflows and returns an index, or nil when none may send now.
public protocol SubflowScheduler {
    /// The subflow of `subflows` that sends the next `want` bytes (at most
    /// one segment of them), or nil.
    func pick<C: Collection>(_ subflows: C, want: Int) -> C.Index? where C.Element: SchedulableSubflow
}

/// The lowest smoothed RTT among subflows with congestion-window room, but
/// never one much slower than the best (more than `slowPathFactor` times its
/// RTT, and more than `slowPathMargin` behind it): the fast subflow would
/// deliver sooner once it has room, and sending on the slow one only
/// provokes data-level reordering at the receiver. Backup subflows only
/// when no regular one is usable. A subflow with no RTT sample yet counts
/// with its timeout and is never ruled out as slow (its first ACK gives it
/// a sample). Ties: the first in order.
public struct LowestRTTScheduler: SubflowScheduler {
    public var slowPathFactor: Double
    public var slowPathMargin: Double

    public init(slowPathFactor: Double, slowPathMargin: Double = 0.010) {
        self.slowPathFactor = slowPathFactor
        self.slowPathMargin = slowPathMargin
    }

    @inlinable
    public func pick<C: Collection>(_ subflows: C, want: Int) -> C.Index? where C.Element: SchedulableSubflow {
        let hasRegular = subflows.contains { $0.usable && !$0.backup }
        var bestRTT = Double.greatestFiniteMagnitude
        for p in subflows where p.usable && (!p.backup || !hasRegular) {
            bestRTT = min(bestRTT, p.srtt > 0 ? p.srtt : p.rto)
        }
        var pick: C.Index?
        var pickRTT = Double.greatestFiniteMagnitude
        for k in subflows.indices {
            let p = subflows[k]
            guard p.usable && (!p.backup || !hasRegular) else { continue }
            let room = Int(p.cwnd) - p.pipe
            guard room >= min(want, p.mss) else { continue }
            let rtt = p.srtt > 0 ? p.srtt : p.rto
            // (A subflow with no RTT sample yet gets its chance: its first
            // ACK gives one.)
            if p.srtt > 0 && rtt > bestRTT * slowPathFactor && rtt - bestRTT > slowPathMargin { continue }
            if rtt < pickRTT { pick = k; pickRTT = rtt }
        }
        return pick
    }
}

/// What RFC 6356's coupled increase needs to know of a subflow.
public protocol CoupledSubflow {
    /// Congestion window, bytes.
    var cwnd: Double { get }
    /// Smoothed RTT, seconds (0: no sample yet).
    var srtt: Double { get }
    /// Bytes sent and not yet acknowledged.
    var flight: Int { get }
    /// Established, and not given up.
    var isActive: Bool { get }
}

/// RFC 6356 LIA ("linked increases"), congestion avoidance.
public enum LinkedIncrease {
    /// The bytes by which subflow `k` of `subflows`, as it is now (`own`:
    /// the element at `k` may be older), grows its window in congestion
    /// avoidance for `acked` newly acknowledged bytes:
    /// min(alpha * acked * mss / total, acked * mss / cwnd_k), with
    /// total = Σ cwnd_i and alpha = total * max(cwnd_i / rtt_i²) / (Σ cwnd_i / rtt_i)².
    ///
    /// The sums run over the subflows that are sending: `k` itself and every
    /// other active subflow with data in flight. A subflow with nothing in
    /// flight carries no rate; its window is a stale figure (RFC 7661: not
    /// validated) that in the sums would only slow every other subflow down
    /// (docs/decisions.md).
    @inlinable
    public static func increase<C: Collection>(_ own: C.Element, at k: C.Index, in subflows: C, acked: Int, mss: Int) -> Double
    where C.Element: CoupledSubflow {
        let p = own
        var total = 0.0, best = 0.0, sum = 0.0
        var i = subflows.startIndex
        while i != subflows.endIndex {
            let q = i == k ? own : subflows[i]
            if q.isActive && q.srtt > 0 && (i == k || q.flight > 0) {
                total += q.cwnd
                best = max(best, q.cwnd / (q.srtt * q.srtt))
                sum += q.cwnd / q.srtt
            }
            subflows.formIndex(after: &i)
        }
        total = max(total, p.cwnd)
        let alpha = sum > 0 ? total * best / (sum * sum) : 1
        let a = Double(acked), m = Double(mss)
        return min(alpha * a * m / total, a * m / p.cwnd)
    }
}

// A subflow's round-trip time estimate and retransmission timeout
// (RFC 6298 §2, §5): smoothed RTT, its variation, the timeout they give,
// its doubling on expiry, and the smallest RTT seen.

/// RFC 6298 RTT estimation for one subflow. A value: the subflow holds one
/// and feeds it samples; nothing here reads the clock or draws randomness.
///
/// All times are seconds. `srtt` 0 means no sample yet (RFC 6298 §2.1: the
/// timeout is then `rto`'s initial 1 s).
public struct RTTEstimator: Equatable, Sendable {
    /// The longest timeout, backed off or not (RFC 6298 §2.5 allows a
    /// maximum of at least 60 s).
    public static let maxRTO = 60.0

    /// Smoothed RTT (SRTT); 0: no sample yet.
    public private(set) var srtt = 0.0
    /// RTT variation (RTTVAR).
    public private(set) var rttvar = 0.0
    /// The retransmission timeout (RTO), doubled by `backOff()`.
    public private(set) var rto = 1.0
    /// The smallest RTT passed to `noteMinimum(_:)`; 0: none yet.
    public private(set) var minRTT = 0.0

    public init() {}

    /// Takes RTT sample `r` (RFC 6298 §2.2, §2.3, with alpha 1/8 and
    /// beta 1/4; the variance term is at least 1 ms, the clock granularity
    /// G) and sets the timeout from it, within `minRTO` and `maxRTO`.
    public mutating func sample(_ r: Double, minRTO: Double) {
        if srtt == 0 {
            srtt = r; rttvar = r / 2
        } else {
            rttvar = 0.75 * rttvar + 0.25 * abs(srtt - r)
            srtt = 0.875 * srtt + 0.125 * r
        }
        resetTimeout(minRTO: minRTO)
    }

    /// The timeout from the estimate alone: after a sample, and when a
    /// backed-off timeout gives way to it on progress (RFC 6298 §5.7).
    public mutating func resetTimeout(minRTO: Double) {
        rto = min(Self.maxRTO, max(minRTO, srtt + max(0.001, 4 * rttvar)))
    }

    /// The timer expired: the timeout doubles, up to `maxRTO` (RFC 6298 §5.5).
    public mutating func backOff() {
        rto = min(Self.maxRTO, rto * 2)
    }

    /// Keeps the smallest of the samples passed here (the delay a path has
    /// without queues; for leaving slow start when it rises).
    public mutating func noteMinimum(_ r: Double) {
        minRTT = minRTT == 0 ? r : min(minRTT, r)
    }
}

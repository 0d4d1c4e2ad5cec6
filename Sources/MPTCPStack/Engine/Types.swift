// The engine's vocabulary: time, sides, verdicts, configuration, counters.

/// Monotonic time in nanoseconds, supplied by the caller with every event.
public struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64
    @inlinable public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }
    /// Saturating (never a trap): NaN and negative give 0, too large the end of time.
    public static func seconds(_ s: Double) -> Instant {
        let ns = s * 1e9
        return Instant(nanoseconds: !(ns > 0) ? 0 : ns >= 18_446_744_073_709_551_615.0 ? .max : UInt64(ns))
    }
    @inlinable public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }
    /// Saturating (never a trap): a negative duration goes back to 0 at most,
    /// a huge one ends at the end of time.
    @inlinable public static func + (a: Instant, d: Duration) -> Instant {
        let (s, atto) = d.components
        let (ns, o1) = s.multipliedReportingOverflow(by: 1_000_000_000)
        let (total, o2) = ns.addingReportingOverflow(atto / 1_000_000_000)
        if o1 || o2 { return Instant(nanoseconds: s < 0 ? 0 : .max) }
        if total < 0 { return Instant(nanoseconds: a.nanoseconds > total.magnitude ? a.nanoseconds - total.magnitude : 0) }
        let (r, o3) = a.nanoseconds.addingReportingOverflow(UInt64(total))
        return Instant(nanoseconds: o3 ? .max : r)
    }
    public var description: String { "\(Double(nanoseconds) / 1e9)s" }
}

/// Where a packet entered the gateway.
public enum Side: Equatable, Hashable, Sendable {
    /// From the LAN: plain TCP hosts behind this gateway.
    case lan
    /// From uplink number `index` (0-based, as configured).
    case uplink(UInt8)
}

/// Why the engine dropped a packet (each counted in `EngineStats`).
public enum DropReason: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// A pure ACK that only carried MPTCP signalling for the gateway.
    case signallingOnly
    /// Data from the peer that no DSS mapping covers.
    case unmapped
    /// Malformed or inconsistent MPTCP from the peer.
    case badMPTCP
    /// A segment for a connection the engine is tearing down.
    case closed
    /// The rewritten packet would exceed 65531 bytes, the most a verdict
    /// carries (cap the LAN's GRO/GSO size).
    case tooBig
    /// Taken over by the translator (multipath): its data went into the send
    /// buffer or its subflow ends at the gateway.
    case consumed
    /// Failed validation (RFC 793 / 5961 / 8684): outside the receive
    /// window, a RST not at the expected sequence number, a DATA_ACK for
    /// data never sent, a mapping outside the data-level window, a
    /// MP_FASTCLOSE without our key.
    case invalid
    /// MPTCP for a connection the engine does not know (reset both ways).
    case unknown

    public var description: String {
        switch self {
        case .signallingOnly: return "signalling-only"
        case .unmapped: return "unmapped"
        case .badMPTCP: return "bad-mptcp"
        case .closed: return "closed"
        case .tooBig: return "too-big"
        case .consumed: return "consumed"
        case .invalid: return "invalid"
        case .unknown: return "unknown"
        }
    }
}

/// What to do with the packet that was handed in.
public enum Verdict: Equatable, Sendable {
    /// Let it through unchanged.
    case accept
    /// Drop it.
    case drop(DropReason)
    /// Let through the rewritten packet: the new IP and TCP headers are the
    /// first `headerLength` bytes of the engine's header buffer and the
    /// payload is the original packet's bytes from `payloadOffset` on.
    case rewrite(headerLength: Int, payloadOffset: Int)
    /// Let through, in the packet's place, a segment of the engine's own:
    /// its IP and TCP headers are the first `headerLength` bytes of the
    /// header buffer and its payload is `Engine.carriedPayload` (bytes of a
    /// send buffer, valid until the next event). The packet keeps its GSO
    /// size, so a super-segment carries a subflow's first transmission at
    /// the cost of one verdict (docs/datapath.md).
    case carry(headerLength: Int)
    /// Keep the packet in the queue under `slot` (its bytes are in a send
    /// buffer): a later `Engine.releases` entry names the slot and says what
    /// it becomes (Held.swift).
    case hold(slot: Int)
}

/// Engine settings (the daemon maps its command line onto these).
public struct EngineConfig: Sendable {
    /// Bytes subtracted from the MSS the server announces to the LAN client,
    /// so that DSS (up to 28 bytes with an 8-byte DATA_ACK, 8-byte DSN and
    /// checksum) always fits beside timestamps in an MTU-sized segment.
    public var mssClamp: UInt16 = 28
    /// Ask for DSS checksums (MP_CAPABLE flag A). Linux does not by default.
    public var requestChecksums = false
    /// A connection with no packet for this long is forgotten.
    public var idleTimeout: Duration = .seconds(7200)
    /// How long a closed connection is remembered (for retransmitted FINs).
    public var timeWait: Duration = .seconds(60)
    /// Most connections tracked at once; further SYNs pass as plain TCP.
    public var maxConnections = 65_536
    /// Most half-open connections (a SYN seen, the handshake not complete):
    /// beyond it the oldest is forgotten (its connection then goes on as
    /// plain TCP), so a SYN flood cannot take the table from established
    /// connections or keep new ones from being translated.
    public var maxHalfOpen = 16_384
    /// A half-open connection silent this long is forgotten (TCP's own
    /// handshake timescale, not the idle timeout's).
    public var handshakeTimeout: Duration = .seconds(30)

    /// The gateway's uplinks, in order (index = `Side.uplink` index). With
    /// more than one, connections become multipath: the initial subflow
    /// keeps the client's 4-tuple and leaves by the default route; one
    /// MP_JOIN subflow is opened from each further uplink's address.
    public var uplinks: [UplinkConfig] = []
    /// Source ports of the subflows the gateway opens itself (reserve them
    /// from the gateway's own stack: net.ipv4.ip_local_reserved_ports); the
    /// last one is the port announced with our uplink addresses (ADD_ADDR),
    /// where the peer's joins to them arrive.
    public var joinPorts: ClosedRange<UInt16> = 61_000 ... 61_999
    /// Most subflows per connection (initial included), like the kernel's
    /// `ip mptcp limits set subflow`.
    public var maxSubflows = 8
    /// The engine's constants (timers, probe counts, limits), in one place.
    public var tuning = EngineTuning()
    /// Addresses announced by the peer (ADD_ADDR) that a connection joins,
    /// from every uplink, like the kernel's `add_addr_accepted` limit; 0
    /// only echoes the announcements.
    public var addAddrAccepted = 8
    /// Bytes of client data a multipath connection may hold until the
    /// peer's DATA_ACK covers them (also caps the window the client sees).
    public var sendBuffer = 4 << 20
    /// Responder role: an MP_CAPABLE SYN arriving on an uplink towards a LAN
    /// host opens a translated connection (the host answering plain TCP) or
    /// passes (the host answering MPTCP itself).
    public var responder = true
    /// Responder role: the uplinks' addresses other than the one a
    /// connection arrived on are announced to the peer (ADD_ADDR) so that it
    /// can join them.
    public var announceUplinks = true

    public init() {}

    /// More than one uplink: the multipath machinery is used.
    public var multipath: Bool { uplinks.count > 1 }
}

/// One uplink of the gateway.
public struct UplinkConfig: Sendable, Equatable {
    /// The uplink's own addresses (IPv4 and/or IPv6): sources of the
    /// subflows opened from it.
    public var addresses: [IPAddress]
    /// Used only when no other subflow works (MP_PRIO backup).
    public var backup: Bool
    /// The interface's MTU: the largest packet that leaves by it, and the
    /// largest the gateway can take in by it. The MSS announced to the peer
    /// on a subflow of this uplink and the segments sent on it are sized
    /// from it (PathMTU.swift). Later changes: `Engine.uplink(_:mtu:now:)`.
    public var mtu: Int
    public init(addresses: [IPAddress], backup: Bool = false, mtu: Int = 1500) {
        self.addresses = addresses
        self.backup = backup
        self.mtu = mtu
    }
}

/// Every tunable of the engine, with the values it has always used. Where
/// each acts: `Multipath/` (subflows, probes, joins), `Validation.swift`
/// (challenge ACKs, resets for unknown connections), `Recovery.swift` (crash
/// recovery), `Engine.swift` (timer passes).
public struct EngineTuning: Sendable {
    // Recovery.swift
    /// Probe rounds per recovered connection, this far apart: a probe or its
    /// answer may be lost, and hosts answer out-of-window segments at most
    /// once per 500 ms (Linux's `tcp_invalid_ratelimit`).
    public var recoveryRounds: [Duration] = [.zero, .seconds(1), .seconds(3)]
    /// Connections probed per pass, and passes this far apart: their
    /// answers stay within the reset budget (`unknownResetsPerSecond`).
    public var recoveryBatch: Int = 32
    public var recoverySpacing: Duration = .milliseconds(50)
    /// Changed handles the journal keeps track of between drains (beyond:
    /// every handle is reported).
    public var journalCapacity: Int = 1024
    // Engine.swift
    /// Free outbox slots a timer pass keeps for one more connection's timer
    /// (its retransmissions, probes and joins).
    public var timerReserve: Int = 64
    // Validation.swift
    /// RFC 5961 §7: challenge ACKs at most this often per connection.
    public var challengeInterval: UInt64 = 500_000_000
    /// Resets the engine sends for unknown connections, per second at most
    /// (a flood of forged packets gets no more than this back).
    public var unknownResetsPerSecond: Int = 2000
    // MultipathEnding.swift
    /// Out-of-order ranges a subflow keeps (beyond them, the oldest goes).
    public var maxOOORanges: Int = 64
    // Multipath.swift
    /// The scheduler never uses a subflow whose RTT is more than this many
    /// times the best one's (`Scheduler/SubflowScheduler.swift`).
    public var slowPathFactor: Double = 3.0
    /// RTOs without progress after which a subflow is reset and rejoined ...
    public var maxBackoff: Int = 3
    /// ... every this often.
    public var rejoinInterval: Duration = .seconds(1)
    /// MP_JOIN SYN / third ACK retransmission: every second, four times,
    /// then a fresh join (so a restored uplink is back within about 1 s).
    public var joinRetransmit: Duration = .seconds(1)
    /// After the peer refuses a join (RST): wait this long before the next.
    public var refusedJoinRetry: Duration = .seconds(10)
    /// A subflow silent this long while another one of the connection is
    /// receiving gets keepalive probes (the peer must answer them, RFC 9293
    /// §3.8.4; Linux rate-limits such answers to one per 500 ms) ...
    public var silentAfter: Duration = .seconds(1)
    /// A multipath connection with nothing outstanding either way this long
    /// after its last data gives its buffers back (`MPConn.compact`).
    public var compactAfter: Duration = .seconds(2)
    public var probeInterval: Duration = .milliseconds(600)
    /// ... and is given up after this many go unanswered: this is how a
    /// dead uplink is noticed when the translator has nothing to send on it.
    public var maxProbes: Int = 2
    /// Sooner when the download has stalled: the client's cumulative ACK has
    /// not moved for `stallAfter` though we forwarded data beyond it (a
    /// data-level hole the peer's other subflows cannot fill), and a subflow
    /// has been silent as long. It gets one probe, and is given up if that
    /// goes unanswered for `stallProbeWait` (at least twice its RTT): the
    /// peer then hears a REMOVE_ADDR, closes its side and sends the hole
    /// again on another subflow, where its own timers would take seconds
    /// (Linux marks a subflow stale only after several RTOs).
    public var stallAfter: Duration = .milliseconds(150)
    public var stallProbeWait: Double = 0.12
    /// Linux answers out-of-window segments at most once per 500 ms
    /// (`tcp_invalid_ratelimit`): probes on one subflow are further apart.
    public var probeSpacing: Duration = .milliseconds(550)
    /// The smallest subflow RTO, in seconds (RFC 6298 allows less than 1 s; Linux uses 200 ms).
    public var minRTO: Double = 0.2
    // MultipathClient.swift
    /// A client segment carries the first transmission of buffered data
    /// onto a subflow as its verdict (off: every subflow segment is sent
    /// from the outbox, as before issue 15; kept for comparison).
    public var carryByVerdict = true
    /// A subflow is carried onto only while a millisecond at its pacing
    /// rate (`burstAllowance`) is at least this many of its segments: from
    /// about 180 Mbit/s at 1420-byte segments. Below, the raw sends cost
    /// little, and carrying cost aggregation on the 40 + 10 Mbit/s testbed:
    /// federation fell short of the check in 2 of 6 repetitions (38-40
    /// Mbit/s of 46), never with this (docs/decisions.md). 0: always.
    public var carryMinSegments = 16
    /// ACKs written over the packet that caused them when it goes no
    /// further (`clientAckVerdict`, `subflowAckVerdict`), instead of sent
    /// from the outbox. Off until understood: with it the upload on the
    /// 40 + 10 Mbit/s testbed reached 0.84-0.87 of both links in two runs
    /// against 0.93-0.95 without (docs/decisions.md).
    public var acksByVerdict = false
    /// ACKs due on a subflow for in-order data, and the client's ACK for
    /// the peer's DATA_ACK, wait for `Engine.endOfBatch` (the caller's end
    /// of a batch of packets read at once) and then leave as one per
    /// subflow and one to the client, as a receiver's GRO would coalesce
    /// them. Off: each leaves in the event that made it due (the default,
    /// for callers that hand the engine one packet at a time).
    public var batchAcks = false
    // Held.swift
    /// Client packets held in the kernel's queue, per connection and in
    /// all (keep it well below the queue's length: 8192 by default). Off
    /// (0 per connection) until the defect it shows on shaped links is
    /// understood: the upload fell to 12-37 Mbit/s of 47 on the 40 + 10
    /// Mbit/s testbed, with RTOs (docs/decisions.md).
    public var maxHeldPerConnection = 0
    public var maxHeld = 2048

    public init() {}
}

import DequeModule

// Multipath state: the translator as the TCP endpoint of every subflow of a
// connection, and the data-level send buffer that holds the client's bytes
// until the peer's DATA_ACK covers them.

/// DSN comparison with 2^64 wrap (data sequence numbers start at a random IDSN).
@inline(__always) func dsnBefore(_ a: UInt64, _ b: UInt64) -> Bool { Int64(bitPattern: a &- b) < 0 }
@inline(__always) func dsnMax(_ a: UInt64, _ b: UInt64) -> UInt64 { dsnBefore(a, b) ? b : a }

enum SubflowState: UInt8 {
    case unused
    /// MP_JOIN SYN sent, waiting for the SYN/ACK.
    case joinSent
    /// Third ACK (with the HMAC) sent, waiting for the peer's fourth ACK:
    /// no data may be sent yet (RFC 8684 §3.2).
    case preEstablished
    /// The peer's MP_JOIN SYN answered (SYN/ACK with our HMAC), waiting for
    /// its third ACK with its HMAC.
    case joinReceived
    case active
    /// Given up (RST sent or received); a new join may replace it later.
    case failed
}

/// A segment sent on a subflow: which data it carried (kept until the
/// subflow-level ACK covers it).
struct SentSegment {
    var seq: TCPSeq
    var length: UInt32
    var dsn: UInt64
    var sentAt: Instant
    var dataFin = false
    var retransmitted = false
    var sacked = false
}

/// The client's recent TSvals, each with a position (a time or a DSN), in a
/// ring of at most `capacity`; a TSval repeated on consecutive records is
/// stored once.
struct TSHistory {
    private var positions: [UInt64] = []
    private var values: [UInt32] = []
    private var next = 0
    /// The ring's size less one: it starts small and doubles when full, up
    /// to `capacity` (a connection that exchanged a few segments holds a few
    /// records' worth, not the ring a bulk transfer needs).
    private var mask: Int
    private let maxMask: Int
    static let initialCapacity = 16

    /// `capacity` must be a power of two. Nothing is allocated before the
    /// first record (an idle connection holds none of it).
    init(capacity: Int) {
        maxMask = capacity - 1
        mask = min(capacity, Self.initialCapacity) - 1
    }

    /// Records `v` at `position`; a repeat of the last value moves that
    /// record's position when `replacingPosition` (else it is ignored).
    mutating func record(_ v: UInt32, at position: UInt64, replacingPosition: Bool) {
        if positions.isEmpty {
            positions = Array(repeating: 0, count: mask + 1)
            values = Array(repeating: 0, count: mask + 1)
        }
        let last = (next + mask) & mask
        if next > 0 && values[last] == v {
            if replacingPosition { positions[last] = position }
            return
        }
        if next == mask + 1 && mask < maxMask {
            // Full before it ever wrapped: every record sits at its own
            // index, so doubling keeps them where they are.
            positions.append(contentsOf: repeatElement(0, count: mask + 1))
            values.append(contentsOf: repeatElement(0, count: mask + 1))
            mask = mask * 2 + 1
        }
        positions[next & mask] = position
        values[next & mask] = v
        next += 1
    }

    /// The newest value recorded at or before `position` (by `before`, which
    /// is wrap-aware); when none is: the oldest kept if `oldestIfNone` and
    /// the ring has wrapped (older ones were lost), else `fallback`.
    func value(atOrBefore position: UInt64, before: (UInt64, UInt64) -> Bool, fallback: UInt32, oldestIfNone: Bool) -> UInt32 {
        let oldest = max(0, next - (mask + 1))
        var i = next - 1
        while i >= oldest {
            if !before(position, positions[i & mask]) { return values[i & mask] }
            i -= 1
        }
        return oldestIfNone && oldest > 0 ? values[oldest & mask] : fallback
    }
}

/// A subflow's sent segments and received out-of-order ranges.
final class PathQueues {
    var segments = Deque<SentSegment>()
    var ooo = ReceiveRanges()
    /// Nothing reserved: the queues grow with a connection's window (once,
    /// while it ramps up; steady-state translation allocates nothing), and
    /// an idle connection holds little (docs/decisions.md).
    init() {}
}

/// One subflow of a multipath connection.
struct Subflow {
    var state: SubflowState = .unused
    var local: Endpoint
    var remote: Endpoint
    var uplink: UInt8 = 0
    var addressID: UInt8 = 0
    /// The peer's address ID of `remote` (0: the address the client chose),
    /// which a REMOVE_ADDR names.
    var remoteID: UInt8 = 0
    var backup = false

    // Sending side.
    var localISN = TCPSeq(0)
    var sndUna = TCPSeq(0)
    var sndNxt = TCPSeq(0)
    /// Payload bytes per segment we originate (peer MSS less our options).
    var mss = 1360
    /// What `mss` follows from (PathMTU.swift): the MSS the peer announced,
    /// and the largest packet the path takes (the uplink's MTU, lowered by
    /// ICMP too-big or a send that failed as too big; 0: unknown).
    var peerMSS: UInt16 = 536
    var mtu = 0
    /// The MSS we announced to the peer on this subflow.
    var announcedMSS: UInt16 = 0
    var cwnd = 0.0
    var ssthresh = Double.greatestFiniteMagnitude
    /// The RTT estimate and the retransmission timeout (RFC 6298,
    /// `Congestion/RTTEstimator.swift`); read as `srtt` and `rto` below.
    var rtt = RTTEstimator()
    /// Consecutive RTO expiries without progress.
    var backoff = 0
    var rtoAt: Instant?
    var dupAcks = 0
    /// Duplicate ACKs (and SACKed segments above a hole) that mean loss:
    /// 3, raised each time a recovery proves spurious (reordering), as
    /// Linux raises its `reordering`.
    var dupThresh = 3
    var inRecovery = false
    /// Undo state of the current recovery (after fast retransmit or RTO):
    /// the window before it, and our TSval on its first retransmission. An
    /// ACK echoing an older TSval for data we resent shows the originals
    /// arrived (RFC 3522 Eifel detection; Linux's tcp_try_undo_*).
    var priorCwnd = 0.0
    var priorSsthresh = 0.0
    var undoTS: UInt32?
    /// After an RTO: everything below `recover` not SACKed is presumed lost
    /// and goes out again as the (slow-start) window allows.
    var rtoRecovery = false
    /// Bytes retransmitted and not yet acknowledged.
    var rtxInFlight = 0
    var recover = TCPSeq(0)
    /// Not scheduled for new data after an RTO until it acknowledges something.
    var suspect = false
    /// The queues live in a class so that copying a `Subflow` (the engine
    /// reads and writes paths by value) never copies them (no copy-on-write
    /// of the queues per packet).
    let q = PathQueues()
    var segments: Deque<SentSegment> {
        get { q.segments }
        nonmutating _modify { yield &q.segments }
    }
    var finSent = false
    var finSeq = TCPSeq(0)

    // Receiving side.
    var remoteISN = TCPSeq(0)
    var rcvNxt = TCPSeq(0)
    /// Ranges received above rcvNxt, the most recently grown first
    /// (announced as SACK blocks in that order, RFC 2018 §4). Bounded.
    var ooo: ReceiveRanges {
        get { q.ooo }
        nonmutating _modify { yield &q.ooo }
    }
    var ackPending = false
    var peerFin = false
    var peerWScale: UInt8 = 0
    /// The window field of the peer's last segment (a change is no duplicate ACK).
    var lastWindow: UInt16 = 0
    var mapping = PeerMapping()
    var lastReceived = Instant(nanoseconds: 0)
    /// Liveness probes (keepalives) sent since the peer last spoke on this
    /// subflow, and when the next is due.
    var probesUnanswered = 0
    var probeAt: Instant?
    /// When the last probe went (Linux answers one per 500 ms at most), and
    /// whether it was sent because the download had stalled (one
    /// unanswered is then enough).
    var lastProbe = Instant(nanoseconds: 0)
    /// The peer opened this subflow (an MP_JOIN to us); it offered SACK.
    var passive = false
    var peerSackOK = false
    var stallProbe = false
    /// The peer's REMOVE_ADDR named this subflow's address: it was probed
    /// then (RFC 8684 §3.4.2), and is removed at this time unless it has
    /// answered since.
    var removeAt: Instant?
    var removeProbedAt = Instant(nanoseconds: 0)

    // Timestamps: ours are the engine clock in ms plus an offset per subflow.
    var timestamps = false
    var tsOffset: UInt32 = 0
    var remoteTSval: UInt32 = 0

    // MP_JOIN.
    var localNonce: UInt32 = 0
    var remoteNonce: UInt32 = 0
    var joinSentAt = Instant(nanoseconds: 0)
    var joinTries = 0
    /// When a failed (or never opened) subflow may be tried again.
    var retryAt: Instant?

    init(local: Endpoint, remote: Endpoint) { self.local = local; self.remote = remote }

    var flight: Int { Int(sndNxt - sndUna) }
    /// Bytes SACKed above sndUna.
    var sackedBytes = 0
    /// What is in the network (RFC 6675 pipe, without loss marking): the
    /// flight less what the peer has SACKed.
    var pipe: Int { flight - sackedBytes }
    var usable: Bool { state == .active && !suspect && !finSent }
    /// Smoothed RTT (seconds; 0: no sample yet) and the timeout, from `rtt`.
    var srtt: Double { rtt.srtt }
    var rto: Double { rtt.rto }
}

/// What subflow 0 takes from the peer's SYN in the responder role (kept
/// from the SYN to the third ACK): a few bytes, not a whole
/// `TCPOptionSummary` in every connection.
struct SYNOptions {
    var present: TCPOptionSummary.Present = []
    var mss: UInt16 = 0
    var windowScale: UInt8 = 0

    init() {}
    init(_ o: TCPOptionSummary) { present = o.present; mss = o.mss; windowScale = o.windowScale }

    var summary: TCPOptionSummary {
        var o = TCPOptionSummary()
        o.present = present
        o.mss = mss
        o.windowScale = windowScale
        return o
    }
}

/// The multipath part of a connection (a class: large, and kept out of the
/// `Connection` value that is copied on every packet).
final class MPConn {
    var paths: [Subflow] = []
    /// The peer's addresses a subflow is opened to from every uplink: the
    /// one the client chose (ID 0), and those it announced (ADD_ADDR) and
    /// has not removed.
    var targets: [(id: UInt8, remote: Endpoint)] = []
    /// Send buffer: the client's bytes from `bufStart` (the peer's DATA_ACK)
    /// to `bufEnd`, at offset dsn % capacity.
    let capacity: Int
    private(set) var storage: UnsafeMutableRawBufferPointer?
    var bufStart: UInt64 = 0
    /// The oldest byte still held: bufStart, or older while a subflow still
    /// has it unacknowledged (it may have to send it again to fill its own
    /// sequence space, even after another subflow delivered it).
    var ringStart: UInt64 = 0
    var bufEnd: UInt64 = 0
    /// Data up to here has been reinjected opportunistically already.
    var opportunisticUpTo: UInt64 = 0
    /// Lowest DSN not yet sent on any subflow.
    var sendNext: UInt64 = 0
    /// Data ranges to send again on another subflow (after an RTO).
    var reinject = Deque<(dsn: UInt64, end: UInt64)>()
    /// DSN of our DATA_FIN (the client's FIN), once the client has sent it.
    var dataFinDSN: UInt64?
    var dataFinSentAt: Instant?
    /// Right edge of the peer's data-level receive window.
    var peerWindowEdge: UInt64 = 0

    // What the client told us in its SYN.
    var clientWScale: UInt8 = 0
    var clientMSS: UInt16 = 1460
    var clientTimestamps = false
    var clientSackOK = false
    /// The peer granted it too: the client's ACKs carry SACK blocks.
    var clientUsesSACK = false
    /// The window scale the peer announced to the client (subflow 0 SYN/ACK).
    var peerWScaleToClient: UInt8 = 0
    var clientWindow: UInt16 = 0
    /// The largest payload the client puts in one segment (the MSS we told
    /// it, less its timestamps), and so the GSO size of its super-segments:
    /// one may be carried onto a subflow whose segments are no smaller.
    var lanSegmentMax = 0
    /// The client's packets held in the queue, oldest first (Held.swift).
    var held = Deque<HeldPacket>()
    var clientTSval: UInt32 = 0
    /// The ACK number and window last sent to the client.
    var lastAckToClient = TCPSeq(0)
    var lastWindowToClient: UInt16 = 0
    /// The client's TSvals by when we saw them (our ms clock): what goes
    /// back to the client in TSecr is the TSval it had sent when the peer's
    /// segment was triggered, so the client measures the real end-to-end
    /// RTT (its receive-window autotuning depends on it), not the LAN's.
    var tsByTime = TSHistory(capacity: 64)
    /// The client's TSval on the data that ended at each DSN: an ACK to the
    /// client echoes the TSval of the segment it acknowledges (not the
    /// latest), so the client sees the end-to-end RTT and, after a
    /// timeout, can tell a spurious one (RFC 7323 §4.3, Eifel/F-RTO undo).
    var tsByData = TSHistory(capacity: 1024)

    func recordClientTS(_ v: UInt32, at ms: UInt32) { tsByTime.record(v, at: UInt64(ms), replacingPosition: false) }

    /// The client's TSval as it was at our time `ms` (the latest otherwise).
    func clientTS(asOf ms: UInt32) -> UInt32 {
        tsByTime.value(atOrBefore: UInt64(ms), before: { Int32(bitPattern: UInt32(truncatingIfNeeded: $0) &- UInt32(truncatingIfNeeded: $1)) < 0 },
                       fallback: clientTSval, oldestIfNone: true)
    }

    func recordDataTS(_ v: UInt32, end: UInt64) { tsByData.record(v, at: end, replacingPosition: true) }

    /// The TSval of the newest client segment that `dataAck` covers.
    func clientTS(acking dataAck: UInt64) -> UInt32 {
        tsByData.value(atOrBefore: dataAck, before: dsnBefore, fallback: clientTSval, oldestIfNone: false)
    }

    /// The right edge of the client's receive window, as a DSN (the
    /// largest its ACKs have shown), once it has sent one.
    var clientEdge: UInt64?
    /// Peer data forwarded to the client and not yet acknowledged by it, or
    /// held for its window (Download.swift); made on the first download.
    var down: DownBuffer?

    /// Our TSval towards the client: engine ms + this.
    var clientTSOffset: UInt32 = 0
    /// The subflow that last brought data (pure DATA_ACKs go there).
    var lastRxPath = 0
    /// In `Engine.ackDue` (`EngineTuning.batchAcks`), and whether the
    /// client's ACK waits there too.
    var ackQueued = false
    var clientAckDue = false
    /// The earliest timer queued for this connection in the engine's heap.
    var timerAt: Instant?
    /// When the peer's DATA_ACK last moved (or data became outstanding), and
    /// the data-level retransmission timeout (doubled on each expiry).
    var dataAckProgress = Instant(nanoseconds: 0)
    var dataRTO = 1.0
    /// Responder role: the peer's SYN options, and when the LAN host's
    /// SYN/ACK went to the peer (for the first RTT sample).
    var peerSYN = SYNOptions()
    /// Our ADD_ADDRs not yet echoed (bit u: uplink u), when last sent, how often.
    var announceUnechoed: UInt8 = 0
    var announcedAt = Instant(nanoseconds: 0)
    var announceTries = 0
    var synAckAt = Instant(nanoseconds: 0)
    /// When the client's cumulative ACK (our DATA_ACK) last moved.
    var clientAckMoved = Instant(nanoseconds: 0)
    /// Both data-level FINs are acknowledged; subflow FINs have been sent.
    var finishing = false
    /// We reset the client (the connection was aborted at both ends).
    var resetClient = false

    /// When client or peer data last came, and whether the connection's
    /// buffers were given back since (`compact`).
    var dataAt = Instant(nanoseconds: 0)
    var compacted = true

    init(capacity: Int) { self.capacity = capacity }
    deinit { storage?.deallocate() }

    /// Data came (client bytes buffered, peer bytes kept): the buffers are
    /// in use again.
    func noteData(now: Instant) {
        dataAt = now
        compacted = false
    }

    /// Nothing outstanding either way: every byte of the client's the peer
    /// has acknowledged at data level, every byte of the peer's the client
    /// has, no subflow holds a segment or an out-of-order range.
    var idle: Bool {
        ringStart == bufEnd && bufStart == bufEnd && sendNext == bufEnd && outOfOrder.isEmpty && pendingFinDSN == nil
            && reinject.isEmpty && held.isEmpty && (down?.isEmpty ?? true)
            && !paths.contains { !$0.segments.isEmpty || !$0.ooo.isEmpty }
    }

    /// Gives back what an idle connection holds: the send ring, the download
    /// buffer, the storage of the subflows' queues and of the timestamp
    /// histories. Data that comes later allocates them again; memory then
    /// follows the data in flight, not the connection's history.
    func compact() {
        storage?.deallocate()
        storage = nil
        down = nil
        for p in paths {
            p.segments = Deque()
            p.ooo = ReceiveRanges()
        }
        tsByTime = TSHistory(capacity: 64)
        tsByData = TSHistory(capacity: 1024)
        outOfOrder = []
        reinject = Deque()
        held = Deque()
        compacted = true
    }

    var buffered: Int { Int(bufEnd &- ringStart) }

    /// Moves `ringStart` up to the oldest byte some subflow still needs.
    func releaseAcknowledged() {
        var floor = bufStart
        for p in paths where p.state == .active || p.state == .preEstablished {
            for s in p.segments where s.length > 0 && dsnBefore(s.dsn, floor) { floor = s.dsn }
        }
        if dsnBefore(ringStart, floor) { ringStart = floor }
    }

    /// Client bytes that came beyond a gap (the LAN reordered or lost a
    /// segment): held at their place in the ring until the gap fills.
    /// Sorted, disjoint, at most `maxOutOfOrder` ranges.
    private(set) var outOfOrder: [(start: UInt64, end: UInt64)] = []
    static let maxOutOfOrder = 32
    /// The client's FIN, when it came beyond a gap.
    var pendingFinDSN: UInt64?

    /// Stores the client's bytes at `dsn`: what extends `bufEnd`, and what
    /// lies beyond a gap (kept until the gap fills), never beyond the
    /// ring's capacity. Returns how far `bufEnd` moved.
    func append(dsn: UInt64, _ bytes: UnsafeRawBufferPointer) -> Int {
        if storage == nil { storage = .allocate(byteCount: capacity, alignment: 16) }
        let end = dsn &+ UInt64(bytes.count)
        let from = dsnBefore(dsn, bufEnd) ? bufEnd : dsn
        let limit = ringStart &+ UInt64(capacity)
        let to = dsnBefore(limit, end) ? limit : end
        guard dsnBefore(from, to) else { return 0 }
        let beyondGap = from != bufEnd
        if beyondGap { guard insertOutOfOrder(from, to) else { return 0 } }
        copy(bytes, offset: Int(from &- dsn), to: from, count: Int(to &- from))
        if beyondGap { return 0 }
        let before = bufEnd
        bufEnd = to
        while let r = outOfOrder.first, !dsnBefore(bufEnd, r.start) {
            if dsnBefore(bufEnd, r.end) { bufEnd = r.end }
            outOfOrder.removeFirst()
        }
        return Int(bufEnd &- before)
    }

    private func copy(_ bytes: UnsafeRawBufferPointer, offset: Int, to dsn: UInt64, count n: Int) {
        var done = 0
        while done < n {
            let at = Int((dsn &+ UInt64(done)) % UInt64(capacity))
            let k = min(n - done, capacity - at)
            UnsafeMutableRawBufferPointer(rebasing: storage![at ..< at + k])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset + done ..< offset + done + k]))
            done += k
        }
    }

    /// Adds [from, to) to the out-of-order ranges, merging neighbours.
    /// False when that would need more ranges than we keep.
    private func insertOutOfOrder(_ from: UInt64, _ to: UInt64) -> Bool {
        var i = 0
        while i < outOfOrder.count && dsnBefore(outOfOrder[i].end, from) { i += 1 }
        // outOfOrder[i] is the first range that ends at or after `from`.
        var start = from, end = to
        var j = i
        while j < outOfOrder.count && !dsnBefore(end, outOfOrder[j].start) {
            if dsnBefore(outOfOrder[j].start, start) { start = outOfOrder[j].start }
            if dsnBefore(end, outOfOrder[j].end) { end = outOfOrder[j].end }
            j += 1
        }
        if j == i {
            guard outOfOrder.count < Self.maxOutOfOrder else { return false }
            if outOfOrder.capacity == 0 { outOfOrder.reserveCapacity(Self.maxOutOfOrder + 1) } // made on first use
            outOfOrder.insert((start, end), at: i)
        } else {
            outOfOrder[i] = (start, end)
            if j > i + 1 { outOfOrder.removeSubrange(i + 1 ..< j) }
        }
        return true
    }

    /// Bytes at `dsn` (held), at most `max` and never across the ring's end.
    func bytes(at dsn: UInt64, max: Int) -> UnsafeRawBufferPointer {
        let at = Int(dsn % UInt64(capacity))
        let n = Swift.min(max, capacity - at, Int(bufEnd &- dsn))
        return UnsafeRawBufferPointer(rebasing: storage![at ..< at + n])
    }

    func holds(_ dsn: UInt64, length: UInt32) -> Bool {
        !dsnBefore(dsn, ringStart) && !dsnBefore(bufEnd, dsn &+ UInt64(length))
    }
}

extension Subflow: CoupledSubflow {
    var isActive: Bool { state == .active }
}

extension Subflow: SchedulableSubflow {}

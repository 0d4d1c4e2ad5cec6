import MPTCPStack

/// A seeded fuzz of the engine with live connections (issue 13).
///
/// Many connections run at once through one `Engine`, in both roles: in the
/// initiator role a plain TCP client on the LAN opens the connection and an
/// MPTCP v1 peer answers from uplink 0; in the responder role the peer's
/// MP_CAPABLE SYN comes from uplink 0 and a plain TCP host on the LAN
/// answers. Both ends are models (LiveFuzz+Genuine.swift) that carry real
/// traffic: each direction's bytes are a fixed function of the connection
/// and the offset (`FuzzStream`), acknowledged, retransmitted, resent at
/// data level under new subflow sequence numbers, closed with FIN and
/// DATA_FIN, or aborted. With two uplinks the engine is the endpoint of the
/// subflows and sends segments itself; the peer answers those, and answers
/// (or, for some connections, ignores) the engine's MP_JOINs.
///
/// Between the genuine packets go mutated ones (LiveFuzz+Mutations.swift),
/// mostly from the uplink side: mutations of the connection's last genuine
/// packet (bits, sequence and acknowledgment numbers, flags, MPTCP options
/// replaced or added, truncated options) and wholly random packets on its
/// 4-tuple. The clock advances by small steps and sometimes by seconds, and
/// the engine's timers run whenever they are due.
///
/// Invariants, checked on every packet the engine lets through rewritten
/// and every packet it originates: it parses, its IPv4 header and TCP
/// checksums are valid (the pseudo-header sum for a GSO super-segment), its
/// options are well delimited within 40 bytes; every payload byte towards
/// the LAN lies at its place in the peer's stream (its sequence number from
/// the peer's ISN), and every payload byte towards an uplink under a DSS
/// mapping (or the first data's MP_CAPABLE) lies at its place in the LAN
/// host's stream (its DSN from the engine's IDSN); with two uplinks no
/// connection stays with every subflow failed and no join under way. A
/// connection reset on the way is fine (counted). A mutated packet's payload
/// is the peer's stream at the place the packet itself claims (its own
/// mapping, or the genuine relation of its subflow), so a forged segment the
/// engine rightly accepts cannot put a wrong byte in place: a wrong byte is
/// the engine's.
///
/// The run is a function of the seed: a failure names the seed and the
/// index of the packet, and a run of that many packets reproduces it.
public final class LiveFuzz {
    public enum Plane: String, Sendable, CaseIterable {
        case oneUplink = "one-uplink"
        case twoUplinks = "two-uplink"
    }

    public let plane: Plane
    public let seed: UInt64
    public let engine: Engine<SeededRandom>
    public internal(set) var report: LiveFuzzReport
    /// Written with the index of each packet before the engine sees it (for
    /// a signal handler that reports a trap).
    public var progress: UnsafeMutablePointer<Int>?
    /// Packets whose handling is logged line by line (debugging a failure).
    public var trace: Range<Int> = 0 ..< 0
    /// A connection whose packets are all logged (debugging a failure).
    public var traceConnection: Int?
    public var log: (String) -> Void = { print($0) }
    /// The run stops after this many invariant failures.
    public var maxFailures = 20
    /// Invariants whose violations are counted and reported as known engine
    /// issues instead of failing the run (while a fix is pending).
    public var tolerated: Set<KnownIssue> = []

    /// Engine defects this fuzz has found that are still open: each can be
    /// tolerated (counted in `LiveFuzzReport.knownIssues`) by name.
    public enum KnownIssue: String, Sendable, CaseIterable {
        /// Two uplinks: a connection whose last subflow fails (retransmission
        /// timeouts, a REMOVE_ADDR probe unanswered, a join given up) while
        /// nothing is left to join stays established with no subflow; only
        /// REMOVE_ADDR's own path resets such a connection at both ends.
        case stuckSubflows = "stuck-subflows"
    }
    /// Percentage of packets that are mutated, per connection (drawn from
    /// these: some connections live long, some are hammered).
    public var mutationPercents = [3, 10, 30, 50]

    var rng: SeededRandom
    var now = Instant.seconds(1000)
    var slots: [FuzzConn?]
    var conns: [FuzzConn] = []
    var flows: [FlowID: (conn: FuzzConn, sub: Int)] = [:]
    var byPeerToken: [UInt32: FuzzConn] = [:]
    var byDumpName: [String: FuzzConn] = [:]
    var watched: [FuzzConn] = []
    /// Queue slots of packets the engine holds (`.hold`), until released.
    var heldSlots = Set<Int>()
    var pendingHold: Int?
    /// Packets handed to the engine so far (the index of failures).
    public internal(set) var index = 0
    /// The last packet with payload that passed the checks towards the LAN
    /// ([0]) and towards an uplink ([1]): material for a test that the checks fire.
    public internal(set) var lastChecked: [[UInt8]] = [[], []]
    var draining = false
    var lastScan = 0

    static let uplinkAddresses: [(IPAddress, IPAddress)] = [
        (IPAddress("198.51.100.1")!, IPAddress("2001:db8:100::1")!),
        (IPAddress("198.51.100.2")!, IPAddress("2001:db8:200::1")!),
    ]

    /// `connections`: how many run at once (a finished one is replaced).
    public init(plane: Plane, seed: UInt64, connections: Int = 8) {
        self.plane = plane
        self.seed = seed
        var config = EngineConfig()
        config.idleTimeout = .seconds(120)
        config.timeWait = .seconds(5)
        if plane == .twoUplinks {
            config.uplinks = Self.uplinkAddresses.map { UplinkConfig(addresses: [$0.0, $0.1]) }
            config.sendBuffer = 256 << 10
        }
        var r = SeededRandom(seed: seed)
        engine = Engine(config: config, random: SeededRandom(seed: r.next()))
        rng = SeededRandom(seed: r.next())
        slots = Array(repeating: nil, count: max(1, connections))
        report = LiveFuzzReport(plane: plane.rawValue, seed: seed)
    }

    /// Runs `packets` more packets (fed to the engine, genuine and mutated),
    /// then lets the connections settle for 15 simulated seconds and looks
    /// at the multipath state once more. Returns the report.
    @discardableResult
    public func run(packets n: Int) -> LiveFuzzReport {
        let target = report.packets + n
        while report.packets < target && report.failures.count < maxFailures {
            step()
            if plane == .twoUplinks && index - lastScan >= 4_000 { scanMultipath() }
        }
        if report.failures.count < maxFailures { drain() }
        finishReport()
        return report
    }

    func finishReport() {
        report.engine = engine.stats
        report.connections = conns.count
        report.outcomes = ConnOutcome.allCases.map { o in conns.count { $0.outcome == o } }
        report.responderConnections = conns.count { $0.responder }
        report.simulatedSeconds = Double(now.nanoseconds) / 1e9 - 1000
        report.bytesCheckedDown = conns.reduce(0) { $0 + $1.downChecked }
        report.bytesCheckedUp = conns.reduce(0) { $0 + $1.upChecked }
        report.tracked = engine.connectionCount
    }

    // MARK: - The loop

    func step() {
        advanceClock()
        runTimers()
        let s = rng.below(slots.count)
        if slots[s] == nil || !slots[s]!.live { slots[s] = newConnection() }
        let c = slots[s]!
        if c.fed >= c.budget {
            endConnection(c)
            return
        }
        if rng.percent(c.hostility), let m = mutate(c) {
            c.fed += 1
            feed(m.bytes, m.side, gso: false, origin: .mutated(m.kind), conn: c)
            return
        }
        if let g = genuineNext(c, quiet: false) {
            c.fed += 1
            feed(g.bytes, g.side, gso: g.gso, origin: .genuine, conn: c)
        } else if c.finished {
            c.closingSteps += 1
            if c.closingSteps > 8 { c.outcome = .closed }
        } else {
            now = now + .microseconds(Int64(rng.below(2_000)))
        }
    }

    func advanceClock() {
        if rng.oneIn(400) {
            now = now + .milliseconds(Int64(200 + rng.below(2_500)))
        } else if rng.oneIn(60_000) {
            now = now + .seconds(Int64(20 + rng.below(30)))
        } else {
            now = now + .microseconds(Int64(rng.below(1_000)))
        }
    }

    /// Runs the engine's due timers (a pass that stops early for a full
    /// outbox is run again once it is drained); a deadline that stays due
    /// without end is a failure (a timer loop).
    func runTimers() {
        var passes = 0
        while let d = engine.nextDeadline, d <= now {
            passes += 1
            if passes > 1_000 {
                fail("timers: nextDeadline \(d) stays due at \(now) after 1000 passes")
                return
            }
            engine.handleTimeout(now: now)
            report.timerPasses += 1
            drainOutbox(origin: .timer)
        }
    }

    /// Lets the connections settle: no mutations, no new data; acknowledgments,
    /// handshakes and retransmissions go on while the clock runs 15 s.
    func drain() {
        draining = true
        scanMultipath()
        for _ in 0 ..< 150 {
            now = now + .milliseconds(100)
            runTimers()
            for c in slots.compactMap({ $0 }) where c.live {
                var k = 0
                while k < 8, let g = genuineNext(c, quiet: true) {
                    feed(g.bytes, g.side, gso: g.gso, origin: .genuine, conn: c)
                    k += 1
                }
            }
            if report.failures.count >= maxFailures { break }
        }
        scanMultipath()
        draining = false
    }

    // MARK: - Connections

    func newConnection() -> FuzzConn {
        let id = conns.count
        let responder = rng.percent(40)
        let v6 = rng.percent(20)
        let hostN = id / 50_000, port = UInt16(1024 + id % 50_000)
        let lanAddress: IPAddress = v6 ? .v6(IPv6Address(high: 0xfd00_0000_0000_0001, low: UInt64(hostN + 1)))
                                       : .v4(IPv4Address(10, 1, UInt8(truncatingIfNeeded: hostN / 250), UInt8(truncatingIfNeeded: hostN % 250 + 1)))
        let peerAddress: IPAddress = v6 ? .v6(IPv6Address(high: 0x2001_0db8_0007_0000, low: UInt64(id % 200 + 1)))
                                        : .v4(IPv4Address(203, 0, 113, UInt8(truncatingIfNeeded: id % 200 + 1)))
        let lan = Endpoint(address: lanAddress, port: responder ? 5001 : port)
        let peer = Endpoint(address: peerAddress, port: responder ? port : 443)
        let c = FuzzConn(id: id, responder: responder, v6: v6, lan: lan, peer: peer, rng: &rng,
                         checksums: rng.percent(20), answersJoins: !rng.percent(15), budget: 300 + rng.below(6_000),
                         hostility: mutationPercents.randomElement(using: &rng) ?? 30)
        conns.append(c)
        flows[c.flow] = (c, 0)
        byPeerToken[MPTCPCrypto.token(key: c.peerKey)] = c
        byDumpName["\(lan) -> \(peer)"] = c
        // Subflow 0 as the peer sees it.
        let state: PeerSub.State = responder ? .synSent : .synReceived
        c.peer.subs = [PeerSub(state: state, local: peer, remote: lan, side: .uplink(0), iss: c.peerISN)]
        c.peer.subs[0].irs = c.host.iss
        c.host.state = .idle
        c.host.lastProgress = now
        c.peer.lastDataProgress = now
        return c
    }

    /// The connection's budget of packets is spent: the LAN host aborts it
    /// (RST), or the peer does (MP_FASTCLOSE with the engine's key), or both
    /// ends fall silent (the engine's timers must then deal with it).
    func endConnection(_ c: FuzzConn) {
        let r = rng.below(10)
        if r < 4, c.host.state == .established {
            let s = Seg(src: c.lan, dst: c.peerEndpoint, seq: c.host.seq(c.host.sndNxt) &+ (c.host.finSent ? 1 : 0),
                        ack: c.host.ackNumber, flags: TCPFlags.rst | TCPFlags.ack, window: 0)
            feed(s.build(), .lan, gso: false, origin: .genuine, conn: c)
            c.outcome = .aborted
        } else if r < 8, c.peer.established, c.engineKey != nil,
                  let k = c.peer.subs.firstIndex(where: { $0.state == .established }) {
            let sub = c.peer.subs[k]
            var o = OptionBytes()
            o.timestamps(peerTSval(c), sub.tsRecent)
            o.add(.mpFastclose(MPFastclose(receiverKey: c.key)))
            let rst = rng.percent(30)
            let s = Seg(src: sub.local, dst: sub.remote, seq: sub.seqNext, ack: sub.ackNumber,
                        flags: rst ? TCPFlags.rst | TCPFlags.ack : TCPFlags.ack, window: 512, options: o.b)
            feed(s.build(), sub.side, gso: false, origin: .genuine, conn: c)
            c.outcome = .aborted
        } else {
            c.outcome = .abandoned
        }
    }

    // MARK: - Feeding the engine

    enum Origin: CustomStringConvertible {
        case genuine
        case mutated(MutationKind)
        case timer
        case outbox

        var isMutated: Bool { if case .mutated = self { return true } else { return false } }

        var description: String {
            switch self {
            case .genuine: return "genuine"
            case .mutated(let k): return "mutated (\(k.name))"
            case .timer: return "timer"
            case .outbox: return "outbox"
            }
        }
    }

    func feed(_ bytes: [UInt8], _ side: Side, gso: Bool, origin: Origin, conn: FuzzConn?) {
        index += 1
        if !draining { report.packets += 1 }
        progress?.pointee = report.packets // (during the settling at the end: the run's count, which replays it)
        switch origin {
        case .mutated(let k):
            conn?.lastMutation = k
            report.mutated += 1
            report.mutations[k.rawValue] += 1
        default:
            report.genuine += 1
        }
        let tracing = trace.contains(index) || (traceConnection != nil && conn?.id == traceConnection)
        if tracing { log("#\(index) \(now) in \(side)\(gso ? " gso" : "") \(origin): \(summary(bytes))\n   \(hex(bytes.prefix(120)))") }
        let v = bytes.withUnsafeBytes { engine.handle(packet: $0, side: side, gso: gso, now: now) }
        let towards: Side = side == .lan ? .uplink(0) : .lan
        switch v {
        case .accept:
            report.accepts += 1
            if tracing { log("   accept") }
            // Passed unchanged: only a genuine packet's bytes are the
            // engine's to place (a forged one it does not track is not).
            if !origin.isMutated { checkAccepted(bytes, towards: towards) }
            route(bytes, towards: towards)
        case .drop(let r):
            report.drops[Int(r.rawValue)] += 1
            if tracing { log("   drop \(r)") }
        case let .rewrite(hl, off):
            report.rewrites += 1
            guard hl > 0, hl <= engine.headerBuffer.count, off >= 0, off <= bytes.count else {
                fail("rewrite(\(hl), \(off)) of a \(bytes.count)-byte packet")
                break
            }
            var out = Array(UnsafeRawBufferPointer(rebasing: engine.headerBuffer[0 ..< hl]))
            out.append(contentsOf: bytes[off...])
            if tracing { log("   rewrite: \(summary(out))") }
            if check(out, towards: towards, gso: gso, strict: !origin.isMutated, what: "rewrite of \(origin)") {
                route(out, towards: towards)
            }
        case let .carry(hl):
            report.rewrites += 1
            guard hl > 0, hl <= engine.headerBuffer.count else {
                fail("carry(\(hl)) of a \(bytes.count)-byte packet")
                break
            }
            var out = Array(UnsafeRawBufferPointer(rebasing: engine.headerBuffer[0 ..< hl]))
            out.append(contentsOf: engine.carriedPayload)
            if tracing { log("   carry: \(summary(out))") }
            if check(out, towards: engine.carriedTowards, gso: gso, strict: !origin.isMutated, what: "carry of \(origin)") {
                route(out, towards: engine.carriedTowards)
            }
        case let .hold(slot):
            report.drops[Int(DropReason.consumed.rawValue)] += 1
            if tracing { log("   hold \(slot)") }
            // (Releases of this event are handled after the verdict, as the
            // daemon does: a slot they free must not be taken again yet.)
            if heldSlots.contains(slot) { fail("hold in slot \(slot), which still holds a packet") }
            pendingHold = slot
        }
        // What the engine sent on its own.
        drainOutbox(origin: .outbox)
        if let c = conn, !origin.isMutated { noteGenuineVerdict(c, bytes, side, v) }
    }

    func drainOutbox(origin: Origin) {
        let n = engine.outbox.count
        for i in 0 ..< n {
            let (b, side) = engine.outbox.packet(i)
            let out = Array(b)
            report.outboxPackets += 1
            if trace.contains(index) || traced(out) { log("   outbox \(side) (\(origin)) #\(index): \(summary(out))") }
            if check(out, towards: side, gso: false, strict: true, what: "originated packet towards \(side)") {
                route(out, towards: side)
            }
        }
        engine.outbox.removeAll()
        // Held packets released: each that leaves is a segment of the engine's.
        for i in 0 ..< engine.releases.count {
            let (slot, packet) = engine.releases.release(i)
            if heldSlots.remove(slot) == nil { fail("release of slot \(slot), which holds no packet") }
            guard let p = packet else { continue }
            let out = Array(p.header) + Array(p.payload)
            report.outboxPackets += 1
            if check(out, towards: p.towards, gso: p.gso, strict: true, what: "released packet towards \(p.towards)") {
                route(out, towards: p.towards)
            }
        }
        engine.releases.removeAll()
        if let s = pendingHold { heldSlots.insert(s); pendingHold = nil }
    }

    /// A genuine packet with a mapping that the engine took (rewritten or
    /// consumed): the subflow's mapping is a genuine one again.
    func noteGenuineVerdict(_ c: FuzzConn, _ bytes: [UInt8], _ side: Side, _ v: Verdict) {
        guard side != .lan else { return }
        let taken: Bool
        switch v {
        case .rewrite: taken = true
        case .drop(.consumed), .carry, .hold: taken = plane == .twoUplinks
        default: taken = false
        }
        guard taken else { return }
        bytes.withUnsafeBytes { raw in
            guard let v = try? TCPPacketView(raw),
                  let e = flows[FlowID(local: Endpoint(address: v.destination, port: v.tcp.destinationPort),
                                       remote: Endpoint(address: v.source, port: v.tcp.sourcePort))], e.conn === c,
                  e.sub < c.peer.subs.count else { return }
            let o = TCPOptionSummary(parsing: v.tcp.optionArea)
            if (o.has(.dss) && o.dss.mapping != nil && !(o.dss.dataFin && o.dss.mapping!.length == 1 && v.tcp.payload.isEmpty))
                || (o.has(.mpCapable) && (o.mpCapable.dataLevelLength ?? 0) > 0) {
                c.peer.subs[e.sub].forgedMapping = false
            }
        }
    }

    /// The packet belongs to the traced connection.
    func traced(_ b: [UInt8]) -> Bool {
        guard let id = traceConnection else { return false }
        return b.withUnsafeBytes { raw in
            guard let v = try? TCPPacketView(raw) else { return false }
            let a = Endpoint(address: v.source, port: v.tcp.sourcePort), z = Endpoint(address: v.destination, port: v.tcp.destinationPort)
            return flows[FlowID(local: a, remote: z)]?.conn.id == id || flows[FlowID(local: z, remote: a)]?.conn.id == id
        }
    }

    // MARK: - Failures

    func fail(_ what: String, issue: KnownIssue? = nil) {
        let f = LiveFuzzFailure(plane: plane.rawValue, seed: seed, packetIndex: report.packets, what: what)
        if let issue, tolerated.contains(issue) {
            report.knownIssues[issue.rawValue, default: 0] += 1
            if report.firstKnownIssue[issue.rawValue] == nil { report.firstKnownIssue[issue.rawValue] = f }
            return
        }
        report.failures.append(f)
        log("FAIL \(f)")
    }

    func summary(_ b: [UInt8]) -> String {
        b.withUnsafeBytes { raw in
            guard let v = try? TCPPacketView(raw) else { return "\(b.count) bytes, not TCP/IP" }
            let t = v.tcp
            var s = "\(Endpoint(address: v.source, port: t.sourcePort)) > \(Endpoint(address: v.destination, port: t.destinationPort)) "
            s += "[\(TCPFlags.string(t.flags))] seq \(t.seq) ack \(t.ack) win \(t.window) len \(t.payload.count)"
            for e in t.options {
                if case .mptcp(let m) = e.option { s += " \(m)" }
            }
            return s
        }
    }

    // MARK: - Routing what comes out

    /// Hands a packet that leaves the engine to the model it reaches (lost
    /// now and then, as on a real link).
    func route(_ bytes: [UInt8], towards side: Side) {
        bytes.withUnsafeBytes { raw in
            guard let v = try? TCPPacketView(raw) else { return }
            // (Never a SYN: a SYN/ACK lost on the LAN brings the client's SYN
            // again, which the engine takes for a new connection: see the report.)
            if !draining && !v.tcp.has(TCPFlags.syn) && rng.oneIn(200) { return }
            let src = Endpoint(address: v.source, port: v.tcp.sourcePort)
            let dst = Endpoint(address: v.destination, port: v.tcp.destinationPort)
            if side == .lan {
                guard let e = flows[FlowID(local: dst, remote: src)], e.sub == 0, e.conn.live else { return }
                lanReceive(e.conn, v)
            } else {
                if let e = flows[FlowID(local: src, remote: dst)] {
                    if e.conn.live { peerReceive(e.conn, e.sub, v, side: side) }
                    return
                }
                // A join the engine opens: the token names the connection.
                let o = TCPOptionSummary(parsing: v.tcp.optionArea)
                guard v.tcp.flags & (TCPFlags.syn | TCPFlags.ack) == TCPFlags.syn, o.has(.mpJoin),
                      case let .syn(_, _, token, _) = o.mpJoin, let c = byPeerToken[token] else { return }
                c.lastJoinSYN = now
                guard c.live, dst == c.peerEndpoint || c.peer.subs.contains(where: { $0.local == dst }) else { return }
                let k = c.peer.subs.count
                var sub = PeerSub(state: .ignored, local: dst, remote: src, side: side, iss: rng.u32())
                sub.irs = v.tcp.seq.rawValue
                c.peer.subs.append(sub)
                flows[FlowID(local: src, remote: dst)] = (c, k)
                peerReceive(c, k, v, side: side)
            }
        }
    }
}

/// One invariant failure: enough to reproduce it.
public struct LiveFuzzFailure: CustomStringConvertible, Sendable {
    public var plane: String
    public var seed: UInt64
    public var packetIndex: Int
    public var what: String
    public var description: String {
        "\(plane) seed \(seed) packet #\(packetIndex): \(what) (reproduce: Bench fuzz --plane \(plane) --seed \(seed) --packets \(packetIndex))"
    }
}

/// What a run did and found.
public struct LiveFuzzReport: Sendable {
    public var plane: String
    public var seed: UInt64
    /// Packets fed in the run proper (the settling at the end excluded).
    public var packets = 0
    public var genuine = 0
    public var mutated = 0
    public var mutations = [Int](repeating: 0, count: MutationKind.allCases.count)
    public var accepts = 0
    public var rewrites = 0
    public var drops = [Int](repeating: 0, count: DropReason.allCases.count)
    public var outboxPackets = 0
    public var timerPasses = 0
    public var connections = 0
    public var responderConnections = 0
    public var outcomes = [Int](repeating: 0, count: ConnOutcome.allCases.count)
    /// Connections that ended reset, by the kind of the last mutated packet
    /// fed for them before ([0]: none).
    public var resetsAfter = [Int](repeating: 0, count: MutationKind.allCases.count + 1)
    public var bytesCheckedDown = 0
    public var bytesCheckedUp = 0
    public var segmentsCheckedDown = 0
    public var segmentsCheckedUp = 0
    /// Payload towards an uplink with no mapping (not checkable: passed plain TCP).
    public var unmappedUpload = 0
    /// Mapped payload towards the peer before the engine had sent its key
    /// (the first data with a FIN, its pure third ACK lost: see the report).
    public var unkeyedUpload = 0
    /// Payload bytes before the stream's start (old data: not compared).
    public var bytesBeforeStart = 0
    public var outputsChecked = 0
    /// The peer's data-level resends under new subflow sequence numbers.
    public var dataLevelResends = 0
    /// Two uplinks: connections found in the engine's `multipathState`
    /// dumps, summed over the looks (0 would mean the dump is not understood).
    public var connectionsInDumps = 0
    /// Connections in the engine's table at the end.
    public var tracked = 0
    public var simulatedSeconds = 0.0
    public var engine = EngineStats()
    public var failures: [LiveFuzzFailure] = []
    /// Violations of tolerated invariants (known engine issues), by issue,
    /// and the first of each.
    public var knownIssues: [String: Int] = [:]
    public var firstKnownIssue: [String: LiveFuzzFailure] = [:]

    public init(plane: String, seed: UInt64) { self.plane = plane; self.seed = seed }

    public static var mutationNames: [String] { MutationKind.allCases.map(\.name) }
    public static var outcomeNames: [String] { ConnOutcome.allCases.map(\.name) }
}

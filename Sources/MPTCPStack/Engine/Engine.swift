import DequeModule
import HeapModule

/// The translator engine: pure and deterministic. Packets go in with the
/// side they came from and the time; a verdict comes out (with rewritten
/// headers in `headerBuffer`). Keys come from the injected generator, so a
/// run is reproducible from its inputs and a seed.
///
/// Initiator role: a plain TCP client on the LAN, an MPTCP v1 peer beyond an
/// uplink. The initial subflow keeps the connection's 4-tuple and both
/// sequence spaces; the engine adds MP_CAPABLE / DSS towards the peer and
/// removes them towards the client, translating DATA_ACK <-> ACK and
/// DATA_FIN <-> FIN.
public final class Engine<RNG: RandomNumberGenerator> {
    public let config: EngineConfig
    public internal(set) var stats = EngineStats()
    var rng: RNG
    /// Which subflow sends next (`Scheduler/SubflowScheduler.swift`).
    let scheduler: LowestRTTScheduler

    let conns = ConnectionTable()
    private var free: [Int] = []
    /// 4-tuple -> handle | subflow << 32 (subflow 0: the client's own 4-tuple).
    var table: [FlowKey: Int] = [:]
    var nextJoinPort = 0
    /// Join targets (our address, the peer's) whose source ports of
    /// `--join-ports` were all in use at the last look, and until when not
    /// to look again: a scan of the whole range for every connection beyond
    /// it at each of its timers made a daemon with 10 000 connections to one
    /// server spin for half a minute as they closed. Bounded, rarely changed.
    var joinPortsFull: [(local: IPAddress, remote: Endpoint, until: Instant)] = []
    /// Our tokens (one per connection, from its local key) -> handle: joins find their connection by it.
    var tokens: [UInt32: Int] = [:]
    /// Uplinks the caller reported down (`uplink(_:isUp:now:)`): no joins from them.
    var uplinkDown: [Bool]
    /// Connections reset because the engine did not know them (Validation.swift).
    var resets = ResetMemory()
    /// Half-open connections in the order they came (some long since
    /// established or gone: skipped), for evicting the oldest.
    var halfOpen = Deque<(handle: Int, generation: UInt32)>()
    var resetSecond: UInt64 = .max
    var resetsThisSecond = 0
    /// The uplinks' MTUs, as configured and as the caller reports them since (PathMTU.swift).
    var uplinkMTU: [Int]

    // Crash recovery (Recovery.swift).
    /// Keep a journal of recovery records (`drainJournal`); off by default.
    public var journaling = false
    var journalChanged: [Int] = []
    var journalOverflow = false
    let journalScratch: UnsafeMutableRawBufferPointer
    /// Subflows of an earlier instance's connections, by 4-tuple.
    var recovered: [FlowKey: RecoveredSubflow] = [:]
    /// ... and their connections, still to be probed.
    var recovering: [RecoveredConnection] = []
    var recoveryAt: Instant?
    var recoveryRound = 0
    var recoveryRoundStart = Instant(nanoseconds: 0)
    var recoveryNext = 0

    struct Deadline: Comparable {
        var at: Instant
        var handle: Int
        var generation: UInt32
        /// A multipath timer (else: idle / time-wait expiry).
        var timer = false
        static func < (a: Deadline, b: Deadline) -> Bool { a.at < b.at }
    }
    var deadlines = Heap<Deadline>()

    /// New IP + TCP headers of the last `.rewrite` or `.carry` verdict.
    public let headerBuffer: UnsafeMutableRawBufferPointer
    /// The payload of the last `.carry` verdict.
    public internal(set) var carriedPayload = UnsafeRawBufferPointer(start: nil, count: 0)
    /// The uplink the last `.carry` verdict's segment is for (the kernel
    /// routes it by its new header; a simulator needs to be told).
    public internal(set) var carriedTowards = Side.lan
    /// Held packets released during the last event (Held.swift); the caller
    /// gives each its verdict, then calls `releases.removeAll()`.
    public var releases: Releases
    /// Slots free for `.hold` verdicts, and slots released during this
    /// event: free only from the next packet on, once the caller has given
    /// their packets their verdicts (a slot taken again in the same event
    /// would name two packets at once).
    var freeHoldSlots: [Int32]
    var releasedHoldSlots: [Int32] = []
    /// Packets the engine sent on its own during the last event; the caller
    /// sends them and then calls `outbox.removeAll()`.
    public var outbox = Outbox()
    /// Connections with ACKs waiting for `endOfBatch` (`batchAcks`).
    var ackDue: [(handle: Int, generation: UInt32)] = []
    let writer: SegmentWriter
    /// Translated SACK blocks (one option, 34 bytes at most).
    let sackScratch: UnsafeMutableRawBufferPointer
    private var nextGeneration: UInt32 = 1

    public init(config: EngineConfig = EngineConfig(), random: RNG) {
        self.config = config
        self.rng = random
        scheduler = LowestRTTScheduler(slowPathFactor: config.tuning.slowPathFactor)
        headerBuffer = .allocate(byteCount: 512, alignment: 8)
        releases = Releases(capacity: config.tuning.maxHeld + 8)
        freeHoldSlots = (0 ..< Int32(clamping: config.tuning.maxHeld)).reversed()
        releasedHoldSlots.reserveCapacity(config.tuning.maxHeld)
        writer = SegmentWriter(options: .allocate(byteCount: 64, alignment: 8))
        sackScratch = .allocate(byteCount: 40, alignment: 8)
        journalScratch = .allocate(byteCount: RecoveryRecord.size, alignment: 8)
        journalChanged.reserveCapacity(config.tuning.journalCapacity)
        ackDue.reserveCapacity(256)
        uplinkDown = Array(repeating: false, count: config.uplinks.count)
        uplinkMTU = config.uplinks.map(\.mtu)
    }

    deinit {
        outbox.deallocate()
        releases.deallocate()
        headerBuffer.deallocate()
        writer.options.deallocate()
        sackScratch.deallocate()
        journalScratch.deallocate()
    }

    /// Connections currently tracked (including closed ones in TIME_WAIT).
    public var connectionCount: Int { table.count }

    /// Bytes of send and download rings the connections hold now (each
    /// ring is allocated whole while in use and given back once its
    /// connection is idle, `MPConn.compact`). Walks the table: for tests,
    /// benchmarks and periodic reports, not per packet.
    public var ringBytes: Int {
        var n = 0
        for h in conns.indices {
            guard let c = conns[h], let mp = c.mp else { continue }
            if mp.storage != nil { n += mp.capacity }
            if let d = mp.down { n += d.capacity }
        }
        return n
    }

    /// The earliest time `handleTimeout` has work to do, if any.
    public var nextDeadline: Instant? {
        guard let r = recoveryAt else { return deadlines.min?.at }
        return min(r, deadlines.min?.at ?? r)
    }

    // MARK: - Events

    /// Handles one IP packet that entered on `side`. `gso` says the packet is
    /// a GSO super-segment (its TCP checksum is then left to the kernel).
    public func handle(packet: UnsafeRawBufferPointer, side: Side, gso: Bool = false, now: Instant) -> Verdict {
        stats.packets &+= 1
        recycleHoldSlots()
        let v: TCPPacketView
        do { v = try TCPPacketView(packet) } catch {
            if error == .notTCP {
                if case .uplink = side, config.multipath, let e = try? ICMPUnreachableView(packet) {
                    icmpUnreachable(e, now: now)
                } else {
                    stats.notTCP &+= 1
                }
            } else {
                stats.malformed &+= 1
            }
            return .accept
        }
        let src = Endpoint(address: v.source, port: v.tcp.sourcePort)
        let dst = Endpoint(address: v.destination, port: v.tcp.destinationPort)
        switch side {
        case .lan:
            let key = FlowKey(client: src, server: dst)
            if v.tcp.has(TCPFlags.syn) && !v.tcp.has(TCPFlags.ack) {
                return clientSYN(v, key: key, now: now, gso: gso)
            }
            guard let e = table[key], e >> 32 == 0 else { return unknownFromLAN(v, key: key, now: now) }
            return fromClient(v, handle: e, now: now, gso: gso)
        case .uplink(let u):
            let key = FlowKey(client: dst, server: src)
            guard let e = table[key] else {
                if v.tcp.has(TCPFlags.syn) && !v.tcp.has(TCPFlags.ack) { return peerSYN(v, key: key, uplink: u, now: now, gso: gso) }
                if v.tcp.has(TCPFlags.syn) { stats.untracked &+= 1; return .accept } // a SYN/ACK: without our MP_CAPABLE it falls back
                return unknownFromPeer(v, key: key, uplink: u, now: now)
            }
            let h = e & 0xffff_ffff
            if e >> 32 != 0 && v.tcp.has(TCPFlags.syn) && !v.tcp.has(TCPFlags.ack) && config.multipath,
               let verdict = joinOnOldSubflow(v, handle: h, subflow: e >> 32, uplink: u, now: now) {
                return verdict
            }
            if e >> 32 == 0 { conns[h]!.initial.uplink = u }
            return fromPeer(v, handle: h, subflow: e >> 32, uplink: u, now: now, gso: gso)
        }
    }


    /// The end of a batch of packets (`EngineTuning.batchAcks`): the ACKs
    /// that waited go into the outbox, one per subflow and one to the
    /// client per connection. Stops early, as `handleTimeout` does, when
    /// the outbox is nearly full: send it and call again
    /// (`hasBatchedAcks`).
    public func endOfBatch(now: Instant) {
        var i = 0
        while i < ackDue.count, outbox.count <= Outbox.slots - config.tuning.timerReserve {
            let d = ackDue[i]
            i += 1
            guard d.handle < conns.count, let c = conns[d.handle], c.generation == d.generation, let mp = c.mp,
                  mp.ackQueued else { continue }
            mp.ackQueued = false
            sendBatchedAcks(c, mp, now: now)
        }
        ackDue.removeFirst(i)
    }

    public var hasBatchedAcks: Bool { !ackDue.isEmpty }

    /// Runs the timers whose time has come (retransmissions, probes, joins,
    /// expiry). A pass stops early when the outbox is nearly full, so that
    /// thousands of connections due at once (idle ones probed, joins
    /// retried) never overflow it: what it sends is never silently lost.
    /// The rest stays due (`nextDeadline` <= `now`): send the outbox and
    /// call again.
    public func handleTimeout(now: Instant) {
        recoveryTimer(now: now)
        while let d = deadlines.min, d.at <= now, outbox.count <= Outbox.slots - config.tuning.timerReserve {
            _ = deadlines.popMin()
            guard d.handle < conns.count, let c = conns[d.handle], c.generation == d.generation else { continue }
            if d.timer {
                if c.mp?.timerAt == d.at { mpTimer(d.handle, now: now) }
                continue
            }
            let limit = Self.isHalfOpen(c) ? config.handshakeTimeout : config.idleTimeout
            if c.phase == .closed {
                if c.deadline <= now { remove(d.handle) } // else: an older idle deadline; TIME_WAIT's own is queued
            } else if c.lastSeen + limit <= now {
                if Self.isHalfOpen(c) { stats.halfOpenExpired &+= 1 } else { stats.connectionsExpired &+= 1 }
                remove(d.handle)
            } else {
                deadlines.insert(Deadline(at: c.lastSeen + limit, handle: d.handle, generation: c.generation))
            }
        }
    }

    // MARK: - Table

    /// A SYN seen, the handshake not complete (a native connection: no
    /// packet but SYNs yet).
    static func isHalfOpen(_ c: Connection) -> Bool {
        c.phase == .synSent || c.phase == .synReceived || (c.phase == .native && c.nativeFins & 4 == 0)
    }

    func insert(_ c: Connection) -> Int {
        var c = c
        if Self.isHalfOpen(c) {
            // Room for one more half-open connection: the oldest goes.
            while halfOpen.count >= config.maxHalfOpen, let old = halfOpen.popFirst() {
                if old.handle < conns.count, let o = conns[old.handle], o.generation == old.generation, Self.isHalfOpen(o) {
                    stats.halfOpenEvicted &+= 1
                    remove(old.handle)
                }
            }
            c.deadline = min(c.deadline, c.lastSeen + config.handshakeTimeout)
        }
        c.generation = nextGeneration
        nextGeneration &+= 1
        let h: Int
        if let f = free.popLast() { h = f; conns[h] = c } else { h = conns.count; conns.append(c) }
        table[c.key] = h
        if c.phase != .native { tokens[MPTCPCrypto.token(key: c.localKey)] = h }
        deadlines.insert(Deadline(at: c.deadline, handle: h, generation: c.generation))
        if Self.isHalfOpen(c) { halfOpen.append((h, c.generation)) }
        stats.connectionsOpened &+= 1
        return h
    }

    func remove(_ h: Int) {
        guard let c = conns[h] else { return }
        if table[c.key] == h { table[c.key] = nil }
        if let mp = c.mp {
            dropAllHeld(mp)
            for (k, p) in mp.paths.enumerated() where k > 0 && p.state != .unused {
                let jk = FlowKey(client: p.local, server: p.remote)
                if table[jk] == h | (k << 32) { table[jk] = nil }
            }
        }
        if c.phase != .native && tokens[MPTCPCrypto.token(key: c.localKey)] == h { tokens[MPTCPCrypto.token(key: c.localKey)] = nil }
        conns[h] = nil
        free.append(h)
        journal(h)
    }

    func close(_ h: Int, now: Instant, reset: Bool) {
        guard conns[h]!.phase != .closed else { return }
        conns[h]!.phase = .closed
        journal(h)
        if reset { stats.connectionsReset &+= 1 } else { stats.connectionsClosed &+= 1 }
        if reset, let mp = conns[h]!.mp { dropAllHeld(mp) }
        let at = now + config.timeWait
        conns[h]!.deadline = at
        deadlines.insert(Deadline(at: at, handle: h, generation: conns[h]!.generation))
    }

    /// A connection between two MPTCP speakers (a LAN host with its own
    /// MPTCP): tracked, passed untouched.
    /// `confirmed`: false for a join SYN from an uplink, until the LAN host
    /// answers it with MP_JOIN (till then the peer's other packets on that
    /// 4-tuple are not let through as a native connection's).
    func insertNative(_ key: FlowKey, confirmed: Bool = true, now: Instant) {
        guard table[key] == nil, table.count < config.maxConnections else { return }
        var c = Connection(key: key, clientISN: TCPSeq(0), localKey: 0, now: now, deadline: now + config.idleTimeout)
        c.phase = .native
        if !confirmed { c.nativeFins = 8 }
        _ = insert(c)
        stats.nativeConnections &+= 1
    }

    /// A native connection's packet: passed; a RST, or a packet after both
    /// FINs, ends it (the entry goes: nothing of ours to translate later).
    func nativePacket(_ v: TCPPacketView, _ h: Int, fromLAN: Bool, uplink: UInt8 = 0, now: Instant) -> Verdict {
        let t = v.tcp
        if conns[h]!.nativeFins & 8 != 0 {
            // Unconfirmed: a join SYN from an uplink that no LAN host answered yet.
            if fromLAN && t.has(TCPFlags.syn) && t.has(TCPFlags.ack) && Self.hasMPTCPOption(v) {
                conns[h]!.nativeFins &= ~8
            } else if !fromLAN && !t.has(TCPFlags.syn) {
                let key = conns[h]!.key
                remove(h)
                return unknownFromPeer(v, key: key, uplink: uplink, now: now)
            }
        }
        conns[h]!.lastSeen = now
        if !t.has(TCPFlags.syn) { conns[h]!.nativeFins |= 4 } // past the handshake
        let done = conns[h]!.nativeFins & 3 == 3
        if t.has(TCPFlags.fin) { conns[h]!.nativeFins |= fromLAN ? 1 : 2 }
        if t.has(TCPFlags.rst) || (done && !t.has(TCPFlags.fin)) { remove(h) }
        return .accept
    }

    /// Both directions are closed at data level: the connection enters its
    /// time-wait (late segments are still translated until it expires).
    func closeIfDone(_ c: inout Connection, _ h: Int, _ now: Instant) {
        guard c.clientFinAcked && c.peerFinAcked && c.phase != .closed else { return }
        conns[h] = c
        close(h, now: now, reset: false)
        c = conns[h]!
    }

    /// A fresh local key whose token no tracked connection uses (§3.2).
    func freshKey() -> UInt64 {
        while true {
            let k = rng.next()
            if tokens[MPTCPCrypto.token(key: k)] == nil { return k }
        }
    }

    // MARK: - Emission

    /// Counts a drop and says so.
    func drop(_ r: DropReason) -> Verdict {
        stats.dropped[Int(r.rawValue)] &+= 1
        return .drop(r)
    }

    func emit(_ v: TCPPacketView, seq: TCPSeq, ack: TCPSeq, flags: UInt8, window: UInt16,
                      policy: OptionPolicy, added: AddedOptions, gso: Bool,
                      dropPayload: Bool = false) -> Verdict {
        guard let optLen = writer.buildOptions(original: v.tcp.optionArea, policy: policy, added: added, stats: &stats) else {
            stats.noOptionRoom &+= 1
            return .accept
        }
        let options = UnsafeRawBufferPointer(rebasing: writer.options[0 ..< optLen])
        guard let hl = SegmentWriter.writeHeaders(into: headerBuffer, original: v, seq: seq, ack: ack, flags: flags,
                                                  window: window, options: options, computeChecksum: !gso,
                                                  payloadIncluded: !dropPayload) else {
            return drop(.tooBig)
        }
        return .rewrite(headerLength: hl, payloadOffset: dropPayload ? v.ip.count : v.tcpOffset + v.tcp.headerLength)
    }
}

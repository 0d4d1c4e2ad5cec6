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

    var conns: [Connection?] = []
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

    /// New IP + TCP headers of the last `.rewrite` verdict.
    public let headerBuffer: UnsafeMutableRawBufferPointer
    /// Packets the engine sent on its own during the last event; the caller
    /// sends them and then calls `outbox.removeAll()`.
    public var outbox = Outbox()
    let writer: SegmentWriter
    /// Translated SACK blocks (one option, 34 bytes at most).
    let sackScratch: UnsafeMutableRawBufferPointer
    private var nextGeneration: UInt32 = 1

    public init(config: EngineConfig = EngineConfig(), random: RNG) {
        self.config = config
        self.rng = random
        headerBuffer = .allocate(byteCount: 512, alignment: 8)
        writer = SegmentWriter(options: .allocate(byteCount: 64, alignment: 8))
        sackScratch = .allocate(byteCount: 40, alignment: 8)
        journalScratch = .allocate(byteCount: RecoveryRecord.size, alignment: 8)
        journalChanged.reserveCapacity(Self.journalCapacity)
        conns.reserveCapacity(1024)
        uplinkDown = Array(repeating: false, count: config.uplinks.count)
        uplinkMTU = config.uplinks.map(\.mtu)
    }

    deinit {
        outbox.deallocate()
        headerBuffer.deallocate()
        writer.options.deallocate()
        sackScratch.deallocate()
        journalScratch.deallocate()
    }

    /// Connections currently tracked (including closed ones in TIME_WAIT).
    public var connectionCount: Int { table.count }

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

    /// Free outbox slots a timer pass keeps for one more connection's timer
    /// (its retransmissions, probes and joins).
    static var timerReserve: Int { 64 }

    /// Runs the timers whose time has come (retransmissions, probes, joins,
    /// expiry). A pass stops early when the outbox is nearly full, so that
    /// thousands of connections due at once (idle ones probed, joins
    /// retried) never overflow it: what it sends is never silently lost.
    /// The rest stays due (`nextDeadline` <= `now`): send the outbox and
    /// call again.
    public func handleTimeout(now: Instant) {
        recoveryTimer(now: now)
        while let d = deadlines.min, d.at <= now, outbox.count <= Outbox.slots - Self.timerReserve {
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

    private func insert(_ c: Connection) -> Int {
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

    private func remove(_ h: Int) {
        guard let c = conns[h] else { return }
        if table[c.key] == h { table[c.key] = nil }
        if let mp = c.mp {
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
    private func nativePacket(_ v: TCPPacketView, _ h: Int, fromLAN: Bool, uplink: UInt8 = 0, now: Instant) -> Verdict {
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
    private func closeIfDone(_ c: inout Connection, _ h: Int, _ now: Instant) {
        guard c.clientFinAcked && c.peerFinAcked && c.phase != .closed else { return }
        conns[h] = c
        close(h, now: now, reset: false)
        c = conns[h]!
    }

    /// A fresh local key whose token no tracked connection uses (§3.2).
    private func freshKey() -> UInt64 {
        while true {
            let k = rng.next()
            if tokens[MPTCPCrypto.token(key: k)] == nil { return k }
        }
    }

    // MARK: - Responder role (the SYN came from an uplink)

    /// A SYN from an uplink towards a LAN host. With MP_CAPABLE (v1, no key:
    /// a v1 SYN carries none) it opens a connection in the responder role:
    /// the SYN goes on to the LAN host with its options kept (MSS clamped),
    /// so an MPTCP-native host can answer for itself. With MP_JOIN it is a
    /// join to one of our connections. Anything else is not ours.
    private func peerSYN(_ v: TCPPacketView, key: FlowKey, uplink u: UInt8, now: Instant, gso: Bool) -> Verdict {
        let opts = TCPOptionSummary(parsing: v.tcp.optionArea)
        if opts.has(.mpJoin) {
            guard config.multipath else {
                // One uplink: a join to one of our connections (say from the
                // peer's second address) cannot be served; answered here
                // (RST + MP_TCPRST), it never reaches the LAN host, which
                // would take it for a new plain connection (§3.2). Another
                // token is not ours (an MPTCP-native LAN host's).
                if case let .syn(_, _, token, _) = opts.mpJoin, tokens[token] != nil {
                    return refuseJoin(v, uplink: u, reason: MPTCPRst.reasonProhibited)
                }
                insertNative(key, confirmed: false, now: now) // not ours: a native LAN host's join, if one answers
                stats.untracked &+= 1
                return .accept
            }
            return joinSYNFromPeer(v, opts: opts, uplink: u, now: now)
        }
        guard config.responder, opts.has(.mpCapable), opts.mpCapable.version == 1, opts.mpCapable.senderKey == nil else {
            stats.untracked &+= 1
            return .accept
        }
        guard v.tcp.payload.isEmpty else {
            // TFO towards a plain LAN host: its SYN/ACK (no MP_CAPABLE) ends
            // MPTCP for this connection on the peer's side; the data is the host's to take.
            stats.synDataPassed &+= 1
            stats.untracked &+= 1
            return .accept
        }
        guard table.count < config.maxConnections else { stats.tableFull &+= 1; return .accept }
        var c = Connection(key: key, clientISN: TCPSeq(0), localKey: freshKey(), now: now, deadline: now + config.idleTimeout)
        c.phase = .synReceived
        c.responder = true
        c.serverISN = v.tcp.seq
        c.initial.remoteISN = v.tcp.seq
        c.initial.remoteISNKnown = true
        c.initial.rcvMax = v.tcp.seq + 1
        c.initial.uplink = u
        c.deliveredMax = v.tcp.seq + 1
        c.checksums = config.requestChecksums || opts.mpCapable.checksumRequired
        c.initial.timestamps = opts.has(.timestamps)
        c.initial.remoteTSval = opts.tsValue
        if config.multipath {
            let mp = MPConn(capacity: config.sendBuffer)
            mp.peerSYN = opts
            c.mp = mp
        }
        _ = insert(c)
        stats.responderSYNs &+= 1
        return rewritePeerSYN(v, uplink: u, gso: gso)
    }

    /// The peer's SYN towards the LAN host: every option kept (MP_CAPABLE
    /// too), the MSS clamped so that our DSS fits on the host's segments.
    private func rewritePeerSYN(_ v: TCPPacketView, uplink u: UInt8, gso: Bool) -> Verdict {
        emit(v, seq: v.tcp.seq, ack: v.tcp.ack, flags: v.tcp.flags, window: v.tcp.window,
             policy: OptionPolicy(dropMPTCP: false, mssLimit: mssLimit(v, uplink: Int(u), less: config.mssClamp), mssClamp: config.mssClamp),
             added: AddedOptions(), gso: gso)
    }

    /// The LAN host's SYN/ACK to the peer. With MP_CAPABLE of its own it is
    /// MPTCP-native: the connection is forgotten and passes untouched.
    /// Otherwise the translator becomes its MPTCP end: our key goes in.
    private func lanSynAck(_ v: TCPPacketView, handle h: Int, now: Instant, gso: Bool) -> Verdict {
        let t = v.tcp
        var c = conns[h]!
        guard t.has(TCPFlags.syn) && t.has(TCPFlags.ack) && t.ack == c.serverISN + 1 else {
            if t.has(TCPFlags.rst) { close(h, now: now, reset: true) } // refused: the peer gets the RST as it is
            return .accept
        }
        let opts = TCPOptionSummary(parsing: t.optionArea)
        if !opts.present.isDisjoint(with: .anyMPTCP) {
            stats.passedNative &+= 1
            conns[h]!.phase = .native // kept: its MPTCP packets are not a lost connection's
            stats.nativeConnections &+= 1
            return .accept
        }
        if !c.lanSynAckSeen || c.clientISN != t.seq {
            c.lanSynAckSeen = true
            c.clientWScale = opts.has(.windowScale) ? opts.windowScale : 0
            c.clientISN = t.seq
            c.initial.localISN = t.seq
            c.initial.sndMax = t.seq + 1
            c.initial.timestamps = c.initial.timestamps && opts.has(.timestamps)
            c.initial.localTSval = opts.tsValue
            if let mp = c.mp {
                mp.clientWScale = opts.has(.windowScale) ? opts.windowScale : 0
                mp.clientMSS = opts.has(.mss) ? opts.mss : 536
                mp.clientTimestamps = opts.has(.timestamps)
                mp.clientTSval = opts.tsValue
                mp.clientSackOK = opts.has(.sackPermitted)
                mp.clientWindow = t.window
                mp.synAckAt = now
            }
            conns[h] = c
        }
        let added = AddedOptions(first: .mpCapable(MPCapable(version: 1, flags: capableFlags(c), senderKey: c.localKey)))
        return emit(v, seq: t.seq, ack: t.ack, flags: t.flags, window: t.window,
                    policy: OptionPolicy(dropMPTCP: true, mssLimit: mssLimit(v, uplink: Int(c.initial.uplink))), added: added, gso: gso)
    }

    // MARK: - Client (LAN) side

    private func clientSYN(_ v: TCPPacketView, key: FlowKey, now: Instant, gso: Bool) -> Verdict {
        let opts = TCPOptionSummary(parsing: v.tcp.optionArea)
        if let h = table[key] {
            if conns[h]!.clientISN == v.tcp.seq && conns[h]!.phase == .synSent {
                conns[h]!.lastSeen = now
                return rewriteClientSYN(v, handle: h, gso: gso) // retransmitted SYN: same key
            }
            remove(h) // port reuse: the old connection is gone from the client's view
        }
        // A LAN host that speaks MPTCP itself, or a SYN with no option room
        // left, passes as plain TCP, untracked. A SYN with data (TCP Fast
        // Open) gets MP_CAPABLE like any other (RFC 8684 appendix B).
        if !opts.present.isDisjoint(with: .anyMPTCP) {
            insertNative(key, now: now)
            stats.untracked &+= 1
            return .accept
        }
        if opts.usedLength + 4 > 40 {
            stats.noOptionRoom &+= 1
            stats.untracked &+= 1
            return .accept
        }
        guard table.count < config.maxConnections else { stats.tableFull &+= 1; return .accept }
        var c = Connection(key: key, clientISN: v.tcp.seq, localKey: freshKey(), now: now, deadline: now + config.idleTimeout)
        c.synDataLength = UInt32(v.tcp.payload.count)
        c.clientWScale = opts.has(.windowScale) ? opts.windowScale : 0
        if config.multipath {
            let mp = MPConn(capacity: config.sendBuffer)
            mp.clientWScale = opts.has(.windowScale) ? opts.windowScale : 0
            mp.clientMSS = opts.has(.mss) ? opts.mss : 536
            mp.clientTimestamps = opts.has(.timestamps)
            mp.clientTSval = opts.tsValue
            mp.clientSackOK = opts.has(.sackPermitted)
            mp.clientWindow = v.tcp.window
            c.mp = mp
        }
        let h = insert(c)
        return rewriteClientSYN(v, handle: h, gso: gso)
    }

    private func rewriteClientSYN(_ v: TCPPacketView, handle h: Int, gso: Bool) -> Verdict {
        var flags = MPCapable.flagHMACSHA256
        if config.requestChecksums { flags |= MPCapable.flagChecksumRequired }
        let added = AddedOptions(first: .mpCapable(MPCapable(version: 1, flags: flags)))
        return emit(v, seq: v.tcp.seq, ack: v.tcp.ack, flags: v.tcp.flags, window: v.tcp.window,
                    policy: OptionPolicy(dropMPTCP: true, mssLimit: initialMSSLimit(v)), added: added, gso: gso)
    }

    private func fromClient(_ v: TCPPacketView, handle h: Int, now: Instant, gso: Bool) -> Verdict {
        conns[h]!.lastSeen = now
        let t = v.tcp
        switch conns[h]!.phase {
        case .fallback:
            stats.passedFallback &+= 1
            return .accept
        case .native:
            return nativePacket(v, h, fromLAN: true, now: now)
        case .synSent:
            if t.has(TCPFlags.rst) { close(h, now: now, reset: true) }
            return .accept
        case .synReceived:
            return lanSynAck(v, handle: h, now: now, gso: gso)
        case .closed:
            if t.has(TCPFlags.rst) { return .accept }
            // Late ACKs of a closed connection still get translated below
            // (the peer may be waiting for the last ACK of its FIN).
        case .established:
            break
        }
        var c = conns[h]!
        defer { if conns[h]?.generation == c.generation { conns[h] = c } }
        if c.mp != nil && !c.mp!.paths.isEmpty { return mpFromClient(v, &c, h, now: now) }

        if t.has(TCPFlags.rst) {
            // The client aborted: abort the MPTCP connection too (§3.5, option B).
            let added = AddedOptions(first: .mpFastclose(MPFastclose(receiverKey: c.remoteKey)),
                                     second: .mpTCPRST(MPTCPRst(reason: 0)))
            let ack = t.has(TCPFlags.ack) ? subflowAck(&c, clientAck: t.ack) : t.ack
            conns[h] = c
            close(h, now: now, reset: true)
            c = conns[h]!
            stats.fastcloseSent &+= 1
            return emit(v, seq: t.seq, ack: ack, flags: t.flags, window: t.window,
                        policy: OptionPolicy(dropMPTCP: true), added: added, gso: gso)
        }
        guard t.has(TCPFlags.ack) else { return .accept }
        if c.initial.closed && t.payload.isEmpty && !t.has(TCPFlags.fin) {
            // Both FINs are acknowledged on the subflow and the peer has
            // closed it: a late ACK (say a D-SACK for a repeated FIN) would
            // only draw a RST.
            return drop(.closed)
        }

        let n = UInt32(t.payload.count)
        let fin = t.has(TCPFlags.fin)
        let rel = t.seq.rawValue &- c.clientISN.rawValue
        let sndEnd = t.seq + n + (fin ? 1 : 0)
        if c.initial.sndMax < sndEnd { c.initial.sndMax = sndEnd }
        c.initial.window = t.window
        if c.initial.timestamps, let ts = Self.timestamp(t.optionArea) { c.initial.localTSval = ts }
        var dataAck = c.remoteIDSN &+ 1
        if c.initial.remoteISNKnown || c.fullyEstablished {
            dataAck = c.downloadDSN(ofClientAck: t.ack, near: c.peerDataFinDSN ?? c.initial.mapping.dsn)
        }
        if !c.haveDataAckToPeer || dataAck &- c.dataAckToPeer < (1 << 62) {
            c.dataAckToPeer = dataAck
            c.haveDataAckToPeer = true
        }
        if (n > 0 || fin) && c.clientFinAcked {
            // The client repeats what the peer has acknowledged: the ACK that
            // told it so was lost on the LAN, so the peer's answer to this
            // one goes to the client again.
            c.clientFinAckForwarded = false
        }
        if fin { c.clientFinSeq = t.seq + n }
        if let pf = c.peerDataFinDSN, dataAck &- pf < (1 << 62), dataAck != pf { c.peerFinAcked = true }
        closeIfDone(&c, h, now)

        var added = AddedOptions()
        if !c.fullyEstablished && n == 0 && !fin {
            // Third ACK (and pure ACKs until the peer shows it has our key):
            // MP_CAPABLE with both keys (§3.1).
            added.first = .mpCapable(MPCapable(version: 1, flags: capableFlags(c), senderKey: c.localKey, receiverKey: c.remoteKey))
        } else if !c.fullyEstablished && n > 0 && rel == 1 && !fin {
            // First data: both keys and the data-level length (§3.1), in case
            // the third ACK was lost. DSN = IDSN+1 and subflow seq 1 are implied.
            var mpc = MPCapable(version: 1, flags: capableFlags(c), senderKey: c.localKey, receiverKey: c.remoteKey,
                                dataLevelLength: UInt16(truncatingIfNeeded: n))
            if c.checksums {
                mpc.checksum = DSSChecksum.compute(dsn: c.localIDSN &+ 1, subflowSeq: 1, length: UInt16(truncatingIfNeeded: n), payload: t.payload)
            }
            added.first = .mpCapable(mpc)
            let end = c.localIDSN &+ 1 &+ UInt64(n)
            if end &- c.lastUploadDSN < (1 << 62) { c.lastUploadDSN = end } // (a retransmission does not take it back)
        } else {
            var dss = DSS(dataAck: dataAck, dataAck8: true)
            if n > 0 || fin {
                let dsn = c.uploadDSN(t.seq)
                let len = n + (fin ? 1 : 0)
                guard len <= 0xffff else { return drop(.tooBig) }
                // A DATA_FIN alone (no data) is mapped with subflow seq 0 (§3.3.3).
                let ssn = n == 0 ? 0 : rel
                var m = DSSMapping(dsn: dsn, subflowSeq: ssn, length: UInt16(len))
                if c.checksums {
                    m.checksum = DSSChecksum.compute(dsn: dsn, subflowSeq: ssn, length: UInt16(len), payload: t.payload)
                }
                dss = DSS(dataAck: dataAck, dataAck8: true, mapping: m, dsn8: true, dataFin: fin)
                let end = dsn &+ UInt64(len)
                if end &- c.lastUploadDSN < (1 << 62) { c.lastUploadDSN = end }
            }
            added.first = .dss(dss)
        }
        stats.translatedToPeer &+= 1
        let ack = subflowAck(&c, clientAck: t.ack)
        c.ackToPeer = ack
        c.haveAckToPeer = true
        var policy = OptionPolicy(dropMPTCP: true)
        if c.peerRegions.remapped {
            policy.dropSACK = true
            policy.sackOverride = translatedSACK(c, t.optionArea)
        }
        return emit(v, seq: t.seq, ack: ack, flags: t.flags, window: t.window, policy: policy, added: added, gso: gso)
    }

    /// The client's SACK blocks in the peer's subflow sequence space (one
    /// uplink, once the peer has resent data at data level), in `sackScratch`;
    /// a block no one region holds is left out. Nil when none is left.
    private func translatedSACK(_ c: Connection, _ area: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        for e in TCPOptionIterator(area) where e.fault == nil && e.kind == TCPOptionKind.sack && e.bytes.count >= 10 {
            var w = ByteWriter(sackScratch)
            w.u8(TCPOptionKind.sack); w.u8(2)
            let near = c.peerDataFinDSN ?? c.initial.mapping.dsn
            for i in 0 ..< (e.bytes.count - 2) / 8 {
                let l = c.downloadDSN(ofClientAck: TCPSeq(e.bytes.u32(2 + 8 * i)), near: near)
                let r = c.downloadDSN(ofClientAck: TCPSeq(e.bytes.u32(6 + 8 * i)), near: near)
                guard let (sl, sr) = c.peerRegions.subflowRange(dsn: l, r) else { continue }
                w.u32(c.serverISN.rawValue &+ sl); w.u32(c.serverISN.rawValue &+ sr)
            }
            guard w.offset > 2 else { return nil }
            sackScratch[1] = UInt8(w.offset)
            return UnsafeRawBufferPointer(rebasing: sackScratch[0 ..< w.offset])
        }
        return nil
    }

    func capableFlags(_ c: Connection) -> UInt8 {
        MPCapable.flagHMACSHA256 | (c.checksums ? MPCapable.flagChecksumRequired : 0)
    }

    /// The subflow-level ACK for a client ACK: the same number, but never
    /// beyond what the peer has sent on the subflow (the client may already
    /// acknowledge a FIN that stands for the peer's DATA_FIN).
    /// Once the peer has resent data at data level under new subflow
    /// sequence numbers, the subflow ACK is the first subflow sequence whose
    /// data the client has not acknowledged (`PeerRegions`).
    private func subflowAck(_ c: inout Connection, clientAck: TCPSeq) -> TCPSeq {
        var ack = clientAck
        if c.peerRegions.remapped {
            let d = c.downloadDSN(ofClientAck: clientAck, near: c.peerDataFinDSN ?? c.initial.mapping.dsn)
            ack = c.serverISN + c.peerRegions.subflowAck(dataAck: d)
        }
        // peerSndMax is set from the SYN/ACK on; before it there is nothing to cap.
        if c.initial.remoteISNKnown && c.initial.rcvMax < ack { return c.initial.rcvMax }
        return ack
    }

    // MARK: - Peer (uplink) side

    private func fromPeer(_ v: TCPPacketView, handle h: Int, subflow k: Int, uplink u: UInt8, now: Instant, gso: Bool) -> Verdict {
        // (Before the copy below, whose write-back would undo what it records.)
        if conns[h]!.phase == .native { return nativePacket(v, h, fromLAN: false, uplink: u, now: now) }
        conns[h]!.lastSeen = now
        let t = v.tcp
        let opts = TCPOptionSummary(parsing: t.optionArea)
        var c = conns[h]!
        defer { if conns[h]?.generation == c.generation { conns[h] = c } }
        if c.mp != nil && !c.mp!.paths.isEmpty && c.phase != .fallback {
            return mpFromPeer(v, &c, h, k, opts: opts, now: now, gso: gso)
        }

        switch c.phase {
        case .fallback:
            stats.passedFallback &+= 1
            return .accept
        case .native:
            return .accept // (handled above)
        case .synReceived:
            if t.has(TCPFlags.syn) {
                // The peer repeats its SYN: on to the LAN host again.
                return t.seq == c.serverISN ? rewritePeerSYN(v, uplink: u, gso: gso) : .accept
            }
            if t.has(TCPFlags.rst) {
                // Acted on only at the next sequence number after the SYN (RFC 5961 §3.2).
                guard t.seq == c.serverISN + 1 else { stats.rstIgnored &+= 1; return drop(.invalid) }
                conns[h] = c; close(h, now: now, reset: true); c = conns[h]!; return .accept
            }
            guard c.lanSynAckSeen, t.has(TCPFlags.ack), t.ack == c.clientISN + 1 else { return drop(.badMPTCP) }
            guard opts.has(.mpCapable), let key = opts.mpCapable.senderKey, opts.mpCapable.receiverKey == c.localKey else {
                // The third ACK without our key echoed: MPTCP was lost on
                // the way (§3.1); plain TCP for the connection's life.
                stats.connectionsFallback &+= 1
                return fallBack(h)
            }
            c.remoteKey = key
            c.remoteIDSN = MPTCPCrypto.idsn(key: key)
            c.fullyEstablished = true // both keys are known to both ends
            c.initial.mapping = PeerMapping(dsn: c.remoteIDSN &+ 1, ssn: 1, length: 0, dataFin: false, valid: false)
            if let len = opts.mpCapable.dataLevelLength, len > 0 {
                // Data on the third ACK: DSN = IDSN + 1, subflow seq 1 (§3.1).
                c.initial.mapping = PeerMapping(dsn: c.remoteIDSN &+ 1, ssn: 1, length: UInt32(len), dataFin: false, valid: true)
            }
            c.phase = .established
            stats.connectionsMPTCP &+= 1
            journal(h)
            if c.mp != nil {
                mpEstablishedResponder(&c, third: t, opts: opts, uplink: u, now: now)
                return mpFromPeer(v, &c, h, k, opts: opts, now: now, gso: gso)
            }
        case .synSent:
            let acksSYN = t.has(TCPFlags.ack) && (t.ack == c.clientISN + 1 || (c.synDataLength > 0 && t.ack == c.clientISN + 1 + c.synDataLength))
            guard t.has(TCPFlags.syn) && acksSYN else {
                // In SYN-SENT a RST counts only when it acknowledges our SYN (RFC 9293 §3.10.7.3).
                if t.has(TCPFlags.rst) {
                    guard acksSYN else { stats.rstIgnored &+= 1; return drop(.invalid) }
                    conns[h] = c; close(h, now: now, reset: true); c = conns[h]!
                }
                return .accept
            }
            guard opts.has(.mpCapable), opts.mpCapable.version == 1, let key = opts.mpCapable.senderKey,
                  opts.mpCapable.hmacSHA256 else {
                // A plain TCP server (or MPTCP stripped on the way): plain TCP
                // for the connection's whole life (§3.7).
                stats.connectionsFallback &+= 1
                return fallBack(h)
            }
            if c.synDataLength > 0 && t.ack == c.clientISN + 1 + c.synDataLength {
                // The peer took the SYN's data (TFO): it precedes IDSN + 1
                // and relative subflow sequence 1 (Linux: the subflow's
                // sequence offset moves past it), so our mappings start after it.
                c.clientISN = c.clientISN + c.synDataLength
                c.initial.localISN = c.clientISN
            }
            c.synDataLength = 0
            c.remoteKey = key
            c.remoteIDSN = MPTCPCrypto.idsn(key: key)
            c.serverISN = t.seq
            c.initial.remoteISN = t.seq
            c.initial.remoteISNKnown = true
            c.initial.rcvMax = t.seq + 1
            c.deliveredMax = t.seq + 1
            c.initial.mapping = PeerMapping(dsn: c.remoteIDSN &+ 1, ssn: 1, length: 0, dataFin: false, valid: false)
            c.checksums = config.requestChecksums || opts.mpCapable.checksumRequired
            c.initial.timestamps = opts.has(.timestamps)
            c.initial.remoteTSval = opts.tsValue
            c.initial.localTSval = opts.tsEchoReply
            c.initial.sndMax = c.clientISN + 1
            c.phase = .established
            stats.connectionsMPTCP &+= 1
            journal(h)
            if c.mp != nil { mpEstablished(&c, synAck: t, opts: opts, uplink: u, now: now) }
            return rewriteSynAck(v, uplink: u, gso: gso)
        case .established, .closed:
            if t.has(TCPFlags.syn) {
                // A retransmitted SYN/ACK: rewrite it the same way.
                guard t.seq == c.serverISN else { return .accept }
                return rewriteSynAck(v, uplink: u, gso: gso)
            }
        }

        // Nothing acts before it is validated (RFC 793 §3.3, RFC 5961, RFC 8684).
        let n = UInt32(t.payload.count)
        if t.has(TCPFlags.rst) && !peerRSTExact(c, seq: t.seq) {
            if peerSegmentAcceptable(c, seq: t.seq, length: 0) {
                stats.rstChallenged &+= 1
                challenge(&c, now: now)
            } else {
                stats.rstIgnored &+= 1
            }
            return drop(.invalid)
        }
        if !t.has(TCPFlags.rst) && !peerSegmentAcceptable(c, seq: t.seq, length: n + (t.has(TCPFlags.fin) ? 1 : 0)) {
            stats.outOfWindow &+= 1
            challenge(&c, now: now) // an unacceptable segment is answered with an ACK
            return drop(.invalid)
        }
        if opts.has(.mpFastclose) && opts.mpFastclose.receiverKey != c.localKey {
            stats.fastcloseRejected &+= 1 // §3.5: only with our key
            return drop(.invalid)
        }
        var peerDataAck: UInt64?
        var mappedDSN: UInt64?
        if opts.has(.dss) {
            let d = opts.dss
            if let a = d.dataAck {
                let full = d.dataAckIs8 ? a : DataSeq.expand(low32: UInt32(truncatingIfNeeded: a),
                                                              near: DataSeq(c.havePeerDataAck ? c.peerDataAck : c.localIDSN &+ 1)).rawValue
                // Only for data we sent (a DATA_ACK going back is a late segment's: ignored below).
                guard c.lastUploadDSN &- full < (1 << 63) else { stats.dataAckInvalid &+= 1; return drop(.invalid) }
                peerDataAck = full
            }
            if let m = d.mapping {
                let near = c.initial.mapping.valid ? c.initial.mapping.dsn : c.remoteIDSN &+ 1
                let dsn = d.dsnIs8 ? m.dsn : DataSeq.expand(low32: UInt32(truncatingIfNeeded: m.dsn), near: DataSeq(near)).rawValue
                guard downloadInWindow(c, dsn: dsn, length: UInt64(m.length)) else { stats.dataOutOfWindow &+= 1; return drop(.invalid) }
                mappedDSN = dsn
            }
        }

        if t.has(TCPFlags.rst) || opts.has(.mpFastclose) {
            if opts.has(.mpFastclose) { stats.fastcloseReceived &+= 1 }
            let wasClosed = c.phase == .closed
            conns[h] = c
            close(h, now: now, reset: true)
            c = conns[h]!
            if wasClosed && !t.has(TCPFlags.rst) { return drop(.closed) }
            // Reset the client at the sequence it expects next.
            let seq = c.deliveredMax
            stats.translatedToLAN &+= 1
            let ack = c.havePeerDataAck ? c.clientAck(ofDataAck: c.peerDataAck) : t.ack
            return emit(v, seq: seq, ack: ack, flags: TCPFlags.rst | TCPFlags.ack,
                        window: 0, policy: OptionPolicy(dropMPTCP: true), added: AddedOptions(), gso: gso,
                        dropPayload: true)
        }

        let rel = t.seq.rawValue &- c.serverISN.rawValue
        if c.initial.timestamps && opts.has(.timestamps) { c.initial.remoteTSval = opts.tsValue }
        var end = t.seq + n
        if t.has(TCPFlags.fin) { end = end + 1 }
        if c.initial.rcvMax < end { c.initial.rcvMax = end }

        var hadSignalling = false
        if opts.has(.dss) {
            c.fullyEstablished = true
            let d = opts.dss
            if let full = peerDataAck {
                if !c.havePeerDataAck || full &- c.peerDataAck < (1 << 62) {
                    c.peerDataAck = full
                    c.havePeerDataAck = true
                }
                if let cf = c.clientFinSeq, c.clientAck(ofDataAck: c.peerDataAck) == cf + 1 { c.clientFinAcked = true }
            }
            if let m = d.mapping, let dsn = mappedDSN {
                if c.checksums, let cs = m.checksum, Int(m.length) == t.payload.count, n > 0,
                   !DSSChecksum.verify(dsn: dsn, subflowSeq: m.subflowSeq, length: m.length, checksum: cs, payload: t.payload) {
                    stats.dssChecksumFailed &+= 1
                    return drop(.badMPTCP)
                }
                if d.dataFin && m.length == 1 && n == 0 {
                    c.peerDataFinDSN = dsn // DATA_FIN alone (§3.3.3)
                } else {
                    if m.length == 0 {
                        // Infinite mapping: the peer falls back to TCP (§3.7).
                        // Passing the subflow on untouched is exact only while
                        // its sequence numbers are the client's (no data-level
                        // resend): then the connection is forgotten, and if the
                        // peer goes on with MPTCP (a forged fallback) its next
                        // packet is an unknown connection's, reset both ways.
                        // Otherwise both ends are reset here.
                        // (Its DSN is that of this segment's first byte; its
                        // subflow sequence number may be 0.)
                        let identity = UInt32(truncatingIfNeeded: dsn &- c.remoteIDSN)
                        guard !c.peerRegions.remapped, identity == rel || identity == m.subflowSeq else {
                            return abortBoth(v, &c, h, now: now, gso: gso)
                        }
                        stats.connectionsFallback &+= 1
                        resets.fellBack(c.key, peerKey: c.remoteKey)
                        return fallBack(h)
                    }
                    c.initial.mapping = PeerMapping(dsn: dsn, ssn: m.subflowSeq, length: UInt32(m.length), dataFin: d.dataFin, valid: true)
                    c.peerRegions.note(ssnRel: m.subflowSeq, dsn: dsn, idsn: c.remoteIDSN)
                    if d.dataFin { c.peerDataFinDSN = dsn &+ UInt64(m.length) &- 1 }
                }
            }
        } else if opts.has(.mpCapable), c.fullyEstablished, n > 0, rel == 1, let len = opts.mpCapable.dataLevelLength, len > 0 {
            // Responder role: the peer's first data with MP_CAPABLE (both
            // keys and the data-level length) because it has not yet seen a
            // DSS from us: DSN = IDSN + 1 at subflow sequence 1 (§3.1).
            if c.checksums, let cs = opts.mpCapable.checksum, Int(len) == t.payload.count,
               !DSSChecksum.verify(dsn: c.remoteIDSN &+ 1, subflowSeq: 1, length: len, checksum: cs, payload: t.payload) {
                stats.dssChecksumFailed &+= 1
                return drop(.badMPTCP)
            }
            c.initial.mapping = PeerMapping(dsn: c.remoteIDSN &+ 1, ssn: 1, length: UInt32(len), dataFin: false, valid: true)
        } else if !c.fullyEstablished && n > 0 && !opts.present.contains(.mpCapable) {
            // Data with no MPTCP option before any DSS: a middlebox removed
            // MPTCP. Continue as plain TCP (§3.7).
            stats.connectionsFallback &+= 1
            return fallBack(h)
        }
        if !opts.present.isDisjoint(with: .signalling) { hadSignalling = true }
        if opts.has(.addAddr) && !opts.addAddr.echo {
            // One uplink: nothing to join it from, but the announcement is
            // echoed (§3.4.1), or the peer keeps sending it.
            let a = opts.addAddr
            stats.addAddrReceived &+= 1
            if a.hmac == MPTCPCrypto.addAddrHMAC(senderKey: c.remoteKey, receiverKey: c.localKey, addressID: a.addressID,
                                                 address: a.address, port: a.port) {
                let ack = c.haveDataAckToPeer ? subflowAck(&c, clientAck: c.clientSeq(ofDownloadDSN: c.dataAckToPeer)) : c.initial.rcvMax
                ackPeer(c, ack: ack, option: .addAddr(AddAddr(echo: true, addressID: a.addressID, address: a.address, port: a.port)))
            } else {
                stats.addAddrRejected &+= 1 // §3.4.1: silently ignored
            }
        }

        // Sequence number towards the client: from the DSN of the first byte.
        var seq = t.seq
        var flags = t.flags & ~TCPFlags.fin
        let carriesDataFin = opts.has(.dss) && opts.dss.dataFin
        if n > 0 {
            guard let dsn = c.initial.mapping.dsn(atRelative: rel) else {
                return drop(.unmapped)
            }
            seq = c.clientSeq(ofDownloadDSN: dsn)
            if let f = c.peerDataFinDSN, dsn &+ UInt64(n) == f { flags |= TCPFlags.fin; c.peerFinForwarded = true }
        } else if let f = c.peerDataFinDSN, carriesDataFin || (t.has(TCPFlags.fin) && !c.peerFinAcked) {
            // The DATA_FIN (or the subflow FIN while the client has not yet
            // acknowledged it): a FIN for the client at the DATA_FIN's place.
            seq = c.clientSeq(ofDownloadDSN: f)
            flags |= TCPFlags.fin
            c.peerFinForwarded = true
        } else {
            // A pure ACK, at the place the peer sent it relative to its next
            // sequence number: normally 0, but -1 for a keepalive or
            // zero-window probe (SND.NXT - 1), which the client must see as
            // old so that it answers.
            // (A subflow FIN turned into a pure ACK goes at the next sequence.)
            let offset = t.has(TCPFlags.fin) ? 0 : t.seq - c.initial.rcvMax
            seq = offset < 0 && offset > -(1 << 20) ? c.deliveredMax - UInt32(-offset) : c.deliveredMax
        }
        let segEnd = seq + n + ((flags & TCPFlags.fin) != 0 ? 1 : 0)
        if c.deliveredMax < segEnd { c.deliveredMax = segEnd }

        let ack = c.havePeerDataAck ? c.clientAck(ofDataAck: c.peerDataAck) : t.ack
        if hadSignalling && n == 0 && flags & TCPFlags.fin == 0 && !opts.has(.dss) {
            // Only ADD_ADDR / REMOVE_ADDR / MP_PRIO: nothing for the client
            // (forwarding it would look like a duplicate ACK).
            return drop(.signallingOnly)
        }
        if t.has(TCPFlags.fin) && flags & TCPFlags.fin == 0 {
            // The peer's subflow FIN after the client already has the FIN
            // that stood for the DATA_FIN: the client will not acknowledge
            // it again, so the translator does, at subflow level.
            ackPeer(c, ack: c.initial.rcvMax)
            if c.clientFinAcked { c.initial.closed = true }
        }
        if c.clientFinAcked && n == 0 && flags & TCPFlags.fin == 0 && c.clientFinAckForwarded {
            // The client's FIN is acknowledged and it has been told: a
            // further pure ACK has nothing for it, and a client that has
            // already closed would answer it with a RST.
            return drop(.closed)
        }
        if c.clientFinAcked { c.clientFinAckForwarded = true }
        closeIfDone(&c, h, now)
        stats.translatedToLAN &+= 1
        return emit(v, seq: seq, ack: ack, flags: flags, window: t.window,
                    policy: OptionPolicy(dropMPTCP: true), added: AddedOptions(), gso: gso)
    }

    /// RFC 5961 §3.2 / RFC 793: a challenge ACK to the peer (rate-limited):
    /// where it really is, it learns our RCV.NXT; a peer that has really
    /// reset answers it with a RST at exactly that number.
    private func challenge(_ c: inout Connection, now: Instant) {
        guard c.phase == .established, challengeDue(&c, now: now) else { return }
        stats.challengeAcks &+= 1
        ackPeer(c, ack: peerRcvNxt(c))
    }

    /// The translation can no longer be exact: the client gets a RST at the
    /// sequence number it expects (the verdict), the peer a RST with
    /// MP_FASTCLOSE (its key: the whole MPTCP connection) and MP_TCPRST.
    private func abortBoth(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, now: Instant, gso: Bool) -> Verdict {
        stats.abortedBoth &+= 1
        stats.fastcloseSent &+= 1
        if let out = outbox.reserve() {
            var w = ByteWriter(writer.options)
            MPTCPOption.mpFastclose(MPFastclose(receiverKey: c.remoteKey)).write(into: &w)
            MPTCPOption.mpTCPRST(MPTCPRst(reason: MPTCPRst.reasonMPTCPError)).write(into: &w)
            let len = SegmentWriter.writeBare(into: out, source: c.initial.local, destination: c.initial.remote,
                                              seq: c.initial.sndMax, ack: peerRcvNxt(c), flags: TCPFlags.rst | TCPFlags.ack, window: 0,
                                              options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< w.offset]))
            if len > 0 { outbox.commit(length: len, towards: .uplink(c.initial.uplink)); stats.originated &+= 1 }
        }
        conns[h] = c
        close(h, now: now, reset: true)
        c = conns[h]!
        stats.translatedToLAN &+= 1
        let ack = c.havePeerDataAck ? c.clientAck(ofDataAck: c.peerDataAck) : v.tcp.ack
        return emit(v, seq: c.deliveredMax, ack: ack, flags: TCPFlags.rst | TCPFlags.ack,
                    window: 0, policy: OptionPolicy(dropMPTCP: true), added: AddedOptions(), gso: gso, dropPayload: true)
    }

    /// Sends the peer a pure ACK (subflow level: `ack`) from the client's
    /// address and sequence space, with a DATA_ACK of what the client has
    /// acknowledged, no more (end-to-end semantics), or with `option`
    /// instead (an ADD_ADDR echo does not fit beside a DSS over IPv6).
    private func ackPeer(_ c: Connection, ack: TCPSeq, option: MPTCPOption? = nil) {
        guard let out = outbox.reserve() else { return }
        var w = ByteWriter(writer.options)
        if c.initial.timestamps {
            w.u8(1); w.u8(1); w.u8(8); w.u8(10); w.u32(c.initial.localTSval); w.u32(c.initial.remoteTSval)
        }
        let dataAck = c.haveDataAckToPeer ? c.dataAckToPeer : c.remoteIDSN &+ 1
        (option ?? MPTCPOption.dss(DSS(dataAck: dataAck, dataAck8: true))).write(into: &w)
        while w.offset & 3 != 0 { w.u8(1) }
        let len = SegmentWriter.writeBare(into: out, source: c.initial.local, destination: c.initial.remote,
                                          seq: c.initial.sndMax, ack: ack, flags: TCPFlags.ack,
                                          window: c.initial.window,
                                          options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< w.offset]))
        if len > 0 {
            outbox.commit(length: len, towards: .uplink(c.initial.uplink))
            stats.originated &+= 1
        }
    }

    static func timestamp(_ area: UnsafeRawBufferPointer) -> UInt32? {
        for e in TCPOptionIterator(area) where e.fault == nil && e.kind == TCPOptionKind.timestamps && e.bytes.count == 10 {
            return e.bytes.u32(2)
        }
        return nil
    }

    /// The connection continues as plain TCP for the rest of its life: the
    /// engine forgets it, so its packets pass untouched as untracked ones.
    private func fallBack(_ h: Int) -> Verdict {
        conns[h]!.phase = .fallback
        journal(h)
        remove(h)
        return .accept
    }

    private func rewriteSynAck(_ v: TCPPacketView, uplink u: UInt8, gso: Bool) -> Verdict {
        emit(v, seq: v.tcp.seq, ack: v.tcp.ack, flags: v.tcp.flags, window: v.tcp.window,
             policy: OptionPolicy(dropMPTCP: true, mssLimit: mssLimit(v, uplink: Int(u), less: config.mssClamp), mssClamp: config.mssClamp),
             added: AddedOptions(), gso: gso)
    }

    // MARK: - Emission

    /// Counts a drop and says so.
    func drop(_ r: DropReason) -> Verdict {
        stats.dropped[Int(r.rawValue)] &+= 1
        return .drop(r)
    }

    private func emit(_ v: TCPPacketView, seq: TCPSeq, ack: TCPSeq, flags: UInt8, window: UInt16,
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


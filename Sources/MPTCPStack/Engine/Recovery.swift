// Ending an earlier instance's connections after a crash (issue 13).
//
// A daemon killed with SIGKILL leaves its translated connections half-way:
// the LAN host and the peer each hold one end, and nothing can translate
// between them again (the sequence spaces, keys and buffers are gone). They
// must end with a reset on both sides, never a wrong byte and never an
// endless hang. Waiting for their next packet is not enough: with two
// uplinks the peer's first packet after a restart often comes on a join
// subflow, whose 4-tuple says nothing of the LAN host to reset, and the
// host itself is silent in a download; the initial subflow is then heard of
// only when the peer's retransmission timer, backed off through the outage,
// fires (seconds).
//
// So the engine keeps, per connection handle, a fixed-size *recovery
// record*: the subflows' 4-tuples and uplinks and the peer's key. The
// caller stores the records where they outlive the process (the daemon: a
// file mapped into memory under /run, written on each change), and feeds
// those of the previous instance to a new engine (`recover`). The new engine
// then probes both ends of each old connection with a segment outside their
// windows, to which TCP answers with an ACK carrying its exact next
// expected sequence number (RFC 9293 §3.10.7.4); the answers get exact
// resets (RFC 5961 §3.2), the peer's with MP_FASTCLOSE and its key
// (RFC 8684 §3.5), which closes every subflow of its connection at once.
//
// Record layout (big-endian; `RecoveryRecord.size` bytes, all zero when the
// handle holds nothing to recover):
//   0  u8  magic 0xA7      1  u8  version 1
//   2  u8  subflows n (1 ... 8)   3  u8  0
//   4  u64 the peer's key (0: not known)
//  12  u32 0
//  16  n entries of 40 bytes: local endpoint, remote endpoint (19 bytes
//      each: u8 family 4 or 6, 16 address bytes (IPv4 in the first 4),
//      u16 port), u8 uplink, u8 0. Entry 0 is the initial subflow: local is
//      the LAN host, remote the peer (the connection's own 4-tuple); the
//      others are join subflows from our uplink addresses.

/// The fixed-size record of one connection that a restarted engine needs
/// to end it (see above).
public enum RecoveryRecord {
    public static let size = 384
    static let magic: UInt8 = 0xA7
    static let version: UInt8 = 1
    static let entrySize = 40
    static let maxEntries = 8
}

/// What a restarted engine remembers of one subflow of an earlier
/// instance's connection.
struct RecoveredSubflow {
    /// The connection's own 4-tuple (LAN host as client, peer as server).
    var lan: FlowKey
    var peerKey: UInt64
}

/// An earlier instance's connection still to be probed.
struct RecoveredConnection {
    var lan: FlowKey
    var subflows: [(local: Endpoint, remote: Endpoint, uplink: UInt8)]
}

extension Engine {

    // MARK: - Journal (the running instance)

    /// Notes that handle `h`'s recovery record may have changed.
    @inline(__always)
    func journal(_ h: Int) {
        guard journaling else { return }
        if journalChanged.count < config.tuning.journalCapacity { journalChanged.append(h) } else { journalOverflow = true }
    }

    /// Handles whose records changed since the last call, each with its
    /// record (`RecoveryRecord.size` bytes, all zero: nothing to recover).
    /// After more changes than it keeps track of, every handle is reported
    /// (`handleCount` of them). Set `journaling` first.
    public func drainJournal(_ body: (_ handle: Int, _ record: UnsafeRawBufferPointer) -> Void) {
        let record = UnsafeRawBufferPointer(journalScratch)
        if journalOverflow {
            for h in 0 ..< conns.count { encodeRecord(h); body(h, record) }
        } else {
            for h in journalChanged { encodeRecord(h); body(h, record) }
        }
        journalChanged.removeAll(keepingCapacity: true)
        journalOverflow = false
    }

    /// Whether `drainJournal` has anything to report.
    public var journalPending: Bool { !journalChanged.isEmpty || journalOverflow }

    /// Handles in use so far (records beyond it are all zero).
    public var handleCount: Int { conns.count }

    /// Writes handle `h`'s record into `journalScratch`: its translated
    /// connection's subflows, or zeros (none, or one that is native, fallen
    /// back or closed: nothing of it can be broken by a restart).
    private func encodeRecord(_ h: Int) {
        let out = journalScratch
        out.initializeMemory(as: UInt8.self, repeating: 0)
        guard h < conns.count, let c = conns[h], c.phase == .established else { return }
        var n = 0
        func entry(_ local: Endpoint, _ remote: Endpoint, _ uplink: UInt8) {
            let at = 16 + n * RecoveryRecord.entrySize
            Self.putEndpoint(local, out, at)
            Self.putEndpoint(remote, out, at + 19)
            out[at + 38] = uplink
            n += 1
        }
        if let mp = c.mp {
            entry(c.key.client, c.key.server, mp.paths.first?.uplink ?? c.initial.uplink)
            for (k, p) in mp.paths.enumerated() where k > 0 && p.state != .unused && p.state != .failed
                && n < RecoveryRecord.maxEntries {
                entry(p.local, p.remote, p.uplink)
            }
        } else {
            entry(c.key.client, c.key.server, c.initial.uplink)
        }
        out[0] = RecoveryRecord.magic
        out[1] = RecoveryRecord.version
        out[2] = UInt8(n)
        out.put64(c.remoteKey, at: 4)
    }

    static func putEndpoint(_ e: Endpoint, _ out: UnsafeMutableRawBufferPointer, _ at: Int) {
        switch e.address {
        case let .v4(a): out[at] = 4; out.put32(a.rawValue, at: at + 1)
        case let .v6(a): out[at] = 6; out.put64(a.high, at: at + 1); out.put64(a.low, at: at + 9)
        }
        out.put16(e.port, at: at + 17)
    }

    static func endpoint(_ r: UnsafeRawBufferPointer, _ at: Int) -> Endpoint? {
        let address: IPAddress
        switch r[at] {
        case 4: address = .v4(IPv4Address(r.u32(at + 1)))
        case 6: address = .v6(IPv6Address(high: r.u64(at + 1), low: r.u64(at + 9)))
        default: return nil
        }
        return Endpoint(address: address, port: r.u16(at + 17))
    }

    // MARK: - Recovery (the next instance)

    /// Takes one record of an earlier instance (as `drainJournal` gave it);
    /// its connection is reset at both ends once the timers run. Returns
    /// false for a record that is empty or does not parse (ignored; never a
    /// trap), or names an uplink this engine does not have.
    @discardableResult
    public func recover(record r: UnsafeRawBufferPointer, now: Instant) -> Bool {
        guard r.count >= RecoveryRecord.size, r[0] == RecoveryRecord.magic, r[1] == RecoveryRecord.version else { return false }
        let n = Int(r[2])
        guard (1 ... RecoveryRecord.maxEntries).contains(n) else { return false }
        let peerKey = r.u64(4)
        var subflows: [(local: Endpoint, remote: Endpoint, uplink: UInt8)] = []
        for i in 0 ..< n {
            let at = 16 + i * RecoveryRecord.entrySize
            guard let local = Self.endpoint(r, at), let remote = Self.endpoint(r, at + 19),
                  local.address.sameFamily(as: remote.address), Int(r[at + 38]) < max(1, config.uplinks.count) else { return false }
            subflows.append((local, remote, r[at + 38]))
        }
        let lan = FlowKey(client: subflows[0].local, server: subflows[0].remote)
        for s in subflows {
            recovered[FlowKey(client: s.local, server: s.remote)] = RecoveredSubflow(lan: lan, peerKey: peerKey)
        }
        recovering.append(RecoveredConnection(lan: lan, subflows: subflows))
        stats.recoveredConnections &+= 1
        if recoveryAt == nil { recoveryAt = now; recoveryRound = 0; recoveryRoundStart = now; recoveryNext = 0 }
        return true
    }

    /// Sends the next batch of probes (from `handleTimeout`).
    func recoveryTimer(now: Instant) {
        guard let at = recoveryAt, at <= now else { return }
        var sent = 0
        while recoveryNext < recovering.count, sent < config.tuning.recoveryBatch,
              outbox.count + RecoveryRecord.maxEntries + 1 <= Outbox.slots - config.tuning.timerReserve {
            probe(recovering[recoveryNext])
            recoveryNext += 1
            sent += 1
        }
        if recoveryNext < recovering.count {
            recoveryAt = now + config.tuning.recoverySpacing
        } else if recoveryRound + 1 < config.tuning.recoveryRounds.count {
            recoveryRound += 1
            recoveryNext = 0
            recoveryAt = max(now, recoveryRoundStart + config.tuning.recoveryRounds[recoveryRound])
        } else {
            recoveryAt = nil
            recovering = []
        }
    }

    /// Out-of-window segments to both ends of an old connection: to the
    /// LAN host as if from the peer, to the peer on each subflow. Two per
    /// end, half the sequence space apart, so that one is outside any
    /// window; no MPTCP option (the peer's answer carries its own).
    private func probe(_ r: RecoveredConnection) {
        let seq = TCPSeq(UInt32(truncatingIfNeeded: rng.next()))
        let ack = TCPSeq(UInt32(truncatingIfNeeded: rng.next()))
        probeLAN(r.lan)
        for half in stride(from: UInt32(0), through: 1 << 31, by: 1 << 31) {
            for s in r.subflows { sendProbe(from: s.local, to: s.remote, seq: seq + half, ack: ack, towards: .uplink(s.uplink)) }
        }
        stats.recoveryProbes &+= 1
    }

    /// Probes the LAN host of an old connection (its answer gets the reset).
    func probeLAN(_ lan: FlowKey) {
        let seq = TCPSeq(UInt32(truncatingIfNeeded: rng.next()))
        let ack = TCPSeq(UInt32(truncatingIfNeeded: rng.next()))
        for half in stride(from: UInt32(0), through: 1 << 31, by: 1 << 31) { sendProbe(from: lan.server, to: lan.client, seq: seq + half, ack: ack, towards: .lan) }
    }

    private func sendProbe(from: Endpoint, to: Endpoint, seq: TCPSeq, ack: TCPSeq, towards side: Side) {
        guard let out = outbox.reserve() else { return }
        let len = SegmentWriter.writeBare(into: out, source: from, destination: to, seq: seq, ack: ack,
                                          flags: TCPFlags.ack, window: 0, options: UnsafeRawBufferPointer(start: nil, count: 0))
        if len > 0 { outbox.commit(length: len, towards: side); stats.originated &+= 1 }
    }
}

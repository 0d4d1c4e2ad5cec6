import MPTCPStack
import TestSupport
import Testing

// Crash recovery (Recovery.swift): an engine's recovery records, handed to
// a new engine, end the old connections at both ends — probes to each end,
// exact resets for their answers, MP_FASTCLOSE with the peer's key — even
// when the peer's first packet comes on a join subflow.

private let ACK = TCPFlags.ack
private let RST = TCPFlags.rst

/// The records an engine's journal reports now, by handle (empty ones left out).
private func records(_ e: Engine<SplitMix64>) -> [Int: [UInt8]] {
    var out: [Int: [UInt8]] = [:]
    e.drainJournal { h, r in out[h] = r[0] == 0 ? nil : Array(r) }
    return out
}

/// A two-subflow connection through an engine keeping a journal, and its record.
private func journaledTwoSubflows(seed: UInt64) throws -> (MPScript, [UInt8]) {
    let s = MPScript(seed: seed)
    s.h.engine.journaling = true
    try s.twoSubflows()
    return (s, try #require(records(s.h.engine).values.first))
}

private func isRST(_ d: Decoded) -> Bool { d.flags & RST != 0 }

private func fastcloseKey(_ d: Decoded) -> UInt64? {
    d.mptcp.lazy.compactMap { if case .mpFastclose(let f) = $0 { return f.receiverKey } else { return nil } }.first
}

@Suite("Recovery")
struct RecoveryTests {
    @Test("a multipath connection's record names both subflows and the peer's key; a closed connection's record is cleared")
    func journal() throws {
        let s = MPScript(seed: 61)
        s.h.engine.journaling = true
        try s.twoSubflows()
        let r = records(s.h.engine)
        #expect(r.count == 1)
        let rec = try #require(r.values.first)
        #expect(rec.count == RecoveryRecord.size && rec[0] == 0xA7 && rec[2] == 2)
        #expect(rec[4 ..< 12].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } == s.c.peerKey)
        // Nothing changed: nothing reported.
        #expect(!s.h.engine.journalPending)
        // The peer closes the whole connection (MP_FASTCLOSE with our key):
        // its record is cleared.
        _ = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, flags: RST | ACK, mptcp: [.mpFastclose(MPFastclose(receiverKey: s.localKey))]))
        let after = records(s.h.engine)
        #expect(after.isEmpty && !s.h.engine.journalPending)
    }

    @Test("a restarted engine probes both ends; the peer's answer on the join subflow gets RST + MP_FASTCLOSE with its key at its exact ACK number, the LAN host's an exact RST")
    func restartEndsBothSides() throws {
        let (s, rec) = try journaledTwoSubflows(seed: 62)

        // The next instance.
        let h2 = EngineHarness(seed: 99, config: multipathConfig(), start: s.h.now + .seconds(3))
        let took = rec.withUnsafeBytes { h2.engine.recover(record: $0, now: h2.now) }
        #expect(took)
        #expect(h2.engine.nextDeadline == h2.now)
        h2.runTimers()
        var probes: [(Decoded, Side)] = []
        for i in 0 ..< h2.engine.outbox.count {
            let (b, side) = h2.engine.outbox.packet(i)
            if let d = Decoded(Array(b)) { probes.append((d, side)) }
        }
        h2.engine.outbox.removeAll()
        // Two probes per end, half the sequence space apart: LAN host, initial subflow, join subflow.
        #expect(probes.count == 6)
        #expect(probes.allSatisfy { $0.0.flags == ACK && $0.0.payload.isEmpty })
        let lan = probes.filter { $0.1 == .lan }
        #expect(lan.count == 2 && lan.allSatisfy { $0.0.source == s.c.server && $0.0.destination == s.c.client })
        #expect(lan[1].0.seq &- lan[0].0.seq == 1 << 31)
        #expect(probes.filter { $0.1 == .uplink(0) }.allSatisfy { $0.0.source == s.c.client && $0.0.destination == s.c.server })
        #expect(probes.filter { $0.1 == .uplink(1) }.count == 2)
        #expect(probes.filter { $0.1 == .uplink(1) }.allSatisfy { $0.0.source == s.joinLocal && $0.0.destination == s.c.server })

        // The peer's answer (a duplicate ACK with its DSS) on the join subflow.
        let answer = makeTCPPacket(from: s.c.server, to: s.joinLocal, seq: s.peerJoinISN &+ 1, ack: s.joinISN &+ 1, flags: ACK,
                                   options: [.mptcp(s.peerDSS(s.L &+ 1))])
        let e = h2.send(answer, .uplink(1))
        #expect(e.verdict == .drop(.unknown))
        let toPeer = try #require(e.outbox.first { $0.side == .uplink(1) }.flatMap { Decoded($0.bytes) })
        #expect(isRST(toPeer) && toPeer.destination == s.c.server && toPeer.source == s.joinLocal)
        #expect(toPeer.seq == s.joinISN &+ 1)
        #expect(fastcloseKey(toPeer) == s.c.peerKey)
        // Nothing towards the join's own 4-tuple on the LAN: the LAN host is probed instead.
        let toLAN = e.outbox.filter { $0.side == .lan }.compactMap { Decoded($0.bytes) }
        #expect(toLAN.count == 2 && toLAN.allSatisfy { $0.destination == s.c.client && $0.flags == ACK })

        // The LAN host's answer (its ACK, with its next expected sequence number).
        let hostAck = makeTCPPacket(from: s.c.client, to: s.c.server, seq: 0x1234_5678, ack: 0x0abc_def0, flags: ACK)
        let e2 = h2.send(hostAck, .lan)
        #expect(e2.verdict == .drop(.unknown))
        let rst = try #require(e2.outbox.first.flatMap { Decoded($0.bytes) })
        #expect(isRST(rst) && rst.destination == s.c.client && rst.seq == 0x0abc_def0 && e2.outbox.first?.side == .lan)
        #expect(h2.engine.stats.recoveredConnections == 1 && h2.engine.stats.recoveryResets == 2)

        // Later probe rounds (a probe or an answer may be lost), then no more.
        h2.advance(.seconds(1)); h2.runTimers()
        #expect(h2.engine.outbox.count == 6)
        h2.engine.outbox.removeAll()
        h2.advance(.seconds(2)); h2.runTimers()
        #expect(h2.engine.outbox.count == 6)
        h2.engine.outbox.removeAll()
        h2.advance(.seconds(10)); h2.runTimers()
        #expect(h2.engine.outbox.count == 0 && h2.engine.nextDeadline == nil)
        #expect(h2.engine.stats.recoveryProbes == 3)
    }

    @Test("records that are empty, cut short, of another version, or name an uplink the engine lacks are refused, never a trap")
    func badRecords() throws {
        let (_, rec) = try journaledTwoSubflows(seed: 63)
        let one = EngineHarness(seed: 1, config: EngineConfig()) // one uplink: the join's uplink 1 is unknown
        #expect(!rec.withUnsafeBytes { one.engine.recover(record: $0, now: one.now) })
        let h2 = EngineHarness(seed: 2, config: multipathConfig())
        var bad = [[UInt8](repeating: 0, count: RecoveryRecord.size), Array(rec[0 ..< 100]), rec, rec, rec, rec]
        bad[2][1] = 2 // version
        bad[3][2] = 0 // no subflows
        bad[4][2] = 9 // too many
        bad[5][16] = 5 // address family
        for b in bad { #expect(!b.withUnsafeBytes { h2.engine.recover(record: $0, now: h2.now) }) }
        #expect(h2.engine.nextDeadline == nil)
        var rng = SplitMix64(seed: 5)
        for _ in 0 ..< 2000 {
            var m = rec
            for _ in 0 ..< 4 { m[Int(rng.next() % UInt64(m.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            _ = m.withUnsafeBytes { h2.engine.recover(record: $0, now: h2.now) }
        }
        h2.runTimers()
    }

    @Test("one uplink: the record holds the initial subflow; a new engine probes both ends")
    func oneUplink() throws {
        let h = EngineHarness(seed: 64)
        h.engine.journaling = true
        var c = TestConn()
        _ = try h.lan(c.syn()).rewritten()
        _ = try h.peer(c.synAck()).rewritten()
        _ = h.lan(c.fromClient(seq: 1, ack: 1))
        let r = records(h.engine)
        let rec = try #require(r.values.first)
        #expect(r.count == 1 && rec[2] == 1)
        let h2 = EngineHarness(seed: 65)
        #expect(rec.withUnsafeBytes { h2.engine.recover(record: $0, now: h2.now) })
        h2.runTimers()
        #expect(h2.engine.outbox.count == 4)
    }
}

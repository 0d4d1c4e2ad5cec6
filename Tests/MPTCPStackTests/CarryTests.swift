import MPTCPStack
import TestSupport
import Testing

// First transmissions carried by the verdict of the client's segment
// (issue 15): the segment a subflow sends is the client's packet with a new
// header, and the same segment the outbox would have sent.

private let uplink1 = IPAddress("198.51.100.2")!
private let ACK = TCPFlags.ack

/// Carrying at any rate (by default only from about 180 Mbit/s per
/// subflow, `carryMinSegments`): these tests are about the mechanism.
private func carryConfig() -> EngineConfig {
    var config = multipathConfig()
    config.tuning.carryMinSegments = 0
    return config
}

@Suite("Carried first transmissions")
struct CarryTests {
    @Test("a client super-segment (GSO) leaves as its own verdict: one DSS mapping for all of it on subflow 0, nothing from the outbox; its wire segments are resent one by one")
    func superSegment() throws {
        let s = MPScript(config: carryConfig())
        try s.twoSubflows()
        var rng = SplitMix64(seed: 21)
        // Ten client segments of 1420 bytes (its MSS, 1432, less timestamps):
        // subflow 0's initial window.
        let data = randomBytes(14_200, &rng)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data), gso: true)
        #expect(e.isCarry)
        #expect(e.carriedTowards == .uplink(0))
        // The verdict carries the first part, as one super-segment: at most
        // a millisecond at the subflow's pacing rate, at least two segments
        // (`burstAllowance`); the outbox sends the rest, in wire segments.
        let d = try #require(e.decoded)
        #expect(d.source == s.c.client && d.destination == s.c.server)
        let k = d.payload.count
        #expect(k >= 2 * 1420 && k <= data.count)
        #expect(d.payload == Array(data.prefix(k)))
        let m = try #require(d.dss?.mapping)
        #expect(m.dsn == s.L &+ 1 && Int(m.length) == k && m.subflowSeq == 1)
        #expect(d.dss?.dataAck == s.R &+ 1)
        let rest = e.outbox.compactMap { Decoded($0.bytes) }.filter { !$0.payload.isEmpty }
        #expect(rest.reduce(0) { $0 + $1.payload.count } == data.count - k)
        #expect(rest.allSatisfy { $0.payload.count <= 1420 })
        // The kernel cuts it: every wire segment is IP + TCP (40 bytes of options) + 1420.
        #expect(20 + 20 + d.optionLength + 1420 <= 1500)
        #expect(s.h.engine.stats.carriedSegments == 1 && s.h.engine.stats.carriedBytes == UInt64(k))

        // No ACK comes: the timeout resends the first wire segment, alone.
        s.h.advance(.seconds(2))
        let resent = s.timerOut(nil).filter { !$0.payload.isEmpty }
        #expect(!resent.isEmpty)
        #expect(resent.allSatisfy { $0.payload.count <= 1420 && $0.bytes.count <= 1500 })
        let again = try #require(resent.first { $0.source == s.c.client })
        #expect(again.seq == s.c.cs(1) && again.payload == Array(data.prefix(1420)))
        #expect(again.dss?.mapping?.dsn == s.L &+ 1 && again.dss?.mapping?.length == 1420)
    }

    @Test("a carried segment is the very segment the outbox sends with carrying off: same addresses, numbers, options and payload")
    func sameSegment() throws {
        func firstData(carry: Bool) throws -> (Decoded, Bool) {
            var config = carryConfig()
            config.tuning.carryByVerdict = carry
            let s = MPScript(config: config)
            try s.twoSubflows()
            var rng = SplitMix64(seed: 22)
            let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: randomBytes(1000, &rng)))
            let d = try #require(s.out(e, .uplink(0)).first { !$0.payload.isEmpty })
            return (d, e.isCarry)
        }
        let (a, carriedA) = try firstData(carry: true)
        let (b, carriedB) = try firstData(carry: false)
        #expect(carriedA && !carriedB)
        #expect(a.source == b.source && a.destination == b.destination)
        #expect(a.seq == b.seq && a.ack == b.ack && a.flags == b.flags && a.window == b.window)
        #expect(a.options == b.options)
        #expect(a.payload == b.payload)
    }

    @Test("no super-segment is carried onto a subflow whose segments are smaller than the client's (a 1400-byte uplink): the outbox sends it in segments that fit")
    func narrowSubflow() throws {
        var config = carryConfig()
        config.uplinks[1].mtu = 1400
        let s = MPScript(config: config)
        try s.twoSubflows()
        var rng = SplitMix64(seed: 23)
        // Subflow 0's window first (carried, then the outbox) ...
        let first = randomBytes(14_200, &rng)
        let e1 = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: first), gso: true)
        #expect(e1.isCarry && e1.carriedTowards == .uplink(0))
        // ... then the join subflow is the one with room.
        let more = randomBytes(2840, &rng)
        let e2 = s.h.lan(s.c.fromClient(seq: 1 + 14_200, ack: 1, payload: more), gso: true)
        #expect(e2.verdict == .drop(.consumed))
        let on1 = s.out(e2, .uplink(1)).filter { !$0.payload.isEmpty }
        #expect(on1.reduce(0) { $0 + $1.payload.count } == more.count)
        #expect(on1.allSatisfy { $0.bytes.count <= 1400 && $0.source.address == uplink1 })
    }

    @Test("ACKs by verdict: the peer's pure DATA_ACK is written over as the client's ACK, the client's pure ACK as a subflow's DATA_ACK; nothing from the outbox")
    func acksByVerdict() throws {
        var config = carryConfig()
        config.tuning.acksByVerdict = true
        let s = MPScript(config: config)
        try s.twoSubflows()
        var rng = SplitMix64(seed: 24)
        let up = randomBytes(1000, &rng)
        #expect(s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: up)).isCarry)
        // The peer acknowledges the data on subflow 0: the client hears it.
        let e1 = s.h.peer(s.c.fromPeer(seq: 1, ack: 1 + 1000, mptcp: [s.peerDSS(s.L &+ 1 &+ 1000)]))
        #expect(e1.isCarry && e1.carriedTowards == .lan)
        #expect(e1.outbox.isEmpty)
        let a1 = try #require(e1.decoded)
        #expect(a1.source == s.c.server && a1.destination == s.c.client)
        #expect(a1.ack == s.c.cs(1 + 1000) && a1.flags == ACK && a1.payload.isEmpty && a1.mptcp.isEmpty)
        // Peer data for the client, then the client's ACK of it: our DATA_ACK.
        let down = randomBytes(500, &rng)
        let e2 = s.h.peer(s.c.fromPeer(seq: 1, ack: 1 + 1000,
                                       mptcp: [s.peerDSS(s.L &+ 1 &+ 1000, mapping: DSSMapping(dsn: s.R &+ 1, subflowSeq: 1, length: 500))],
                                       payload: down))
        #expect(try e2.rewritten().payload == down)
        let e3 = s.h.lan(s.c.fromClient(seq: 1 + 1000, ack: 1 + 500))
        #expect(e3.isCarry && e3.carriedTowards == .uplink(0))
        #expect(e3.outbox.isEmpty)
        let a3 = try #require(e3.decoded)
        #expect(a3.source == s.c.client && a3.destination == s.c.server && a3.payload.isEmpty)
        // (A 4-byte DATA_ACK on a pure ACK, as `sendAck` writes it.)
        let dataAck = try #require(a3.dss?.dataAck)
        #expect(UInt32(truncatingIfNeeded: dataAck) == UInt32(truncatingIfNeeded: s.R &+ 1 &+ 500) && a3.dss?.mapping == nil)
        #expect(s.h.engine.stats.acksByVerdict == 2)
    }

    @Test("a client segment no subflow has room for is held in the queue; the ACK that opens room releases it carrying the oldest unsent data; a reset releases what is still held as drops")
    func heldPackets() throws {
        var config = carryConfig()
        config.tuning.maxHeldPerConnection = 32
        let s = MPScript(config: config)
        try s.twoSubflows()
        var rng = SplitMix64(seed: 25)
        let data = randomBytes(4 * 14_200, &rng)
        func chunk(_ i: Int) -> [UInt8] { Array(data[i * 14_200 ..< (i + 1) * 14_200]) }
        // Both subflows' initial windows fill, each with one super-segment.
        let e0 = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: chunk(0)), gso: true)
        let e1 = s.h.lan(s.c.fromClient(seq: 1 + 14_200, ack: 1, payload: chunk(1)), gso: true)
        #expect(e0.isCarry && e1.isCarry && e0.carriedTowards != e1.carriedTowards)
        // The third: no room anywhere. Held, nothing sent.
        let e2 = s.h.lan(s.c.fromClient(seq: 1 + 28_400, ack: 1, payload: chunk(2)), gso: true)
        guard case .hold = e2.verdict else { Issue.record("not held: \(e2.verdict)"); return }
        #expect(e2.sent.allSatisfy { Decoded($0.bytes)?.payload.isEmpty ?? true })
        #expect(s.h.engine.stats.heldPackets == 1)
        // The peer acknowledges subflow 0's data: the held packet carries
        // the third chunk there, one mapping, nothing from the outbox.
        let sub0 = e0.carriedTowards == .uplink(0) ? 0 : 1
        let ack = sub0 == 0
            ? s.h.peer(s.c.fromPeer(seq: 1, ack: 1 + 14_200, mptcp: [s.peerDSS(s.L &+ 1 &+ 14_200)]))
            : s.onJoin(seq: 1, ack: 1 + 14_200, mptcp: [s.peerDSS(s.L &+ 1 &+ 14_200)])
        let rel = ack.released.compactMap { $0.bytes.flatMap(Decoded.init) }
        #expect(rel.count == 1)
        let r = try #require(rel.first)
        #expect(r.payload == chunk(2))
        #expect(r.dss?.mapping?.dsn == s.L &+ 1 &+ 28_400 && r.dss?.mapping?.length == 14_200)
        #expect(!ack.outbox.contains { Decoded($0.bytes).map { !$0.payload.isEmpty } ?? false })
        // A fourth (what room is left, if any, takes part of it), and a
        // fifth: held. The client resets: what is held is released as drops.
        _ = s.h.lan(s.c.fromClient(seq: 1 + 42_600, ack: 1, payload: Array(chunk(3)[..<7100])), gso: true)
        let e4 = s.h.lan(s.c.fromClient(seq: 1 + 49_700, ack: 1, payload: Array(chunk(3)[7100...])), gso: true)
        guard case .hold = e4.verdict else { Issue.record("not held: \(e4.verdict)"); return }
        let held = Int(s.h.engine.stats.heldPackets) - 1
        let rst = s.h.lan(s.c.fromClient(seq: 1 + 56_800, ack: 1, flags: TCPFlags.rst))
        #expect(rst.released.count == held && rst.released.allSatisfy { $0.bytes == nil })
    }

    @Test("by default a subflow at a low rate (a millisecond at its pacing rate is fewer than 16 segments) carries nothing: the outbox sends its segments")
    func notAtLowRate() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 24)
        let data = randomBytes(14_200, &rng)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data), gso: true)
        #expect(!e.isCarry)
        #expect(e.verdict == .drop(.consumed))
        let sent = (s.out(e, .uplink(0)) + s.out(e, .uplink(1))).filter { !$0.payload.isEmpty }
        #expect(sent.reduce(0) { $0 + $1.payload.count } == data.count)
        #expect(s.h.engine.stats.carriedSegments == 0)
    }

    @Test("a super-segment is never carried as one segment's worth (the kernel will not cut a GSO packet no longer than its segment size, and drops it without a counter): the outbox sends it; two segments' worth is carried")
    func noSingleSegmentSuperSegment() throws {
        let s = MPScript(config: carryConfig())
        try s.twoSubflows()
        var rng = SplitMix64(seed: 25)
        let data = randomBytes(3 * 1420, &rng)
        let e1 = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: Array(data[..<1420])), gso: true)
        #expect(!e1.isCarry)
        let sent = (s.out(e1, .uplink(0)) + s.out(e1, .uplink(1))).filter { !$0.payload.isEmpty }
        #expect(sent.count == 1 && sent.first?.payload == Array(data[..<1420]))
        #expect(s.h.engine.stats.carriedSegments == 0)
        let e2 = s.h.lan(s.c.fromClient(seq: 1 + 1420, ack: 1, payload: Array(data[1420...])), gso: true)
        #expect(e2.isCarry)
        #expect(try #require(e2.decoded).payload == Array(data[1420...]))
        #expect(s.h.engine.stats.carriedSegments == 1)
    }
}

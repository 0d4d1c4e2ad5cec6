import MPTCPStack
import TestSupport
import Testing

// First transmissions carried by the verdict of the client's segment
// (issue 15): the segment a subflow sends is the client's packet with a new
// header, and the same segment the outbox would have sent.

private let uplink1 = IPAddress("198.51.100.2")!

@Suite("Carried first transmissions")
struct CarryTests {
    @Test("a client super-segment (GSO) leaves as its own verdict: one DSS mapping for all of it on subflow 0, nothing from the outbox; its wire segments are resent one by one")
    func superSegment() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 21)
        // Ten client segments of 1420 bytes (its MSS, 1432, less timestamps):
        // subflow 0's initial window.
        let data = randomBytes(14_200, &rng)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data), gso: true)
        #expect(e.isCarry)
        #expect(e.carriedTowards == .uplink(0))
        #expect(!e.outbox.contains { Decoded($0.bytes).map { !$0.payload.isEmpty } ?? false })
        let d = try #require(e.decoded)
        #expect(d.source == s.c.client && d.destination == s.c.server)
        #expect(d.payload == data)
        let m = try #require(d.dss?.mapping)
        #expect(m.dsn == s.L &+ 1 && Int(m.length) == data.count && m.subflowSeq == 1)
        #expect(d.dss?.dataAck == s.R &+ 1)
        // The kernel cuts it: every wire segment is IP + TCP (40 bytes of options) + 1420.
        #expect(20 + 20 + d.optionLength + 1420 <= 1500)
        #expect(s.h.engine.stats.carriedSegments == 1 && s.h.engine.stats.carriedBytes == UInt64(data.count))

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
            var config = multipathConfig()
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
        var config = multipathConfig()
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
}

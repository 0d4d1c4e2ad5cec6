import MPTCPStack
import TestSupport
import Testing

// ACKs batched per read (`EngineTuning.batchAcks`, issue 15): the daemon
// reads up to 16 packets at once, and the ACKs they make due leave once, at
// the end of the batch (`Engine.endOfBatch`), as a receiver's GRO would
// coalesce them.

@Suite("ACKs batched per read")
struct BatchAckTests {
    private func script() throws -> MPScript {
        var config = multipathConfig()
        config.tuning.batchAcks = true
        let s = MPScript(config: config)
        try s.twoSubflows()
        return s
    }

    private func peerData(_ s: MPScript, at rel: UInt32, _ bytes: [UInt8]) -> EngineEvent {
        let m = DSSMapping(dsn: s.R &+ UInt64(rel), subflowSeq: rel, length: UInt16(bytes.count))
        return s.h.peer(s.c.fromPeer(seq: rel, ack: 1, mptcp: [s.peerDSS(s.L &+ 1, mapping: m)], payload: bytes))
    }

    @Test("in-order peer data: no subflow ACK per segment, one for all of them at the end of the batch")
    func subflowAckPerBatch() throws {
        let s = try script()
        var rng = SplitMix64(seed: 31)
        let data = randomBytes(3000, &rng)
        for i in 0 ..< 3 {
            let e = peerData(s, at: UInt32(1 + 1000 * i), Array(data[1000 * i ..< 1000 * (i + 1)]))
            #expect(try e.rewritten().payload == Array(data[1000 * i ..< 1000 * (i + 1)]))
            #expect(s.out(e, .uplink(0)).isEmpty)
        }
        #expect(s.h.engine.hasBatchedAcks)
        s.h.engine.endOfBatch(now: s.h.now)
        let acks = s.drain()
        #expect(acks.count == 1)
        let a = try #require(acks.first)
        #expect(a.side == .uplink(0) && a.packet.payload.isEmpty && a.packet.ack == s.c.ss(3001))
        #expect(!s.h.engine.hasBatchedAcks)
        // Nothing more is due: a second end of batch sends nothing.
        s.h.engine.endOfBatch(now: s.h.now)
        #expect(s.drain().isEmpty)
    }

    @Test("a hole in the subflow's sequence is acknowledged at once (with its SACK block), not at the end of the batch")
    func holeAckedAtOnce() throws {
        let s = try script()
        var rng = SplitMix64(seed: 32)
        _ = peerData(s, at: 1, randomBytes(1000, &rng))
        let e = peerData(s, at: 2001, randomBytes(1000, &rng))
        let ack = try #require(s.out(e, .uplink(0)).last)
        #expect(ack.ack == s.c.ss(1001) && ack.payload.isEmpty)
        #expect(ack.options.contains { if case .sack = $0 { return true } else { return false } })
    }

    @Test("the client's ACK moves our DATA_ACK: it goes to the peer at the end of the batch, once")
    func dataAckPerBatch() throws {
        let s = try script()
        var rng = SplitMix64(seed: 33)
        _ = peerData(s, at: 1, randomBytes(2000, &rng))
        s.h.engine.endOfBatch(now: s.h.now)
        _ = s.drain()
        // The client acknowledges in two steps within one batch.
        #expect(s.out(s.h.lan(s.c.fromClient(seq: 1, ack: 1001)), .uplink(0)).isEmpty)
        #expect(s.out(s.h.lan(s.c.fromClient(seq: 1, ack: 2001)), .uplink(0)).isEmpty)
        s.h.engine.endOfBatch(now: s.h.now)
        let sent = s.drain()
        #expect(sent.count == 1)
        let a = try #require(sent.first)
        // (A pure ACK's DATA_ACK is 4 bytes: the low half of the DSN.)
        let dataAck = try #require(a.packet.dss?.dataAck)
        #expect(a.side == .uplink(0) && UInt32(truncatingIfNeeded: dataAck) == UInt32(truncatingIfNeeded: s.R &+ 2001))
    }

    @Test("off (the default): each ACK leaves in the event that made it due")
    func offByDefault() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 34)
        let m = DSSMapping(dsn: s.R &+ 1, subflowSeq: 1, length: 1000)
        let e = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L &+ 1, mapping: m)], payload: randomBytes(1000, &rng)))
        #expect(s.out(e, .uplink(0)).last?.ack == s.c.ss(1001))
        #expect(!s.h.engine.hasBatchedAcks)
    }
}

import MPTCPStack
import TestSupport
import Testing

// Issue 13: segments the engine must not act on (forged from an uplink), in
// and out of the window, in both planes; connections the engine does not
// know. Each injection: what must not happen, and what the genuine segment
// still does.

private let ACK = TCPFlags.ack
private let RST = TCPFlags.rst
private let FIN = TCPFlags.fin
private let SYN = TCPFlags.syn

/// A one-uplink connection after the handshake and 1000 bytes each way
/// (acknowledged): the client expects server byte 1001, the peer client byte 1001.
private func established(seed: UInt64) throws -> (EngineHarness, TestConn, L: UInt64) {
    let h = EngineHarness(seed: seed)
    var c = TestConn()
    let key = try h.handshake(&c)
    let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
    var rng = SplitMix64(seed: seed)
    _ = try h.lan(c.fromClient(seq: 1, ack: 1, payload: randomBytes(1000, &rng))).rewritten()
    _ = try h.peer(c.fromPeer(seq: 1, ack: 1001, mptcp: [.dss(DSS(dataAck: L + 1001, dataAck8: true,
                                                                   mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 1000), dsn8: true))],
                              payload: randomBytes(1000, &rng))).rewritten()
    _ = try h.lan(c.fromClient(seq: 1001, ack: 1001)).rewritten()
    return (h, c, L)
}

private func isRST(_ d: Decoded) -> Bool { d.flags & RST != 0 }

@Suite("Validation")
struct ValidationTests {
    @Test("one uplink, RST: outside the window ignored; in the window but not exact a challenge ACK (once per 500 ms), no reset; exact: the client is reset")
    func rstOneUplink() throws {
        var (h, c, _) = try established(seed: 31)
        let far = h.peer(c.fromPeer(seq: 1001 &+ 50_000_000, ack: 1001, flags: RST))
        #expect(far.verdict == .drop(.invalid) && far.outbox.isEmpty && h.engine.stats.rstIgnored == 1)
        let near = h.peer(c.fromPeer(seq: 1001 + 3000, ack: 1001, flags: RST))
        #expect(near.verdict == .drop(.invalid) && h.engine.stats.rstChallenged == 1)
        let ch = try #require(near.outbox.first.flatMap { Decoded($0.bytes) })
        #expect(ch.flags == ACK && ch.ack == c.ss(1001) && ch.seq == c.cs(1001) && ch.destination == c.server)
        // A second one at once: no second ACK (rate limit).
        #expect(h.peer(c.fromPeer(seq: 1001 + 4000, ack: 1001, flags: RST)).outbox.isEmpty)
        // The connection still works.
        _ = try h.lan(c.fromClient(seq: 1001, ack: 1001, payload: [1, 2, 3])).rewritten()
        // The genuine RST at the next sequence number resets the client.
        let rst = try h.peer(c.fromPeer(seq: 1001, ack: 1004, flags: RST)).rewritten()
        #expect(isRST(rst) && rst.destination == c.client && rst.seq == c.ss(1001))
    }

    @Test("one uplink: MP_FASTCLOSE with a key not ours is ignored; with ours the client is reset")
    func fastcloseKey() throws {
        var (h, c, _) = try established(seed: 32)
        let key = try #require(h.engine.connectionCount == 1 ? UInt64?.some(0) : nil)
        _ = key
        let forged = h.peer(c.fromPeer(seq: 1001, ack: 1001, mptcp: [.mpFastclose(MPFastclose(receiverKey: 0x1234))]))
        #expect(forged.verdict == .drop(.invalid) && h.engine.stats.fastcloseRejected == 1)
        // The right key (ours: read off the third ACK) resets the client.
        var c2 = TestConn(client: Endpoint("192.168.1.11", 40_002))
        let ours = try h.handshake(&c2)
        let real = try h.peer(c2.fromPeer(seq: 1, ack: 1, mptcp: [.mpFastclose(MPFastclose(receiverKey: ours))])).rewritten()
        #expect(isRST(real) && real.destination == c2.client)
    }

    @Test("one uplink: a DATA_ACK for data never sent is dropped (the client's ACK does not move); a DATA_FIN 2^40 ahead or outside the subflow window is dropped (no FIN to the client)")
    func dataLevelWindow() throws {
        var (h, c, L) = try established(seed: 33)
        let R = c.remoteIDSN
        let ahead = h.peer(c.fromPeer(seq: 1001, ack: 1001, mptcp: [.dss(DSS(dataAck: L + 1001 + (1 << 40), dataAck8: true))]))
        #expect(ahead.verdict == .drop(.invalid) && h.engine.stats.dataAckInvalid == 1)
        let fin40 = h.peer(c.fromPeer(seq: 1001, ack: 1001, mptcp: [.dss(DSS(dataAck: L + 1001, dataAck8: true,
                                                                             mapping: DSSMapping(dsn: R + 1001 + (1 << 40), subflowSeq: 0, length: 1),
                                                                             dsn8: true, dataFin: true))]))
        #expect(fin40.verdict == .drop(.invalid) && h.engine.stats.dataOutOfWindow == 1)
        let offWindow = h.peer(c.fromPeer(seq: 1001 &+ 0x4000_0000, ack: 1001, mptcp: [.dss(DSS(dataAck: L + 1001, dataAck8: true,
                                                                                              mapping: DSSMapping(dsn: R + 1001, subflowSeq: 0, length: 1),
                                                                                              dsn8: true, dataFin: true))]))
        #expect(offWindow.verdict == .drop(.invalid) && h.engine.stats.outOfWindow == 1)
        // The genuine DATA_FIN at the next DSN, in the window: a FIN for the client.
        let fin = try h.peer(c.fromPeer(seq: 1001, ack: 1001, mptcp: [.dss(DSS(dataAck: L + 1001, dataAck8: true,
                                                                               mapping: DSSMapping(dsn: R + 1001, subflowSeq: 0, length: 1),
                                                                               dsn8: true, dataFin: true))])).rewritten()
        #expect(fin.flags & FIN != 0 && fin.seq == c.ss(1001))
    }

    @Test("one uplink: an infinite mapping that keeps the sequence numbers exact ends translation (the connection passes on as TCP), and MPTCP after it resets both ends; one that does not fit resets both ends at once")
    func infiniteMapping() throws {
        do {
            var (h, c, L) = try established(seed: 34)
            let R = c.remoteIDSN
            let inf = h.peer(c.fromPeer(seq: 1001, ack: 1001, mptcp: [.dss(DSS(dataAck: L + 1001, dataAck8: true,
                                                                                mapping: DSSMapping(dsn: R + 1001, subflowSeq: 1001, length: 0), dsn8: true))],
                                        payload: [9, 9, 9]))
            #expect(inf.verdict == .accept && h.engine.connectionCount == 0 && h.engine.stats.connectionsFallback == 1)
            // The peer goes on with MPTCP (the fallback was forged): both ends reset, nothing passed.
            let after = h.peer(c.fromPeer(seq: 1004, ack: 1001, mptcp: [.dss(DSS(dataAck: L + 1001, dataAck8: true,
                                                                                  mapping: DSSMapping(dsn: R + 1, subflowSeq: 1004, length: 3), dsn8: true))],
                                          payload: [7, 7, 7]))
            #expect(after.verdict == .drop(.unknown) && h.engine.stats.unknownResets == 1)
            let sides = after.outbox.compactMap { o in Decoded(o.bytes).map { ($0, o.side) } }
            #expect(sides.count == 2 && sides.allSatisfy { isRST($0.0) })
            #expect(sides.contains { $0.1 == .lan && $0.0.destination == c.client && $0.0.seq == c.ss(1004) })
            #expect(sides.contains { $0.1 == .uplink(0) && $0.0.destination == c.server && $0.0.seq == c.cs(1001) })
        }
        do {
            var (h, c, L) = try established(seed: 35)
            let R = c.remoteIDSN
            // The DSN does not match this segment's place: no exact fallback.
            let bad = h.peer(c.fromPeer(seq: 1001, ack: 1001, mptcp: [.dss(DSS(dataAck: L + 1001, dataAck8: true,
                                                                                mapping: DSSMapping(dsn: R + 1, subflowSeq: 0, length: 0), dsn8: true))],
                                        payload: [9, 9, 9]))
            let toClient = try bad.rewritten()
            #expect(isRST(toClient) && toClient.destination == c.client && toClient.payload.isEmpty)
            let toPeer = try #require(bad.outbox.first.flatMap { Decoded($0.bytes) })
            #expect(isRST(toPeer) && toPeer.destination == c.server)
            #expect(toPeer.mptcp.contains { if case .mpFastclose(let f) = $0 { return f.receiverKey == c.peerKey } else { return false } })
            #expect(h.engine.stats.abortedBoth == 1)
        }
    }

    @Test("a connection the engine does not know (a restart): the peer's MPTCP segment is reset towards both ends and not passed; the LAN host's challenge ACK gets a RST at exactly its ACK number; resets are rate-limited; plain packets pass")
    func unknownConnection() throws {
        let h = EngineHarness(seed: 36)
        var c = TestConn()
        let data = h.peer(c.fromPeer(seq: 5000, ack: 7000, mptcp: [.dss(DSS(dataAck: 99, dataAck8: true,
                                                                               mapping: DSSMapping(dsn: 1234, subflowSeq: 4999, length: 4), dsn8: true))],
                                     payload: [1, 2, 3, 4]))
        #expect(data.verdict == .drop(.unknown))
        let up = try #require(data.outbox.first { $0.side == .uplink(0) }.flatMap { Decoded($0.bytes) })
        let lan = try #require(data.outbox.first { $0.side == .lan }.flatMap { Decoded($0.bytes) })
        #expect(isRST(up) && up.seq == c.cs(7000) && up.source == c.client && up.destination == c.server)
        #expect(isRST(lan) && lan.seq == c.ss(5000) && lan.source == c.server && lan.destination == c.client)
        // The client expected another number: its challenge ACK gets the exact RST.
        let challenge = h.lan(c.fromClient(seq: 7000, ack: 4800))
        #expect(challenge.verdict == .drop(.unknown))
        let exact = try #require(challenge.outbox.first.flatMap { Decoded($0.bytes) })
        #expect(isRST(exact) && exact.seq == c.ss(4800) && exact.destination == c.client)
        // Plain TCP of unknown connections passes.
        var other = TestConn(client: Endpoint("192.168.1.77", 5555))
        #expect(h.peer(other.fromPeer(seq: 1, ack: 1, payload: [1])).verdict == .accept)
        #expect(h.lan(other.fromClient(seq: 1, ack: 2)).verdict == .accept)
        // A flood of them gets at most the limit of resets a second.
        for i in 0 ..< 2500 {
            var f = TestConn(client: Endpoint("192.168.2.\(i % 250 + 1)", UInt16(20_000 + i)))
            _ = h.peer(f.fromPeer(seq: 1, ack: 1, mptcp: [.dss(DSS(dataAck: 1, dataAck8: true))]))
        }
        #expect(h.engine.stats.unknownResetsLimited > 0 && h.engine.stats.unknownResets <= 2000)
    }

    @Test("two uplinks: a RST outside a subflow's window is ignored, inside a challenge ACK; MP_FASTCLOSE without our key ignored; a DATA_FIN 2^40 ahead dropped")
    func multipathInjections() throws {
        let s = MPScript()
        try s.twoSubflows()
        let far = s.h.peer(s.c.fromPeer(seq: 1 &+ 0x1000_0000, ack: 1, flags: RST))
        #expect(far.verdict == .drop(.invalid) && s.h.engine.stats.rstIgnored == 1 && s.h.engine.stats.subflowsFailed == 0)
        let near = s.h.peer(s.c.fromPeer(seq: 1 + 5000, ack: 1, flags: RST))
        #expect(near.verdict == .drop(.invalid) && s.h.engine.stats.rstChallenged == 1 && s.h.engine.stats.subflowsFailed == 0)
        #expect(s.out(near, .uplink(0)).contains { $0.flags == ACK && $0.ack == s.c.ss(1) })
        let fc = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [.mpFastclose(MPFastclose(receiverKey: 77))]))
        #expect(fc.verdict == .drop(.invalid) && s.h.engine.stats.fastcloseRejected == 1)
        let fin = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [.dss(DSS(dataAck: s.L + 1, dataAck8: true,
                                                                          mapping: DSSMapping(dsn: s.R + 1 + (1 << 40), subflowSeq: 0, length: 1),
                                                                          dsn8: true, dataFin: true))]))
        #expect(fin.verdict == .drop(.invalid) && s.h.engine.stats.dataOutOfWindow == 1)
        #expect(s.h.engine.stats.connectionsReset == 0)
    }

    @Test("two uplinks: REMOVE_ADDR(0) first probes the subflows to that address (both, here); those that answer are kept, one that does not is removed after the probe; none answering resets both ends")
    func removeAddrProbed() throws {
        let s = MPScript()
        try s.twoSubflows()
        var ids = InlineBytes40()
        _ = ids.append(0)
        let r = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [.removeAddr(RemoveAddr(addressIDs: ids))]))
        let probe = try #require(s.out(r, .uplink(0)).first)
        #expect(probe.flags == ACK && probe.seq == s.c.cs(0) && probe.payload.isEmpty) // a keepalive: SND.NXT - 1
        #expect(s.out(r, .uplink(1)).contains { $0.flags == ACK && $0.payload.isEmpty })
        #expect(s.h.engine.stats.removeAddrProbes == 2 && s.h.engine.stats.subflowsFailed == 0)
        // The peer answers on both: the removal is called off.
        s.h.advance(.milliseconds(50))
        _ = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L + 1)]))
        _ = s.onJoin(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L + 1)])
        s.h.advance(.seconds(1))
        _ = s.timerOut(nil)
        #expect(s.h.engine.stats.removeAddrIgnored == 2 && s.h.engine.stats.subflowsFailed == 0 && s.h.engine.stats.removeAddrApplied == 0)
        // Again; only the join answers: subflow 0 is given up, the connection goes on.
        s.h.advance(.seconds(1))
        _ = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [.removeAddr(RemoveAddr(addressIDs: ids))]))
        s.h.advance(.milliseconds(50))
        _ = s.onJoin(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L + 1)])
        s.h.advance(.seconds(1))
        _ = s.timerOut(nil)
        #expect(s.h.engine.stats.removeAddrApplied == 1 && s.h.engine.stats.subflowsFailed == 1 && s.h.engine.stats.connectionsReset == 0)
        // Once more, and nothing answers: no subflow, nothing to join: both ends reset.
        s.h.advance(.seconds(1))
        _ = s.onJoin(seq: 1, ack: 1, mptcp: [.removeAddr(RemoveAddr(addressIDs: ids))])
        s.h.advance(.seconds(1))
        let end = s.timerOut(nil)
        #expect(s.h.engine.stats.connectionsReset == 1 && s.h.engine.stats.abortedBoth == 1)
        #expect(end.contains { $0.flags & RST != 0 && $0.destination == s.c.client })
        #expect(end.contains { $0.flags & RST != 0 && $0.destination == s.c.server && $0.mptcp.contains { if case .mpFastclose = $0 { return true } else { return false } } })
        // A client short of our reset's sequence answers with a challenge
        // ACK: it gets a reset at its ACK number, which it takes.
        let challenge = s.h.lan(s.c.fromClient(seq: 1, ack: 1))
        let again = try #require(s.out(challenge, .lan).first)
        #expect(again.flags & RST != 0 && again.seq == s.c.ss(1) && again.destination == s.c.client)
        #expect(s.h.engine.stats.clientResetsRepeated == 1)
    }

    @Test("a SYN flood: half-open connections are bounded apart from established ones (the oldest forgotten), expire on the handshake timescale; established connections and new ones keep being translated")
    func synFlood() throws {
        var config = EngineConfig()
        config.maxHalfOpen = 16
        config.maxConnections = 64
        let h = EngineHarness(seed: 37, config: config)
        var c = TestConn()
        let key = try h.handshake(&c)
        for i in 0 ..< 500 {
            var f = TestConn(client: Endpoint("10.9.\(i / 250).\(i % 250 + 1)", UInt16(10_000 + i)))
            _ = try h.lan(f.syn()).rewritten()
        }
        #expect(h.engine.connectionCount == 17 && h.engine.stats.halfOpenEvicted == 484 && h.engine.stats.tableFull == 0)
        // The established connection is still translated.
        let d = try h.lan(c.fromClient(seq: 1, ack: 1, payload: [1, 2, 3])).rewritten()
        #expect(d.mpCapable?.dataLevelLength == 3 && d.mpCapable?.senderKey == key)
        // A new one during the flood completes its handshake and is translated.
        var n = TestConn(client: Endpoint("192.168.1.20", 41_000))
        _ = try h.handshake(&n)
        #expect(h.engine.stats.connectionsMPTCP == 2)
        // The flood's entries go after the handshake timeout; the established ones stay.
        h.advance(.seconds(31))
        h.runTimers()
        #expect(h.engine.connectionCount == 2 && h.engine.stats.halfOpenExpired == 15)
    }
}

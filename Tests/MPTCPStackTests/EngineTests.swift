import MPTCPStack
import TestSupport
import Testing

// Send/expect tests of the translator engine (initiator role, one subflow):
// packets built from values go in with an explicit time, the engine's keys
// come from a seeded SplitMix64, and every output is decoded, compared with
// exact expected values and checked by `checkOutputInvariants` (in
// EngineHarness.swift, applied to every output of every event).

private let H = MPCapable.flagHMACSHA256
private let A = MPCapable.flagChecksumRequired
private let ACK = TCPFlags.ack
private let PSH = TCPFlags.psh
private let FIN = TCPFlags.fin
private let RST = TCPFlags.rst
private let SYN = TCPFlags.syn

@Suite("EngineTests")
struct EngineTests {
    // MARK: - Handshake forms

    @Test("client SYN: MP_CAPABLE v1 length 4 (flag H, A when asked), other options kept, MSS unchanged",
          arguments: [false, true])
    func clientSYN(requestChecksums: Bool) throws {
        var config = EngineConfig()
        config.requestChecksums = requestChecksums
        let h = EngineHarness(seed: 1, config: config)
        var c = TestConn()
        let input = c.syn()
        let o = try h.lan(input).rewritten()
        let orig = try #require(Decoded(input))
        let flags: UInt8 = requestChecksums ? 0x81 : 0x01
        #expect(o.options == orig.options + [.mptcp(.mpCapable(MPCapable(version: 1, flags: flags)))])
        // On the wire: kind 30, length 4, subtype 0 | version 1, flags.
        #expect(Array(optionArea(of: o.bytes).suffix(4)) == [30, 4, 0x01, flags])
        #expect(o.optionLength == 24)
        #expect(o.mss == 1460)
        #expect(o.seq == c.clientISN && o.ack == 0 && o.flags == SYN && o.window == 64_240)
        #expect(o.payload.isEmpty)
        #expect(h.engine.connectionCount == 1)
        #expect(h.engine.stats.connectionsOpened == 1)
    }

    @Test("peer SYN/ACK: MPTCP removed, MSS reduced by the clamp (floor 536), key recorded",
          arguments: zip([1460, 1440, 8960, 600, 564, 500] as [UInt16], [1432, 1412, 8932, 572, 536, 500] as [UInt16]))
    func peerSynAck(mss: UInt16, clamped: UInt16) throws {
        let h = EngineHarness(seed: 2)
        var c = TestConn()
        h.lan(c.syn())
        c.peerTS &+= 1
        let ts = TCPOption.timestamps(value: c.peerTS, echoReply: c.clientTS)
        let input = makeTCPPacket(from: c.server, to: c.client, seq: c.serverISN, ack: c.cs(1), flags: SYN | ACK, window: 65_160,
                                  options: [.maxSegmentSize(mss), .sackPermitted, ts, .noOperation, .windowScale(7),
                                            .mptcp(.mpCapable(MPCapable(version: 1, flags: H, senderKey: c.peerKey)))])
        let o = try h.peer(input).rewritten()
        #expect(o.options == [.maxSegmentSize(clamped), .sackPermitted, ts, .noOperation, .windowScale(7)])
        #expect(o.mptcp.isEmpty)
        #expect(o.seq == c.serverISN && o.ack == c.cs(1) && o.flags == SYN | ACK && o.window == 65_160)
        #expect(h.engine.stats.connectionsMPTCP == 1)
        // The key was recorded: the third ACK echoes it.
        let third = try h.lan(c.fromClient(seq: 1, ack: 1)).rewritten()
        #expect(third.mpCapable?.receiverKey == c.peerKey)
    }

    @Test("third ACK: MP_CAPABLE length 20 with the engine's key and the peer's")
    func thirdAck() throws {
        let h = EngineHarness(seed: 1)
        var c = TestConn()
        h.lan(c.syn())
        h.peer(c.synAck())
        let o = try h.lan(c.fromClient(seq: 1, ack: 1)).rewritten()
        // SplitMix64(seed: 1)'s first output, and its SHA-256 token and IDSN,
        // computed independently (Python hashlib).
        let key = EngineHarness.key(seed: 1)
        #expect(key == 0x910A_2DEC_8902_5CC1)
        #expect(MPTCPCrypto.token(key: key) == 0x8AF2_20C7)
        #expect(MPTCPCrypto.idsn(key: key) == 0xD8B9_EA35_B4E9_40AD)
        let mpc = MPCapable(version: 1, flags: H, senderKey: key, receiverKey: c.peerKey)
        #expect(o.options == c.clientTSOptions + [.mptcp(.mpCapable(mpc))])
        let area = optionArea(of: o.bytes)
        #expect(area.count == 32 && area[12] == 30 && area[13] == 20)
        #expect(o.seq == c.cs(1) && o.ack == c.ss(1) && o.flags == ACK && o.window == c.window)
        // A pure ACK before the peer has sent a DSS repeats it.
        let again = try h.lan(c.fromClient(seq: 1, ack: 1)).rewritten()
        #expect(again.mpCapable == mpc)
    }

    @Test("first data: MP_CAPABLE length 22 with the data-level length")
    func firstData() throws {
        let h = EngineHarness(seed: 1)
        var c = TestConn()
        let key = try h.handshake(&c)
        var rng = SplitMix64(seed: 11)
        let data = randomBytes(1000, &rng)
        let o = try h.lan(c.fromClient(seq: 1, ack: 1, flags: PSH | ACK, payload: data)).rewritten()
        let mpc = MPCapable(version: 1, flags: H, senderKey: key, receiverKey: c.peerKey, dataLevelLength: 1000)
        #expect(o.options == c.clientTSOptions + [.mptcp(.mpCapable(mpc)), .noOperation, .noOperation])
        let area = optionArea(of: o.bytes)
        #expect(area[12] == 30 && area[13] == 22 && area[32] == 0x03 && area[33] == 0xE8)
        #expect(o.payload == data)
        #expect(o.seq == c.cs(1) && o.ack == c.ss(1) && o.flags == PSH | ACK)
    }

    @Test("after the peer's first DSS: client segments carry DSS (mapping + 8-byte DATA_ACK), exact values")
    func dssAfterPeerDSS() throws {
        let h = EngineHarness(seed: 1)
        var c = TestConn()
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        var rng = SplitMix64(seed: 12)
        let first = randomBytes(1000, &rng), down = randomBytes(500, &rng), second = randomBytes(700, &rng)
        h.lan(c.fromClient(seq: 1, ack: 1, flags: PSH | ACK, payload: first))
        let pd = try h.peer(c.fromPeer(seq: 1, ack: 1001, flags: PSH | ACK,
                                       mptcp: [.dss(DSS(dataAck: L + 1001, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 500)))],
                                       payload: down)).rewritten()
        #expect(pd.seq == c.ss(1) && pd.ack == c.cs(1001) && pd.payload == down)

        let o = try h.lan(c.fromClient(seq: 1001, ack: 501, flags: PSH | ACK, payload: second)).rewritten()
        let dss = DSS(dataAck: R + 501, dataAck8: true, mapping: DSSMapping(dsn: L + 1001, subflowSeq: 1001, length: 700), dsn8: true)
        #expect(o.options == c.clientTSOptions + [.mptcp(.dss(dss)), .noOperation, .noOperation])
        #expect(o.optionLength == 40)
        #expect(o.seq == c.cs(1001) && o.ack == c.ss(501) && o.payload == second)

        // A pure ACK: DATA_ACK only.
        let a = try h.lan(c.fromClient(seq: 1701, ack: 501)).rewritten()
        #expect(a.options == c.clientTSOptions + [.mptcp(.dss(DSS(dataAck: R + 501)))])
        #expect(a.seq == c.cs(1701) && a.ack == c.ss(501))
        #expect(h.engine.stats.translatedToPeer == 4 && h.engine.stats.translatedToLAN == 1)
    }

    @Test("a client without timestamps: DSS alone in the option area")
    func noTimestamps() throws {
        let h = EngineHarness(seed: 4)
        var c = TestConn()
        c.timestamps = false
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        h.lan(c.fromClient(seq: 1, ack: 1, payload: [1, 2, 3]))
        h.peer(c.fromPeer(seq: 1, ack: 4, mptcp: [.dss(DSS(dataAck: L + 4, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 2)))], payload: [9, 9]))
        let o = try h.lan(c.fromClient(seq: 4, ack: 3, payload: [4, 5])).rewritten()
        let dss = DSS(dataAck: R + 3, mapping: DSSMapping(dsn: L + 4, subflowSeq: 4, length: 2))
        #expect(o.options == [.mptcp(.dss(dss)), .noOperation, .noOperation])
    }

    // MARK: - Peer data

    @Test("peer data with a DSS mapping (8- or 4-byte DSN, 8- or 4-byte DATA_ACK) -> plain TCP with the right seq/ack",
          arguments: [true, false], [true, false])
    func peerData(dsn8: Bool, ack8: Bool) throws {
        let h = EngineHarness(seed: 6)
        var c = TestConn(clientISN: 0xDEAD_0000, serverISN: 0x0BAD_F00D)
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        var rng = SplitMix64(seed: 13)
        h.lan(c.fromClient(seq: 1, ack: 1, flags: PSH | ACK, payload: randomBytes(300, &rng)))
        var off: UInt32 = 0
        for n: UInt32 in [1200, 800, 1] {
            let data = randomBytes(Int(n), &rng)
            let dss = DSS(dataAck: L + 301, dataAck8: ack8,
                          mapping: DSSMapping(dsn: R + 1 + UInt64(off), subflowSeq: 1 + off, length: UInt16(n)), dsn8: dsn8)
            let o = try h.peer(c.fromPeer(seq: 1 + off, ack: 301, flags: PSH | ACK, mptcp: [.dss(dss)], payload: data)).rewritten()
            #expect(o.options == c.peerTSOptions)
            #expect(o.mptcp.isEmpty)
            #expect(o.seq == c.ss(1 + off) && o.ack == c.cs(301) && o.flags == PSH | ACK && o.window == c.window)
            #expect(o.payload == data)
            off += n
        }
        // A pure DATA_ACK: an ACK at the next sequence the client expects.
        let a = try h.peer(c.fromPeer(seq: 1 + off, ack: 301, mptcp: [.dss(DSS(dataAck: L + 301, dataAck8: ack8))])).rewritten()
        #expect(a.seq == c.ss(1 + off) && a.ack == c.cs(301) && a.mptcp.isEmpty)
    }

    @Test("one mapping covering several segments (only the first carries it); beyond it -> unmapped")
    func mappingSpansSegments() throws {
        let h = EngineHarness(seed: 7)
        var c = TestConn()
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        h.lan(c.fromClient(seq: 1, ack: 1, payload: [0x41]))
        var rng = SplitMix64(seed: 14)
        let data = randomBytes(3000, &rng)
        let map = DSS(dataAck: L + 2, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 3000))
        let ackOnly = DSS(dataAck: L + 2)
        let parts: [(UInt32, [MPTCPOption])] = [(0, [.dss(map)]), (1000, [.dss(ackOnly)]), (2000, [])]
        for (o0, opts) in parts {
            let piece = Array(data[Int(o0) ..< Int(o0) + 1000])
            let o = try h.peer(c.fromPeer(seq: 1 + o0, ack: 2, mptcp: opts, payload: piece)).rewritten()
            #expect(o.seq == c.ss(1 + o0) && o.ack == c.cs(2) && o.payload == piece && o.mptcp.isEmpty)
        }
        let ev = h.peer(c.fromPeer(seq: 3001, ack: 2, mptcp: [.dss(ackOnly)], payload: [1, 2, 3]))
        #expect(ev.verdict == .drop(.unmapped))
        #expect(h.engine.stats.dropped(.unmapped) == 1)
    }

    // MARK: - Close

    @Test("client closes first: DATA_FIN both ways, the engine ACKs the peer's subflow FIN, table empties after timeWait")
    func closeClientFirst() throws {
        let h = EngineHarness(seed: 3)
        var c = TestConn()
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        var rng = SplitMix64(seed: 15)
        h.advance(.milliseconds(5))
        h.lan(c.fromClient(seq: 1, ack: 1, flags: PSH | ACK, payload: randomBytes(100, &rng)))
        h.advance(.milliseconds(5))
        h.peer(c.fromPeer(seq: 1, ack: 101, flags: PSH | ACK,
                          mptcp: [.dss(DSS(dataAck: L + 101, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 200)))],
                          payload: randomBytes(200, &rng)))

        // The client's FIN: a DATA_FIN alone (subflow seq 0, length 1), FIN kept.
        h.advance(.milliseconds(5))
        let fin = try h.lan(c.fromClient(seq: 101, ack: 201, flags: FIN | ACK)).rewritten()
        let dataFin = DSS(dataAck: R + 201, mapping: DSSMapping(dsn: L + 101, subflowSeq: 0, length: 1), dataFin: true)
        #expect(fin.options == c.clientTSOptions + [.mptcp(.dss(dataFin)), .noOperation, .noOperation])
        #expect(fin.seq == c.cs(101) && fin.ack == c.ss(201) && fin.flags == FIN | ACK)

        // The peer acknowledges the DATA_FIN (and the subflow FIN).
        h.advance(.milliseconds(5))
        let ack1 = try h.peer(c.fromPeer(seq: 201, ack: 102, mptcp: [.dss(DSS(dataAck: L + 102))])).rewritten()
        #expect(ack1.seq == c.ss(201) && ack1.ack == c.cs(102) && ack1.flags == ACK)

        // The peer's DATA_FIN on a pure ACK -> a FIN for the client.
        h.advance(.milliseconds(5))
        let peerDataFin = DSS(dataAck: L + 102, mapping: DSSMapping(dsn: R + 201, subflowSeq: 0, length: 1), dataFin: true)
        let pf = try h.peer(c.fromPeer(seq: 201, ack: 102, mptcp: [.dss(peerDataFin)])).rewritten()
        #expect(pf.seq == c.ss(201) && pf.ack == c.cs(102) && pf.flags == FIN | ACK && pf.mptcp.isEmpty)
        #expect(h.engine.stats.connectionsClosed == 0)

        // The client ACKs that FIN: DATA_ACK covers the DATA_FIN; the subflow
        // ACK stays at what the peer sent on the subflow (no subflow FIN yet).
        h.advance(.milliseconds(5))
        let last = try h.lan(c.fromClient(seq: 102, ack: 202)).rewritten()
        #expect(last.options == c.clientTSOptions + [.mptcp(.dss(DSS(dataAck: R + 202)))])
        #expect(last.seq == c.cs(102) && last.ack == c.ss(201))
        #expect(h.engine.stats.connectionsClosed == 1)
        let closedAt = h.now

        // The peer closes the subflow: the client will not ACK that FIN, so
        // the engine does, on its own.
        h.advance(.milliseconds(5))
        let sfin = h.peer(c.fromPeer(seq: 201, ack: 102, flags: FIN | ACK, mptcp: [.dss(DSS(dataAck: L + 102))]))
        #expect(sfin.verdict == .drop(.closed))
        try #require(sfin.outbox.count == 1)
        #expect(sfin.outbox[0].side == .uplink(0))
        let own = try #require(Decoded(sfin.outbox[0].bytes))
        #expect(own.source == c.client && own.destination == c.server)
        #expect(own.seq == c.cs(102) && own.ack == c.ss(202) && own.flags == ACK && own.window == c.window)
        #expect(own.payload.isEmpty)
        // Timestamps: the client's latest TSval, echoing the peer's FIN.
        #expect(own.options == c.clientTSOptions + [.mptcp(.dss(DSS(dataAck: R + 202)))])
        #expect(own.dss?.dataAck == (R + 201) + 1) // DATA_FIN DSN + 1
        #expect(tcpChecksumOK(sfin.outbox[0].bytes))
        #expect(h.engine.stats.originated == 1)

        // A late duplicate ACK from the client is not sent on (it would draw a RST).
        let late = h.lan(c.fromClient(seq: 102, ack: 202))
        #expect(late.verdict == .drop(.closed))

        // TIME_WAIT: remembered until closedAt + timeWait.
        h.advance(to: Instant(nanoseconds: closedAt.nanoseconds + 60_000_000_000 - 1))
        h.runTimers()
        #expect(h.engine.connectionCount == 1)
        h.advance(.nanoseconds(1))
        h.runTimers()
        #expect(h.engine.connectionCount == 0)
        #expect(h.engine.nextDeadline == nil || h.engine.nextDeadline! > h.now)
        // Gone: its packets now pass untouched.
        #expect(h.lan(c.fromClient(seq: 102, ack: 202)).verdict == .accept)
        #expect(h.engine.stats.untracked == 1)
    }

    @Test("peer closes first: DATA_FIN on its last data, client FIN with data, engine ACKs the subflow FIN")
    func closePeerFirst() throws {
        let h = EngineHarness(seed: 8)
        var c = TestConn(client: Endpoint("10.1.2.3", 50_000), server: Endpoint("198.51.100.7", 8080),
                         clientISN: 0xFFFF_FFF0, serverISN: 0xFFFF_FF00) // both sequence spaces wrap
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        var rng = SplitMix64(seed: 16)
        h.lan(c.fromClient(seq: 1, ack: 1, flags: PSH | ACK, payload: randomBytes(50, &rng)))

        // 300 bytes and the DATA_FIN in one mapping (length 301), no subflow FIN.
        let last = randomBytes(300, &rng)
        let m = DSS(dataAck: L + 51, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 301), dataFin: true)
        let o = try h.peer(c.fromPeer(seq: 1, ack: 51, flags: PSH | ACK, mptcp: [.dss(m)], payload: last)).rewritten()
        #expect(o.flags == FIN | PSH | ACK && o.seq == c.ss(1) && o.ack == c.cs(51) && o.payload == last && o.mptcp.isEmpty)

        // The client ACKs data and FIN: the subflow ACK stops at the data.
        let a = try h.lan(c.fromClient(seq: 51, ack: 302)).rewritten()
        #expect(a.dss == DSS(dataAck: R + 302) && a.ack == c.ss(301))

        // The client's FIN with 20 bytes: one mapping, length 21, DATA_FIN.
        let tail = randomBytes(20, &rng)
        let f = try h.lan(c.fromClient(seq: 51, ack: 302, flags: FIN | PSH | ACK, payload: tail)).rewritten()
        let fm = DSS(dataAck: R + 302, mapping: DSSMapping(dsn: L + 51, subflowSeq: 51, length: 21), dataFin: true)
        #expect(f.options == c.clientTSOptions + [.mptcp(.dss(fm)), .noOperation, .noOperation])
        #expect(f.flags == FIN | PSH | ACK && f.seq == c.cs(51) && f.ack == c.ss(301) && f.payload == tail)

        // The peer acknowledges it: the client hears it at its next expected seq.
        let pa = try h.peer(c.fromPeer(seq: 301, ack: 72, mptcp: [.dss(DSS(dataAck: L + 72))])).rewritten()
        #expect(pa.seq == c.ss(302) && pa.ack == c.cs(72) && pa.flags == ACK)
        #expect(h.engine.stats.connectionsClosed == 1)

        // The peer's subflow FIN: the engine ACKs it with DATA_ACK = DATA_FIN DSN + 1.
        let sfin = h.peer(c.fromPeer(seq: 301, ack: 72, flags: FIN | ACK, mptcp: [.dss(DSS(dataAck: L + 72))]))
        #expect(sfin.verdict == .drop(.closed))
        try #require(sfin.outbox.count == 1)
        let own = try #require(Decoded(sfin.outbox[0].bytes))
        #expect(own.seq == c.cs(72) && own.ack == c.ss(302) && own.flags == ACK)
        #expect(own.dss == DSS(dataAck: R + 301 + 1))

        h.expectForgottenAfterTimeWait()
    }

    @Test("data, DATA_FIN and subflow FIN in one peer segment: the client's ACK closes the subflow, no own ACK")
    func closeCombinedFin() throws {
        let h = EngineHarness(seed: 9)
        var c = TestConn()
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        h.lan(c.fromClient(seq: 1, ack: 1, payload: [1, 2, 3, 4]))
        let m = DSS(dataAck: L + 5, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 11), dataFin: true)
        let o = try h.peer(c.fromPeer(seq: 1, ack: 5, flags: FIN | PSH | ACK, mptcp: [.dss(m)], payload: Array(repeating: 7, count: 10))).rewritten()
        #expect(o.flags == FIN | PSH | ACK && o.seq == c.ss(1))
        let a = try h.lan(c.fromClient(seq: 5, ack: 12)).rewritten()
        #expect(a.ack == c.ss(12) && a.dss == DSS(dataAck: R + 12))
        let f = try h.lan(c.fromClient(seq: 5, ack: 12, flags: FIN | ACK)).rewritten()
        #expect(f.dss == DSS(dataAck: R + 12, mapping: DSSMapping(dsn: L + 5, subflowSeq: 0, length: 1), dataFin: true))
        let pa = h.peer(c.fromPeer(seq: 12, ack: 6, mptcp: [.dss(DSS(dataAck: L + 6))]))
        #expect(pa.isRewrite && pa.outbox.isEmpty)
        #expect(h.engine.stats.connectionsClosed == 1 && h.engine.stats.originated == 0)
        h.advance(.seconds(61))
        h.runTimers()
        #expect(h.engine.connectionCount == 0)
    }

    @Test("idle connections expire after idleTimeout")
    func idleTimeout() throws {
        var config = EngineConfig()
        config.idleTimeout = .seconds(30)
        let h = EngineHarness(seed: 10, config: config)
        var c = TestConn()
        _ = try h.handshake(&c)
        h.advance(.seconds(20))
        h.lan(c.fromClient(seq: 1, ack: 1))
        h.advance(.seconds(29))
        h.runTimers()
        #expect(h.engine.connectionCount == 1)
        h.advance(.seconds(1))
        h.runTimers()
        #expect(h.engine.connectionCount == 0)
        #expect(h.engine.stats.connectionsExpired == 1)
    }

    // MARK: - Fallback

    enum FallbackSynAck: String, CaseIterable, Sendable { case noMPCapable, version0, noFlagH }

    @Test("fallback: a SYN/ACK without usable MP_CAPABLE -> accept, connection forgotten, later packets pass",
          arguments: FallbackSynAck.allCases)
    func fallback(kind: FallbackSynAck) throws {
        let h = EngineHarness(seed: 11)
        var c = TestConn()
        #expect(h.lan(c.syn()).isRewrite)
        let mpc: MPCapable? = switch kind {
        case .noMPCapable: nil
        case .version0: MPCapable(version: 0, flags: H, senderKey: c.peerKey)
        case .noFlagH: MPCapable(version: 1, flags: 0, senderKey: c.peerKey)
        }
        #expect(h.lan(c.syn()).isRewrite) // a retransmission before the answer is still translated
        #expect(h.peer(c.synAck(mpCapable: mpc)).verdict == .accept)
        #expect(h.engine.connectionCount == 0)
        #expect(h.engine.stats.connectionsFallback == 1)
        #expect(h.lan(c.fromClient(seq: 1, ack: 1)).verdict == .accept)
        #expect(h.lan(c.fromClient(seq: 1, ack: 1, payload: [1, 2, 3])).verdict == .accept)
        #expect(h.peer(c.fromPeer(seq: 1, ack: 4, payload: [4, 5])).verdict == .accept)
        #expect(h.lan(c.fromClient(seq: 4, ack: 3, flags: FIN | ACK)).verdict == .accept)
        #expect(h.engine.stats.untracked == 4)
    }

    @Test("fallback later: peer data with no DSS before any DSS, or an infinite mapping")
    func fallbackLater() throws {
        // Data without MPTCP options before the peer sent any DSS (stripped by a middlebox).
        do {
            let h = EngineHarness(seed: 12)
            var c = TestConn()
            _ = try h.handshake(&c)
            #expect(h.peer(c.fromPeer(seq: 1, ack: 1, payload: [1, 2, 3])).verdict == .accept)
            #expect(h.engine.connectionCount == 0 && h.engine.stats.connectionsFallback == 1)
            #expect(h.lan(c.fromClient(seq: 1, ack: 4)).verdict == .accept)
        }
        // An infinite mapping (data-level length 0).
        do {
            let h = EngineHarness(seed: 13)
            var c = TestConn()
            let key = try h.handshake(&c)
            let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
            let inf = DSS(dataAck: L + 1, mapping: DSSMapping(dsn: R + 1, subflowSeq: 0, length: 0))
            #expect(h.peer(c.fromPeer(seq: 1, ack: 1, mptcp: [.dss(inf)], payload: [1, 2, 3])).verdict == .accept)
            #expect(h.engine.connectionCount == 0 && h.engine.stats.connectionsFallback == 1)
        }
    }

    // MARK: - Malformed peers and input

    @Test("peer data with no mapping after a DSS was seen -> drop(.unmapped)")
    func unmappedPeerData() throws {
        let h = EngineHarness(seed: 14)
        var c = TestConn()
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key)
        // The peer's first DSS: a DATA_ACK only.
        let a = try h.peer(c.fromPeer(seq: 1, ack: 1, mptcp: [.dss(DSS(dataAck: L + 1))])).rewritten()
        #expect(a.seq == c.ss(1) && a.ack == c.cs(1))
        let ev = h.peer(c.fromPeer(seq: 1, ack: 1, mptcp: [.dss(DSS(dataAck: L + 1))], payload: [1, 2, 3, 4]))
        #expect(ev.verdict == .drop(.unmapped))
        let ev2 = h.peer(c.fromPeer(seq: 1, ack: 1, payload: [1, 2, 3, 4]))
        #expect(ev2.verdict == .drop(.unmapped))
        #expect(h.engine.stats.dropped(.unmapped) == 2)
        #expect(h.engine.connectionCount == 1)
    }

    @Test("garbage, truncated and non-TCP input -> accept, counted, on either side")
    func garbageInput() throws {
        let h = EngineHarness(seed: 15)
        var c = TestConn()
        _ = try h.handshake(&c)
        let good = c.fromClient(seq: 1, ack: 1, payload: Array(repeating: 0x55, count: 40))
        let good6 = makeTCPPacket(from: Endpoint("fd00::1", 1), to: Endpoint("2001:db8::1", 2), seq: 1, ack: 1, flags: ACK)
        var malformed: [[UInt8]] = [
            [],
            [0x45],
            Array(good.prefix(19)), // IPv4 header cut
            Array(good.prefix(30)), // TCP header cut (total length says more)
            [UInt8](repeating: 0, count: 60), // version 0
            [UInt8](repeating: 0xff, count: 60), // version 15
            Array(good6.prefix(50)),
        ]
        var shortTotal = good // IPv4 total length 30: TCP header truncated
        shortTotal[2] = 0; shortTotal[3] = 30
        malformed.append(shortTotal)
        var badOffset = good // TCP data offset 4 (< 5)
        badOffset[20 + 12] = 0x40
        malformed.append(badOffset)
        var bigOffset = good // data offset 15 with a 20-byte... segment shorter than 60
        bigOffset[20 + 12] = 0xF0
        malformed.append(Array(bigOffset.prefix(20 + 50)).withTotalLength(70))
        var ihl = good // IHL 4
        ihl[0] = 0x44
        malformed.append(ihl)
        var frag = good // a non-first fragment
        frag[6] = 0x00; frag[7] = 0x10
        malformed.append(frag)
        var rng = SplitMix64(seed: 0x6A72_6261_6765)
        for _ in 0 ..< 20 { malformed.append(randomBytes(Int(rng.next() % 80), &rng).withVersion([0, 5, 7, 15][Int(rng.next() % 4)])) }

        var notTCP: [[UInt8]] = []
        var udp = good
        udp[9] = 17
        notTCP.append(udp)
        var icmp6 = good6
        icmp6[6] = IPProtocol.icmpv6
        notTCP.append(icmp6)

        let before = h.engine.stats
        for p in malformed + notTCP {
            for side in [Side.lan, .uplink(0)] {
                let ev = h.send(p, side, acceptedCheck: .none)
                #expect(ev.verdict == .accept, "\(hex(p))")
                #expect(ev.outbox.isEmpty)
            }
        }
        let s = h.engine.stats
        #expect(s.packets - before.packets == UInt64(2 * (malformed.count + notTCP.count)))
        #expect(s.malformed - before.malformed == UInt64(2 * malformed.count))
        #expect(s.notTCP - before.notTCP == UInt64(2 * notTCP.count))
        #expect(h.engine.connectionCount == 1)
        // The connection is unharmed.
        #expect(h.lan(good).isRewrite)
    }

    @Test("seeded mutation fuzz of a live connection's packets: never a crash, outputs stay well-formed")
    func mutationFuzz() throws {
        let seed: UInt64 = 0x4655_5A5A_454E_4731
        var rng = SplitMix64(seed: seed)
        let h = EngineHarness(seed: seed)
        var c = TestConn()
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        var t: [([UInt8], Side)] = []
        t.append((c.syn(), .lan))
        t.append((c.synAck(), .uplink(0)))
        t.append((c.fromClient(seq: 1, ack: 1), .lan))
        t.append((c.fromClient(seq: 1, ack: 1, payload: randomBytes(200, &rng)), .lan))
        t.append((c.fromPeer(seq: 1, ack: 201, mptcp: [.dss(DSS(dataAck: L + 201, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 300)))],
                             payload: randomBytes(300, &rng)), .uplink(0)))
        t.append((c.fromPeer(seq: 301, ack: 201, mptcp: [.dss(DSS(dataAck: L + 201, dataAck8: false, mapping: DSSMapping(dsn: R + 301, subflowSeq: 301, length: 1), dsn8: false, dataFin: true))]), .uplink(0)))
        t.append((c.fromClient(seq: 201, ack: 302, flags: FIN | ACK), .lan))
        t.append((c.fromPeer(seq: 301, ack: 202, flags: FIN | ACK, mptcp: [.dss(DSS(dataAck: L + 202))]), .uplink(0)))
        t.append((c.fromPeer(seq: 301, ack: 202, mptcp: [.addAddr(AddAddr(addressID: 2, address: .v4(IPv4Address(192, 0, 2, 9)), hmac: 0x0102_0304_0506_0708))]), .uplink(0)))
        t.append((c.fromClient(seq: 201, ack: 302, flags: RST | ACK), .lan))
        t.append((c.fromPeer(seq: 301, ack: 202, flags: RST, mptcp: [.mpFastclose(MPFastclose(receiverKey: key))]), .uplink(0)))
        var v6 = TestConn(client: Endpoint("fd00::7", 33_333), server: Endpoint("2001:db8::9", 443))
        t.append((v6.syn(), .lan))
        t.append((v6.synAck(), .uplink(0)))
        t.append((v6.fromClient(seq: 1, ack: 1, payload: randomBytes(100, &rng)), .lan))

        var verdicts = [0, 0, 0]
        for i in 0 ..< 3000 {
            let pick = t[Int(rng.next() % UInt64(t.count))]
            var p = pick.0
            let side = pick.1
            let mutations = Int(rng.next() % 4)
            for _ in 0 ..< mutations where !p.isEmpty {
                let limit = rng.next() & 1 == 0 ? min(p.count, 80) : p.count
                let at = Int(rng.next() % UInt64(limit))
                switch rng.next() % 4 {
                case 0: p[at] ^= 1 << UInt8(rng.next() % 8)
                case 1: p[at] = UInt8(truncatingIfNeeded: rng.next())
                case 2: p.removeLast(Int(rng.next() % UInt64(p.count)))
                default: p[at] = [0, 1, 2, 30, 0xff][Int(rng.next() % 5)]
                }
            }
            let ev = h.send(p, side, gso: false, acceptedCheck: .none, rewriteCheck: .structural)
            switch ev.verdict {
            case .accept: verdicts[0] += 1
            case .drop, .hold: verdicts[1] += 1
            case .rewrite, .carry: verdicts[2] += 1
            }
            if i % 500 == 0 { h.advance(.seconds(30)); h.runTimers() }
        }
        #expect(h.engine.stats.packets > 3000)
        // Both the parser's rejections and the translation paths were reached.
        #expect(verdicts[0] > 100 && verdicts[2] > 100, "accept/drop/rewrite: \(verdicts)")
        #expect(h.engine.stats.malformed > 0)
    }

    @Test("a SYN whose options leave no room for MP_CAPABLE passes untracked (36 bytes used still fits)")
    func synNoOptionRoom() throws {
        for (unknownLength, fits) in [(18, false), (16, true)] {
            let h = EngineHarness(seed: 16)
            var c = TestConn()
            let unknown = TCPOption.unknown(kind: 253, bytes: InlineBytes40([253, UInt8(unknownLength)] + Array(repeating: 0xAB, count: unknownLength - 2))!)
            let opts = c.synOptions + [unknown]
            let ev = h.lan(c.syn(options: opts))
            if fits {
                let o = try ev.rewritten()
                #expect(o.optionLength == 40)
                #expect(o.options == opts + [.mptcp(.mpCapable(MPCapable(version: 1, flags: H)))])
                #expect(h.engine.connectionCount == 1)
            } else {
                #expect(ev.verdict == .accept)
                #expect(h.engine.connectionCount == 0)
                #expect(h.engine.stats.noOptionRoom == 1 && h.engine.stats.untracked == 1)
                #expect(h.peer(c.synAck()).verdict == .accept) // its SYN/ACK passes too
            }
        }
    }

    @Test("a SYN from an MPTCP-capable LAN host (MP_CAPABLE / MP_JOIN) passes untouched (remembered as native); one with data (TFO) is translated (see InteropTests)")
    func synAlreadyMPTCP() throws {
        let h = EngineHarness(seed: 17)
        var c = TestConn()
        let mpc = c.syn(options: c.synOptions + [.mptcp(.mpCapable(MPCapable(version: 1, flags: H)))])
        #expect(h.lan(mpc).verdict == .accept)
        c.client.port = 40_002
        let join = c.syn(options: c.synOptions + [.mptcp(.mpJoin(.syn(flags: 0, addressID: 1, token: 0x1234_5678, nonce: 9)))])
        #expect(h.lan(join).verdict == .accept)
        // Both remembered as native (their MPTCP packets are not a lost connection's).
        #expect(h.engine.connectionCount == 2 && h.engine.stats.nativeConnections == 2)
        #expect(h.engine.stats.untracked == 2 && h.engine.stats.connectionsMPTCP == 0)
        c.client.port = 40_003
        let tfo = c.syn(payload: [1, 2, 3])
        #expect(try h.lan(tfo).rewritten().mpCapable != nil && h.engine.connectionCount == 3)
    }

    // MARK: - Aborts

    @Test("client RST -> RST with MP_FASTCLOSE (peer's key) and MP_TCPRST", arguments: [true, false])
    func clientRST(withTimestamps: Bool) throws {
        let h = EngineHarness(seed: 18)
        var c = TestConn()
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        h.lan(c.fromClient(seq: 1, ack: 1, payload: Array(repeating: 1, count: 100)))
        h.peer(c.fromPeer(seq: 1, ack: 101, mptcp: [.dss(DSS(dataAck: L + 101, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 200)))],
                          payload: Array(repeating: 2, count: 200)))
        let rst: [UInt8]
        if withTimestamps {
            rst = c.fromClient(seq: 101, ack: 201, flags: RST | ACK)
        } else {
            rst = makeTCPPacket(from: c.client, to: c.server, seq: c.cs(101), ack: c.ss(201), flags: RST | ACK, window: 0)
        }
        let o = try h.lan(rst).rewritten()
        let abort: [TCPOption] = [.mptcp(.mpFastclose(MPFastclose(receiverKey: c.peerKey))), .mptcp(.mpTCPRST(MPTCPRst(reason: 0)))]
        #expect(o.options == (withTimestamps ? c.clientTSOptions : []) + abort)
        #expect(o.flags == RST | ACK && o.seq == c.cs(101) && o.ack == c.ss(201))
        #expect(h.engine.stats.fastcloseSent == 1 && h.engine.stats.connectionsReset == 1)
        // The peer's answer to a reset connection, and a repeated RST, pass.
        #expect(h.lan(rst).verdict == .accept)
        h.expectForgottenAfterTimeWait()
    }

    enum PeerAbort: String, CaseIterable, Sendable { case rstWithFastclose, rstAlone, fastcloseOnAck }

    @Test("peer RST / MP_FASTCLOSE -> RST to the client at its next expected sequence", arguments: PeerAbort.allCases)
    func peerAbort(kind: PeerAbort) throws {
        let h = EngineHarness(seed: 19)
        var c = TestConn()
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        h.lan(c.fromClient(seq: 1, ack: 1, payload: Array(repeating: 1, count: 100)))
        h.peer(c.fromPeer(seq: 1, ack: 101, mptcp: [.dss(DSS(dataAck: L + 101, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 200)))],
                          payload: Array(repeating: 2, count: 200)))
        let fc = MPTCPOption.mpFastclose(MPFastclose(receiverKey: key))
        let input = switch kind {
        case .rstWithFastclose: c.fromPeer(seq: 201, ack: 101, flags: RST | ACK, mptcp: [fc], payload: [0xDE, 0xAD]) // RST with diagnostic payload
        case .rstAlone: c.fromPeer(seq: 201, ack: 101, flags: RST)
        case .fastcloseOnAck: c.fromPeer(seq: 201, ack: 101, mptcp: [fc])
        }
        let o = try h.peer(input).rewritten()
        #expect(o.flags == RST | ACK)
        #expect(o.seq == c.ss(201) && o.ack == c.cs(101) && o.window == 0)
        #expect(o.payload.isEmpty && o.mptcp.isEmpty)
        #expect(o.options == c.peerTSOptions)
        #expect(h.engine.stats.connectionsReset == 1)
        #expect(h.engine.stats.fastcloseReceived == (kind == .rstAlone ? 0 : 1))
        h.expectForgottenAfterTimeWait()
    }

    @Test("peer RST before any DATA_ACK: the client's RST acknowledges what it really sent")
    func peerRSTBeforeDataAck() throws {
        let h = EngineHarness(seed: 20)
        var c = TestConn()
        _ = try h.handshake(&c)
        let o = try h.peer(c.fromPeer(seq: 1, ack: 1, flags: RST | ACK)).rewritten()
        #expect(o.flags == RST | ACK && o.seq == c.ss(1))
        #expect(o.ack == c.cs(1))
    }

    @Test("a closed connection is remembered for timeWait even when an older idle deadline falls due first")
    func closedKeptForTimeWait() throws {
        let h = EngineHarness(seed: 27) // idleTimeout 7200 s, timeWait 60 s
        var c = TestConn()
        let key = try h.handshake(&c) // idle deadline: now + 7200 s
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        h.lan(c.fromClient(seq: 1, ack: 1, payload: [1]))
        h.peer(c.fromPeer(seq: 1, ack: 2, mptcp: [.dss(DSS(dataAck: L + 2, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 1)))], payload: [2]))
        h.advance(.seconds(7190))
        #expect(h.lan(c.fromClient(seq: 2, ack: 2, flags: RST | ACK)).isRewrite) // closed: deadline now + 60 s
        h.advance(.seconds(15)) // the idle deadline (set at the SYN) is due now
        h.runTimers()
        #expect(h.engine.connectionCount == 1, "removed 15 s into a 60 s TIME_WAIT")
        h.advance(.seconds(45))
        h.runTimers()
        #expect(h.engine.connectionCount == 0)
    }

    @Test("the subflow ACK never covers what the peer did not send, even when its sequence number is 0")
    func subflowAckAtSequenceZero() throws {
        let h = EngineHarness(seed: 28)
        var c = TestConn(serverISN: 0xFFFF_FFFF)
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        h.lan(c.fromClient(seq: 1, ack: 1, payload: Array(repeating: 3, count: 10)))
        h.peer(c.fromPeer(seq: 1, ack: 11, mptcp: [.dss(DSS(dataAck: L + 11))]))
        // The peer closes without having sent any data: a DATA_FIN alone.
        let df = DSS(dataAck: L + 11, mapping: DSSMapping(dsn: R + 1, subflowSeq: 0, length: 1), dataFin: true)
        let f = try h.peer(c.fromPeer(seq: 1, ack: 11, mptcp: [.dss(df)])).rewritten()
        #expect(f.flags == FIN | ACK && f.seq == c.ss(1) && f.seq == 0)
        let a = try h.lan(c.fromClient(seq: 11, ack: 2)).rewritten()
        #expect(a.dss == DSS(dataAck: R + 2))
        #expect(a.ack == c.ss(1), "the peer has sent nothing at subflow sequence 0 yet")
    }

    @Test("a peer keepalive / zero-window probe (seq = SND.NXT - 1, no data) reaches the client as a probe")
    func peerKeepaliveProbe() throws {
        let h = EngineHarness(seed: 31)
        var c = TestConn()
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        h.lan(c.fromClient(seq: 1, ack: 1, payload: Array(repeating: 1, count: 100)))
        h.peer(c.fromPeer(seq: 1, ack: 101, mptcp: [.dss(DSS(dataAck: L + 101, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 200)))],
                          payload: Array(repeating: 2, count: 200)))
        h.lan(c.fromClient(seq: 101, ack: 201))
        h.advance(.seconds(7200))
        // Linux's tcp_xmit_probe_skb: no data, sequence number SND.UNA - 1.
        let o = try h.peer(c.fromPeer(seq: 200, ack: 101, mptcp: [.dss(DSS(dataAck: L + 101))])).rewritten()
        #expect(o.payload.isEmpty && o.ack == c.cs(101))
        #expect(o.seq == c.ss(200), "an old sequence number is what makes the client answer")
    }

    // MARK: - Segment size

    @Test("a full-sized client segment (clamped MSS less its own options) still fits 1500 bytes once translated",
          arguments: [false, true], [false, true])
    func mtuBudget(v6: Bool, checksums: Bool) throws {
        for timestamps in [true, false] {
            let h = EngineHarness(seed: 29)
            var c = v6 ? TestConn(client: Endpoint("fd00::33", 40_033), server: Endpoint("2001:db8::33", 443)) : TestConn()
            c.timestamps = timestamps
            h.lan(c.syn())
            let sa = try h.peer(c.synAck(mpCapable: MPCapable(version: 1, flags: (checksums ? A : 0) | H, senderKey: c.peerKey))).rewritten()
            let mss = try #require(sa.mss)
            let key = try #require(try h.lan(c.fromClient(seq: 1, ack: 1)).rewritten().mpCapable?.senderKey)
            let L = MPTCPCrypto.idsn(key: key)
            let n = Int(mss) - (timestamps ? 12 : 0)
            var rng = SplitMix64(seed: 21)
            let first = try h.lan(c.fromClient(seq: 1, ack: 1, payload: randomBytes(n, &rng))).rewritten()
            #expect(first.mpCapable?.dataLevelLength == UInt16(n))
            #expect(first.bytes.count <= 1500)
            h.peer(c.fromPeer(seq: 1, ack: UInt32(1 + n), mptcp: [.dss(DSS(dataAck: L + 1 + UInt64(n)))]))
            let next = try h.lan(c.fromClient(seq: UInt32(1 + n), ack: 1, payload: randomBytes(n, &rng))).rewritten()
            #expect(next.dss?.mapping?.length == UInt16(n))
            #expect(next.dss?.mapping?.checksum != nil || !checksums)
            #expect(next.bytes.count == 1500, "v6 \(v6) checksums \(checksums) timestamps \(timestamps)")
        }
    }

    @Test("a GSO super-segment that would outgrow 65531 bytes (what a verdict carries) once translated is dropped (.tooBig)")
    func tooBig() throws {
        let h = EngineHarness(seed: 30)
        var c = TestConn()
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key)
        h.lan(c.fromClient(seq: 1, ack: 1, payload: [1]))
        h.peer(c.fromPeer(seq: 1, ack: 2, mptcp: [.dss(DSS(dataAck: L + 2))]))
        // 20 + 32 + 65480 = 65532 bytes in; DSS adds 28.
        let p = c.fromClient(seq: 2, ack: 1, payload: [UInt8](repeating: 0x5A, count: 65_480))
        #expect(p.count == 65_532)
        let ev = h.send(p, .lan, gso: true)
        #expect(ev.verdict == .drop(.tooBig))
        #expect(h.engine.stats.dropped(.tooBig) == 1)
        // 29 bytes less fits exactly: 20 + 60 + 65451 = 65531.
        let q = c.fromClient(seq: 2, ack: 1, payload: [UInt8](repeating: 0x5A, count: 65_451))
        let o = try h.send(q, .lan, gso: true).rewritten()
        #expect(o.bytes.count == 65_531)
        // One more byte does not.
        let r = c.fromClient(seq: 2, ack: 1, payload: [UInt8](repeating: 0x5A, count: 65_452))
        #expect(h.send(r, .lan, gso: true).verdict == .drop(.tooBig))
    }

    // MARK: - Signalling

    enum Signal: String, CaseIterable, Sendable { case addAddr4, addAddr6Echo, removeAddr, mpPrio }

    @Test("a pure ACK carrying only ADD_ADDR / REMOVE_ADDR / MP_PRIO from the peer is dropped", arguments: Signal.allCases)
    func signallingOnly(kind: Signal) throws {
        let h = EngineHarness(seed: 21)
        var c = TestConn()
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        h.lan(c.fromClient(seq: 1, ack: 1, payload: [1]))
        h.peer(c.fromPeer(seq: 1, ack: 2, mptcp: [.dss(DSS(dataAck: L + 2, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 1)))], payload: [2]))
        let opt: MPTCPOption = switch kind {
        case .addAddr4:
            .addAddr(AddAddr(addressID: 1, address: .v4(IPv4Address(203, 0, 113, 77)),
                             hmac: MPTCPCrypto.addAddrHMAC(senderKey: c.peerKey, receiverKey: key, addressID: 1,
                                                           address: .v4(IPv4Address(203, 0, 113, 77)), port: nil)))
        case .addAddr6Echo: .addAddr(AddAddr(echo: true, addressID: 3, address: IPAddress("2001:db8::77")!))
        case .removeAddr: .removeAddr(RemoveAddr(addressIDs: InlineBytes40([1, 2])!))
        case .mpPrio: .mpPrio(MPPrio(backup: true))
        }
        let ev = h.peer(c.fromPeer(seq: 2, ack: 2, mptcp: [opt]))
        #expect(ev.verdict == .drop(.signallingOnly))
        #expect(h.engine.stats.dropped(.signallingOnly) == 1)
        // With a DSS beside it, it is an ACK for the client (MPTCP removed).
        let o = try h.peer(c.fromPeer(seq: 2, ack: 2, mptcp: [.dss(DSS(dataAck: L + 2, dataAck8: false)), opt])).rewritten()
        #expect(o.mptcp.isEmpty && o.seq == c.ss(2) && o.ack == c.cs(2))
    }

    // MARK: - Retransmissions

    @Test("retransmitted client SYN -> same output, same key; a new ISN on the same 4-tuple starts over")
    func retransmittedSYN() throws {
        let seed: UInt64 = 5
        let h = EngineHarness(seed: seed)
        var c = TestConn()
        let syn = c.syn()
        let o1 = try h.lan(syn).rewritten()
        h.advance(.seconds(1))
        let o2 = try h.lan(syn).rewritten()
        #expect(o1.bytes == o2.bytes)
        // Linux retransmits with a fresh TSval: still the same connection.
        h.advance(.seconds(2))
        let synTS = c.syn()
        let o3 = try h.lan(synTS).rewritten()
        #expect(o3.options == Decoded(synTS)!.options + [.mptcp(.mpCapable(MPCapable(version: 1, flags: H)))])
        #expect(h.engine.connectionCount == 1 && h.engine.stats.connectionsOpened == 1)
        h.peer(c.synAck())
        let third = try h.lan(c.fromClient(seq: 1, ack: 1)).rewritten()
        #expect(third.mpCapable?.senderKey == EngineHarness.key(seed: seed, index: 0))

        // Port reuse: a SYN with another ISN replaces the connection, with the next key.
        var c2 = TestConn(clientISN: 0x2222_2222, serverISN: 0x3333_3333, peerKey: 0x0102_0304_0506_0708)
        h.lan(c2.syn())
        #expect(h.engine.connectionCount == 1 && h.engine.stats.connectionsOpened == 2)
        h.peer(c2.synAck())
        let third2 = try h.lan(c2.fromClient(seq: 1, ack: 1)).rewritten()
        #expect(third2.mpCapable?.senderKey == EngineHarness.key(seed: seed, index: 1))
        #expect(third2.mpCapable?.receiverKey == c2.peerKey)
    }

    @Test("retransmitted first data -> the same MP_CAPABLE; once the peer sent a DSS, a DSS mapping at DSN IDSN+1")
    func retransmittedFirstData() throws {
        let h = EngineHarness(seed: 22)
        var c = TestConn()
        let key = try h.handshake(&c)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        var rng = SplitMix64(seed: 17)
        let data = randomBytes(1448, &rng)
        let p = c.fromClient(seq: 1, ack: 1, flags: PSH | ACK, payload: data)
        let o1 = try h.lan(p).rewritten()
        h.advance(.milliseconds(200))
        let o2 = try h.lan(p).rewritten()
        #expect(o1.bytes == o2.bytes)
        #expect(o1.mpCapable?.dataLevelLength == 1448)
        // A second segment meanwhile: mapped with DSS; the first, retransmitted, still MP_CAPABLE.
        let more = randomBytes(100, &rng)
        let s = try h.lan(c.fromClient(seq: 1449, ack: 1, payload: more)).rewritten()
        #expect(s.dss?.mapping == DSSMapping(dsn: L + 1449, subflowSeq: 1449, length: 100))
        let o3 = try h.lan(p).rewritten()
        #expect(o3.mpCapable == o1.mpCapable && o3.payload == data)
        // After the peer's DSS: a retransmission of the first data is a DSS mapping.
        h.peer(c.fromPeer(seq: 1, ack: 1549, mptcp: [.dss(DSS(dataAck: L + 1549))]))
        let o4 = try h.lan(p).rewritten()
        #expect(o4.mpCapable == nil)
        #expect(o4.dss == DSS(dataAck: R + 1, mapping: DSSMapping(dsn: L + 1, subflowSeq: 1, length: 1448)))
    }

    // MARK: - DSS checksums

    @Test("the peer asks for DSS checksums (flag A): MP_CAPABLE 24 and DSS carry valid checksums; a bad one is dropped")
    func dssChecksums() throws {
        let h = EngineHarness(seed: 23)
        var c = TestConn()
        h.lan(c.syn())
        h.peer(c.synAck(mpCapable: MPCapable(version: 1, flags: A | H, senderKey: c.peerKey)))
        let third = try h.lan(c.fromClient(seq: 1, ack: 1)).rewritten()
        let key = try #require(third.mpCapable?.senderKey)
        #expect(third.mpCapable?.flags == A | H)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        var rng = SplitMix64(seed: 18)
        let d1 = randomBytes(101, &rng)
        let f = try h.lan(c.fromClient(seq: 1, ack: 1, payload: d1)).rewritten()
        let mpc = try #require(f.mpCapable)
        #expect(mpc.encodedLength == 24 && mpc.dataLevelLength == 101)
        let cs1 = try #require(mpc.checksum)
        d1.withUnsafeBytes { #expect(DSSChecksum.verify(dsn: L + 1, subflowSeq: 1, length: 101, checksum: cs1, payload: $0)) }

        let down = randomBytes(77, &rng)
        let good = down.withUnsafeBytes { DSSChecksum.compute(dsn: R + 1, subflowSeq: 1, length: 77, payload: $0) }
        let pd = try h.peer(c.fromPeer(seq: 1, ack: 102, mptcp: [.dss(DSS(dataAck: L + 102, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 77, checksum: good)))],
                                       payload: down)).rewritten()
        #expect(pd.payload == down && pd.seq == c.ss(1))

        let d2 = randomBytes(33, &rng)
        let o = try h.lan(c.fromClient(seq: 102, ack: 78, payload: d2)).rewritten()
        let m = try #require(o.dss?.mapping)
        #expect(m.dsn == L + 102 && m.subflowSeq == 102 && m.length == 33)
        let cs2 = try #require(m.checksum)
        d2.withUnsafeBytes { #expect(DSSChecksum.verify(dsn: L + 102, subflowSeq: 102, length: 33, checksum: cs2, payload: $0)) }
        #expect(o.optionLength == 40)

        let bad = DSS(dataAck: L + 135, mapping: DSSMapping(dsn: R + 78, subflowSeq: 78, length: 5, checksum: 0x1234))
        let ev = h.peer(c.fromPeer(seq: 78, ack: 135, mptcp: [.dss(bad)], payload: [1, 2, 3, 4, 5]))
        #expect(ev.verdict == .drop(.badMPTCP))
        #expect(h.engine.stats.dssChecksumFailed == 1)
    }

    // MARK: - IPv6 and IP header variants

    @Test("IPv6: handshake and data both ways, checksums valid")
    func ipv6() throws {
        let h = EngineHarness(seed: 24)
        var c = TestConn(client: Endpoint("fd00:1::10", 41_000), server: Endpoint("2001:db8:5::5", 443),
                         clientISN: 0x0102_0304, serverISN: 0xA0B0_C0D0, peerKey: 0x1476_BDFC_4BA8_88F5)
        let syn = try h.lan(c.syn()).rewritten()
        #expect(syn.mss == 1440 && syn.mpCapable == MPCapable(version: 1, flags: H))
        let sa = try h.peer(c.synAck()).rewritten()
        #expect(sa.mss == 1412 && sa.mptcp.isEmpty)
        let third = try h.lan(c.fromClient(seq: 1, ack: 1)).rewritten()
        let key = try #require(third.mpCapable?.senderKey)
        #expect(third.mpCapable?.receiverKey == c.peerKey)
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        var rng = SplitMix64(seed: 19)
        let up1 = randomBytes(1408, &rng), down = randomBytes(1412, &rng), up2 = randomBytes(999, &rng)
        let f = try h.lan(c.fromClient(seq: 1, ack: 1, payload: up1)).rewritten()
        #expect(f.mpCapable?.dataLevelLength == 1408 && f.payload == up1)
        let d = try h.peer(c.fromPeer(seq: 1, ack: 1409,
                                      mptcp: [.dss(DSS(dataAck: L + 1409, dataAck8: false, mapping: DSSMapping(dsn: R + 1, subflowSeq: 1, length: 1412), dsn8: false))],
                                      payload: down)).rewritten()
        #expect(d.seq == c.ss(1) && d.ack == c.cs(1409) && d.payload == down && d.mptcp.isEmpty)
        let o = try h.lan(c.fromClient(seq: 1409, ack: 1413, payload: up2)).rewritten()
        #expect(o.dss == DSS(dataAck: R + 1413, mapping: DSSMapping(dsn: L + 1409, subflowSeq: 1409, length: 999)))
        for b in [syn.bytes, sa.bytes, third.bytes, f.bytes, d.bytes, o.bytes] {
            #expect(b[0] >> 4 == 6)
            #expect(tcpChecksumOK(b))
        }
    }

    @Test("IPv4 options and IPv6 extension headers are kept; lengths and checksums follow")
    func ipHeaderVariants() throws {
        do {
            let h = EngineHarness(seed: 25)
            var c = TestConn()
            let key = try h.handshake(&c)
            let p = makeTCPPacket(from: c.client, to: c.server, seq: c.cs(1), ack: c.ss(1), flags: ACK,
                                  options: c.clientTSOptions, payload: [1, 2, 3], ipv4Options: [1, 1, 1, 0])
            let o = try h.lan(p).rewritten()
            guard case .v4(let ip) = o.packet.ipHeader else { Issue.record("not IPv4"); return }
            #expect(ip.options.array == [1, 1, 1, 0] && ip.encodedLength == 24)
            #expect(o.mpCapable?.senderKey == key && o.payload == [1, 2, 3])
        }
        do {
            let h = EngineHarness(seed: 26)
            var c = TestConn(client: Endpoint("fd00::2", 41_001), server: Endpoint("2001:db8::2", 443))
            let key = try h.handshake(&c)
            let L = MPTCPCrypto.idsn(key: key)
            let p = makeTCPPacket(from: c.client, to: c.server, seq: c.cs(1), ack: c.ss(1), flags: ACK,
                                  options: c.clientTSOptions, payload: [1, 2, 3], ipv6ExtensionHeaders: destinationOptionsToTCP)
            let o = try h.lan(p).rewritten()
            #expect(o.packet.extensionHeaders == destinationOptionsToTCP && o.payload == [1, 2, 3])
            let q = makeTCPPacket(from: c.server, to: c.client, seq: c.ss(1), ack: c.cs(4), flags: ACK,
                                  options: c.peerTSOptions + [.mptcp(.dss(DSS(dataAck: L + 4, mapping: DSSMapping(dsn: c.remoteIDSN + 1, subflowSeq: 1, length: 2))))],
                                  payload: [9, 8], ipv6ExtensionHeaders: destinationOptionsToTCP)
            let d = try h.peer(q).rewritten()
            #expect(d.packet.extensionHeaders == destinationOptionsToTCP && d.payload == [9, 8] && d.mptcp.isEmpty)
            #expect(d.seq == c.ss(1) && d.ack == c.cs(4))
        }
    }

    // MARK: - Wrapping sequence spaces

    @Test("DSN low 32 bits and both TCP sequence spaces wrap: 4-byte DSN and DATA_ACK still expand right")
    func wrapping() throws {
        // SplitMix64(seed: 17325)'s first key has an IDSN 183483 below a
        // 2^32 boundary; the peer key's IDSN is 288815 below one (found by a
        // search with Python hashlib).
        let seed: UInt64 = 17325
        let h = EngineHarness(seed: seed)
        var c = TestConn(client: Endpoint("192.168.7.7", 45_000), server: Endpoint("192.0.2.80", 80),
                         clientISN: 0xFFFF_0000, serverISN: 0xFFFE_8000, peerKey: 0x2E66_CB42_7D61_36BB)
        let key = try h.handshake(&c)
        #expect(key == EngineHarness.key(seed: seed))
        let L = MPTCPCrypto.idsn(key: key), R = c.remoteIDSN
        #expect(L & 0xFFFF_FFFF == 0xFFFD_3345 && R & 0xFFFF_FFFF == 0xFFFB_97D1)
        var rng = SplitMix64(seed: 20)
        let seg = 16_000, count = 20
        var up: [UInt8] = [], upSeen: [UInt8] = [], down: [UInt8] = [], downSeen: [UInt8] = []
        for i in 0 ..< count {
            // Client segment i (GSO).
            let off = up.count
            let data = randomBytes(seg, &rng)
            let p = c.fromClient(seq: UInt32(1 + off), ack: UInt32(1 + down.count), flags: PSH | ACK, payload: data)
            let o = try h.send(p, .lan, gso: true).rewritten()
            if i == 0 {
                #expect(o.mpCapable?.dataLevelLength == UInt16(seg))
                upSeen += o.payload
            } else {
                let d = try #require(o.dss)
                let m = try #require(d.mapping)
                #expect(m.dsn == L &+ 1 &+ UInt64(off) && m.subflowSeq == UInt32(1 + off) && m.length == UInt16(seg))
                #expect(d.dataAck == R &+ 1 &+ UInt64(down.count))
                #expect(Int(m.dsn &- (L &+ 1)) == upSeen.count)
                upSeen += o.payload
            }
            up += data
            // Peer segment i, 4-byte DSN and DATA_ACK.
            let doff = down.count
            let ddata = randomBytes(seg, &rng)
            let dss = DSS(dataAck: L &+ 1 &+ UInt64(up.count), dataAck8: false,
                          mapping: DSSMapping(dsn: R &+ 1 &+ UInt64(doff), subflowSeq: UInt32(1 + doff), length: UInt16(seg)), dsn8: false)
            let q = c.fromPeer(seq: UInt32(1 + doff), ack: UInt32(1 + up.count), flags: PSH | ACK, mptcp: [.dss(dss)], payload: ddata)
            let r = try h.send(q, .uplink(0), gso: true).rewritten()
            #expect(r.seq == c.ss(UInt32(1 + doff)) && r.ack == c.cs(UInt32(1 + up.count)))
            #expect(Int(r.seq &- c.ss(1)) == downSeen.count)
            downSeen += r.payload
            down += ddata
        }
        #expect((L &+ 1) >> 32 != (L &+ 1 &+ UInt64(up.count)) >> 32, "the upload DSN crossed a 2^32 boundary")
        #expect((R &+ 1) >> 32 != (R &+ 1 &+ UInt64(down.count)) >> 32, "the download DSN crossed a 2^32 boundary")
        #expect(upSeen == up)
        #expect(downSeen == down)
        // A last client ACK: the 8-byte DATA_ACK is past the boundary too.
        let a = try h.lan(c.fromClient(seq: UInt32(1 + up.count), ack: UInt32(1 + down.count))).rewritten()
        #expect(a.dss == DSS(dataAck: R &+ 1 &+ UInt64(down.count)))
    }

    // MARK: - Seeded random interleaving

    @Test("seeded random interleaving of many connections: DSN/seq translation consistent both ways")
    func randomized() throws {
        let seed: UInt64 = 0x454E_4749_4E45_0001
        var rng = SplitMix64(seed: seed)
        let h = EngineHarness(seed: rng.next())
        var sims: [Sim] = []
        for i in 0 ..< 24 {
            let v6 = i % 2 == 1
            var cISN = UInt32(truncatingIfNeeded: rng.next()) | 1
            var sISN = UInt32(truncatingIfNeeded: rng.next()) | 1
            if i % 5 == 0 { cISN = 0xFFFF_FFFF &- UInt32(rng.next() % 100_000); sISN = 0xFFFF_FFFF &- UInt32(rng.next() % 100_000) }
            let client = v6 ? Endpoint("fd00:ab::\(i + 1)", UInt16(30_000 + i)) : Endpoint("192.168.50.\(i + 1)", UInt16(30_000 + i))
            let server = v6 ? Endpoint("2001:db8:77::1", 443) : Endpoint("203.0.113.200", 443)
            var c = TestConn(client: client, server: server, clientISN: cISN, serverISN: sISN, peerKey: rng.next())
            c.timestamps = i % 7 != 3
            c.window = 0xffff // (x 128: the peer here sends without waiting for the client's window, which the engine checks)
            sims.append(Sim(c: c))
        }
        var steps = 0
        while steps < 700 {
            steps += 1
            let i = Int(rng.next() % UInt64(sims.count))
            h.advance(.microseconds(Int64(rng.next() % 20_000)))
            if !sims[i].started {
                let k = try h.handshake(&sims[i].c)
                sims[i].localIDSN = MPTCPCrypto.idsn(key: k)
                sims[i].started = true
                continue
            }
            switch rng.next() % 16 {
            case 0 ..< 7: try sims[i].clientSends(Self.size(&rng), h, &rng)
            case 7: try sims[i].clientRetransmits(h, &rng)
            case 8 ..< 15: try sims[i].peerSends(Self.size(&rng), h, &rng)
            default: try sims[i].peerSignals(h)
            }
        }
        var closed = 0
        for i in sims.indices where sims[i].started {
            #expect(sims[i].upSeen == sims[i].up, "connection \(i): upload reassembled by DSN")
            #expect(sims[i].downSeen == sims[i].down, "connection \(i): download reassembled by seq")
            if rng.next() % 4 == 0 { try sims[i].clientResets(h) } else { try sims[i].closeClientFirst(h, &rng) }
            closed += 1
        }
        #expect(closed > 20)
        // The mix was as intended.
        #expect(sims.reduce(0) { $0 + $1.up.count } > 1_000_000 && sims.reduce(0) { $0 + $1.down.count } > 1_000_000)
        let tally = sims.reduce(into: [0, 0, 0, 0, 0]) { t, s in for (k, v) in s.tally.enumerated() { t[k] += v } }
        #expect(tally.allSatisfy { $0 > 5 }, "gso, pure ACKs, split mappings, retransmissions, 64000-byte segments: \(tally)")
        #expect(h.engine.stats.connectionsClosed + h.engine.stats.connectionsReset == UInt64(closed))
        let started = sims.filter(\.started).count
        #expect(h.engine.connectionCount == started)
        h.expectForgottenAfterTimeWait()
        #expect(h.engine.stats.malformed == 0 && h.engine.stats.untracked == 0)
    }

    /// A payload size: 0 (a pure ACK), MTU-sized, or a GSO super-segment up to 64000.
    static func size(_ rng: inout SplitMix64) -> Int {
        switch rng.next() % 20 {
        case 0, 1: return 0
        case 2 ..< 12: return 1 + Int(rng.next() % 1400)
        case 12 ..< 16: return 1401 + Int(rng.next() % 14_600)
        case 16 ..< 19: return 16_001 + Int(rng.next() % 47_999)
        default: return 64_000
        }
    }
}

/// One connection of the randomized test: what each side sent and what the
/// engine's outputs say, reassembled by DSN (upload) and by client-space
/// sequence number (download).
struct Sim {
    var c: TestConn
    var started = false
    var localIDSN: UInt64 = 0
    /// The peer has sent a DSS (the engine then switches from MP_CAPABLE to DSS).
    var peerSentDSS = false
    var up: [UInt8] = []
    var upSeen: [UInt8] = []
    var upSegments: [(off: Int, len: Int)] = []
    var down: [UInt8] = []
    var downSeen: [UInt8] = []
    /// GSO segments, pure ACKs, split mappings, retransmissions, 64000-byte segments.
    var tally = [0, 0, 0, 0, 0]

    var R: UInt64 { c.remoteIDSN }
    var L: UInt64 { localIDSN }

    /// Places bytes that the engine said start at `off` of a stream.
    static func place(_ bytes: [UInt8], at off: Int, into seen: inout [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        guard off >= 0 && off <= seen.count else {
            Issue.record("bytes at offset \(off), only \(seen.count) seen: a gap or a wrong DSN/seq", sourceLocation: sourceLocation)
            return
        }
        let overlap = min(seen.count - off, bytes.count)
        if overlap > 0 {
            #expect(Array(seen[off ..< off + overlap]) == Array(bytes[0 ..< overlap]), "retransmitted bytes differ", sourceLocation: sourceLocation)
        }
        if overlap < bytes.count { seen += bytes[overlap...] }
    }

    mutating func clientSegment(off: Int, payload: [UInt8], _ h: EngineHarness) throws {
        let n = payload.count
        let ackRel = UInt32(truncatingIfNeeded: 1 + downSeen.count)
        let p = c.fromClient(seq: UInt32(truncatingIfNeeded: 1 + off), ack: ackRel, flags: n > 0 ? PSH | ACK : ACK, payload: payload)
        let gso = p.count > 1500
        if gso { tally[0] += 1 }
        if n == 0 { tally[1] += 1 }
        if n == 64_000 { tally[4] += 1 }
        let o = try h.send(p, .lan, gso: gso).rewritten()
        #expect(o.seq == c.cs(UInt32(truncatingIfNeeded: 1 + off)) && o.ack == c.ss(ackRel))
        #expect(o.payload == payload)
        #expect(o.mptcp.count == 1)
        if !peerSentDSS && (n == 0 || off == 0) {
            let mpc = try #require(o.mpCapable)
            #expect(mpc.receiverKey == c.peerKey && mpc.senderKey.map { MPTCPCrypto.idsn(key: $0) } == L)
            #expect(mpc.dataLevelLength == (n > 0 ? UInt16(n) : nil))
            if n > 0 { Self.place(o.payload, at: 0, into: &upSeen) }
        } else {
            let d = try #require(o.dss)
            #expect(d.dataAck == R &+ UInt64(ackRel) && d.dataAckIs8)
            if n > 0 {
                let m = try #require(d.mapping)
                #expect(m.dsn == L &+ 1 &+ UInt64(off) && m.subflowSeq == UInt32(truncatingIfNeeded: 1 + off) && m.length == UInt16(n))
                #expect(d.dsnIs8 && !d.dataFin)
                Self.place(o.payload, at: Int(truncatingIfNeeded: m.dsn &- (L &+ 1)), into: &upSeen)
            } else {
                #expect(d.mapping == nil)
            }
        }
    }

    mutating func clientSends(_ n: Int, _ h: EngineHarness, _ rng: inout SplitMix64) throws {
        let payload = randomBytes(n, &rng)
        let off = up.count
        up += payload
        if n > 0 { upSegments.append((off, n)) }
        try clientSegment(off: off, payload: payload, h)
    }

    mutating func clientRetransmits(_ h: EngineHarness, _ rng: inout SplitMix64) throws {
        guard !upSegments.isEmpty else { return }
        let s = upSegments[Int(rng.next() % UInt64(upSegments.count))]
        tally[3] += 1
        try clientSegment(off: s.off, payload: Array(up[s.off ..< s.off + s.len]), h)
    }

    mutating func peerSends(_ n: Int, _ h: EngineHarness, _ rng: inout SplitMix64) throws {
        let payload = randomBytes(n, &rng)
        let off = down.count
        down += payload
        let ack8 = rng.next() & 1 == 0, dsn8 = rng.next() & 1 == 0
        let dataAck = L &+ 1 &+ UInt64(up.count)
        let ackRel = UInt32(truncatingIfNeeded: 1 + up.count)
        // Pieces: the first carries the mapping, the others a DATA_ACK or nothing.
        var cuts = [0, n]
        if n >= 3 && rng.next() % 3 == 0 {
            cuts = [0] + (0 ..< Int(1 + rng.next() % 2)).map { _ in 1 + Int(rng.next() % UInt64(n - 1)) }.sorted() + [n]
            tally[2] += 1
        }
        for k in 0 ..< cuts.count - 1 {
            let a = cuts[k], b = cuts[k + 1]
            if a == b && n > 0 { continue }
            var mptcp: [MPTCPOption] = []
            if k == 0 {
                let map = n > 0 ? DSSMapping(dsn: R &+ 1 &+ UInt64(off), subflowSeq: UInt32(truncatingIfNeeded: 1 + off), length: UInt16(n)) : nil
                mptcp = [.dss(DSS(dataAck: dataAck, dataAck8: ack8, mapping: map, dsn8: dsn8))]
            } else if rng.next() & 1 == 0 {
                mptcp = [.dss(DSS(dataAck: dataAck, dataAck8: ack8))]
            }
            let piece = Array(payload[a ..< b])
            let q = c.fromPeer(seq: UInt32(truncatingIfNeeded: 1 + off + a), ack: ackRel, flags: piece.isEmpty ? ACK : PSH | ACK,
                               mptcp: mptcp, payload: piece)
            let o = try h.send(q, .uplink(0), gso: q.count > 1500).rewritten()
            peerSentDSS = true
            #expect(o.mptcp.isEmpty && o.payload == piece)
            #expect(o.ack == c.cs(ackRel))
            if piece.isEmpty {
                #expect(o.seq == c.ss(UInt32(truncatingIfNeeded: 1 + downSeen.count)))
            } else {
                #expect(o.seq == c.ss(UInt32(truncatingIfNeeded: 1 + off + a)))
                Self.place(o.payload, at: Int(o.seq &- c.ss(1)), into: &downSeen)
            }
        }
    }

    mutating func peerSignals(_ h: EngineHarness) throws {
        guard peerSentDSS else { return }
        let q = c.fromPeer(seq: UInt32(truncatingIfNeeded: 1 + down.count), ack: UInt32(truncatingIfNeeded: 1 + up.count),
                           mptcp: [.addAddr(AddAddr(addressID: 5, address: .v4(IPv4Address(198, 18, 0, 1)), hmac: 42))])
        #expect(h.send(q, .uplink(0)).verdict == .drop(.signallingOnly))
    }

    /// Client FIN, the peer's DATA_ACK and DATA_FIN together, the client's
    /// last ACK, the peer's subflow FIN (ACKed by the engine itself).
    mutating func closeClientFirst(_ h: EngineHarness, _ rng: inout SplitMix64) throws {
        let u = UInt32(truncatingIfNeeded: 1 + up.count), d = UInt32(truncatingIfNeeded: 1 + down.count)
        let f = try h.lan(c.fromClient(seq: u, ack: d, flags: FIN | ACK)).rewritten()
        #expect(f.flags == FIN | ACK && f.seq == c.cs(u) && f.ack == c.ss(d))
        #expect(f.dss == DSS(dataAck: R &+ UInt64(d), mapping: DSSMapping(dsn: L &+ UInt64(u), subflowSeq: 0, length: 1), dataFin: true))
        let small = rng.next() & 1 == 0
        let pf = DSS(dataAck: L &+ UInt64(u) &+ 1, dataAck8: !small,
                     mapping: DSSMapping(dsn: R &+ UInt64(d), subflowSeq: 0, length: 1), dsn8: !small, dataFin: true)
        let p = try h.peer(c.fromPeer(seq: d, ack: u &+ 1, mptcp: [.dss(pf)])).rewritten()
        #expect(p.flags == FIN | ACK && p.seq == c.ss(d) && p.ack == c.cs(u &+ 1) && p.mptcp.isEmpty)
        let a = try h.lan(c.fromClient(seq: u &+ 1, ack: d &+ 1)).rewritten()
        #expect(a.dss == DSS(dataAck: R &+ UInt64(d) &+ 1) && a.ack == c.ss(d))
        let s = h.peer(c.fromPeer(seq: d, ack: u &+ 1, flags: FIN | ACK, mptcp: [.dss(DSS(dataAck: L &+ UInt64(u) &+ 1))]))
        #expect(s.verdict == .drop(.closed))
        try #require(s.outbox.count == 1)
        let own = try #require(Decoded(s.outbox[0].bytes))
        #expect(own.seq == c.cs(u &+ 1) && own.ack == c.ss(d &+ 1) && own.flags == ACK)
        #expect(own.dss == DSS(dataAck: R &+ UInt64(d) &+ 1))
        #expect(own.source == c.client && own.destination == c.server)
    }

    mutating func clientResets(_ h: EngineHarness) throws {
        let u = UInt32(truncatingIfNeeded: 1 + up.count), d = UInt32(truncatingIfNeeded: 1 + down.count)
        let o = try h.lan(c.fromClient(seq: u, ack: d, flags: RST | ACK)).rewritten()
        #expect(o.mptcp == [.mpFastclose(MPFastclose(receiverKey: c.peerKey)), .mpTCPRST(MPTCPRst(reason: 0))])
        #expect(o.seq == c.cs(u) && o.ack == c.ss(d))
    }
}

private extension Array where Element == UInt8 {
    /// An IPv4 packet's total length field set (no checksum update: the engine does not check it).
    func withTotalLength(_ n: UInt16) -> [UInt8] {
        var b = self
        b[2] = UInt8(n >> 8); b[3] = UInt8(n & 0xff)
        return b
    }

    /// The IP version nibble set (for garbage that must not parse as IP).
    func withVersion(_ v: UInt8) -> [UInt8] {
        guard !isEmpty else { return self }
        var b = self
        b[0] = v << 4 | b[0] & 0x0f
        return b
    }
}

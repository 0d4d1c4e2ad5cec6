import MPTCPStack
import TestSupport
import Testing

// Send/expect tests of the responder role: the MPTCP peer opens the
// connection from beyond an uplink towards a plain TCP host on the LAN. The
// test plays both: `host` (the LAN server) and `peer` (the MPTCP client).

private let ACK = TCPFlags.ack
private let SYN = TCPFlags.syn
private let RST = TCPFlags.rst

private let uplink0 = IPAddress("198.51.100.1")!
private let uplink1 = IPAddress("198.51.100.2")!
private let uplink0v6 = IPAddress("2001:db8:100::1")!
private let uplink1v6 = IPAddress("2001:db8:200::1")!

private final class ResponderScript {
    let h: EngineHarness
    var host = Endpoint(address: IPAddress("192.168.1.10")!, port: 5001)
    let peer: Endpoint
    let peerISN: UInt32 = 0x1000_0000
    let hostISN: UInt32 = 0x7000_0000
    let peerKey: UInt64 = 0x0123_4567_89ab_cdef
    /// Our key, from the SYN/ACK the host's answer became.
    var localKey: UInt64 = 0
    var peerTS: UInt32 = 500_000
    var hostTS: UInt32 = 900_000

    /// `sharing`: another connection through the same engine (from `peerPort`).
    /// `v6`: the host, the peer and the uplinks have IPv6 addresses.
    init(seed: UInt64 = 3, multipath: Bool = true, sharing other: ResponderScript? = nil, peerPort: UInt16 = 40_000, v6: Bool = false) {
        var config = EngineConfig()
        if multipath {
            config.uplinks = v6 ? [UplinkConfig(addresses: [uplink0v6]), UplinkConfig(addresses: [uplink1v6])]
                                : [UplinkConfig(addresses: [uplink0]), UplinkConfig(addresses: [uplink1])]
        }
        h = other?.h ?? EngineHarness(seed: seed, config: config)
        peer = Endpoint(address: IPAddress(v6 ? "2001:db8:7::7" : "203.0.113.7")!, port: peerPort)
        if v6 { host = Endpoint(address: IPAddress("fd00:1::10")!, port: 5001) }
    }

    /// The peer's MP_JOIN SYN from `from` to `to` for this connection.
    func joinSYN(from: Endpoint, to: Endpoint, isn: UInt32, nonce: UInt32) -> [UInt8] {
        makeTCPPacket(from: from, to: to, seq: isn, ack: 0, flags: SYN, window: 64_240,
                      options: synOptions + [.mptcp(.mpJoin(.syn(flags: 0, addressID: 3, token: MPTCPCrypto.token(key: localKey), nonce: nonce)))])
    }

    /// A whole join from `from` to `to` (SYN, SYN/ACK, third ACK, fourth ACK); true if it was accepted.
    func join(from: Endpoint, to: Endpoint, isn: UInt32, nonce: UInt32) throws -> Bool {
        let e = h.send(joinSYN(from: from, to: to, isn: isn, nonce: nonce), .uplink(1))
        guard let sa = e.outbox.first(where: { $0.side == .uplink(1) }).flatMap({ Decoded($0.bytes) }),
              sa.flags == SYN | ACK, sa.ack == isn &+ 1,
              case let .mpJoin(.synAck(_, _, _, ourNonce)) = sa.mptcp.first else { return false }
        let mac = MPTCPCrypto.joinHMAC(keyLocal: peerKey, keyRemote: localKey, nonceLocal: nonce, nonceRemote: ourNonce)
        let before = h.engine.stats.joinsAccepted
        _ = h.send(makeTCPPacket(from: from, to: to, seq: isn &+ 1, ack: sa.seq &+ 1, flags: ACK, window: 1000,
                                 options: [.mptcp(.mpJoin(.ack(reserved: 0, hmac: mac)))]), .uplink(1))
        return h.engine.stats.joinsAccepted == before + 1
    }

    var R: UInt64 { MPTCPCrypto.idsn(key: peerKey) }
    var L: UInt64 { MPTCPCrypto.idsn(key: localKey) }

    func fromPeer(seq: UInt32, ack: UInt32, flags: UInt8 = ACK, mptcp: [MPTCPOption] = [], payload: [UInt8] = [],
                  to: Endpoint? = nil, from: Endpoint? = nil) -> [UInt8] {
        peerTS &+= 1
        return makeTCPPacket(from: from ?? peer, to: to ?? host, seq: seq, ack: ack, flags: flags, window: 1000,
                             options: [.noOperation, .noOperation, .timestamps(value: peerTS, echoReply: hostTS)] + mptcp.map { .mptcp($0) },
                             payload: payload)
    }

    func fromHost(seq: UInt32, ack: UInt32, flags: UInt8 = ACK, options: [TCPOption]? = nil, payload: [UInt8] = []) -> [UInt8] {
        hostTS &+= 1
        return makeTCPPacket(from: host, to: peer, seq: hostISN &+ seq, ack: peerISN &+ ack, flags: flags, window: 2000,
                             options: options ?? [.noOperation, .noOperation, .timestamps(value: hostTS, echoReply: peerTS)],
                             payload: payload)
    }

    var synOptions: [TCPOption] {
        [.maxSegmentSize(1460), .sackPermitted, .timestamps(value: peerTS, echoReply: 0), .noOperation, .windowScale(7)]
    }

    /// SYN, SYN/ACK, third ACK; returns the engine's output for each.
    func handshake(hostOptions: [TCPOption]? = nil) throws -> (syn: Decoded, synAck: Decoded, third: EngineEvent) {
        let syn = try h.peer(makeTCPPacket(from: peer, to: host, seq: peerISN, ack: 0, flags: SYN, window: 64_240,
                                           options: synOptions + [.mptcp(.mpCapable(MPCapable(version: 1, flags: MPCapable.flagHMACSHA256)))]))
            .rewritten()
        let synAck = try h.lan(fromHost(seq: 0, ack: 1, flags: SYN | ACK, options: hostOptions ?? [
            .maxSegmentSize(1460), .sackPermitted, .timestamps(value: hostTS, echoReply: peerTS), .noOperation, .windowScale(7),
        ])).rewritten()
        localKey = synAck.mpCapable?.senderKey ?? 0
        let third = h.peer(fromPeer(seq: peerISN &+ 1, ack: hostISN &+ 1,
                                    mptcp: [.mpCapable(MPCapable(version: 1, flags: MPCapable.flagHMACSHA256, senderKey: peerKey, receiverKey: localKey))]))
        return (syn, synAck, third)
    }
}

@Suite("Responder")
struct ResponderTests {
    @Test("the peer's MP_CAPABLE SYN reaches the LAN host with its options (MSS clamped); the host's plain SYN/ACK gets our key; the third ACK completes both ends and the peer hears of uplink 1 (ADD_ADDR with port and HMAC)")
    func handshake() throws {
        let s = ResponderScript()
        let (syn, synAck, third) = try s.handshake()
        #expect(syn.mpCapable != nil && syn.mss == 1460 - 28)
        #expect(syn.source == s.peer && syn.destination == s.host && syn.seq == s.peerISN)
        let key = try #require(synAck.mpCapable?.senderKey)
        #expect(synAck.mpCapable?.receiverKey == nil && synAck.seq == s.hostISN && synAck.ack == s.peerISN &+ 1)
        #expect(s.h.engine.stats.responderSYNs == 1 && s.h.engine.stats.connectionsMPTCP == 1)
        _ = key
        // The host's handshake completes: an ACK from the gateway.
        let toHost = third.outbox.filter { $0.side == .lan }.compactMap { Decoded($0.bytes) }
        #expect(toHost.count == 1 && toHost.first?.seq == s.peerISN &+ 1 && toHost.first?.ack == s.hostISN &+ 1)
        #expect(toHost.first?.mptcp.isEmpty == true)
        // ADD_ADDR for uplink 1 (not uplink 0, where the connection came in).
        let adds = third.outbox.filter { $0.side == .uplink(0) }.compactMap { Decoded($0.bytes) }.compactMap { d in
            d.mptcp.lazy.compactMap { if case .addAddr(let x) = $0 { return x } else { return nil } }.first
        }
        let a = try #require(adds.first)
        #expect(adds.count == 1 && a.address == uplink1 && a.addressID == 2 && a.port == 61_999 && !a.echo)
        #expect(a.hmac == MPTCPCrypto.addAddrHMAC(senderKey: s.localKey, receiverKey: s.peerKey, addressID: 2, address: uplink1, port: 61_999))
    }

    @Test("after the handshake: peer data goes to the host at its data-level place; the host's data is mapped from our IDSN; the host's ACK is the DATA_ACK")
    func dataBothWays() throws {
        let s = ResponderScript()
        _ = try s.handshake()
        var rng = SplitMix64(seed: 9)
        let down = randomBytes(1000, &rng)
        let e = s.h.peer(s.fromPeer(seq: s.peerISN &+ 1, ack: s.hostISN &+ 1,
                                    mptcp: [.dss(DSS(dataAck: s.L &+ 1, dataAck8: true,
                                                     mapping: DSSMapping(dsn: s.R &+ 1, subflowSeq: 1, length: 1000), dsn8: true))],
                                    payload: down))
        let o = try e.rewritten()
        #expect(o.destination == s.host && o.seq == s.peerISN &+ 1 && o.payload == down && o.mptcp.isEmpty)
        // The host acknowledges it and sends 1200 bytes.
        let up = randomBytes(1200, &rng)
        let u = s.h.lan(s.fromHost(seq: 1, ack: 1001, payload: up))
        let sent = (u.output.flatMap { Decoded($0) }.map { [$0] } ?? []) + u.outbox.filter { $0.side != .lan }.compactMap { Decoded($0.bytes) }
        let data = sent.filter { !$0.payload.isEmpty }
        #expect(data.reduce(0) { $0 + $1.payload.count } == 1200)
        let m = try #require(data.first?.dss?.mapping)
        #expect(m.dsn == s.L &+ 1 || m.dsn == (s.L &+ 1) & 0xffff_ffff)
        // The DATA_ACK the peer gets covers what the host acknowledged.
        let acks = sent.compactMap { $0.dss?.dataAck }
        #expect(acks.contains { $0 == s.R &+ 1001 || $0 == (s.R &+ 1001) & 0xffff_ffff })
    }

    @Test("the peer joins uplink 1's announced address: SYN/ACK with our truncated HMAC, its third ACK's HMAC checked, the fourth ACK; a bad HMAC gets a RST; an unknown token is not ours")
    func joinAccepted() throws {
        for bad in [false, true] {
            let s = ResponderScript()
            _ = try s.handshake()
            let here = Endpoint(address: uplink1, port: 61_999)
            let from = Endpoint(address: IPAddress("203.0.113.8")!, port: 40_001)
            let nonce: UInt32 = 0x5555_aaaa
            let joinISN: UInt32 = 0x2000_0000
            let syn = makeTCPPacket(from: from, to: here, seq: joinISN, ack: 0, flags: SYN, window: 64_240,
                                    options: s.synOptions + [.mptcp(.mpJoin(.syn(flags: 0, addressID: 3, token: MPTCPCrypto.token(key: s.localKey), nonce: nonce)))])
            let e = s.h.send(syn, .uplink(1))
            #expect(e.verdict == .drop(.consumed))
            let sa = try #require(e.outbox.first { $0.side == .uplink(1) }.flatMap { Decoded($0.bytes) })
            #expect(sa.flags == SYN | ACK && sa.ack == joinISN &+ 1 && sa.source == here && sa.destination == from)
            guard case let .mpJoin(.synAck(_, id, truncated, ourNonce)) = try #require(sa.mptcp.first) else {
                Issue.record("no MP_JOIN SYN/ACK"); return
            }
            #expect(id == 2)
            #expect(truncated == MPTCPCrypto.joinHMAC(keyLocal: s.localKey, keyRemote: s.peerKey, nonceLocal: ourNonce, nonceRemote: nonce).a)
            var mac = MPTCPCrypto.joinHMAC(keyLocal: s.peerKey, keyRemote: s.localKey, nonceLocal: nonce, nonceRemote: ourNonce)
            if bad { mac.a ^= 1 }
            let third = makeTCPPacket(from: from, to: here, seq: joinISN &+ 1, ack: sa.seq &+ 1, flags: ACK, window: 1000,
                                      options: [.mptcp(.mpJoin(.ack(reserved: 0, hmac: mac)))])
            let t = s.h.send(third, .uplink(1))
            let back = t.outbox.filter { $0.side == .uplink(1) }.compactMap { Decoded($0.bytes) }
            if bad {
                #expect(back.contains { $0.flags & RST != 0 } && s.h.engine.stats.joinsRefused == 1 && s.h.engine.stats.joinsAccepted == 0)
            } else {
                #expect(back.contains { $0.flags == ACK && $0.ack == joinISN &+ 1 } && s.h.engine.stats.joinsAccepted == 1)
            }
        }
        // A token no connection has: passed on (a native MPTCP host, or the gateway's own stack, answers it).
        let s = ResponderScript()
        _ = try s.handshake()
        let stray = makeTCPPacket(from: s.peer, to: Endpoint(address: uplink1, port: 61_999), seq: 1, ack: 0, flags: SYN,
                                  options: s.synOptions + [.mptcp(.mpJoin(.syn(flags: 0, addressID: 1, token: 0xdead_beef, nonce: 1)))])
        #expect(s.h.send(stray, .uplink(1)).verdict == .accept)
    }

    @Test("the peer reuses a join's 4-tuple (its source port) once that subflow is over, for this connection or another: the new SYN is answered and the join taken, not dropped as the old subflow's; the old subflow's own retransmitted SYN is still its own")
    func joinReusesFourTuple() throws {
        let x = ResponderScript()
        _ = try x.handshake()
        let y = ResponderScript(sharing: x, peerPort: 40_002)
        _ = try y.handshake()
        #expect(x.localKey != y.localKey)
        let here = Endpoint(address: uplink1, port: 61_999)
        let from = Endpoint(address: IPAddress("203.0.113.8")!, port: 61_000)
        // Connection x's join from port 61000, then reset by the peer (its side gave it up).
        #expect(try x.join(from: from, to: here, isn: 0x2000_0000, nonce: 1))
        _ = x.h.send(makeTCPPacket(from: from, to: here, seq: 0x2000_0001, ack: 0, flags: RST, window: 0), .uplink(1))
        #expect(x.h.engine.stats.subflowsFailed == 1)
        // Port 61000 is free again on the peer's side: connection y's join from it.
        #expect(try y.join(from: from, to: here, isn: 0x3000_0000, nonce: 2))
        // x's join again from the same port (y's subflow there gone without a word
        // reaching us): a SYN with a new ISN on a live passive subflow. RFC 5961
        // §4: it gets a challenge ACK on the live subflow (not a teardown: the
        // token is known to whoever saw the set-up); the peer's stack, in
        // SYN-SENT on that port, answers it with a RST at exactly the ACK number,
        // which ends the old subflow; the SYN, sent again, is taken.
        let challenged = x.h.send(x.joinSYN(from: from, to: here, isn: 0x4000_0000, nonce: 3), .uplink(1))
        #expect(challenged.verdict == .drop(.invalid))
        let ack = try #require(challenged.outbox.first { $0.side == .uplink(1) }.flatMap { Decoded($0.bytes) })
        #expect(ack.flags == ACK && ack.destination == from && y.h.engine.stats.subflowsFailed == 1)
        _ = x.h.send(makeTCPPacket(from: from, to: here, seq: ack.ack, ack: 0, flags: RST, window: 0), .uplink(1))
        #expect(x.h.engine.stats.subflowsFailed == 2)
        #expect(try x.join(from: from, to: here, isn: 0x4000_0000, nonce: 3))
        #expect(x.h.engine.stats.joinsAccepted == 3 && x.h.engine.stats.joinsRefused == 0)
        // A retransmission of a SYN whose join is under way is that join's: the same SYN/ACK, no new subflow.
        let other = Endpoint(address: IPAddress("203.0.113.8")!, port: 61_001)
        let first = x.h.send(x.joinSYN(from: other, to: here, isn: 0x5000_0000, nonce: 4), .uplink(1))
        let again = x.h.send(x.joinSYN(from: other, to: here, isn: 0x5000_0000, nonce: 4), .uplink(1))
        let sa1 = try #require(first.outbox.first { $0.side == .uplink(1) }.flatMap { Decoded($0.bytes) })
        let sa2 = try #require(again.outbox.first { $0.side == .uplink(1) }.flatMap { Decoded($0.bytes) })
        #expect(sa1.flags == SYN | ACK && sa2.seq == sa1.seq && sa2.mptcp == sa1.mptcp)
    }

    @Test("a LAN host that answers with its own MP_CAPABLE is MPTCP-native: passed untouched and remembered; a third ACK without our key falls back to plain TCP")
    func nativeHostAndFallback() throws {
        let s = ResponderScript()
        _ = try s.h.peer(makeTCPPacket(from: s.peer, to: s.host, seq: s.peerISN, ack: 0, flags: SYN, window: 64_240,
                                       options: s.synOptions + [.mptcp(.mpCapable(MPCapable(version: 1, flags: MPCapable.flagHMACSHA256)))]))
            .rewritten()
        let native = s.h.lan(s.fromHost(seq: 0, ack: 1, flags: SYN | ACK, options: [
            .maxSegmentSize(1460), .sackPermitted, .timestamps(value: 1, echoReply: 1), .noOperation, .windowScale(7),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: MPCapable.flagHMACSHA256, senderKey: 42))),
        ]))
        #expect(native.verdict == .accept && s.h.engine.stats.passedNative == 1 && s.h.engine.stats.nativeConnections == 1)
        // Kept as native: its MPTCP packets pass both ways, untouched.
        let data = s.fromPeer(seq: s.peerISN &+ 1, ack: s.hostISN &+ 1, mptcp: [.dss(DSS(dataAck: 5, dataAck8: true))])
        #expect(s.h.peer(data).verdict == .accept)
        #expect(s.h.lan(s.fromHost(seq: 1, ack: 1)).verdict == .accept)

        let f = ResponderScript(seed: 4)
        let syn = makeTCPPacket(from: f.peer, to: f.host, seq: f.peerISN, ack: 0, flags: SYN, window: 64_240,
                                options: f.synOptions + [.mptcp(.mpCapable(MPCapable(version: 1, flags: MPCapable.flagHMACSHA256)))])
        _ = try f.h.peer(syn).rewritten()
        _ = try f.h.lan(f.fromHost(seq: 0, ack: 1, flags: SYN | ACK)).rewritten()
        let plainThird = f.h.peer(f.fromPeer(seq: f.peerISN &+ 1, ack: f.hostISN &+ 1))
        #expect(plainThird.verdict == .accept && f.h.engine.stats.connectionsFallback == 1 && f.h.engine.connectionCount == 0)
    }

    @Test("single uplink: the responder handshake and data without the multipath machinery")
    func singlePath() throws {
        let s = ResponderScript(multipath: false)
        let (_, synAck, third) = try s.handshake()
        #expect(synAck.mpCapable?.senderKey != nil)
        let t = try third.rewritten()
        #expect(t.destination == s.host && t.mptcp.isEmpty && t.ack == s.hostISN &+ 1)
        var rng = SplitMix64(seed: 2)
        let down = randomBytes(500, &rng)
        let o = try s.h.peer(s.fromPeer(seq: s.peerISN &+ 1, ack: s.hostISN &+ 1,
                                        mptcp: [.dss(DSS(dataAck: s.L &+ 1, dataAck8: true,
                                                         mapping: DSSMapping(dsn: s.R &+ 1, subflowSeq: 1, length: 500), dsn8: true))],
                                        payload: down)).rewritten()
        #expect(o.seq == s.peerISN &+ 1 && o.payload == down && o.mptcp.isEmpty)
        let up = try s.h.lan(s.fromHost(seq: 1, ack: 501, payload: randomBytes(300, &rng))).rewritten()
        #expect(up.dss?.mapping?.dsn == s.L &+ 1 && up.dss?.dataAck == s.R &+ 501)
    }

    // MARK: - Issue 12: interoperability with ordinary Linux settings

    @Test("single uplink: the peer's join for one of our connections (its second address) is answered by the gateway, RST + MP_TCPRST, and never reaches the LAN host; another token passes")
    func singleUplinkJoinRefused() throws {
        let s = ResponderScript(multipath: false)
        _ = try s.handshake()
        let second = Endpoint(address: IPAddress("203.0.113.8")!, port: 40_100)
        let e = s.h.send(s.joinSYN(from: second, to: s.host, isn: 0x2000_0000, nonce: 7), .uplink(0))
        #expect(e.verdict == .drop(.badMPTCP))
        let rst = try #require(e.outbox.first { $0.side == .uplink(0) }.flatMap { Decoded($0.bytes) })
        #expect(rst.flags & RST != 0 && rst.destination == second && rst.source == s.host && rst.ack == 0x2000_0001)
        #expect(rst.mptcp.contains(.mpTCPRST(MPTCPRst(reason: MPTCPRst.reasonProhibited))))
        #expect(!e.outbox.contains { $0.side == .lan })
        #expect(s.h.engine.stats.joinsRefused == 1)
        let stray = makeTCPPacket(from: second, to: s.host, seq: 1, ack: 0, flags: SYN,
                                  options: s.synOptions + [.mptcp(.mpJoin(.syn(flags: 0, addressID: 1, token: 0xdead_beef, nonce: 1)))])
        #expect(s.h.send(stray, .uplink(0)).verdict == .accept)
    }

    @Test("single uplink: the peer's first data carrying MP_CAPABLE with the data-level length (no DSS) is taken at DSN IDSN + 1, not dropped")
    func singleUplinkFirstDataOnMPCapable() throws {
        let s = ResponderScript(multipath: false)
        _ = try s.handshake()
        var rng = SplitMix64(seed: 5)
        let data = randomBytes(1000, &rng)
        let e = s.h.peer(s.fromPeer(seq: s.peerISN &+ 1, ack: s.hostISN &+ 1,
                                    mptcp: [.mpCapable(MPCapable(version: 1, flags: MPCapable.flagHMACSHA256, senderKey: s.peerKey,
                                                                 receiverKey: s.localKey, dataLevelLength: 1000))],
                                    payload: data))
        let o = try e.rewritten()
        #expect(o.destination == s.host && o.seq == s.peerISN &+ 1 && o.payload == data && o.mptcp.isEmpty)
        #expect(s.h.engine.stats.dropped(.unmapped) == 0)
    }

    @Test("single uplink: the peer resends data at data level under new subflow sequence numbers (after a join was reset): the host gets each byte at its data-level place, and the subflow ACK follows the mapping, not the host's sequence number")
    func singleUplinkDataLevelRetransmission() throws {
        let s = ResponderScript(multipath: false)
        _ = try s.handshake()
        var rng = SplitMix64(seed: 6)
        let a = randomBytes(1000, &rng), b = randomBytes(1000, &rng)
        func dss(_ dsn: UInt64, _ ssn: UInt32, _ len: UInt16) -> [MPTCPOption] {
            [.dss(DSS(dataAck: s.L &+ 1, dataAck8: true, mapping: DSSMapping(dsn: dsn, subflowSeq: ssn, length: len), dsn8: true))]
        }
        // DSN R+1.. at subflow 1: to the host at 1 (same numbers).
        _ = try s.h.peer(s.fromPeer(seq: s.peerISN &+ 1, ack: s.hostISN &+ 1, mptcp: dss(s.R &+ 1, 1, 1000), payload: a)).rewritten()
        // The same data again at subflow 1001 (a data-level retransmission), then new data at 2001.
        let again = try s.h.peer(s.fromPeer(seq: s.peerISN &+ 1001, ack: s.hostISN &+ 1, mptcp: dss(s.R &+ 1, 1001, 1000), payload: a)).rewritten()
        #expect(again.seq == s.peerISN &+ 1 && again.payload == a)
        let next = try s.h.peer(s.fromPeer(seq: s.peerISN &+ 2001, ack: s.hostISN &+ 1, mptcp: dss(s.R &+ 1001, 2001, 1000), payload: b)).rewritten()
        #expect(next.seq == s.peerISN &+ 1001 && next.payload == b)
        // The host acknowledges 1001, then 1501, then all: the peer's subflow
        // is acknowledged at 2001, 2501, 3001 (before: 1001, 1501, 2001: stuck).
        // Its SACK of 1501-2001 (client space) becomes the subflow range
        // that carried those bytes last: 2501-3001.
        var blocks = SACKBlocks()
        blocks.append(SACKBlock(left: TCPSeq(s.peerISN &+ 1501), right: TCPSeq(s.peerISN &+ 2001)))
        let sacked = try s.h.lan(s.fromHost(seq: 1, ack: 1001, options: [.noOperation, .noOperation, .timestamps(value: 1, echoReply: 1),
                                                                       .noOperation, .noOperation, .sack(blocks)])).rewritten()
        var want = SACKBlocks()
        want.append(SACKBlock(left: TCPSeq(s.peerISN &+ 2501), right: TCPSeq(s.peerISN &+ 3001)))
        #expect(sacked.ack == s.peerISN &+ 2001 && sacked.options.contains(.sack(want)))
        for (hostAck, subflowAck, dataAck) in [(UInt32(1001), UInt32(2001), UInt64(1001)), (1501, 2501, 1501), (2001, 3001, 2001)] {
            let o = try s.h.lan(s.fromHost(seq: 1, ack: hostAck)).rewritten()
            #expect(o.ack == s.peerISN &+ subflowAck && o.dss?.dataAck == s.R &+ dataAck)
        }
    }

    @Test("IPv6, timestamps on: the uplink's ADD_ADDR with port and HMAC (30 bytes) goes on a pure ACK without timestamps instead of not at all")
    func announceIPv6BesideTimestamps() throws {
        let s = ResponderScript(v6: true)
        let (_, _, third) = try s.handshake()
        let adds = third.outbox.filter { $0.side == .uplink(0) }.compactMap { Decoded($0.bytes) }.filter { d in
            d.mptcp.contains { if case .addAddr = $0 { return true } else { return false } }
        }
        let d = try #require(adds.first)
        guard case let .addAddr(a) = try #require(d.mptcp.first) else { Issue.record("no ADD_ADDR"); return }
        #expect(a.address == uplink1v6 && a.port == 61_999 && a.addressID == 2 && !a.echo)
        #expect(a.hmac == MPTCPCrypto.addAddrHMAC(senderKey: s.localKey, receiverKey: s.peerKey, addressID: 2, address: uplink1v6, port: 61_999))
        #expect(d.optionLength <= 40 && d.flags == ACK && d.payload.isEmpty)
        #expect(s.h.engine.stats.addAddrSent == 1 && s.h.engine.stats.addAddrWithoutTimestamps == 1)
    }
}

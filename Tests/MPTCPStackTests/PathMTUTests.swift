import MPTCPStack
import TestSupport
import Testing

// Send/expect tests of segment sizes per uplink (issue 12): the MSS announced
// on a subflow and the segments sent on it follow the uplink's MTU; ICMP
// fragmentation-needed and a send the caller reports too big (EMSGSIZE)
// lower a subflow's size and what did not get through goes out again
// smaller; an uplink's MTU lowered later. The peer is played by the test.

private let ACK = TCPFlags.ack
private let SYN = TCPFlags.syn
private let RST = TCPFlags.rst

private func narrowConfig(mtu0: Int = 1500, mtu1: Int = 1500) -> EngineConfig {
    var config = multipathConfig()
    config.uplinks[0].mtu = mtu0
    config.uplinks[1].mtu = mtu1
    return config
}

/// Data segments among `packets`: (payload bytes at DSN offset from L+1).
private func dataByOffset(_ packets: [Decoded], _ s: MPScript) throws -> [Int: [UInt8]] {
    var out = [Int: [UInt8]]()
    for d in packets where !d.payload.isEmpty {
        let m = try #require(d.dss?.mapping)
        #expect(Int(m.length) == d.payload.count)
        out[Int(m.dsn &- (s.L &+ 1))] = d.payload
    }
    return out
}

/// An ICMP fragmentation-needed (type 3 code 4) from a router, with the next
/// hop's MTU, quoting the IP header and 8 bytes of `q`.
private func fragmentationNeeded(quoting q: [UInt8], mtu: UInt16) -> [UInt8] {
    let body = [3, 4, 0, 0, 0, 0, UInt8(mtu >> 8), UInt8(mtu & 0xff)] + Array(q.prefix(28))
    let total = 20 + body.count
    let ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0, 0, 64, IPProtocol.icmp, 0, 0, 192, 0, 2, 1]
        + Array(q[12 ..< 16])
    return ip + body
}

@Suite("Path MTU")
struct PathMTUTests {
    @Test("a 1400-byte uplink: the join SYN from it announces MSS 1360 and the segments sent on it fit 1400 bytes; the other uplink keeps 1500")
    func narrowJoinUplink() throws {
        let s = MPScript(config: narrowConfig(mtu1: 1400))
        let syn = try s.establish()
        #expect(syn.mss == 1360)
        _ = s.answerJoin(syn) // the peer announces 1460
        _ = s.onJoin(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L &+ 1)])
        var rng = SplitMix64(seed: 61)
        let data = randomBytes(1400 * 40, &rng)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data))
        let on0 = s.out(e, .uplink(0)).filter { !$0.payload.isEmpty }
        let on1 = s.out(e, .uplink(1)).filter { !$0.payload.isEmpty }
        try #require(!on0.isEmpty && !on1.isEmpty)
        #expect(on1.allSatisfy { $0.bytes.count <= 1400 })
        #expect(on1.map(\.payload.count).max() == 1400 - 40 - 12 - 28) // timestamps and a full DSS
        #expect(on0.map(\.payload.count).max() == 1500 - 40 - 12 - 28)
        #expect(on0.allSatisfy { $0.bytes.count <= 1500 })
        // Every byte once, as far as the windows let it go.
        let sent = try dataByOffset(on0 + on1, s)
        var stream = [UInt8]()
        for off in sent.keys.sorted() { #expect(off == stream.count); stream += sent[off]! }
        #expect(stream.count > 20_000 && stream == Array(data.prefix(stream.count)))
    }

    @Test("a 1400-byte uplink 1 (the initial subflow's): the client's SYN announces 1360 to the peer, the client hears the peer's MSS less our DSS room and the MTU's, data sent on it fits")
    func narrowInitialUplink() throws {
        let s = MPScript(config: narrowConfig(mtu0: 1400))
        let syn = try s.h.lan(s.c.syn()).rewritten()
        #expect(syn.mss == 1360)
        let synAck = try s.h.peer(s.c.synAck()).rewritten()
        #expect(synAck.mss == UInt16(1360 - 28))
        let third = s.h.lan(s.c.fromClient(seq: 1, ack: 1))
        s.localKey = try #require(s.out(third, .uplink(0)).first?.mpCapable?.senderKey)
        let e = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L &+ 1)]))
        let join = try #require(s.out(e, .uplink(1)).first)
        #expect(join.mss == 1460) // uplink 2 takes 1500
        var rng = SplitMix64(seed: 62)
        let data = randomBytes(1400 * 8, &rng)
        let d = s.out(s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data)), .uplink(0)).filter { !$0.payload.isEmpty }
        try #require(!d.isEmpty)
        #expect(d.allSatisfy { $0.bytes.count <= 1400 })
        #expect(d.map(\.payload.count).max() == 1400 - 40 - 12 - 28)
    }

    @Test("one uplink of 1280 bytes, IPv4 and IPv6: the client's SYN and the SYN/ACK towards it are clamped (the verdict keeps the client's segment sizes: DSS must still fit)")
    func oneUplinkClamp() throws {
        for v6 in [false, true] {
            var config = EngineConfig()
            config.uplinks = [UplinkConfig(addresses: [], mtu: 1280)]
            let h = EngineHarness(config: config)
            var c = v6 ? TestConn(client: Endpoint("2001:db8:1::10", 40_001), server: Endpoint("2001:db8:2::5", 443)) : TestConn()
            let limit: UInt16 = v6 ? 1280 - 60 : 1280 - 40
            let syn = try h.lan(c.syn()).rewritten()
            #expect(syn.mss == limit)
            let synAck = try h.peer(c.synAck()).rewritten()
            #expect(synAck.mss == UInt16(limit - 28))
        }
    }

    @Test("responder role, the peer's SYN on a 1400-byte uplink: the LAN host hears at most 1360 less our DSS room, the peer at most 1360")
    func responderClamp() throws {
        let h = EngineHarness(config: narrowConfig(mtu0: 1400))
        let peer = Endpoint("203.0.113.7", 40_000), host = Endpoint("192.168.1.10", 5001)
        let opts: [TCPOption] = [.maxSegmentSize(1460), .sackPermitted, .timestamps(value: 5, echoReply: 0), .noOperation, .windowScale(7)]
        let syn = try h.peer(makeTCPPacket(from: peer, to: host, seq: 0x1000_0000, ack: 0, flags: SYN, window: 64_240,
                                           options: opts + [.mptcp(.mpCapable(MPCapable(version: 1, flags: MPCapable.flagHMACSHA256)))]))
            .rewritten()
        #expect(syn.mss == UInt16(1360 - 28))
        let synAck = try h.lan(makeTCPPacket(from: host, to: peer, seq: 0x7000_0000, ack: 0x1000_0001, flags: SYN | ACK, window: 64_240,
                                             options: [.maxSegmentSize(1460), .sackPermitted, .timestamps(value: 9, echoReply: 5),
                                                       .noOperation, .windowScale(7)])).rewritten()
        #expect(synAck.mss == 1360)
    }

    @Test("ICMP fragmentation needed about a subflow's segment in flight: that subflow's segments shrink to the MTU it gives, what it had in flight goes out again smaller, and it is not given up")
    func icmpFragmentationNeeded() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 63)
        let data = randomBytes(1400 * 40, &rng)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data))
        let on1 = s.out(e, .uplink(1)).filter { !$0.payload.isEmpty }
        try #require(on1.count >= 2)
        #expect(on1.allSatisfy { $0.bytes.count == 1500 })
        // Not in flight (a sequence number far off): ignored.
        var forged = on1[0].bytes
        forged[24] ^= 0x80
        #expect(s.h.send(fragmentationNeeded(quoting: forged, mtu: 1300), .uplink(1), acceptedCheck: .none).outbox.isEmpty)
        #expect(s.h.engine.stats.mssLowered == 0)
        // A router beyond uplink 2 takes 1300 bytes at most.
        let r = s.h.send(fragmentationNeeded(quoting: on1[0].bytes, mtu: 1300), .uplink(1), acceptedCheck: .none)
        #expect(r.verdict == .accept) // on to where it was addressed
        #expect(s.h.engine.stats.icmpTooBig == 2 && s.h.engine.stats.mssLowered == 1)
        #expect(s.h.engine.stats.subflowsUnreachable == 0 && s.h.engine.stats.removeAddrSent == 0)
        let again = s.out(r, .uplink(1)).filter { !$0.payload.isEmpty }
        #expect(again.allSatisfy { $0.bytes.count <= 1300 })
        #expect(again.map(\.payload.count).max() == 1300 - 40 - 12 - 28)
        // Everything that was in flight on it, in smaller pieces, at the same
        // subflow sequence numbers and DSNs.
        let before = try dataByOffset(on1, s), after = try dataByOffset(again, s)
        func joined(_ m: [Int: [UInt8]]) -> [UInt8] { m.keys.sorted().flatMap { m[$0]! } }
        #expect(joined(after) == joined(before) && after.keys.min() == before.keys.min())
        #expect(again.first?.seq == on1.first?.seq)
        #expect(s.out(r, .uplink(0)).allSatisfy { $0.payload.isEmpty })
        // New data on it is sent at the new size; a second error about the same flight changes nothing.
        #expect(s.h.send(fragmentationNeeded(quoting: on1[1].bytes, mtu: 1300), .uplink(1), acceptedCheck: .none).outbox.isEmpty)
        #expect(s.h.engine.stats.mssLowered == 1)
    }

    @Test("a send the caller reports too big for the interface (EMSGSIZE): the subflow's segments shrink to the interface's MTU and the data of every packet that failed goes out again, once, smaller")
    func sendFailedTooBig() throws {
        // The engine believes uplink 2 takes 1500 bytes; its interface takes 1400.
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 64)
        let data = randomBytes(1400 * 40, &rng)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data))
        // The daemon's flush: each packet for uplink 2 fails; the engine's
        // answer is appended to the outbox, after the packets there.
        var failed: [Decoded] = [], resent: [Decoded] = []
        for (bytes, side) in e.outbox where side == .uplink(1) && bytes.count > 1400 {
            failed.append(try #require(Decoded(bytes)))
            bytes.withUnsafeBytes { s.h.engine.sendFailed(packet: $0, side: side, mtu: 1400, now: s.h.now) }
            resent += s.drain().filter { $0.side == .uplink(1) }.map(\.packet)
        }
        try #require(failed.count >= 2)
        #expect(s.h.engine.stats.sendTooBig == UInt64(failed.count) && s.h.engine.stats.mssLowered == 1)
        #expect(resent.allSatisfy { $0.bytes.count <= 1400 })
        #expect(resent.filter { !$0.payload.isEmpty }.map(\.payload.count).max() == 1400 - 40 - 12 - 28)
        // Exactly the bytes that failed, each once, at their subflow sequence numbers and DSNs.
        let f = try dataByOffset(failed, s), r = try dataByOffset(resent, s)
        func joined(_ m: [Int: [UInt8]]) -> [UInt8] { m.keys.sorted().flatMap { m[$0]! } }
        #expect(joined(r) == joined(f))
        #expect(resent.reduce(0) { $0 + $1.payload.count } == failed.reduce(0) { $0 + $1.payload.count })
        #expect(Set(resent.map(\.seq)).contains(failed[0].seq))
        // Later data on uplink 2 fits at once.
        let later = s.out(s.onJoin(seq: 1, ack: failed.last!.seq &- s.joinISN &+ UInt32(failed.last!.payload.count),
                                   mptcp: [s.peerDSS(s.L &+ 1)]), .uplink(1)).filter { !$0.payload.isEmpty }
        #expect(later.allSatisfy { $0.bytes.count <= 1400 })
    }

    @Test("an uplink's MTU lowered while in use: its subflow, whose announced MSS no longer fits, is reset and joined again with a smaller one; its data goes out on the other")
    func uplinkMTULowered() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 65)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: randomBytes(1400 * 14, &rng)))
        let on0 = s.out(e, .uplink(0)).reduce(0) { $0 + $1.payload.count }
        let on1 = s.out(e, .uplink(1)).reduce(0) { $0 + $1.payload.count }
        try #require(on1 > 0)
        // Subflow 0's share is acknowledged (its window has room again).
        _ = s.h.peer(s.c.fromPeer(seq: 1, ack: 1 + UInt32(on0), mptcp: [s.peerDSS(s.L &+ 1 &+ UInt64(on0))]))
        s.h.engine.uplink(1, mtu: 1400, now: s.h.now)
        let out = s.drain()
        #expect(out.contains { $0.side == .uplink(1) && $0.packet.flags & RST != 0 })
        #expect(s.h.engine.stats.subflowsOverMTU == 1)
        #expect(out.filter { $0.side == .uplink(0) }.reduce(0) { $0 + $1.packet.payload.count } == on1)
        // A second later: a join from uplink 2 announcing what it takes now.
        s.h.advance(.milliseconds(1100))
        let join = try #require(s.timerOut(.uplink(1)).first { $0.flags == SYN })
        #expect(join.mss == 1360)
        // The same MTU again, or a larger one: nothing happens.
        s.h.engine.uplink(1, mtu: 1400, now: s.h.now)
        s.h.engine.uplink(1, mtu: 1500, now: s.h.now)
        #expect(s.drain().isEmpty && s.h.engine.stats.subflowsOverMTU == 1)
    }

    @Test("a retransmission after the MTU went down is split to the new size")
    func retransmissionSplit() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 66)
        let data = randomBytes(1400 * 4, &rng)
        let on0 = s.out(s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data)), .uplink(0)).filter { !$0.payload.isEmpty }
        try #require(on0.first?.bytes.count == 1500)
        // The path beyond uplink 1 shrinks (an ICMP error quoting a segment
        // now in flight), then subflow 0 times out: its first segment goes
        // out again in pieces that fit.
        _ = s.h.send(fragmentationNeeded(quoting: on0[0].bytes, mtu: 1280), .uplink(0), acceptedCheck: .none)
        s.h.advance(.milliseconds(1100))
        s.h.runTimers()
        let re0 = s.drain().filter { $0.side == .uplink(0) && !$0.packet.payload.isEmpty }.map(\.packet)
        #expect(!re0.isEmpty && re0.allSatisfy { $0.bytes.count <= 1280 })
        #expect(re0.first?.seq == on0[0].seq)
    }
}

import MPTCPStack
import TestSupport
import Testing

// Send/expect tests of multipath connections (two uplinks): joins with their
// HMACs, the scheduler's mappings, DATA_ACK to the client, peer data from a
// joined subflow moved onto the client's connection, retransmission,
// reinjection after an RTO, and the close. The peer is played by the test.

private let ACK = TCPFlags.ack
private let PSH = TCPFlags.psh
private let FIN = TCPFlags.fin
private let RST = TCPFlags.rst
private let SYN = TCPFlags.syn

private let uplink0 = IPAddress("198.51.100.1")!
private let uplink1 = IPAddress("198.51.100.2")!

func multipathConfig(sendBuffer: Int = 1 << 20) -> EngineConfig {
    var config = EngineConfig()
    config.uplinks = [UplinkConfig(addresses: [uplink0]), UplinkConfig(addresses: [uplink1])]
    config.sendBuffer = sendBuffer
    return config
}

/// The test's side of a two-subflow connection.
final class MPScript {
    let h: EngineHarness
    var c = TestConn()
    var localKey: UInt64 = 0
    var L: UInt64 { MPTCPCrypto.idsn(key: localKey) }
    var R: UInt64 { c.remoteIDSN }
    /// The join subflow as the peer sees it.
    var joinLocal = Endpoint("198.51.100.2", 0)
    var joinISN: UInt32 = 0
    let peerJoinISN: UInt32 = 0x5000_0000
    let peerNonce: UInt32 = 0x0BAD_CAFE
    var ourNonce: UInt32 = 0
    var peerTS: UInt32 = 900_000

    /// `sharing`: another connection through the same engine (from `client`).
    init(seed: UInt64 = 7, config: EngineConfig = multipathConfig(), sharing other: MPScript? = nil, client: Endpoint? = nil) {
        h = other?.h ?? EngineHarness(seed: seed, config: config)
        if let client { c = TestConn(client: client) }
    }

    /// Packets the engine sent towards `side` (carried by the verdict, or
    /// originated), decoded.
    func out(_ e: EngineEvent, _ side: Side) -> [Decoded] {
        e.sent.filter { $0.side == side }.compactMap { Decoded($0.bytes) }
    }

    /// What the engine sent on its own since the last event (timers, or a
    /// call such as `uplink(_:isUp:now:)`), decoded, with its side.
    func drain() -> [(packet: Decoded, side: Side)] {
        var sent: [(packet: Decoded, side: Side)] = []
        for i in 0 ..< h.engine.outbox.count {
            let (b, side) = h.engine.outbox.packet(i)
            if let d = Decoded(Array(b)) { sent.append((d, side)) }
        }
        h.engine.outbox.removeAll()
        for r in h.takeReleases() { if let b = r.bytes, let d = Decoded(b) { sent.append((d, r.side)) } }
        return sent
    }

    /// Runs the timers; what they sent towards `side` (nil: any), decoded.
    func timerOut(_ side: Side?) -> [Decoded] {
        h.runTimers()
        return drain().filter { side == nil || $0.side == side }.map(\.packet)
    }

    func peerDSS(_ dataAck: UInt64, mapping: DSSMapping? = nil, fin: Bool = false) -> MPTCPOption {
        .dss(DSS(dataAck: dataAck, dataAck8: true, mapping: mapping, dsn8: true, dataFin: fin))
    }

    /// SYN, SYN/ACK, the client's third ACK (consumed: the engine sends its
    /// own with both keys), and the peer's first DSS, which opens the join.
    /// Returns the join SYN.
    func establish() throws -> Decoded {
        let syn = try h.lan(c.syn()).rewritten()
        #expect(syn.mpCapable != nil)
        _ = try h.peer(c.synAck()).rewritten()
        let third = h.lan(c.fromClient(seq: 1, ack: 1))
        #expect(third.verdict == .drop(.consumed))
        let own = try #require(out(third, .uplink(0)).first)
        let mpc = try #require(own.mpCapable)
        #expect(mpc.receiverKey == c.peerKey)
        #expect(own.source == c.client && own.destination == c.server)
        #expect(own.seq == c.cs(1) && own.ack == c.ss(1) && own.flags == ACK)
        localKey = try #require(mpc.senderKey)
        // The peer's first DSS (a pure ACK with DATA_ACK) shows it has our key.
        let e = h.peer(c.fromPeer(seq: 1, ack: 1, mptcp: [peerDSS(L &+ 1)]))
        let joins = out(e, .uplink(1))
        try #require(joins.count == 1)
        return joins[0]
    }

    /// Answers the join SYN (a correct HMAC unless `badHMAC`) and returns the event.
    func answerJoin(_ syn: Decoded, badHMAC: Bool = false) -> EngineEvent {
        joinLocal = syn.source
        joinISN = syn.seq
        guard case let .mpJoin(.syn(_, _, _, nonce)) = syn.mptcp.first! else { Issue.record("not a join SYN"); return h.peer([]) }
        ourNonce = nonce
        var mac = MPTCPCrypto.joinHMAC(keyLocal: c.peerKey, keyRemote: localKey, nonceLocal: peerNonce, nonceRemote: nonce).a
        if badHMAC { mac ^= 1 }
        peerTS &+= 1
        let p = makeTCPPacket(from: c.server, to: joinLocal, seq: peerJoinISN, ack: joinISN &+ 1, flags: SYN | ACK, window: 65_160,
                              options: [.maxSegmentSize(1460), .sackPermitted, .timestamps(value: peerTS, echoReply: 1),
                                        .noOperation, .windowScale(7),
                                        .mptcp(.mpJoin(.synAck(flags: 0, addressID: 0, truncatedHMAC: mac, nonce: peerNonce)))])
        return h.send(p, .uplink(1))
    }

    /// A segment from the peer on the join subflow (seq/ack relative to the ISNs).
    func onJoin(seq: UInt32, ack: UInt32, flags: UInt8 = ACK, mptcp: [MPTCPOption], payload: [UInt8] = [],
                window: UInt16 = 502, echo: UInt32 = 1, sack: [(UInt32, UInt32)] = []) -> EngineEvent {
        peerTS &+= 1
        var sackOption: [TCPOption] = []
        if !sack.isEmpty {
            var b = SACKBlocks()
            for (l, r) in sack { b.append(SACKBlock(left: TCPSeq(joinISN &+ l), right: TCPSeq(joinISN &+ r))) }
            sackOption = [.noOperation, .noOperation, .sack(b)]
        }
        let p = makeTCPPacket(from: c.server, to: joinLocal, seq: peerJoinISN &+ seq, ack: joinISN &+ ack, flags: flags,
                              window: window, options: [.noOperation, .noOperation, .timestamps(value: peerTS, echoReply: echo)]
                                  + sackOption + mptcp.map { .mptcp($0) },
                              payload: payload)
        return h.send(p, .uplink(1))
    }

    /// Establishes both subflows (join answered, fourth ACK sent).
    func twoSubflows() throws {
        let syn = try establish()
        let e = answerJoin(syn)
        #expect(e.verdict == .drop(.consumed))
        _ = onJoin(seq: 1, ack: 1, mptcp: [peerDSS(L &+ 1)])
    }
}

@Suite("Multipath")
struct MultipathTests {
    @Test("the peer's first DSS opens an MP_JOIN subflow from uplink 1: token, nonce, address id, options")
    func joinSYN() throws {
        let s = MPScript()
        let syn = try s.establish()
        #expect(syn.source.address == uplink1)
        #expect((61_000 ... 61_999).contains(syn.source.port))
        #expect(syn.destination == s.c.server)
        #expect(syn.flags == SYN)
        guard case let .mpJoin(.syn(flags, addressID, token, _)) = try #require(syn.mptcp.first) else {
            Issue.record("no MP_JOIN SYN"); return
        }
        #expect(token == MPTCPCrypto.token(key: s.c.peerKey))
        #expect(addressID == 2 && flags == 0) // uplink index + 1: 0 is the initial subflow's address
        #expect(syn.mss == 1460)
        #expect(syn.options.contains(.windowScale(7)) && syn.options.contains(.sackPermitted))
        #expect(s.h.engine.stats.joinsSent == 1)
    }

    @Test("join SYN/ACK: a correct HMAC gets the third ACK with the full HMAC; a wrong one gets a RST")
    func joinHMAC() throws {
        let s = MPScript()
        let e = s.answerJoin(try s.establish())
        let third = try #require(s.out(e, .uplink(1)).first)
        guard case let .mpJoin(.ack(_, mac)) = try #require(third.mptcp.first) else { Issue.record("no MP_JOIN ACK"); return }
        #expect(mac == MPTCPCrypto.joinHMAC(keyLocal: s.localKey, keyRemote: s.c.peerKey, nonceLocal: s.ourNonce, nonceRemote: s.peerNonce))
        #expect(third.seq == s.joinISN &+ 1 && third.ack == s.peerJoinISN &+ 1 && third.flags == ACK)

        let bad = MPScript(seed: 8)
        let e2 = bad.answerJoin(try bad.establish(), badHMAC: true)
        #expect(e2.verdict == .drop(.badMPTCP))
        let rst = try #require(bad.out(e2, .uplink(1)).first)
        #expect(rst.flags & RST != 0)
        #expect(bad.h.engine.stats.joinsRejected == 1)
    }

    @Test("no data on a joined subflow before the fourth ACK; then the scheduler uses both")
    func fourthAck() throws {
        let s = MPScript()
        _ = s.answerJoin(try s.establish())
        // 40 segments of client data: subflow 0's window (10 segments) fills,
        // the join subflow is not established yet.
        var rng = SplitMix64(seed: 3)
        let data = randomBytes(1400 * 40, &rng)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data))
        // At this rate nothing is carried (`carryMinSegments`): ten from the outbox.
        #expect(!e.isCarry)
        #expect(s.out(e, .uplink(1)).isEmpty)
        let first = s.out(e, .uplink(0))
        #expect(first.count == 10)
        // The fourth ACK: the join subflow takes the next 10.
        let e2 = s.onJoin(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L &+ 1)])
        let second = s.out(e2, .uplink(1))
        #expect(second.count == 10)
        #expect(second.allSatisfy { $0.source.address == uplink1 && !$0.payload.isEmpty })
    }

    @Test("upload: every byte mapped exactly once across the subflows, payload equal, subflow sequences contiguous")
    func uploadMappings() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 4)
        let data = randomBytes(20_000, &rng)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data))
        var covered = [UInt8](repeating: 0, count: data.count)
        var seen = [Side: UInt32]()
        for (bytes, side) in e.sent {
            let d = try #require(Decoded(bytes))
            guard !d.payload.isEmpty else { continue }
            let dss = try #require(d.dss)
            let m = try #require(dss.mapping)
            #expect(Int(m.length) == d.payload.count)
            #expect(dss.dataAck == s.R &+ 1)
            let off = Int(m.dsn &- (s.L &+ 1))
            #expect(Array(data[off ..< off + d.payload.count]) == d.payload)
            for i in off ..< off + d.payload.count { covered[i] += 1 }
            // Subflow sequence numbers follow on from each other.
            if let next = seen[side] { #expect(d.seq == next) }
            seen[side] = d.seq &+ UInt32(d.payload.count)
            #expect(d.bytes.count <= 1500)
        }
        #expect(covered.allSatisfy { $0 == 1 })
        #expect(seen.count == 2)
    }

    @Test("client segments reordered on the LAN: later ones held until the gap fills, every byte sent once, in order; a FIN beyond a gap waits")
    func clientReordered() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 9)
        let data = randomBytes(3000, &rng)
        // 1000..2000 and 2500..3000 come first: held beyond the gap, quietly
        // (no ACK: the ACK number could not move, and SACK blocks for data
        // only the gateway holds would give the client a LAN-sized RTT).
        let e1 = s.h.lan(s.c.fromClient(seq: 1 + 1000, ack: 1, payload: Array(data[1000 ..< 2000])))
        #expect(e1.verdict == .drop(.consumed))
        #expect(e1.outbox.isEmpty)
        let e2 = s.h.lan(s.c.fromClient(seq: 1 + 2500, ack: 1, payload: Array(data[2500 ..< 3000])))
        #expect(e2.outbox.isEmpty)
        #expect(s.h.engine.stats.clientOutOfOrder == 2)
        // The first gap filled: 0..2000 goes out; 2000..2500 is still missing.
        let e3 = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: Array(data[0 ..< 1000])))
        var sent = [Int: [UInt8]]()
        for d in s.out(e3, .uplink(0)) + s.out(e3, .uplink(1)) where !d.payload.isEmpty {
            let m = try #require(d.dss?.mapping)
            sent[Int(m.dsn &- (s.L &+ 1))] = d.payload
        }
        #expect(sent.values.reduce(0) { $0 + $1.count } == 2000)
        // The last gap: the rest goes out, once.
        let e4 = s.h.lan(s.c.fromClient(seq: 1 + 2000, ack: 1, payload: Array(data[2000 ..< 2500])))
        #expect(s.out(e4, .lan).isEmpty) // no ACK until the peer's DATA_ACK
        for d in s.out(e4, .uplink(0)) + s.out(e4, .uplink(1)) where !d.payload.isEmpty {
            let m = try #require(d.dss?.mapping)
            let off = Int(m.dsn &- (s.L &+ 1))
            #expect(sent[off] == nil)
            sent[off] = d.payload
        }
        var stream = [UInt8]()
        for off in sent.keys.sorted() { #expect(off == stream.count); stream += sent[off]! }
        #expect(stream == data)
        // The client's FIN beyond a gap waits for the gap.
        let data2 = randomBytes(200, &rng)
        let f1 = s.h.lan(s.c.fromClient(seq: 1 + 3100, ack: 1, flags: ACK | FIN, payload: Array(data2[100 ..< 200])))
        #expect((s.out(f1, .uplink(0)) + s.out(f1, .uplink(1))).allSatisfy { $0.dss?.dataFin != true })
        let f2 = s.h.lan(s.c.fromClient(seq: 1 + 3000, ack: 1, payload: Array(data2[0 ..< 100])))
        let fins = (s.out(f2, .uplink(0)) + s.out(f2, .uplink(1))).filter { $0.dss?.dataFin == true }
        #expect(fins.count == 1)
        #expect((s.out(f2, .uplink(0)) + s.out(f2, .uplink(1))).reduce(0) { $0 + $1.payload.count } == 200)
    }

    @Test("the client is acknowledged only by the peer's DATA_ACK, with the window capped by the send buffer")
    func dataAckToClient() throws {
        let s = MPScript(config: multipathConfig(sendBuffer: 64 * 1024))
        try s.twoSubflows()
        var rng = SplitMix64(seed: 5)
        let data = randomBytes(5000, &rng)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data))
        #expect(s.out(e, .lan).isEmpty) // nothing acknowledged yet
        let segs = s.out(e, .uplink(0)) + s.out(e, .uplink(1))
        #expect(segs.reduce(0) { $0 + $1.payload.count } == 5000)
        // A subflow-level ACK alone (DATA_ACK unchanged) tells the client nothing.
        let sub0 = s.out(e, .uplink(0))
        let end0 = try #require(sub0.last).seq &+ UInt32(sub0.last!.payload.count)
        let a = s.h.peer(s.c.fromPeer(seq: 1, ack: end0 &- s.c.clientISN, mptcp: [s.peerDSS(s.L &+ 1)]))
        #expect(s.out(a, .lan).isEmpty)
        // The DATA_ACK of everything: the client hears it.
        let b = s.h.peer(s.c.fromPeer(seq: 1, ack: end0 &- s.c.clientISN, mptcp: [s.peerDSS(s.L &+ 1 &+ 5000)]))
        let ack = try #require(s.out(b, .lan).first)
        #expect(ack.ack == s.c.cs(1 + 5000) && ack.seq == s.c.ss(1) && ack.flags == ACK)
        #expect(ack.source == s.c.server && ack.destination == s.c.client)
        // Window: the peer's is 502 << 7 = 64256 bytes; the buffer's edge is
        // 65536 bytes past the oldest byte a subflow still holds (subflow 1
        // has not acknowledged its part): (65536 - 5000) >> 7 = 472.
        #expect(ack.window == 472)
    }

    @Test("peer data on the joined subflow goes to the client at its data-level place; the subflow is acknowledged")
    func downloadOnJoin() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 6)
        let data = randomBytes(1000, &rng)
        let m = DSSMapping(dsn: s.R &+ 1 &+ 3000, subflowSeq: 1, length: 1000)
        let e = s.onJoin(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L &+ 1, mapping: m)], payload: data)
        let o = try e.rewritten()
        #expect(o.source == s.c.server && o.destination == s.c.client)
        #expect(o.seq == s.c.ss(1 + 3000) && o.payload == data)
        #expect(o.mptcp.isEmpty)
        let ack = try #require(s.out(e, .uplink(1)).first)
        #expect(ack.ack == s.peerJoinISN &+ 1001 && ack.payload.isEmpty)
        // The client has not acknowledged it yet. (Pure ACKs carry a 4-byte DATA_ACK.)
        #expect(ack.dss?.dataAck == (s.R &+ 1) & 0xffff_ffff)
        // The client acknowledges the data (in order, after 3000 bytes on subflow 0, say).
        let m0 = DSSMapping(dsn: s.R &+ 1, subflowSeq: 1, length: 3000)
        _ = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L &+ 1, mapping: m0)], payload: randomBytes(3000, &rng)))
        let ca = s.h.lan(s.c.fromClient(seq: 1, ack: 4001))
        let da = try #require((s.out(ca, .uplink(0)) + s.out(ca, .uplink(1))).first)
        #expect(da.dss?.dataAck == (s.R &+ 4001) & 0xffff_ffff)
    }

    @Test("an RTO on one subflow: its data goes out again on the other, retransmitted on its own, with backoff")
    func rtoReinjection() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 9)
        let data = randomBytes(1400 * 4, &rng)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data))
        let on0 = s.out(e, .uplink(0))
        #expect(on0.count == 4) // all on subflow 0 (room, equal RTT estimates)
        // Subflow 0 goes silent; after the RTO (1 s, no sample yet) the data is
        // retransmitted on subflow 0 and sent again on subflow 1.
        s.h.advance(.milliseconds(1100))
        s.h.runTimers()
        let sent = s.drain()
        let re0 = sent.filter { $0.side == .uplink(0) }.map(\.packet)
        let re1 = sent.filter { $0.side == .uplink(1) }.map(\.packet)
        #expect(re0.count == 1 && re0[0].seq == on0[0].seq)
        #expect(re1.reduce(0) { $0 + $1.payload.count } == data.count)
        #expect(s.h.engine.stats.rtoExpiries == 1)
        #expect(s.h.engine.stats.reinjectedBytes == UInt64(data.count))
    }

    @Test("subflow SACKs: reordering by fewer than 3 segments is not loss; a fast retransmit the peer's timestamps show spurious is undone")
    func reorderingAndUndo() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 12)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: randomBytes(1400 * 40, &rng)))
        let on1 = s.out(e, .uplink(1)).filter { !$0.payload.isEmpty }
        try #require(on1.count >= 6)
        let mss = UInt32(on1[0].payload.count)
        func rel(_ i: Int) -> UInt32 { on1[i].seq &- s.joinISN } // subflow offset of segment i
        var originalTS: UInt32 = 0
        for o in on1[0].options { if case .timestamps(let v, _) = o { originalTS = v } }
        let cwndBefore = try #require(cwnd(of: 1, s.h.engine.multipathState))
        s.h.advance(.milliseconds(30))
        // Segment 0 overtaken by 1 and 2: SACKed above it, but not lost yet.
        for k in 1 ... 2 {
            let a = s.onJoin(seq: 1, ack: rel(0), mptcp: [s.peerDSS(s.L &+ 1)], echo: originalTS, sack: [(rel(1), rel(k) &+ mss)])
            #expect(s.out(a, .uplink(1)).allSatisfy { $0.seq != on1[0].seq || $0.payload.isEmpty }, "resent after \(k) SACKed")
        }
        #expect(s.h.engine.stats.fastRetransmits == 0)
        // A third segment SACKed above it: lost (RFC 6675), resent once.
        s.h.advance(.milliseconds(5))
        let a3 = s.onJoin(seq: 1, ack: rel(0), mptcp: [s.peerDSS(s.L &+ 1)], echo: originalTS, sack: [(rel(1), rel(3) &+ mss)])
        #expect(s.out(a3, .uplink(1)).filter { $0.seq == on1[0].seq && !$0.payload.isEmpty }.count == 1)
        #expect(s.h.engine.stats.fastRetransmits == 1)
        // Then the original shows up: the cumulative ACK echoes the TSval it
        // carried (older than the retransmission's). The recovery is undone.
        s.h.advance(.milliseconds(5))
        _ = s.onJoin(seq: 1, ack: rel(4), mptcp: [s.peerDSS(s.L &+ 1)], echo: originalTS)
        #expect(s.h.engine.stats.spuriousRecoveries == 1)
        // The window is what it was (no halving), and the subflow now waits
        // for 6 SACKed segments before calling one lost.
        let state = s.h.engine.multipathState
        #expect(!state.contains("recovery"), "\(state)")
        #expect(try #require(cwnd(of: 1, state)) >= cwndBefore, "\(state)")
    }

    @Test("a dead subflow is reset after repeated RTOs and joined anew from the same uplink")
    func rejoin() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 10)
        _ = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: randomBytes(1400, &rng)))
        var resets = 0, joins = 0
        for _ in 0 ..< 40 {
            s.h.advance(.milliseconds(500))
            s.h.runTimers()
            for i in 0 ..< s.h.engine.outbox.count {
                let (b, side) = s.h.engine.outbox.packet(i)
                guard let d = Decoded(Array(b)) else { continue }
                if side == .uplink(0) && d.flags & RST != 0 { resets += 1 }
                if side == .uplink(0) && d.flags == SYN, case .mpJoin = d.mptcp.first { joins += 1 }
            }
            s.h.engine.outbox.removeAll()
        }
        // Nothing is ever acknowledged here: subflow 0 is reset once and
        // joined again from uplink 0's address.
        #expect(resets == 1)
        #expect(joins >= 1)
        #expect(s.h.engine.stats.subflowsFailed >= 1)
    }

    @Test("join source ports all in use (--join-ports exhausted): a connection beyond them stays single-path without taking a slot for a join never sent; a failed subflow's successor gets its port again")
    func joinPortsExhausted() throws {
        var config = multipathConfig()
        config.joinPorts = 61_000 ... 61_001 // one port for joins: the top one is for the peer's joins to our announced addresses
        let s = MPScript(config: config)
        try s.twoSubflows()
        #expect(s.joinLocal.port == 61_000)
        // A second connection: no port left for its join from uplink 1.
        let t = MPScript(sharing: s, client: Endpoint("192.168.1.10", 40_002))
        _ = try t.h.lan(t.c.syn()).rewritten()
        _ = try t.h.peer(t.c.synAck()).rewritten()
        let third = t.h.lan(t.c.fromClient(seq: 1, ack: 1))
        t.localKey = try #require(t.out(third, .uplink(0)).first?.mpCapable?.senderKey)
        let e = t.h.peer(t.c.fromPeer(seq: 1, ack: 1, mptcp: [t.peerDSS(t.L &+ 1)]))
        #expect(t.out(e, .uplink(1)).isEmpty && s.h.engine.stats.joinsSent == 1)
        for _ in 0 ..< 5 {
            s.h.advance(.milliseconds(500))
            _ = s.timerOut(nil)
        }
        #expect(s.h.engine.stats.joinsSent == 1)
        // Every slot listed is a subflow (none appended for the join that found no port).
        #expect(!s.h.engine.multipathState.contains("unused"))
        // The peer resets the first connection's join subflow: a second later
        // it is joined again, from the same (only) port.
        _ = s.onJoin(seq: 1, ack: 1, flags: RST, mptcp: [])
        #expect(s.h.engine.stats.subflowsFailed == 1)
        var rejoin: Decoded?
        for _ in 0 ..< 4 where rejoin == nil {
            s.h.advance(.milliseconds(400))
            rejoin = s.timerOut(.uplink(1)).first { $0.flags == SYN }
        }
        let r = try #require(rejoin)
        #expect(r.source == Endpoint(address: uplink1, port: 61_000) && r.destination == s.c.server)
        #expect(s.h.engine.stats.joinsSent == 2)
    }

    @Test("300 connections' join SYNs due again at once: a timer pass stops before the outbox overflows, the next one sends the rest; nothing is lost")
    func timerPassBoundedByOutbox() throws {
        let s = MPScript()
        var scripts = [s]
        for i in 1 ..< 300 { scripts.append(MPScript(sharing: s, client: Endpoint("192.168.1.10", UInt16(41_000 + i)))) }
        for t in scripts {
            _ = try t.h.lan(t.c.syn()).rewritten()
            _ = try t.h.peer(t.c.synAck()).rewritten()
            let third = t.h.lan(t.c.fromClient(seq: 1, ack: 1))
            t.localKey = try #require(t.out(third, .uplink(0)).first?.mpCapable?.senderKey)
            let e = t.h.peer(t.c.fromPeer(seq: 1, ack: 1, mptcp: [t.peerDSS(t.L &+ 1)]))
            #expect(t.out(e, .uplink(1)).count == 1) // its join SYN
        }
        #expect(s.h.engine.stats.joinsSent == 300)
        // Unanswered: every join SYN is sent again at about the same time.
        s.h.advance(.seconds(2))
        var passes = 0, resent = 0
        repeat {
            s.h.runTimers()
            let n = s.h.engine.outbox.count
            #expect(n <= Outbox.slots - 64 + 8, "pass \(passes): \(n) packets")
            resent += s.drain().filter { $0.side == .uplink(1) && $0.packet.flags == SYN }.count
            passes += 1
        } while passes < 10 && s.h.engine.nextDeadline.map({ $0 <= s.h.now }) == true
        #expect(passes >= 2, "300 SYNs fit one pass of a 256-packet outbox?")
        #expect(resent == 300)
        #expect(s.h.engine.outbox.overflow == 0)
    }

    @Test("close: client FIN -> DATA_FIN; peer DATA_ACK -> client ACK; peer DATA_FIN -> client FIN; subflow FINs")
    func close() throws {
        let s = MPScript()
        try s.twoSubflows()
        let f = s.h.lan(s.c.fromClient(seq: 1, ack: 1, flags: ACK | FIN))
        let dfin = try #require((s.out(f, .uplink(0)) + s.out(f, .uplink(1))).first { $0.dss?.dataFin == true })
        #expect(dfin.dss?.mapping == DSSMapping(dsn: s.L &+ 1, subflowSeq: 0, length: 1))
        // The peer acknowledges the DATA_FIN and sends its own.
        let p = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L &+ 2, mapping: DSSMapping(dsn: s.R &+ 1, subflowSeq: 0, length: 1), fin: true)]))
        let toClient = s.out(p, .lan)
        #expect(toClient.contains { $0.flags & FIN != 0 && $0.seq == s.c.ss(1) && $0.ack == s.c.cs(2) })
        // The client acknowledges the FIN: both data-level FINs are done, the subflows are closed.
        let last = s.h.lan(s.c.fromClient(seq: 2, ack: 2))
        let fins = (s.out(last, .uplink(0)) + s.out(last, .uplink(1))).filter { $0.flags & FIN != 0 }
        #expect(fins.count == 2)
        #expect(fins.allSatisfy { $0.dss?.dataAck == (s.R &+ 2) & 0xffff_ffff })
        #expect(s.h.engine.stats.connectionsClosed == 1)
        s.h.expectForgottenAfterTimeWait()
    }
}

extension MultipathTests {
    @Test("subflow receive: a hole, data above it (SACKed), the hole filled: ACK moves past both, no SACK left")
    func subflowSACK() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 12)
        func seg(_ rel: UInt32, _ dsnOff: UInt64) -> EngineEvent {
            let m = DSSMapping(dsn: s.R &+ 1 &+ dsnOff, subflowSeq: rel, length: 1000)
            return s.onJoin(seq: rel, ack: 1, mptcp: [s.peerDSS(s.L &+ 1, mapping: m)], payload: randomBytes(1000, &rng))
        }
        _ = seg(1, 0)
        let a = try #require(s.out(seg(2001, 2000), .uplink(1)).last) // 1001..2001 lost
        #expect(a.ack == s.peerJoinISN &+ 1001)
        let sack = a.options.compactMap { if case .sack(let b) = $0 { return b } else { return nil } }.first
        #expect(sack?.count == 1 && sack?[0].left.rawValue == s.peerJoinISN &+ 2001 && sack?[0].right.rawValue == s.peerJoinISN &+ 3001)
        _ = seg(4001, 4000) // another hole 3001..4001
        let b = try #require(s.out(seg(1001, 1000), .uplink(1)).last)
        #expect(b.ack == s.peerJoinISN &+ 3001)
        let sack2 = b.options.compactMap { if case .sack(let b) = $0 { return b } else { return nil } }.first
        #expect(sack2?.count == 1 && sack2?[0].left.rawValue == s.peerJoinISN &+ 4001)
        let c = try #require(s.out(seg(3001, 3000), .uplink(1)).last)
        #expect(c.ack == s.peerJoinISN &+ 5001)
        #expect(!c.options.contains { if case .sack = $0 { return true } else { return false } })
    }

    @Test("peer data beyond the client's window is held, not forwarded, and goes out from the gateway as the window opens")
    func heldForClientWindow() throws {
        let s = MPScript()
        s.c.window = 8 // 8 << 7 = 1024 bytes
        try s.twoSubflows()
        var rng = SplitMix64(seed: 21)
        let data = randomBytes(3000, &rng)
        let m = DSSMapping(dsn: s.R &+ 1, subflowSeq: 1, length: 3000)
        let e = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L &+ 1, mapping: m)], payload: data))
        #expect(e.verdict == .drop(.consumed))
        #expect(s.out(e, .lan).filter { !$0.payload.isEmpty }.isEmpty) // 1448-byte pieces: none fits in 1024
        #expect(try #require(s.out(e, .uplink(0)).last).ack == s.c.ss(3001)) // acknowledged on the subflow
        #expect(s.h.engine.stats.heldForClientWindow == 1)
        // The window opens to 5120 bytes: all three pieces go, in order, the last with PSH.
        s.c.window = 40
        let o = s.out(s.h.lan(s.c.fromClient(seq: 1, ack: 1)), .lan)
        #expect(o.map { $0.seq } == [s.c.ss(1), s.c.ss(1449), s.c.ss(2897)])
        #expect(o.flatMap { $0.payload } == data)
        #expect(o.allSatisfy { $0.flags == ACK | PSH && $0.ack == s.c.cs(1) })
        // Acknowledged: nothing is resent on the tail timer.
        _ = s.h.lan(s.c.fromClient(seq: 1, ack: 3001))
        s.h.advance(.seconds(2))
        s.h.runTimers()
        #expect(s.h.engine.stats.lanRetransmits == 0)
    }

    @Test("a segment the LAN loses on the way to the client is resent from the gateway: on SACKs above it, and on the tail timer")
    func lanLossToClient() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 22)
        let data = randomBytes(3000, &rng)
        for i in 0 ..< 3 {
            let m = DSSMapping(dsn: s.R &+ 1 &+ UInt64(1000 * i), subflowSeq: UInt32(1 + 1000 * i), length: 1000)
            let e = s.h.peer(s.c.fromPeer(seq: UInt32(1 + 1000 * i), ack: 1, mptcp: [s.peerDSS(s.L &+ 1, mapping: m)],
                                          payload: Array(data[1000 * i ..< 1000 * (i + 1)])))
            #expect(try e.rewritten().seq == s.c.ss(UInt32(1 + 1000 * i)))
            s.h.advance(.milliseconds(5))
        }
        // The first segment was lost: the client SACKs the other two.
        var sack = SACKBlocks()
        sack.append(SACKBlock(left: TCPSeq(s.c.ss(1001)), right: TCPSeq(s.c.ss(3001))))
        let r = s.out(s.h.lan(s.c.fromClient(seq: 1, ack: 1, options: [.noOperation, .noOperation, .sack(sack)])), .lan)
        #expect(r.count == 1 && r.first?.seq == s.c.ss(1) && r.first?.payload == Array(data[0 ..< 1000]))
        #expect(s.h.engine.stats.lanRetransmits == 1)
        // Reordering, not loss: SACKs of data sent at the same moment resend nothing.
        let m = DSSMapping(dsn: s.R &+ 3001, subflowSeq: 3001, length: 2000)
        let more = randomBytes(2000, &rng)
        _ = s.h.peer(s.c.fromPeer(seq: 3001, ack: 1, mptcp: [s.peerDSS(s.L &+ 1, mapping: m)], payload: more))
        var sack2 = SACKBlocks()
        sack2.append(SACKBlock(left: TCPSeq(s.c.ss(4001)), right: TCPSeq(s.c.ss(5001))))
        #expect(s.out(s.h.lan(s.c.fromClient(seq: 1, ack: 3001, options: [.noOperation, .noOperation, .sack(sack2)])), .lan).isEmpty)
        // That segment's first half never arrives: the tail timer resends the
        // segment (in MSS-sized pieces), backed off the second time.
        s.h.advance(.milliseconds(260))
        let t1 = s.timerOut(.lan)
        #expect(t1.first?.seq == s.c.ss(3001) && t1.flatMap { $0.payload } == more)
        s.h.advance(.milliseconds(300))
        #expect(s.timerOut(.lan).isEmpty)
        s.h.advance(.milliseconds(300))
        #expect(s.timerOut(.lan).first?.seq == s.c.ss(3001))
        #expect(s.h.engine.stats.lanRetransmits == 3)
        // Acknowledged: the buffer is empty, no timer resends.
        _ = s.h.lan(s.c.fromClient(seq: 1, ack: 5001))
        s.h.advance(.seconds(5))
        #expect(s.timerOut(.lan).isEmpty)
        #expect(s.h.engine.stats.lanRetransmits == 3)
    }

    @Test("ADD_ADDR with a good HMAC: echoed, and joined from every uplink; a bad HMAC is ignored; REMOVE_ADDR resets those subflows for good")
    func addAndRemoveAddress() throws {
        let s = MPScript()
        try s.twoSubflows()
        let other = Endpoint("203.0.113.77", 443).address
        func announce(_ id: UInt8, _ a: IPAddress, bad: Bool = false) -> EngineEvent {
            var mac = MPTCPCrypto.addAddrHMAC(senderKey: s.c.peerKey, receiverKey: s.localKey, addressID: id, address: a, port: nil)
            if bad { mac ^= 1 }
            return s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [.addAddr(AddAddr(addressID: id, address: a, hmac: mac))]))
        }
        let e = announce(5, other)
        let echo = s.out(e, .uplink(0)).compactMap { d in
            d.mptcp.lazy.compactMap { if case .addAddr(let x) = $0 { return x } else { return nil } }.first
        }
        #expect(echo.count == 1 && echo.first?.echo == true && echo.first?.addressID == 5 && echo.first?.address == other)
        var joins: [Decoded] = []
        for u: UInt8 in 0 ..< 2 { joins += s.out(e, .uplink(u)).filter { $0.flags == SYN } }
        #expect(joins.count == 2)
        #expect(Set(joins.map { $0.source.address }) == [uplink0, uplink1])
        #expect(joins.allSatisfy { $0.destination == Endpoint(address: other, port: 443) })
        for j in joins {
            guard case let .mpJoin(.syn(_, _, token, _)) = j.mptcp.first else { Issue.record("not a join SYN"); continue }
            #expect(token == MPTCPCrypto.token(key: s.c.peerKey))
        }
        #expect(s.h.engine.stats.joinsSent == 3)
        // A forged announcement: no echo, no join.
        let forged = announce(6, Endpoint("198.51.100.99", 443).address, bad: true)
        #expect(forged.outbox.isEmpty)
        #expect(s.h.engine.stats.addAddrRejected == 1 && s.h.engine.stats.joinsSent == 3)
        // The peer removes address 5: both subflows towards it are reset and not rejoined.
        var ids = InlineBytes40()
        _ = ids.append(5)
        let r = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [.removeAddr(RemoveAddr(addressIDs: ids))]))
        var resets: [Decoded] = []
        for u: UInt8 in 0 ..< 2 { resets += s.out(r, .uplink(u)).filter { $0.flags & RST != 0 } }
        #expect(resets.count == 2 && resets.allSatisfy { $0.destination.address == other })
        for _ in 0 ..< 5 {
            s.h.advance(.seconds(2))
            #expect(s.timerOut(nil).filter { $0.destination.address == other }.isEmpty)
        }
        #expect(s.h.engine.stats.joinsSent == 3 && s.h.engine.stats.removeAddrReceived == 1)
    }

    @Test("an uplink reported down: its subflow given up at once, its data sent on the other, REMOVE_ADDR to the peer, no joins until it is up")
    func uplinkDown() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 31)
        let data = randomBytes(1400 * 14, &rng)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: data))
        let on0 = s.out(e, .uplink(0)).reduce(0) { $0 + $1.payload.count }
        let on1 = s.out(e, .uplink(1)).reduce(0) { $0 + $1.payload.count }
        #expect(on1 > 0 && on0 + on1 == data.count) // both subflows carry some of it
        // Subflow 0's share is acknowledged (its window has room again).
        _ = s.h.peer(s.c.fromPeer(seq: 1, ack: 1 + UInt32(on0), mptcp: [s.peerDSS(s.L &+ 1 &+ UInt64(on0))]))
        s.h.engine.uplink(1, isUp: false, now: s.h.now)
        let sent = s.drain()
        #expect(!sent.contains { $0.side == .uplink(1) })
        let removes = sent.filter { $0.side == .uplink(0) }.compactMap { d in
            d.packet.mptcp.lazy.compactMap { if case .removeAddr(let x) = $0 { return x } else { return nil } }.first
        }
        #expect(removes.count == 1 && removes.first?.addressIDs.count == 1 && removes.first?.addressIDs[0] == 2)
        // What was outstanding on uplink 1 goes out again on uplink 0.
        #expect(s.h.engine.stats.subflowsLinkDown == 1 && s.h.engine.stats.reinjectedBytes == UInt64(on1))
        #expect(sent.filter { $0.side == .uplink(0) }.reduce(0) { $0 + $1.packet.payload.count } == on1)
        // No join from it while it is down...
        for _ in 0 ..< 3 {
            s.h.advance(.seconds(2))
            #expect(s.timerOut(.uplink(1)).isEmpty)
        }
        // ... and one at once when it is back.
        s.h.engine.uplink(1, isUp: true, now: s.h.now)
        #expect(s.drain().filter { $0.side == .uplink(1) && $0.packet.flags == SYN }.count == 1)
    }

    @Test("download stalled at a hole while the other subflow delivers: the silent subflow gets one probe; unanswered, it is given up and the peer hears REMOVE_ADDR; answered, it stays")
    func stalledDownloadProbe() throws {
        for answered in [false, true] {
            let s = MPScript()
            try s.twoSubflows()
            var rng = SplitMix64(seed: 51)
            // Subflow 1 brings data 3000 bytes beyond the client's next byte
            // (what subflow 0 was carrying never comes): forwarded, and the
            // client can only repeat its ACK.
            s.h.advance(.milliseconds(10))
            let m = DSSMapping(dsn: s.R &+ 1 &+ 3000, subflowSeq: 1, length: 1000)
            _ = s.onJoin(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L &+ 1, mapping: m)], payload: randomBytes(1000, &rng))
            _ = s.h.lan(s.c.fromClient(seq: 1, ack: 1))
            // Not yet stalled: no probe.
            s.h.advance(.milliseconds(100))
            #expect(s.timerOut(.uplink(0)).isEmpty)
            // Stalled for 150 ms: one keepalive on subflow 0 (a byte below what it sent, no data).
            s.h.advance(.milliseconds(60))
            let probes = s.timerOut(.uplink(0))
            #expect(probes.count == 1 && probes.first?.payload.isEmpty == true && probes.first?.flags == ACK)
            if answered {
                _ = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L &+ 1)]))
            } else {
                // Subflow 1 keeps delivering meanwhile.
                let m2 = DSSMapping(dsn: s.R &+ 1 &+ 4000, subflowSeq: 1001, length: 500)
                _ = s.onJoin(seq: 1001, ack: 1, mptcp: [s.peerDSS(s.L &+ 1, mapping: m2)], payload: randomBytes(500, &rng))
            }
            s.h.advance(.milliseconds(130))
            s.h.runTimers()
            let out = s.drain()
            let removes = out.filter { $0.side == .uplink(1) }.compactMap { d in
                d.packet.mptcp.lazy.compactMap { if case .removeAddr(let x) = $0 { return x } else { return nil } }.first
            }
            if answered {
                #expect(removes.isEmpty && s.h.engine.stats.deadSubflowsDetected == 0)
            } else {
                // Subflow 0 (address ID 0) given up: REMOVE_ADDR on subflow 1, no reset on a dead path needed.
                #expect(removes.count == 1 && removes.first?.addressIDs.count == 1 && removes.first?.addressIDs[0] == 0)
                #expect(s.h.engine.stats.deadSubflowsDetected == 1 && s.h.engine.stats.removeAddrSent == 1)
                // Joined again from uplink 0 a second later.
                s.h.advance(.milliseconds(1100))
                #expect(s.timerOut(.uplink(0)).contains { $0.flags == SYN })
            }
        }
    }

    @Test("a keepalive from the peer on a subflow (a byte below what we have, no data) is answered with an ACK")
    func keepaliveAnswered() throws {
        let s = MPScript()
        try s.twoSubflows()
        // The join subflow's next expected byte is 1: the probe carries 0.
        let e = s.onJoin(seq: 0, ack: 1, mptcp: [s.peerDSS(s.L &+ 1)])
        let acks = s.out(e, .uplink(1))
        #expect(acks.count == 1 && acks.first?.ack == s.peerJoinISN &+ 1 && acks.first?.payload.isEmpty == true)
        // An ordinary pure ACK at the next byte gets none.
        #expect(s.out(s.onJoin(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L &+ 1)]), .uplink(1)).isEmpty)
    }

    @Test("ICMP destination unreachable about a subflow's segment in flight: that subflow given up, REMOVE_ADDR, rejoined later; other ICMP ignored")
    func icmpUnreachable() throws {
        let s = MPScript()
        try s.twoSubflows()
        var rng = SplitMix64(seed: 41)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: randomBytes(1400 * 14, &rng)))
        let on1 = s.out(e, .uplink(1))
        let seg = try #require(on1.first)
        // A router on uplink 1's path reports the segment undeliverable (the
        // error quotes its IP header and the first 8 bytes of TCP).
        func unreachable(quoting q: [UInt8], type: UInt8 = 3) -> [UInt8] {
            let router: [UInt8] = [192, 0, 2, 1]
            let body = [type, 1, 0, 0, 0, 0, 0, 0] + Array(q.prefix(28))
            let total = 20 + body.count
            var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0, 0, 64, IPProtocol.icmp, 0, 0] + router
            ip += Array(q[12 ..< 16]) // to the segment's sender
            return ip + body
        }
        // Not in flight (a sequence number far off): ignored.
        var forged = seg.bytes
        forged[24] ^= 0x80
        #expect(s.h.send(unreachable(quoting: forged), .uplink(1), acceptedCheck: .none).verdict == .accept)
        // Another ICMP type (time exceeded): not even looked at.
        #expect(s.h.send(unreachable(quoting: seg.bytes, type: 11), .uplink(1), acceptedCheck: .none).verdict == .accept)
        #expect(s.h.engine.stats.subflowsUnreachable == 0 && s.h.engine.stats.icmpUnreachable == 1)
        // In flight: the subflow is given up, the peer told, its data resent on uplink 0 as room allows.
        let r = s.h.send(unreachable(quoting: seg.bytes), .uplink(1), acceptedCheck: .none)
        #expect(r.verdict == .accept)
        #expect(s.h.engine.stats.subflowsUnreachable == 1 && s.h.engine.stats.removeAddrSent == 1)
        let removes = s.out(r, .uplink(0)).compactMap { d in
            d.mptcp.lazy.compactMap { if case .removeAddr(let x) = $0 { return x } else { return nil } }.first
        }
        #expect(removes.count == 1 && removes.first?.addressIDs[0] == 2)
        #expect(s.out(r, .uplink(1)).isEmpty)
        // A second later it is joined again.
        s.h.advance(.milliseconds(1100))
        #expect(s.timerOut(.uplink(1)).contains { $0.flags == SYN })
    }
    @Test("flag C in the peer's MP_CAPABLE (no new subflows to this address and port): no join to the initial address from any uplink; an address the peer announces is joined from both")
    func flagCRespected() throws {
        let s = MPScript()
        _ = try s.h.lan(s.c.syn()).rewritten()
        _ = try s.h.peer(s.c.synAck(mpCapable: MPCapable(version: 1, flags: MPCapable.flagHMACSHA256 | MPCapable.flagNoNewSubflowsToSource,
                                                         senderKey: s.c.peerKey))).rewritten()
        let third = s.h.lan(s.c.fromClient(seq: 1, ack: 1))
        s.localKey = try #require(s.out(third, .uplink(0)).first?.mpCapable?.senderKey)
        let e = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [s.peerDSS(s.L &+ 1)]))
        #expect(s.out(e, .uplink(1)).filter { $0.flags == SYN }.isEmpty)
        s.h.advance(.seconds(5))
        #expect(s.timerOut(nil).filter { $0.flags == SYN }.isEmpty && s.h.engine.stats.joinsSent == 0)
        let other = IPAddress("203.0.113.77")!
        let mac = MPTCPCrypto.addAddrHMAC(senderKey: s.c.peerKey, receiverKey: s.localKey, addressID: 1, address: other, port: nil)
        let a = s.h.peer(s.c.fromPeer(seq: 1, ack: 1, mptcp: [.addAddr(AddAddr(addressID: 1, address: other, hmac: mac))]))
        var joins: [Decoded] = []
        for u: UInt8 in 0 ..< 2 { joins += s.out(a, .uplink(u)).filter { $0.flags == SYN } }
        #expect(joins.count == 2 && joins.allSatisfy { $0.destination == Endpoint(address: other, port: 443) })
    }
}

/// Subflow k's congestion window from the engine's state dump.
private func cwnd(of k: Int, _ state: String) -> Int? {
    guard let line = state.split(separator: "\n").first(where: { $0.contains("[\(k)]") }),
          let r = line.range(of: "cwnd ") else { return nil }
    return Int(line[r.upperBound...].prefix { $0.isNumber })
}

import MPTCPStack
import TestSupport
import Testing

// Send/expect tests of the initiator role against peers with settings other
// than Linux's defaults (issue 12): TCP Fast Open clients, ADD_ADDR with a
// single uplink, flag C.

private let ACK = TCPFlags.ack
private let SYN = TCPFlags.syn

@Suite("Interop")
struct InteropTests {
    @Test("TFO: a SYN with data gets MP_CAPABLE and keeps its data and cookie; once the SYN/ACK acknowledges that data, mappings start after it (DSN IDSN + 1 at relative subflow sequence 1, as Linux places SYN data), and DATA_ACKs map to client ACKs past it")
    func fastOpen() throws {
        let h = EngineHarness(seed: 11)
        var c = TestConn()
        var rng = SplitMix64(seed: 1)
        let synData = randomBytes(20, &rng)
        let cookie = TCPOption.unknown(kind: 34, bytes: InlineBytes40([34, 10, 1, 2, 3, 4, 5, 6, 7, 8])!)
        let syn = try h.lan(c.syn(options: c.synOptions + [cookie], payload: synData)).rewritten()
        #expect(syn.mpCapable == MPCapable(version: 1, flags: MPCapable.flagHMACSHA256))
        #expect(syn.payload == synData && syn.options.contains(cookie) && syn.seq == c.cs(0))
        // The SYN/ACK acknowledges the SYN's data.
        c.peerTS &+= 1
        let sa = makeTCPPacket(from: c.server, to: c.client, seq: c.serverISN, ack: c.cs(21), flags: SYN | ACK, window: 65_160,
                               options: c.synAckOptions + [.mptcp(.mpCapable(MPCapable(version: 1, flags: MPCapable.flagHMACSHA256, senderKey: c.peerKey)))])
        let sao = try h.peer(sa).rewritten()
        #expect(sao.ack == c.cs(21) && sao.mptcp.isEmpty && h.engine.stats.connectionsMPTCP == 1)
        let third = try h.lan(c.fromClient(seq: 21, ack: 1)).rewritten()
        let key = try #require(third.mpCapable?.senderKey)
        let L = MPTCPCrypto.idsn(key: key)
        // The first data after the SYN's: MP_CAPABLE with the data-level length (DSN IDSN + 1, subflow 1 implied).
        let data = randomBytes(100, &rng)
        let first = try h.lan(c.fromClient(seq: 21, ack: 1, payload: data)).rewritten()
        #expect(first.mpCapable?.dataLevelLength == 100 && first.seq == c.cs(21) && first.payload == data)
        // Then DSS mappings relative to the same place.
        let more = try h.lan(c.fromClient(seq: 121, ack: 1, payload: data)).rewritten()
        let m = try #require(more.dss?.mapping)
        #expect(m.dsn == L &+ 101 && m.subflowSeq == 101 && m.length == 100)
        // The peer's DATA_ACK of both becomes the client's ACK of byte 221.
        let ackd = try h.peer(c.fromPeer(seq: 1, ack: 221, mptcp: [.dss(DSS(dataAck: L &+ 201, dataAck8: true))])).rewritten()
        #expect(ackd.ack == c.cs(221))
    }

    @Test("TFO: a SYN/ACK that does not take the SYN's data (no valid cookie): the client resends it as its first data, mapped at DSN IDSN + 1 as usual")
    func fastOpenDataNotTaken() throws {
        let h = EngineHarness(seed: 12)
        var c = TestConn()
        var rng = SplitMix64(seed: 2)
        let synData = randomBytes(20, &rng)
        _ = try h.lan(c.syn(payload: synData)).rewritten()
        _ = try h.peer(c.synAck()).rewritten()
        let third = try h.lan(c.fromClient(seq: 1, ack: 1)).rewritten()
        _ = try #require(third.mpCapable?.senderKey)
        let first = try h.lan(c.fromClient(seq: 1, ack: 1, payload: synData)).rewritten()
        #expect(first.mpCapable?.dataLevelLength == 20 && first.seq == c.cs(1))
    }

    @Test("single uplink: the peer's ADD_ADDR is echoed (else the kernel keeps announcing), not passed to the client; a forged one is ignored")
    func singleUplinkEchoesAddAddr() throws {
        let h = EngineHarness(seed: 13)
        var c = TestConn()
        let localKey = try h.handshake(&c)
        let other = IPAddress("203.0.113.77")!
        let mac = MPTCPCrypto.addAddrHMAC(senderKey: c.peerKey, receiverKey: localKey, addressID: 5, address: other, port: nil)
        let e = h.peer(c.fromPeer(seq: 1, ack: 1, mptcp: [.addAddr(AddAddr(addressID: 5, address: other, hmac: mac))]))
        #expect(e.verdict == .drop(.signallingOnly))
        let echo = e.outbox.filter { $0.side == .uplink(0) }.compactMap { Decoded($0.bytes) }
        #expect(echo.count == 1)
        let d = try #require(echo.first)
        #expect(d.mptcp == [.addAddr(AddAddr(echo: true, addressID: 5, address: other))])
        #expect(d.source == c.client && d.destination == c.server && d.seq == c.cs(1) && d.ack == c.ss(1) && d.flags == ACK)
        let forged = h.peer(c.fromPeer(seq: 1, ack: 1, mptcp: [.addAddr(AddAddr(addressID: 6, address: other, hmac: mac ^ 1))]))
        #expect(forged.outbox.isEmpty && h.engine.stats.addAddrRejected == 1 && h.engine.stats.addAddrReceived == 2)
    }
}

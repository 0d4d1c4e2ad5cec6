import MPTCPStack
import TestSupport
import Testing

@Suite("MPTCP crypto (RFC 8684 §3.1, §3.2, §3.4.1)")
struct CryptoTests {
    @Test("token and IDSN of every key in the capture notes", arguments: Keys.all)
    func tokenAndIDSN(_ k: Keys.Pair) {
        #expect(MPTCPCrypto.token(key: k.clientKey) == k.clientToken, "capture \(k.capture) client")
        #expect(MPTCPCrypto.idsn(key: k.clientKey) == k.clientIDSN, "capture \(k.capture) client")
        #expect(MPTCPCrypto.token(key: k.serverKey) == k.serverToken, "capture \(k.capture) server")
        #expect(MPTCPCrypto.idsn(key: k.serverKey) == k.serverIDSN, "capture \(k.capture) server")
    }

    @Test("token and IDSN known answers (SHA-256 of the big-endian key, computed with python hashlib)")
    func knownAnswers() {
        #expect(MPTCPCrypto.token(key: 0) == 0xaf55_70f5)
        #expect(MPTCPCrypto.idsn(key: 0) == 0xe5b2_328d_e0e8_3dfc)
        #expect(MPTCPCrypto.token(key: 1) == 0xcd26_6215)
        #expect(MPTCPCrypto.idsn(key: 1) == 0x19ec_5090_83d0_0a50)
        #expect(MPTCPCrypto.token(key: .max) == 0x12a3_ae44)
        #expect(MPTCPCrypto.idsn(key: .max) == 0x57fb_595b_bbac_f0ca)
    }

    @Test("the keys in the captured MP_CAPABLE options are the keys of the notes", arguments: [
        (Keys.a, Captured.aACK), (Keys.b, Captured.bACK), (Keys.e, Captured.eACK),
    ])
    func keysOnTheWire(_ t: (Keys.Pair, Vector)) {
        let (k, v) = t
        guard case .mpCapable(let c)? = mptcpOptions(v.bytes).first else { Issue.record("no MP_CAPABLE"); return }
        #expect(c.senderKey == k.clientKey && c.receiverKey == k.serverKey)
    }

    struct Join: Sendable {
        let keys: Keys.Pair
        let syn: Vector, synAck: Vector, ack: Vector, addAddr: Vector
    }

    static let joins = [
        Join(keys: Keys.b, syn: Captured.bJoinSYN, synAck: Captured.bJoinSYNACK, ack: Captured.bJoinACK, addAddr: Captured.bAddAddr),
        Join(keys: Keys.g, syn: Captured.gJoinSYN, synAck: Captured.gJoinSYNACK, ack: Captured.gJoinACK, addAddr: Captured.gAddAddr),
    ]

    @Test("MP_JOIN token and HMACs, ADD_ADDR HMAC (captures b and g)", arguments: joins)
    func join(_ j: Join) throws {
        let k = j.keys
        guard case .mpJoin(.syn(_, let id, let token, let clientNonce))? = mptcpOptions(j.syn.bytes).first else {
            Issue.record("no MP_JOIN SYN"); return
        }
        #expect(id == 1)
        #expect(token == MPTCPCrypto.token(key: k.serverKey))
        #expect(token == k.serverToken)
        guard case .mpJoin(.synAck(_, _, let mac64, let serverNonce))? = mptcpOptions(j.synAck.bytes).first else {
            Issue.record("no MP_JOIN SYN/ACK"); return
        }
        // The responder (server) is "local" for the SYN/ACK HMAC.
        let serverMAC = MPTCPCrypto.joinHMAC(keyLocal: k.serverKey, keyRemote: k.clientKey,
                                             nonceLocal: serverNonce, nonceRemote: clientNonce)
        #expect(mac64 == serverMAC.a)
        guard case .mpJoin(.ack(let reserved, let mac160))? = mptcpOptions(j.ack.bytes).first else {
            Issue.record("no MP_JOIN ACK"); return
        }
        #expect(reserved == 0)
        let clientMAC = MPTCPCrypto.joinHMAC(keyLocal: k.clientKey, keyRemote: k.serverKey,
                                             nonceLocal: clientNonce, nonceRemote: serverNonce)
        #expect(mac160 == clientMAC)
        // The roles are not interchangeable.
        #expect(serverMAC != clientMAC)
        #expect(MPTCPCrypto.joinHMAC(keyLocal: k.clientKey, keyRemote: k.serverKey,
                                     nonceLocal: serverNonce, nonceRemote: clientNonce) != clientMAC)

        guard case .addAddr(let a)? = mptcpOptions(j.addAddr.bytes).first else { Issue.record("no ADD_ADDR"); return }
        #expect(a.address == .v4(IPv4Address(10, 20, 2, 2)) && a.addressID == 1 && a.port == nil)
        let expected = MPTCPCrypto.addAddrHMAC(senderKey: k.serverKey, receiverKey: k.clientKey,
                                               addressID: a.addressID, address: a.address, port: a.port)
        #expect(a.hmac == expected)
        // Linux hashes a missing port as port 0.
        #expect(MPTCPCrypto.addAddrHMAC(senderKey: k.serverKey, receiverKey: k.clientKey, addressID: 1, address: a.address, port: 0) == expected)
        #expect(MPTCPCrypto.addAddrHMAC(senderKey: k.clientKey, receiverKey: k.serverKey, addressID: 1, address: a.address, port: nil) != expected)
        #expect(MPTCPCrypto.addAddrHMAC(senderKey: k.serverKey, receiverKey: k.clientKey, addressID: 2, address: a.address, port: nil) != expected)
    }

    @Test("HMAC known answers (python hmac/hashlib)")
    func hmacKnownAnswers() {
        let k1: UInt64 = 0x0102_0304_0506_0708, k2: UInt64 = 0x1112_1314_1516_1718
        let j = MPTCPCrypto.joinHMAC(keyLocal: k1, keyRemote: k2, nonceLocal: 0xdead_beef, nonceRemote: 0x0102_0304)
        #expect(j == HMAC160(a: 0x4232_22d3_3681_d489, b: 0x7a1d_9d16_fb2b_022b, c: 0xf086_e85b))
        #expect(j.description == "423222d33681d4897a1d9d16fb2b022bf086e85b")
        let v6 = IPAddress("2001:db8::1")!
        #expect(MPTCPCrypto.addAddrHMAC(senderKey: k1, receiverKey: k2, addressID: 5, address: v6, port: 8080) == 0xda17_ae51_d90f_9c47)
        #expect(MPTCPCrypto.addAddrHMAC(senderKey: k1, receiverKey: k2, addressID: 5, address: v6, port: nil) == 0xc861_db63_200c_1a82)
        #expect(MPTCPCrypto.addAddrHMAC(senderKey: k1, receiverKey: k2, addressID: 7, address: IPAddress("192.0.2.1")!, port: 443)
            == 0x78c0_bc60_652a_2c53)
    }
}

@Suite("Addresses")
struct AddressTests {
    @Test("IPv4 and IPv6 text forms")
    func text() {
        #expect(IPv4Address("10.20.2.2") == IPv4Address(10, 20, 2, 2))
        #expect(IPv4Address(10, 20, 2, 2).rawValue == 0x0a14_0202)
        for bad in ["10.20.2", "10.20.2.2.1", "256.1.1.1", "1..1.1", "a.b.c.d", "", "1.2.3.0004", "+1.2.3.4", "1.2.3.-0", "1.2.3.+9"] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
        let a = IPv6Address("fd20:3::1")
        #expect(a == IPv6Address(high: 0xfd20_0003_0000_0000, low: 1))
        #expect(a?.groups == [0xfd20, 3, 0, 0, 0, 0, 0, 1])
        #expect(IPv6Address("::")?.description == "::")
        #expect(IPv6Address("::1")?.description == "::1")
        #expect(IPv6Address("2001:db8:0:0:1:0:0:1")?.description == "2001:db8::1:0:0:1")
        #expect(IPv6Address("2001:0db8:0000:0001:0001:0001:0001:0001")?.description == "2001:db8:0:1:1:1:1:1")
        #expect(IPv6Address("1:0:2:3:4:5:6:7")?.description == "1:0:2:3:4:5:6:7")
        for bad in ["1::2::3", "12345::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "g::1", ":::", "+1::2", "1::-0", "::ffff:1.2.3.4"] {
            #expect(IPv6Address(bad) == nil, "\(bad)")
        }
        #expect(IPAddress("fd20:2::2") == .v6(IPv6Address(high: 0xfd20_0002_0000_0000, low: 2)))
        #expect(IPAddress("10.0.0.1")?.encodedLength == 4)
        #expect(IPAddress("nonsense") == nil)
    }
}

import MPTCPStack

/// A steady-state download through a two-uplink gateway, for the engine
/// alone: one connection with its MP_JOIN subflow established, then rounds
/// of peer data on the initial subflow, peer data on the joined one (moved
/// onto the client's connection), and the client's ACK of both. Every peer
/// segment is forwarded (a rewrite) and copied into the download buffer,
/// which the client's ACK empties. Packets are built before the clock starts.
/// Used by `Bench engine --two-uplinks` and the allocation test.
public final class MultipathDownloadWorkload: TranslationWorkload {
    public let engine: Engine<SeededRandom>
    private var prepared = PreparedRounds() // per round: data on subflow 0, data on subflow 1, client ACK
    private var t: Instant { prepared.clock }
    public let segmentSize: Int

    static let client = IPv4Address(10, 31, 1, 1), server = IPv4Address(10, 31, 2, 2)
    static let uplink0 = IPv4Address(10, 31, 5, 1), uplink1 = IPv4Address(10, 31, 6, 1)
    static let cport: UInt16 = 40000, sport: UInt16 = 5001
    static let cISN: UInt32 = 1_000_000, sISN: UInt32 = 7_000_000, joinISN: UInt32 = 9_000_000
    static let peerKey: UInt64 = 0x1122_3344_5566_7788
    static let peerNonce: UInt32 = 0x0BAD_CAFE

    public init(rounds n: Int, segmentSize: Int = 1448, seed: UInt64 = 1) {
        self.segmentSize = segmentSize
        var config = EngineConfig()
        config.uplinks = [UplinkConfig(addresses: [.v4(Self.uplink0)]), UplinkConfig(addresses: [.v4(Self.uplink1)])]
        engine = Engine(config: config, random: SeededRandom(seed: seed))
        var probe = SeededRandom(seed: seed)
        let localKey = probe.next()
        let lIDSN = MPTCPCrypto.idsn(key: localKey), rIDSN = MPTCPCrypto.idsn(key: Self.peerKey)
        let ts: TCPOption = .timestamps(value: 1, echoReply: 1)
        let c = Endpoint(address: .v4(Self.client), port: Self.cport), s = Endpoint(address: .v4(Self.server), port: Self.sport)

        // Handshake, and the peer's first DSS, which opens the join (not measured).
        feed(Self.packet(c, s, seq: Self.cISN, ack: 0, flags: TCPFlags.syn,
                         options: [.maxSegmentSize(1460), .sackPermitted, ts, .noOperation, .windowScale(7)]), .lan)
        feed(Self.packet(s, c, seq: Self.sISN, ack: Self.cISN + 1, flags: TCPFlags.syn | TCPFlags.ack,
                         options: [.maxSegmentSize(1460), .sackPermitted, ts, .noOperation, .windowScale(7),
                                   .mptcp(.mpCapable(MPCapable(senderKey: Self.peerKey)))]), .uplink(0))
        feed(Self.packet(c, s, seq: Self.cISN + 1, ack: Self.sISN + 1, flags: TCPFlags.ack, options: [.noOperation, .noOperation, ts]), .lan)
        let joinSYN = feed(Self.packet(s, c, seq: Self.sISN + 1, ack: Self.cISN + 1, flags: TCPFlags.ack,
                                       options: [.noOperation, .noOperation, ts, .mptcp(.dss(DSS(dataAck: lIDSN &+ 1)))]), .uplink(0))
            .first { $0.count > 0 }
        // The join: SYN/ACK with the HMAC for the engine's nonce, then the fourth ACK.
        var j = Endpoint(address: .v4(Self.uplink1), port: 0), ourISN: UInt32 = 0, nonce: UInt32 = 0
        if let syn = joinSYN {
            syn.withUnsafeBytes { raw in
                guard let v = try? TCPPacketView(raw) else { return }
                j.port = v.tcp.sourcePort
                ourISN = v.tcp.seq.rawValue
                if case let .syn(_, _, _, n) = TCPOptionSummary(parsing: v.tcp.optionArea).mpJoin { nonce = n }
            }
        }
        let mac = MPTCPCrypto.joinHMAC(keyLocal: Self.peerKey, keyRemote: localKey, nonceLocal: Self.peerNonce, nonceRemote: nonce).a
        feed(Self.packet(s, j, seq: Self.joinISN, ack: ourISN &+ 1, flags: TCPFlags.syn | TCPFlags.ack,
                         options: [.maxSegmentSize(1460), .sackPermitted, ts, .noOperation, .windowScale(7),
                                   .mptcp(.mpJoin(.synAck(flags: 0, addressID: 1, truncatedHMAC: mac, nonce: Self.peerNonce)))]), .uplink(1))
        feed(Self.packet(s, j, seq: Self.joinISN &+ 1, ack: ourISN &+ 1, flags: TCPFlags.ack,
                         options: [.noOperation, .noOperation, ts, .mptcp(.dss(DSS(dataAck: lIDSN &+ 1)))]), .uplink(1))

        let payload = [UInt8](repeating: 0x5a, count: segmentSize)
        var down: UInt64 = 1, s0: UInt32 = 1, s1: UInt32 = 1
        for _ in 0 ..< n {
            let k = UInt32(segmentSize)
            let m0 = DSSMapping(dsn: rIDSN &+ down, subflowSeq: s0, length: UInt16(k))
            let d0 = Self.packet(s, c, seq: Self.sISN &+ s0, ack: Self.cISN &+ 1, flags: TCPFlags.ack | TCPFlags.psh,
                                 options: [.noOperation, .noOperation, ts, .mptcp(.dss(DSS(dataAck: lIDSN &+ 1, mapping: m0)))], payload: payload)
            let m1 = DSSMapping(dsn: rIDSN &+ down &+ UInt64(k), subflowSeq: s1, length: UInt16(k))
            let d1 = Self.packet(s, j, seq: Self.joinISN &+ s1, ack: ourISN &+ 1, flags: TCPFlags.ack | TCPFlags.psh,
                                 options: [.noOperation, .noOperation, ts, .mptcp(.dss(DSS(dataAck: lIDSN &+ 1, mapping: m1)))], payload: payload)
            let ack = Self.packet(c, s, seq: Self.cISN &+ 1, ack: Self.sISN &+ UInt32(truncatingIfNeeded: down) &+ 2 * k, flags: TCPFlags.ack,
                                  options: [.noOperation, .noOperation, ts])
            prepared.rounds.append([(d0, .uplink(0)), (d1, .uplink(1)), (ack, .lan)])
            down &+= UInt64(2 * k); s0 &+= k; s1 &+= k
        }
    }

    /// Feeds a packet outside the measurement; returns what the engine sent.
    @discardableResult
    private func feed(_ p: [UInt8], _ side: Side) -> [[UInt8]] {
        _ = p.withUnsafeBytes { engine.handle(packet: $0, side: side, now: t) }
        var out: [[UInt8]] = []
        for i in 0 ..< engine.outbox.count { out.append(Array(engine.outbox.packet(i).bytes)) }
        engine.outbox.removeAll()
        return out
    }

    /// Runs rounds `range`: the segments handled and how many verdicts were
    /// rewrites (both data segments of every round when translation works).
    @discardableResult
    public func run(_ range: Range<Int>) -> (segments: Int, rewrites: Int) {
        prepared.run(engine, range, gso: segmentSize > 1500)
    }

    static func packet(_ from: Endpoint, _ to: Endpoint, seq: UInt32, ack: UInt32, flags: UInt8, options: [TCPOption],
                       payload: [UInt8] = []) -> [UInt8] {
        guard case let .v4(sa) = from.address, case let .v4(da) = to.address else { return [] }
        return ipv4Segment(from: (sa, from.port), to: (da, to.port), seq: seq, ack: ack, flags: flags, window: 65_535,
                           options: options, payload: payload)
    }
}

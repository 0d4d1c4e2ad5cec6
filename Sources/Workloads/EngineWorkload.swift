import MPTCPStack

/// A steady-state translation workload for the engine alone: one MPTCP
/// connection (handshake done), then rounds of client data, peer DATA_ACK,
/// peer data and client ACK, all packets built before the clock starts.
/// Used by `Bench engine` (nanoseconds and heap allocations per segment) and
/// by the allocation test.
public final class EngineWorkload {
    public let engine: Engine<SeededRandom>
    private var rounds: [[[UInt8]]] = [] // per round: clientData, peerAck, peerData, clientAck
    private var t = Instant(nanoseconds: 1_000_000_000)
    public let segmentSize: Int

    static let client = IPv4Address(10, 31, 1, 1), server = IPv4Address(10, 31, 2, 2)
    static let cport: UInt16 = 40000, sport: UInt16 = 5001
    static let cISN: UInt32 = 1_000_000, sISN: UInt32 = 7_000_000
    static let peerKey: UInt64 = 0x1122_3344_5566_7788

    /// Builds the workload; `rounds` rounds of 4 packets, `segmentSize` bytes
    /// of payload per data segment (1448 for wire-sized, up to ~64000 as GSO).
    public init(rounds n: Int, segmentSize: Int = 1448, seed: UInt64 = 1) {
        self.segmentSize = segmentSize
        engine = Engine(config: EngineConfig(), random: SeededRandom(seed: seed))
        var probe = SeededRandom(seed: seed)
        let localKey = probe.next()
        let lIDSN = MPTCPCrypto.idsn(key: localKey), rIDSN = MPTCPCrypto.idsn(key: Self.peerKey)
        let ts: TCPOption = .timestamps(value: 1, echoReply: 1)

        // Handshake (not measured).
        feed(Self.packet(fromClient: true, seq: Self.cISN, ack: 0, flags: TCPFlags.syn,
                         options: [.maxSegmentSize(1460), .sackPermitted, ts, .noOperation, .windowScale(7)]), .lan)
        feed(Self.packet(fromClient: false, seq: Self.sISN, ack: Self.cISN + 1, flags: TCPFlags.syn | TCPFlags.ack,
                         options: [.maxSegmentSize(1460), .sackPermitted, ts, .noOperation, .windowScale(7),
                                   .mptcp(.mpCapable(MPCapable(senderKey: Self.peerKey)))]), .uplink(0))
        feed(Self.packet(fromClient: true, seq: Self.cISN + 1, ack: Self.sISN + 1, flags: TCPFlags.ack,
                         options: [.noOperation, .noOperation, ts]), .lan)
        feed(Self.packet(fromClient: false, seq: Self.sISN + 1, ack: Self.cISN + 1, flags: TCPFlags.ack,
                         options: [.noOperation, .noOperation, ts, .mptcp(.dss(DSS(dataAck: lIDSN &+ 1)))]), .uplink(0))

        let payload = [UInt8](repeating: 0x5a, count: segmentSize)
        var up: UInt32 = 1, down: UInt32 = 1
        for _ in 0 ..< n {
            let k = UInt32(segmentSize)
            let cData = Self.packet(fromClient: true, seq: Self.cISN &+ up, ack: Self.sISN &+ down, flags: TCPFlags.ack | TCPFlags.psh,
                                    options: [.noOperation, .noOperation, ts], payload: payload)
            let pAck = Self.packet(fromClient: false, seq: Self.sISN &+ down, ack: Self.cISN &+ up &+ k, flags: TCPFlags.ack,
                                   options: [.noOperation, .noOperation, ts,
                                             .mptcp(.dss(DSS(dataAck: lIDSN &+ UInt64(up &+ k))))])
            let map = DSSMapping(dsn: rIDSN &+ UInt64(down), subflowSeq: down, length: UInt16(k))
            let pData = Self.packet(fromClient: false, seq: Self.sISN &+ down, ack: Self.cISN &+ up &+ k, flags: TCPFlags.ack | TCPFlags.psh,
                                    options: [.noOperation, .noOperation, ts,
                                              .mptcp(.dss(DSS(dataAck: lIDSN &+ UInt64(up &+ k), mapping: map)))], payload: payload)
            let cAck = Self.packet(fromClient: true, seq: Self.cISN &+ up &+ k, ack: Self.sISN &+ down &+ k, flags: TCPFlags.ack,
                                   options: [.noOperation, .noOperation, ts])
            rounds.append([cData, pAck, pData, cAck])
            up &+= k; down &+= k
        }
    }

    private func feed(_ p: [UInt8], _ side: Side) {
        _ = p.withUnsafeBytes { engine.handle(packet: $0, side: side, now: t) }
        engine.outbox.removeAll()
    }

    /// Runs rounds `range`; returns the number of segments handled and how
    /// many verdicts were rewrites (all of them, when translation works).
    @discardableResult
    public func run(_ range: Range<Int>) -> (segments: Int, rewrites: Int) {
        var rewrites = 0, segs = 0
        let gso = segmentSize > 1500
        for i in range {
            for j in 0 ..< 4 {
                t.nanoseconds &+= 1000
                let v = rounds[i][j].withUnsafeBytes { engine.handle(packet: $0, side: j == 0 || j == 3 ? .lan : .uplink(0), gso: gso, now: t) }
                if case .rewrite = v { rewrites += 1 }
                segs += 1
            }
            engine.outbox.removeAll()
        }
        return (segs, rewrites)
    }

    public var roundCount: Int { rounds.count }

    static func packet(fromClient: Bool, seq: UInt32, ack: UInt32, flags: UInt8, options: [TCPOption], payload: [UInt8] = []) -> [UInt8] {
        var list = TCPOptionList()
        for o in options { list.append(o) }
        let (s, d) = fromClient ? (client, server) : (server, client)
        let (sp, dp) = fromClient ? (cport, sport) : (sport, cport)
        var p = TCPPacket(ipHeader: .v4(IPv4Header(totalLength: 0, source: s, destination: d)),
                          tcpHeader: TCPHeader(sourcePort: sp, destinationPort: dp, seq: TCPSeq(seq), ack: TCPSeq(ack),
                                               flags: flags, window: 1000, options: list),
                          payload: payload)
        p.fixLengthsAndChecksums()
        return (try? p.emitted()) ?? []
    }
}

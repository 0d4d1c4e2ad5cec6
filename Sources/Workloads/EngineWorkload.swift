import MPTCPStack

/// A prepared sequence of packets for the engine, run a range of rounds at a
/// time (for timing and for counting heap allocations).
public protocol TranslationWorkload: AnyObject {
    /// Runs rounds `range`: the segments handled and how many were rewrites.
    @discardableResult
    func run(_ range: Range<Int>) -> (segments: Int, rewrites: Int)
}

/// Rounds of packets, each with the side it enters by, fed to an engine
/// 1 µs apart; what the engine originates is dropped after each round.
struct PreparedRounds {
    var rounds: [[(packet: [UInt8], side: Side)]] = []
    var clock = Instant(nanoseconds: 1_000_000_000)

    mutating func run<R>(_ engine: Engine<R>, _ range: Range<Int>, gso: Bool) -> (segments: Int, rewrites: Int) {
        var rewrites = 0, segs = 0
        for i in range {
            for j in rounds[i].indices {
                clock.nanoseconds &+= 1000
                let side = rounds[i][j].side
                let v = rounds[i][j].packet.withUnsafeBytes { engine.handle(packet: $0, side: side, gso: gso, now: clock) }
                if case .rewrite = v { rewrites += 1 }
                segs += 1
            }
            engine.outbox.removeAll()
        }
        return (segs, rewrites)
    }
}

/// An IPv4 TCP segment with checksums.
func ipv4Segment(from: (IPv4Address, UInt16), to: (IPv4Address, UInt16), seq: UInt32, ack: UInt32, flags: UInt8,
                 window: UInt16, options: [TCPOption], payload: [UInt8] = []) -> [UInt8] {
    var list = TCPOptionList()
    for o in options { list.append(o) }
    var p = TCPPacket(ipHeader: .v4(IPv4Header(totalLength: 0, source: from.0, destination: to.0)),
                      tcpHeader: TCPHeader(sourcePort: from.1, destinationPort: to.1, seq: TCPSeq(seq), ack: TCPSeq(ack),
                                           flags: flags, window: window, options: list),
                      payload: payload)
    p.fixLengthsAndChecksums()
    return (try? p.emitted()) ?? []
}

/// A steady-state translation workload for the engine alone: one MPTCP
/// connection (handshake done), then rounds of client data, peer DATA_ACK,
/// peer data and client ACK, all packets built before the clock starts.
/// Used by `Bench engine` (nanoseconds and heap allocations per segment) and
/// by the allocation test.
public final class EngineWorkload: TranslationWorkload {
    public let engine: Engine<SeededRandom>
    private var prepared = PreparedRounds() // per round: clientData, peerAck, peerData, clientAck
    private var t: Instant { prepared.clock }
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
            prepared.rounds.append([(cData, .lan), (pAck, .uplink(0)), (pData, .uplink(0)), (cAck, .lan)])
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
        prepared.run(engine, range, gso: segmentSize > 1500)
    }

    public var roundCount: Int { prepared.rounds.count }

    static func packet(fromClient: Bool, seq: UInt32, ack: UInt32, flags: UInt8, options: [TCPOption], payload: [UInt8] = []) -> [UInt8] {
        let c = (client, cport), s = (server, sport)
        return ipv4Segment(from: fromClient ? c : s, to: fromClient ? s : c, seq: seq, ack: ack, flags: flags, window: 1000,
                           options: options, payload: payload)
    }
}

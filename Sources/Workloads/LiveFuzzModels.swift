import MPTCPStack

// The genuine ends of one fuzzed connection, as plain state: a plain TCP
// host on the LAN and an MPTCP v1 peer beyond the uplinks. Their behaviour
// (what they send, how they take what the engine sends them) is in
// LiveFuzz+Genuine.swift. Both byte streams are `FuzzStream`s, so every byte
// can be checked at its place.

/// How a fuzzed connection ended (for the counts).
enum ConnOutcome: Int, CaseIterable {
    case live, closed, reset, aborted, abandoned

    var name: String {
        switch self {
        case .live: return "live"
        case .closed: return "closed cleanly"
        case .reset: return "reset"
        case .aborted: return "aborted by an end"
        case .abandoned: return "abandoned (silent)"
        }
    }
}

/// The plain TCP host on the LAN (the client in the initiator role, the
/// server in the responder role). Offsets count stream bytes from 0.
struct LanHost {
    enum State { case idle, synSent, synReceived, established, reset }
    var state = State.idle
    var iss: UInt32
    /// The peer's ISN on the initial subflow (learnt from its SYN or SYN/ACK).
    var irs: UInt32 = 0
    var sndUna = 0
    var sndNxt = 0
    /// The highest offset ever sent (a timeout sends from `sndUna` again).
    var sndMax = 0
    var finSent = false
    /// The FIN went out at least once.
    var finEver = false
    var finAcked = false
    var rcv = Ranges()
    /// Offset of the FIN received (the peer's stream length).
    var finAt: Int?
    var pendingAck = false
    var synAckPending = false
    var lastProgress = Instant(nanoseconds: 0)
    var synAt = Instant(nanoseconds: 0)
    var tsRecent: UInt32 = 0
    var sendWindow = 65_535
    var remoteWScale: UInt8 = 0

    init(iss: UInt32) { self.iss = iss }

    var rcvNxt: Int { rcv.end(from: 0) }
    var finReceived: Bool { finAt.map { rcvNxt >= $0 } ?? false }
    func seq(_ offset: Int) -> UInt32 { iss &+ 1 &+ UInt32(truncatingIfNeeded: offset) }
    var ackNumber: UInt32 { irs &+ 1 &+ UInt32(truncatingIfNeeded: rcvNxt) &+ (finReceived ? 1 : 0) }
}

/// One chunk of the peer's stream as sent on a subflow (one DSS mapping).
struct Chunk {
    /// Relative subflow sequence number of its first byte.
    var ssn: UInt32
    var offset: Int
    var length: Int
}

/// One subflow as the peer sees it.
struct PeerSub {
    enum State { case synSent, synReceived, joinReceived, ignored, established, reset }
    var state: State
    /// The peer's end and the gateway's end (the LAN host's address on the
    /// initial subflow, an uplink address on a joined one).
    var local: Endpoint
    var remote: Endpoint
    /// The uplink it enters the gateway by.
    var side: Side
    var iss: UInt32
    /// The gateway's ISN on it.
    var irs: UInt32 = 0
    /// Relative sequence numbers (1 = the first byte after the SYN).
    var sndNxt: UInt32 = 1
    var sndUna: UInt32 = 1
    var finSent = false
    /// Relative offsets (rel - 1) received from the gateway.
    var rcv = Ranges()
    var finRcvd = false
    var pendingAck = false
    var synAckPending = false
    var fourthAckPending = false
    var lastProgress = Instant(nanoseconds: 0)
    var synAt = Instant(nanoseconds: 0)
    /// Unacknowledged chunks and recent history (for the placement of
    /// mutated packets that carry no mapping).
    var chunks: [Chunk] = []
    /// A mutated packet with a mapping went out on this subflow since the
    /// engine last took a genuine mapping here.
    var forgedMapping = false
    var tsRecent: UInt32 = 0
    var engineNonce: UInt32 = 0
    var peerNonce: UInt32 = 0
    var remoteWScale: UInt8 = 0
    var echo: AddAddr?

    init(state: State, local: Endpoint, remote: Endpoint, side: Side, iss: UInt32) {
        self.state = state; self.local = local; self.remote = remote; self.side = side; self.iss = iss
    }

    var rcvEnd: Int { rcv.end(from: 0) }
    var ackNumber: UInt32 { irs &+ 1 &+ UInt32(truncatingIfNeeded: rcvEnd) &+ (finRcvd ? 1 : 0) }
    var seqNext: UInt32 { iss &+ sndNxt &+ (finSent ? 1 : 0) }

    /// The genuine chunk that carried relative subflow sequence `rel`.
    func chunk(covering rel: UInt32) -> Chunk? {
        chunks.last { c in let d = rel &- c.ssn; return d < UInt32(c.length) }
    }
}

/// The MPTCP peer's connection-level state.
struct PeerSide {
    var subs: [PeerSub] = []
    /// Keys exchanged (it has the gateway's key).
    var established = false
    var thirdAckPending = false
    /// Responder role: a DSS from the gateway was seen (first data may then go with DSS).
    var sawDSS = false
    var dataUna = 0
    var dataNxt = 0
    var dataFinSent = false
    var dataFinAt = Instant(nanoseconds: 0)
    var dataFinAcked = false
    var lastDataProgress = Instant(nanoseconds: 0)
    /// The LAN host's stream as received (offsets).
    var dataRcv = Ranges()
    var lanFinAt: Int?
    var subflowFinsSent = false
    var dead = false

    var dataRcvEnd: Int { dataRcv.end(from: 0) }
    var lanFinReceived: Bool { lanFinAt.map { dataRcvEnd >= $0 } ?? false }
}

/// One connection of the fuzz: its two ends, their streams and keys.
final class FuzzConn {
    let id: Int
    let responder: Bool
    let v6: Bool
    let lan: Endpoint
    let peerEndpoint: Endpoint
    let up: FuzzStream
    let down: FuzzStream
    let upTotal: Int
    let downTotal: Int
    let peerKey: UInt64
    let R: UInt64
    let checksums: Bool
    let answersJoins: Bool
    let tsBase: UInt32
    /// The peer's ISN on the initial subflow (the LAN host's receive ISN).
    let peerISN: UInt32
    /// The engine's key for the connection (from the MP_CAPABLE it sent) and its IDSN.
    var engineKey: UInt64?
    var L: UInt64 = 0
    var key: UInt64 { engineKey ?? 0 }
    var budget: Int
    var fed = 0
    var outcome = ConnOutcome.live
    var host: LanHost
    var peer = PeerSide()
    /// The last genuine packets each way (what mutations start from), and a
    /// few older ones from the peer (replayed).
    var lastUp: (bytes: [UInt8], side: Side)?
    var lastLan: [UInt8]?
    var history: [(bytes: [UInt8], side: Side)] = []
    /// Two uplinks: since when every subflow has been seen failed, and the
    /// last MP_JOIN SYN the engine sent for it.
    var allFailedSince: Instant?
    var stuckReported = false
    var lastJoinSYN = Instant(nanoseconds: 0)
    var closingSteps = 0
    /// The kind of the last mutated packet fed for it.
    var lastMutation: MutationKind?
    /// Bytes of each stream checked at their place.
    var downChecked = 0
    var upChecked = 0

    /// Percentage of this connection's packets that are mutated.
    let hostility: Int

    init(id: Int, responder: Bool, v6: Bool, lan: Endpoint, peer: Endpoint, rng: inout SeededRandom,
         checksums: Bool, answersJoins: Bool, budget: Int, hostility: Int) {
        self.hostility = hostility
        self.id = id; self.responder = responder; self.v6 = v6; self.lan = lan; self.peerEndpoint = peer
        up = FuzzStream(key: rng.next())
        down = FuzzStream(key: rng.next())
        func total(_ r: inout SeededRandom) -> Int {
            switch r.below(10) {
            case 0 ..< 3: return r.below(5_000)
            case 3 ..< 8: return r.below(120_000)
            default: return r.below(400_000)
            }
        }
        upTotal = total(&rng)
        downTotal = total(&rng)
        peerKey = rng.next()
        R = MPTCPCrypto.idsn(key: peerKey)
        self.checksums = checksums
        self.answersJoins = answersJoins
        tsBase = rng.u32()
        peerISN = rng.u32()
        self.budget = budget
        host = LanHost(iss: rng.u32())
    }

    var live: Bool { outcome == .live }

    /// The initial subflow's 4-tuple.
    var flow: FlowID { FlowID(local: lan, remote: peerEndpoint) }

    /// Both streams delivered and both FINs acknowledged.
    var finished: Bool {
        host.finAcked && host.finReceived && peer.dataFinAcked && peer.lanFinReceived
    }
}

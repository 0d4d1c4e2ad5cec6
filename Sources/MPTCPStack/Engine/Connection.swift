// Per-connection state of the translator.

/// The last DSS mapping received on a subflow (RFC 8684 §3.3.1).
struct PeerMapping {
    var dsn: UInt64 = 0
    /// Relative to the peer's subflow ISN.
    var ssn: UInt32 = 0
    /// Data-level length, including 1 for a DATA_FIN.
    var length: UInt32 = 0
    var dataFin = false
    var valid = false

    /// The DSN of relative subflow sequence `r`, if this mapping covers it.
    func dsn(atRelative r: UInt32) -> UInt64? {
        guard valid else { return nil }
        let off = r &- ssn
        guard off < length else { return nil }
        return dsn &+ UInt64(off)
    }
}

/// One-uplink plane: how the peer's subflow sequence numbers on the initial
/// subflow stand to its data sequence numbers. They start equal (relative
/// subflow sequence 1 is DSN IDSN + 1) and stay so until the peer resends
/// data at data level on the same subflow, under new subflow sequence
/// numbers (a data-level retransmission, allowed by RFC 8684 §3.3.1; Linux
/// does it when a subflow is reset or its data-level timer fires). Each such
/// place starts a region in subflow order: subflow sequence `ssn + k` carries
/// DSN `dsn + k` up to the next region. The subflow-level ACK for a LAN ACK
/// is then the first subflow sequence whose data the LAN host has not
/// acknowledged, found by walking the regions (a region whose data is all
/// acknowledged is dropped).
struct PeerRegions {
    static let capacity = 8
    /// Relative to the peer's ISN.
    var ssn: InlineArray<8, UInt32> = InlineArray(repeating: 0)
    var dsn: InlineArray<8, UInt64> = InlineArray(repeating: 0)
    var count = 0

    /// A region beyond the first (identity) one was ever added: the two
    /// sequence spaces differ from then on.
    private(set) var remapped = false

    /// Notes a mapping of `ssnRel` to `dsn`. With every region in use, the
    /// oldest is dropped: its remaining subflow bytes count as acknowledged
    /// at subflow level (their data stays the peer's to resend until the
    /// DATA_ACK, which only the LAN host's ACK moves, covers it).
    mutating func note(ssnRel: UInt32, dsn d: UInt64, idsn: UInt64) {
        if count == 0 {
            ssn[0] = 1; dsn[0] = idsn &+ 1; count = 1
        }
        let last = count - 1
        let delta = ssnRel &- UInt32(truncatingIfNeeded: d)
        guard delta != ssn[last] &- UInt32(truncatingIfNeeded: dsn[last]) else { return }
        // Only a mapping further on in the subflow starts a region (an old
        // one, a subflow-level retransmission, lies in a region we know).
        guard Int32(bitPattern: ssnRel &- ssn[last]) > 0 else { return }
        if count == Self.capacity {
            for j in 1 ..< count { ssn[j - 1] = ssn[j]; dsn[j - 1] = dsn[j] }
            count -= 1
        }
        ssn[count] = ssnRel; dsn[count] = d; count += 1
        remapped = true
    }

    /// The relative subflow sequence range that carried DSNs `l ..< r` in
    /// the latest region holding all of them (for the client's SACK blocks).
    func subflowRange(dsn l: UInt64, _ r: UInt64) -> (UInt32, UInt32)? {
        var i = count - 1
        while i >= 0 {
            let start = dsn[i]
            if l &- start < (1 << 62) && r &- l < (1 << 31) {
                let off = l &- start, end = r &- start
                if i + 1 == count || end <= UInt64(ssn[i + 1] &- ssn[i]) {
                    return (ssn[i] &+ UInt32(truncatingIfNeeded: off), ssn[i] &+ UInt32(truncatingIfNeeded: end))
                }
            }
            i -= 1
        }
        return nil
    }

    /// The relative subflow ACK for data acknowledged up to DSN `ack`
    /// (exclusive); regions wholly below it are dropped.
    mutating func subflowAck(dataAck ack: UInt64) -> UInt32 {
        var i = 0
        while i < count {
            let start = dsn[i]
            if i + 1 < count {
                let len = UInt64(ssn[i + 1] &- ssn[i])
                let end = start &+ len
                if ack &- end < (1 << 62) { i += 1; continue } // ack >= end: all of it acknowledged
            }
            let off: UInt32 = ack &- start < (1 << 62) ? UInt32(truncatingIfNeeded: ack &- start) : 0
            let r = ssn[i] &+ off
            if i > 0 {
                for j in i ..< count { ssn[j - i] = ssn[j]; dsn[j - i] = dsn[j] }
                count -= i
            }
            return r
        }
        return ssn[count - 1] // unreachable: the last region is open-ended
    }
}

/// A connection's initial subflow (its own 4-tuple), from the translator's
/// side: "local" is the end the translator speaks for (the LAN host),
/// "remote" is the MPTCP peer. With one uplink the connection is translated
/// by rewriting this subflow's headers; with several, the subflows
/// (`Subflow`, the initial one among them) live in `MPConn`.
struct InitialSubflow {
    var local: Endpoint
    var remote: Endpoint
    var uplink: UInt8 = 0
    var addressID: UInt8 = 0

    // Our sending side on this subflow.
    var localISN = TCPSeq(0)
    /// One past the highest sequence sent (data and FIN).
    var sndMax = TCPSeq(0)
    var window: UInt16 = 0

    // The peer's sending side.
    var remoteISN = TCPSeq(0)
    /// The peer's SYN/ACK (or SYN) has been seen: remoteISN and rcvMax are valid.
    var remoteISNKnown = false
    /// One past the highest peer sequence seen (data and FIN): caps the
    /// subflow-level ACK, which must not cover what was not sent.
    var rcvMax = TCPSeq(0)
    /// The last DSS mapping the peer sent on this subflow.
    var mapping = PeerMapping()

    /// Timestamps (RFC 7323), when both ends use them: our latest TSval and
    /// the peer's latest (echoed in what the translator sends itself).
    var timestamps = false
    var localTSval: UInt32 = 0
    var remoteTSval: UInt32 = 0

    /// Both FINs of this subflow are acknowledged.
    var closed = false

    init(local: Endpoint, remote: Endpoint) { self.local = local; self.remote = remote }
}

/// A translated connection: the LAN host speaks plain TCP, the peer beyond
/// the uplink speaks MPTCP v1. Throughout, "client" is the LAN host and
/// "server" the peer, in both roles: in the initiator role the LAN host
/// opened the connection, in the responder role the peer did (its SYN came
/// in on an uplink), and the LAN host is then a server, though named
/// "client" here. Only the handshake differs; the data path is the same.
struct Connection {
    enum Phase: UInt8 {
        /// Client SYN sent on with MP_CAPABLE; waiting for the SYN/ACK.
        case synSent
        /// Responder role: the peer's SYN went on to the LAN host; waiting
        /// for its SYN/ACK (which gets our key), then for the peer's third
        /// ACK with both keys.
        case synReceived
        /// MPTCP negotiated: segments are translated.
        case established
        /// The peer answered as plain TCP (or MPTCP was lost): pass untouched.
        case fallback
        /// Both ends speak MPTCP themselves (a LAN host with its own MPTCP):
        /// passed untouched, remembered so that its MPTCP packets are not
        /// taken for those of a connection the engine has lost.
        case native
        /// Reset or fully closed; remembered until `deadline`.
        case closed
    }

    var phase: Phase = .synSent
    /// The peer opened the connection (responder role).
    var responder = false
    /// Responder role: the LAN host's SYN/ACK has been seen (clientISN is its ISN).
    var lanSynAckSeen = false
    var key: FlowKey
    var generation: UInt32 = 0

    /// The initial subflow, which keeps the connection's 4-tuple, the
    /// client's ISN towards the peer and the peer's ISN towards the client
    /// (multipath connections keep their subflows in `mp`).
    var initial: InitialSubflow

    // The client's view of the two byte streams (data level <-> client space).
    /// The client's ISN, or, once the peer has acknowledged data the
    /// client's SYN carried (TCP Fast Open), its ISN + that data's length:
    /// the SYN's data lies before our IDSN + 1 in the data sequence space and
    /// before relative subflow sequence 1 (as Linux places it), so all the
    /// mapping arithmetic starts after it.
    var clientISN: TCPSeq
    /// Bytes of data on the client's SYN (TFO), until the SYN/ACK.
    var synDataLength: UInt32 = 0
    var serverISN = TCPSeq(0)
    // Keys (RFC 8684 §3.1): ours on behalf of the client, and the peer's.
    var localKey: UInt64
    var localIDSN: UInt64
    var remoteKey: UInt64 = 0
    var remoteIDSN: UInt64 = 0
    var checksums = false
    /// True once the peer has sent a DSS: our MP_CAPABLE reached it (§3.1).
    var fullyEstablished = false

    // Data level.
    /// Highest DATA_ACK received from the peer (covers our upload).
    var peerDataAck: UInt64 = 0
    var havePeerDataAck = false
    /// Highest DATA_ACK sent to the peer: what the client has acknowledged.
    var dataAckToPeer: UInt64 = 0
    var haveDataAckToPeer = false
    /// Highest DSN we have told the peer about (upload direction), for expanding.
    var lastUploadDSN: UInt64 = 0
    /// DSN of the peer's DATA_FIN, once seen.
    var peerDataFinDSN: UInt64?
    var clientFinSeq: TCPSeq?
    /// The peer's DATA_ACK covers the client's FIN.
    var clientFinAcked = false
    /// ... and an ACK saying so has gone to the client.
    var clientFinAckForwarded = false
    var peerFinForwarded = false
    var peerFinAcked = false

    /// One past the highest client-space sequence delivered to the client.
    var deliveredMax = TCPSeq(0)
    /// One-uplink plane: the peer's subflow vs data sequence numbers.
    var peerRegions = PeerRegions()
    /// The client's window scale (its SYN, or in the responder role its
    /// SYN/ACK): the receive window that peer segments are checked against.
    var clientWScale: UInt8 = 0
    /// One-uplink plane: the last subflow-level ACK passed to the peer (the
    /// peer's view of our RCV.NXT).
    var ackToPeer = TCPSeq(0)
    var haveAckToPeer = false
    /// When the last challenge ACK went out (RFC 5961 §3.2, rate-limited).
    var lastChallenge = Instant(nanoseconds: 0)
    /// Native connections: bit 0/1 FIN seen from the LAN host / the peer,
    /// bit 2 a packet other than a SYN seen, bit 3 unconfirmed (a join SYN
    /// from an uplink that no LAN host has answered with MP_JOIN yet).
    var nativeFins: UInt8 = 0

    var lastSeen: Instant
    var deadline: Instant
    /// Multipath state (nil with a single uplink).
    var mp: MPConn?

    init(key: FlowKey, clientISN: TCPSeq, localKey: UInt64, now: Instant, deadline: Instant) {
        self.key = key
        self.clientISN = clientISN
        var sf = InitialSubflow(local: key.client, remote: key.server)
        sf.localISN = clientISN
        sf.sndMax = clientISN + 1
        self.initial = sf
        self.localKey = localKey
        self.localIDSN = MPTCPCrypto.idsn(key: localKey)
        self.lastUploadDSN = localIDSN &+ 1
        self.lastSeen = now
        self.deadline = deadline
    }

    /// DSN of a client-space sequence number in the upload direction.
    func uploadDSN(_ seq: TCPSeq) -> UInt64 {
        let low = UInt32(truncatingIfNeeded: localIDSN) &+ (seq.rawValue &- clientISN.rawValue)
        return DataSeq.expand(low32: low, near: DataSeq(lastUploadDSN)).rawValue
    }

    /// DSN acknowledged by a client ACK number (download direction).
    func downloadDSN(ofClientAck ack: TCPSeq, near: UInt64) -> UInt64 {
        let low = UInt32(truncatingIfNeeded: remoteIDSN) &+ (ack.rawValue &- serverISN.rawValue)
        return DataSeq.expand(low32: low, near: DataSeq(near)).rawValue
    }

    /// Client-space sequence number of a download DSN.
    func clientSeq(ofDownloadDSN dsn: UInt64) -> TCPSeq {
        serverISN + UInt32(truncatingIfNeeded: dsn &- remoteIDSN)
    }

    /// Client-space ACK number for a DATA_ACK of our upload.
    func clientAck(ofDataAck a: UInt64) -> TCPSeq {
        clientISN + UInt32(truncatingIfNeeded: a &- localIDSN)
    }
}

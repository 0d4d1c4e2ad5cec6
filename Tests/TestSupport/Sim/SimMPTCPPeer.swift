import MPTCPStack

/// A model MPTCP v1 server (RFC 8684), simplified from what the Linux kernel
/// does, for one connection:
/// - answers an MP_CAPABLE SYN with MP_CAPABLE v1 (flag H, its own key) and
///   takes the client's key from the third ACK or the first data (data
///   arriving before the keys is dropped unacknowledged: the client's
///   retransmission of its first segment carries them again);
/// - accepts MP_JOIN SYNs carrying its token: SYN/ACK with the leftmost 64
///   bits of HMAC(KeyB‖KeyA, R_B‖R_A), checks the third ACK's 160-bit HMAC,
///   sends the fourth ACK;
/// - per subflow: its own ISN, immediate cumulative ACKs, no SACK,
///   NewReno and RTO retransmission (`SimSender`);
/// - data level: applies the DSS mappings to in-order subflow bytes (4-byte
///   DSNs expanded with `DataSeq.expand`), reassembles by DSN and checks
///   every byte against `upload`; a DATA_ACK (8 bytes) in a DSS on every
///   segment it sends;
/// - sends `download` over its subflows (lowest RTT first, within the
///   client's window at data level), one DSS mapping (8-byte DSN, subflow
///   sequence relative to the subflow ISN) per segment; a subflow that times
///   out twice in a row has its unacknowledged data reinjected on another,
///   and a data-level timer reinjects at the DATA_ACK when it stalls;
/// - DATA_FIN when the download is sent (alone on a pure ACK, or with the
///   last data: `Config.dataFinWithData`); the subflows are closed with FIN
///   once both DATA_FINs are acknowledged.
package final class SimMPTCPPeer {
    package struct Config {
        /// The listening endpoint.
        package var local: Endpoint
        package var key: UInt64
        /// ISNs and join nonces come from here.
        package var seed: UInt64
        package var upload: SimStream
        package var download: SimStream
        package var rcvWindow = 1 << 20
        package var windowScale: UInt8 = 7
        package var dataFinWithData = false
        package var mss: UInt16 { if case .v6 = local.address { return 1440 } else { return 1460 } }
    }

    /// One chunk of the download as sent on a subflow (one DSS mapping).
    package struct Chunk {
        /// Subflow offset of its first byte (relative subflow sequence number).
        package var start: Int
        package var dataOffset: Int
        package var length: Int
        package var dataFin: Bool
        package var end: Int { start + length }
    }

    /// A mapping received from the client's side.
    package struct Mapping {
        package var start: Int
        package var dsn: UInt64
        /// Data bytes (the DATA_FIN excluded).
        package var dataLength: Int
        package var dataFin: Bool
        package var end: Int { start + dataLength }
    }

    package final class Subflow {
        package enum State { case synReceived, established, reset }
        package let index: Int
        package let local: Endpoint
        package let remote: Endpoint
        package let isJoin: Bool
        package var state = State.synReceived
        package let iss: TCPSeq
        package let irs: TCPSeq
        package var sender = SimSender()
        package var timer: SimTimer!
        /// Subflow receive side; offsets are relative sequence numbers (data from 1).
        package var rcv = SimReassembly(next: 1)
        package var peerFinAt: Int?
        package var finReceived = false
        package var peerWindowScale: UInt8 = 0
        package var timestamps = false
        package var tsRecent: UInt32 = 0
        package var payloadSize = 536
        package var chunks: [Chunk] = []
        package var mappings: [Mapping] = []
        /// Offset after the last chunk: where new data (or our FIN) goes.
        package var sendEnd = 1
        package var finOffset: Int?
        package var finAcked: Bool { finOffset.map { sender.una > $0 } ?? false }
        /// Timed out twice in a row: its data was reinjected; no new data until it recovers.
        package var suspect = false
        // MP_JOIN.
        package var localNonce: UInt32 = 0
        package var remoteNonce: UInt32 = 0
        package var remoteAddressID: UInt8 = 0
        package var backup = false

        package init(index: Int, local: Endpoint, remote: Endpoint, isJoin: Bool, iss: TCPSeq, irs: TCPSeq) {
            self.index = index; self.local = local; self.remote = remote; self.isJoin = isJoin
            self.iss = iss; self.irs = irs
        }

        package var closed: Bool { finAcked && finReceived }
        package func seq(_ offset: Int) -> TCPSeq { iss + UInt32(truncatingIfNeeded: offset) }
        package var rcvNxt: TCPSeq { irs + UInt32(truncatingIfNeeded: rcv.next + (finReceived ? 1 : 0)) }
    }

    package let config: Config
    private let scheduler: SimScheduler
    private let log: SimLog
    private let random: SimRandom
    /// Sends a packet towards its destination address (the network routes it).
    package var transmit: ([UInt8]) -> Void = { _ in }
    private let name = "server"

    package private(set) var subflows: [Subflow] = []
    package let token: UInt32
    private let idsn: UInt64
    package private(set) var remoteKey: UInt64?
    private var remoteIDSN: UInt64 = 0
    // Upload (received).
    private var dataRcv = SimReassembly()
    private var peerDataFinAt: Int?
    package private(set) var dataFinReceived = false
    package private(set) var uploadVerified = 0
    // Download (sent).
    private var dataUna = 0
    private var dataNxt = 0
    private var dataRightEdge = 0
    private var dataFinSent = false
    private var reinjectQueue: [Range<Int>] = []
    private var dataTimer: SimTimer!
    private var dataBackoff = 0
    private var closing = false
    // Counters.
    package private(set) var reinjectedBytes = 0
    package private(set) var joinsAccepted = 0
    package private(set) var dataLevelRetransmits = 0

    package var dataFinAcked: Bool { dataUna > config.download.count }
    /// Upload received and checked, DATA_FINs both ways, download acknowledged.
    package var done: Bool { uploadVerified == config.upload.count && dataFinReceived && dataFinAcked }
    /// Every established subflow has exchanged FINs.
    package var subflowsClosed: Bool { !subflows.isEmpty && subflows.allSatisfy { $0.state != .established || $0.closed } }
    package var established: Bool { remoteKey != nil }

    package init(config: Config, scheduler: SimScheduler, log: SimLog) {
        self.config = config
        self.scheduler = scheduler
        self.log = log
        random = SimRandom(seed: config.seed)
        token = MPTCPCrypto.token(key: config.key)
        idsn = MPTCPCrypto.idsn(key: config.key)
        dataTimer = SimTimer(scheduler) { [unowned self] in dataTimeout() }
    }

    package var subflowStats: String {
        subflows.map { sf in
            "sf\(sf.index)\(sf.isJoin ? "(join)" : "") \(sf.state) sent \(sf.sendEnd - 1) una \(sf.sender.una) rcv \(sf.rcv.next - 1) "
                + "retx \(sf.sender.retransmittedSegments) rto \(sf.sender.timeouts) fin \(sf.finAcked)/\(sf.finReceived)"
        }.joined(separator: "; ") + "; reinjected \(reinjectedBytes) data-retx \(dataLevelRetransmits)"
    }

    // MARK: - Receiving

    package func receive(_ bytes: [UInt8]) {
        guard let s = SimSegment(bytes) else { log.violation(name, "undecodable packet"); return }
        log.note(name, "< " + s.summary)
        if let d = s.defect { log.violation(name, d + ": " + s.summary); return }
        guard s.destination == config.local else { log.violation(name, "packet for \(s.destination)"); return }
        if let sf = subflows.first(where: { $0.remote == s.source }) {
            if s.has(TCPFlags.syn) && !s.has(TCPFlags.ack) {
                if s.seq == sf.irs { sendSynAck(sf) } else { log.violation(name, "SYN reusing a subflow's ports: \(s.summary)") }
                return
            }
            segment(s, on: sf)
        } else if s.has(TCPFlags.syn) && !s.has(TCPFlags.ack) {
            syn(s)
        } else if !s.has(TCPFlags.rst) {
            log.violation(name, "segment for no subflow: \(s.summary)")
        }
    }

    private func syn(_ s: SimSegment) {
        let iss = TCPSeq(UInt32(truncatingIfNeeded: random.next()))
        if let mpc = s.mpCapable {
            guard subflows.isEmpty else { log.violation(name, "second MP_CAPABLE SYN: \(s.summary)"); return }
            if mpc.version != 1 || !mpc.hmacSHA256 || mpc.senderKey != nil {
                log.violation(name, "client SYN MP_CAPABLE is not v1/H/length 4: \(mpc)")
            }
            let sf = Subflow(index: 0, local: config.local, remote: s.source, isJoin: false, iss: iss, irs: s.seq)
            add(sf, from: s)
        } else if case .syn(let flags, let addressID, let tok, let nonce)? = s.mpJoin {
            guard tok == token, let _ = remoteKey else {
                log.violation(name, "MP_JOIN SYN with token \(tok) (ours \(token), keys known: \(remoteKey != nil))")
                transmit(simPacket(from: config.local, to: s.source, seq: TCPSeq(0), ack: s.seq + 1,
                                   flags: TCPFlags.rst | TCPFlags.ack, window: 0, options: []))
                return
            }
            let sf = Subflow(index: subflows.count, local: config.local, remote: s.source, isJoin: true, iss: iss, irs: s.seq)
            sf.remoteNonce = nonce
            sf.localNonce = UInt32(truncatingIfNeeded: random.next())
            sf.remoteAddressID = addressID
            sf.backup = flags & 1 != 0
            add(sf, from: s)
        } else {
            log.violation(name, "SYN without MP_CAPABLE or MP_JOIN: \(s.summary)")
        }
    }

    private func add(_ sf: Subflow, from s: SimSegment) {
        sf.peerWindowScale = s.windowScale ?? 0
        sf.timestamps = s.timestamp != nil
        if let ts = s.timestamp { sf.tsRecent = ts.value }
        let mss = Int(min(s.mss ?? 536, config.mss))
        // Room for timestamps and the largest DSS we send (DATA_ACK8 + DSN8 mapping).
        sf.payloadSize = mss - simOptionBytes(tsOptions(sf) + [.mptcp(.dss(DSS(dataAck: 0, mapping: DSSMapping(dsn: 0, subflowSeq: 0, length: 0))))])
        sf.timer = SimTimer(scheduler) { [unowned self, unowned sf] in subflowTimeout(sf) }
        subflows.append(sf)
        sendSynAck(sf)
    }

    private func tsOptions(_ sf: Subflow) -> [TCPOption] {
        sf.timestamps ? [.noOperation, .noOperation, .timestamps(value: scheduler.now.simMilliseconds, echoReply: sf.tsRecent)] : []
    }

    private func sendSynAck(_ sf: Subflow) {
        var opts: [TCPOption] = [.maxSegmentSize(config.mss)]
        if sf.timestamps { opts += [.noOperation, .noOperation, .timestamps(value: scheduler.now.simMilliseconds, echoReply: sf.tsRecent)] }
        opts += [.noOperation, .windowScale(config.windowScale)]
        if sf.isJoin {
            let mac = MPTCPCrypto.joinHMAC(keyLocal: config.key, keyRemote: remoteKey!, nonceLocal: sf.localNonce, nonceRemote: sf.remoteNonce)
            opts.append(.mptcp(.mpJoin(.synAck(flags: 0, addressID: 0, truncatedHMAC: mac.a, nonce: sf.localNonce))))
        } else {
            opts.append(.mptcp(.mpCapable(MPCapable(version: 1, flags: MPCapable.flagHMACSHA256, senderKey: config.key))))
        }
        transmit(simPacket(from: sf.local, to: sf.remote, seq: sf.iss, ack: sf.irs + 1, flags: TCPFlags.syn | TCPFlags.ack,
                           window: UInt16(min(config.rcvWindow, 65_535)), options: opts))
        sf.sender.sent(0, 1, now: scheduler.now)
        sf.timer.set(sf.sender.timerDeadline)
    }

    private func segment(_ s: SimSegment, on sf: Subflow) {
        let now = scheduler.now
        if s.mptcp.contains(where: { if case .mpFastclose = $0 { return true } else { return false } }) {
            // The whole connection aborted: never expected in these runs.
            log.violation(name, "MP_FASTCLOSE from the client side: \(s.summary)")
            for f in subflows { f.state = .reset; f.timer.stop() }
            return
        }
        if s.has(TCPFlags.rst) {
            // One subflow reset (MP_TCPRST or not): the connection goes on
            // over the others (RFC 8684 §3.3.6); what this one held goes again.
            guard sf.state != .reset else { return }
            log.note(name, "subflow \(sf.index) reset by the client side")
            sf.state = .reset
            sf.timer.stop()
            reinjectUnacknowledged(of: sf)
            progress()
            return
        }
        guard sf.state != .reset else { return }
        guard s.has(TCPFlags.ack) else { log.violation(name, "segment without ACK: \(s.summary)"); return }

        // Keys (MP_CAPABLE on the third ACK or the first data).
        if let mpc = s.mpCapable {
            if sf.isJoin { log.violation(name, "MP_CAPABLE on a join subflow") }
            if mpc.receiverKey != config.key { log.violation(name, "MP_CAPABLE echoes key \(String(describing: mpc.receiverKey))") }
            if let k = mpc.senderKey {
                if let known = remoteKey, known != k { log.violation(name, "client key changed") }
                if remoteKey == nil {
                    remoteKey = k
                    remoteIDSN = MPTCPCrypto.idsn(key: k)
                    log.note(name, "keys known: client key \(String(k, radix: 16))")
                }
            }
            if let len = mpc.dataLevelLength, !s.payload.isEmpty {
                record(Mapping(start: 1, dsn: remoteIDSN &+ 1, dataLength: Int(len), dataFin: false), on: sf)
            }
        }
        if remoteKey == nil && !s.payload.isEmpty {
            log.note(name, "data before the keys: dropped")
            return
        }

        if sf.state == .synReceived {
            guard s.ack == sf.iss + 1 else { log.violation(name, "handshake ACK \(s.ack), expected \(sf.iss + 1)"); return }
            if sf.isJoin {
                guard case .ack(_, let mac)? = s.mpJoin else {
                    log.violation(name, "join subflow \(sf.index): third ACK without MP_JOIN: \(s.summary)"); return
                }
                let expected = MPTCPCrypto.joinHMAC(keyLocal: remoteKey!, keyRemote: config.key, nonceLocal: sf.remoteNonce, nonceRemote: sf.localNonce)
                guard mac == expected else {
                    log.violation(name, "join subflow \(sf.index): third ACK HMAC \(mac), expected \(expected)")
                    transmit(simPacket(from: sf.local, to: sf.remote, seq: sf.iss + 1, ack: TCPSeq(0), flags: TCPFlags.rst, window: 0, options: []))
                    sf.state = .reset
                    return
                }
                joinsAccepted += 1
            }
            _ = sf.sender.onAck(1, window: Int(s.window) << Int(sf.peerWindowScale), pureAck: false, now: now)
            sf.sender.established(mss: sf.payloadSize)
            sf.state = .established
            log.note(name, "subflow \(sf.index) established")
            if sf.isJoin { sendAck(sf) } // the fourth ACK
        } else if case .ack? = s.mpJoin {
            sendAck(sf) // a repeated third ACK: our fourth ACK was lost
        }

        // Subflow-level acknowledgment.
        let ackOffset = sf.sender.una + Int(s.ack - sf.seq(sf.sender.una))
        let pure = s.payload.isEmpty && !s.has(TCPFlags.fin)
        let (outcome, retransmit) = sf.sender.onAck(ackOffset, window: Int(s.window) << Int(sf.peerWindowScale), pureAck: pure, now: now)
        switch outcome {
        case .beyondSent: log.violation(name, "subflow \(sf.index): ACK of data never sent (offset \(ackOffset) > \(sf.sender.max))")
        case .advanced: sf.suspect = false
        default: break
        }
        if retransmit { sendSegment(sf, at: sf.sender.una) }

        // Data level: DATA_ACK and mapping. Before the first DATA_ACK the
        // window counts from the first byte (the implicit DATA_ACK).
        if s.dss?.dataAck == nil && remoteKey != nil {
            dataRightEdge = max(dataRightEdge, dataUna + (Int(s.window) << Int(sf.peerWindowScale)))
        }
        if let d = s.dss {
            if let a = d.dataAck { dataAck(a, is8: d.dataAckIs8, window: Int(s.window) << Int(sf.peerWindowScale)) }
            if let m = d.mapping {
                let dsn = d.dsnIs8 ? m.dsn : DataSeq.expand(low32: UInt32(truncatingIfNeeded: m.dsn),
                                                            near: DataSeq(remoteIDSN &+ 1 &+ UInt64(dataRcv.next))).rawValue
                if m.length == 0 {
                    log.violation(name, "infinite mapping (fallback) on subflow \(sf.index)")
                } else if d.dataFin && m.length == 1 && s.payload.isEmpty {
                    peerDataFin(at: Int(truncatingIfNeeded: dsn &- (remoteIDSN &+ 1)))
                } else {
                    let start = sf.rcv.next + Int(Int32(bitPattern: m.subflowSeq &- UInt32(truncatingIfNeeded: sf.rcv.next)))
                    record(Mapping(start: start, dsn: dsn, dataLength: Int(m.length) - (d.dataFin ? 1 : 0), dataFin: d.dataFin), on: sf)
                }
            }
        }

        // Subflow data and FIN.
        let start = sf.rcv.next + Int(s.seq - (sf.irs + UInt32(truncatingIfNeeded: sf.rcv.next)))
        var ack = false
        if !s.payload.isEmpty {
            ack = true
            if sf.finReceived || start + s.payload.count <= sf.rcv.next {
                // old
            } else {
                let from = sf.rcv.next
                let fresh = sf.rcv.insert(s.payload, at: start)
                if !fresh.isEmpty { deliverSubflow(fresh, from: from, on: sf) }
                if start <= from, let ts = s.timestamp { sf.tsRecent = ts.value }
            }
        }
        if s.has(TCPFlags.fin) {
            sf.peerFinAt = start + s.payload.count
            ack = true
        }
        // A keepalive (a byte below what we have, no data) is answered
        // (RFC 9293 §3.8.4), as Linux does.
        if s.payload.isEmpty && !s.has(TCPFlags.fin) && start < sf.rcv.next { ack = true }
        if let f = sf.peerFinAt, !sf.finReceived, sf.rcv.next >= f {
            sf.finReceived = true
            log.note(name, "subflow \(sf.index) FIN received")
        }
        if ack { sendAck(sf) }
        sf.timer.set(sf.sender.timerDeadline)
        progress()
    }

    private func record(_ m: Mapping, on sf: Subflow) {
        if m.end <= sf.rcv.next {
            // Its data is already in: only a DATA_FIN can be news.
            if m.dataFin { peerDataFin(at: Int(truncatingIfNeeded: m.dsn &+ UInt64(m.dataLength) &- (remoteIDSN &+ 1))) }
            return
        }
        if sf.mappings.contains(where: { $0.start == m.start && $0.dsn == m.dsn && $0.dataLength == m.dataLength }) { return }
        sf.mappings.append(m)
    }

    /// In-order subflow bytes from subflow offset `from`: through their
    /// mappings to the data level.
    private func deliverSubflow(_ bytes: [UInt8], from: Int, on sf: Subflow) {
        var p = from, i = 0
        while i < bytes.count {
            guard let m = sf.mappings.last(where: { $0.start <= p && p < $0.end }) else {
                log.violation(name, "subflow \(sf.index): \(bytes.count - i) bytes at subflow offset \(p) without a DSS mapping")
                return
            }
            let take = min(bytes.count - i, m.end - p)
            let dataOffset = Int(truncatingIfNeeded: m.dsn &+ UInt64(p - m.start) &- (remoteIDSN &+ 1))
            deliverData(Array(bytes[i ..< i + take]), at: dataOffset)
            if m.dataFin && p + take == m.end { peerDataFin(at: dataOffset + take) }
            p += take
            i += take
        }
        sf.mappings.removeAll { $0.end <= sf.rcv.next }
    }

    private func deliverData(_ bytes: [UInt8], at offset: Int) {
        if offset < 0 || offset + bytes.count > config.upload.count {
            log.violation(name, "upload bytes at data offset \(offset)..<\(offset + bytes.count), outside the \(config.upload.count)-byte stream")
            return
        }
        if let bad = config.upload.firstMismatch(bytes, at: offset) {
            log.violation(name, "upload byte \(bad) differs from the client's stream")
        }
        _ = dataRcv.insert(bytes, at: offset)
        uploadVerified = dataRcv.next
        checkDataFin()
    }

    private func peerDataFin(at offset: Int) {
        if let f = peerDataFinAt, f != offset { log.violation(name, "DATA_FIN moved from \(f) to \(offset)") }
        if offset != config.upload.count { log.violation(name, "DATA_FIN at \(offset), upload is \(config.upload.count) bytes") }
        peerDataFinAt = offset
        checkDataFin()
    }

    private func checkDataFin() {
        if let f = peerDataFinAt, !dataFinReceived, dataRcv.next >= f {
            dataFinReceived = true
            log.note(name, "DATA_FIN received: upload complete, \(uploadVerified) bytes")
        }
    }

    private func dataAck(_ raw: UInt64, is8: Bool, window: Int) {
        let sentEnd = dataNxt + (dataFinSent ? 1 : 0)
        let full = is8 ? raw : DataSeq.expand(low32: UInt32(truncatingIfNeeded: raw), near: DataSeq(idsn &+ 1 &+ UInt64(dataUna))).rawValue
        let offset = Int(Int64(bitPattern: full &- (idsn &+ 1)))
        if offset > sentEnd {
            log.violation(name, "DATA_ACK \(offset) beyond the data sent (\(sentEnd))")
            return
        }
        if offset < dataUna { return }
        dataRightEdge = max(dataRightEdge, offset + window)
        if offset > dataUna {
            dataUna = offset
            dataBackoff = 0
            dataTimer.set(dataUna < sentEnd ? scheduler.now + dataRTO : nil)
        }
    }

    // MARK: - Sending

    private var dataAckValue: UInt64 {
        remoteIDSN &+ 1 &+ UInt64(dataRcv.next) &+ (dataFinReceived ? 1 : 0)
    }

    private func send(_ sf: Subflow, seq: TCPSeq, flags: UInt8, dss: DSS, payload: [UInt8] = []) {
        transmit(simPacket(from: sf.local, to: sf.remote, seq: seq, ack: sf.rcvNxt, flags: flags,
                           window: UInt16(min(config.rcvWindow >> Int(config.windowScale), 65_535)),
                           options: tsOptions(sf) + [.mptcp(.dss(dss))], payload: payload))
    }

    private func sendAck(_ sf: Subflow) {
        guard sf.state == .established, remoteKey != nil else { return }
        send(sf, seq: sf.seq(sf.sender.nxt), flags: TCPFlags.ack, dss: DSS(dataAck: dataAckValue))
    }

    /// Sends the segment at subflow offset `offset`: the SYN/ACK, (the rest
    /// of) a chunk with its mapping, or the FIN.
    @discardableResult
    private func sendSegment(_ sf: Subflow, at offset: Int) -> Bool {
        let now = scheduler.now
        if offset == 0 { sendSynAck(sf); return true }
        if let f = sf.finOffset, offset == f {
            send(sf, seq: sf.seq(f), flags: TCPFlags.ack | TCPFlags.fin, dss: DSS(dataAck: dataAckValue))
            sf.sender.sent(f, f + 1, now: now)
            return true
        }
        guard let c = chunk(of: sf, at: offset) else {
            log.violation(name, "model bug: subflow \(sf.index) has nothing at offset \(offset)")
            return false
        }
        let payload = config.download.bytes(c.dataOffset + (offset - c.start) ..< c.dataOffset + c.length)
        let mapping = DSSMapping(dsn: idsn &+ 1 &+ UInt64(c.dataOffset), subflowSeq: UInt32(truncatingIfNeeded: c.start),
                                 length: UInt16(c.length + (c.dataFin ? 1 : 0)))
        send(sf, seq: sf.seq(offset), flags: TCPFlags.ack | TCPFlags.psh,
             dss: DSS(dataAck: dataAckValue, mapping: mapping, dataFin: c.dataFin), payload: payload)
        sf.sender.sent(offset, c.end, now: now)
        return true
    }

    private func chunk(of sf: Subflow, at offset: Int) -> Chunk? {
        var lo = 0, hi = sf.chunks.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sf.chunks[mid].end <= offset { lo = mid + 1 } else { hi = mid }
        }
        return lo < sf.chunks.count && sf.chunks[lo].start <= offset ? sf.chunks[lo] : nil
    }

    /// Sends what a subflow has queued (again, after a timeout) while its window allows.
    private func pumpSubflow(_ sf: Subflow, force: Bool = false) {
        guard sf.state == .established else { return }
        var force = force
        let end = sf.finOffset.map { $0 + 1 } ?? sf.sendEnd
        while sf.sender.nxt < end && (force || sf.sender.room > 0 || sf.sender.nxt == sf.finOffset) {
            force = false
            guard sendSegment(sf, at: sf.sender.nxt) else { break }
        }
        sf.timer.set(sf.sender.timerDeadline)
    }

    private var dataRTO: Duration {
        let base = subflows.filter { $0.state == .established }.map(\.sender.currentRTO).max() ?? SimSender.initialRTO
        return .simNanoseconds(min(max(2 * base, 1_000_000_000) << UInt64(min(dataBackoff, 6)), 60_000_000_000))
    }

    /// Subflows that may take new data, lowest smoothed RTT first.
    /// Backup and suspect subflows only when there is nothing better.
    private var usable: [Subflow] {
        let up = subflows.filter { $0.state == .established && $0.finOffset == nil }
        var pick = up.filter { !$0.suspect && !$0.backup }
        if pick.isEmpty { pick = up.filter { !$0.suspect } }
        if pick.isEmpty { pick = up }
        return pick.sorted { ($0.sender.smoothedRTT ?? 0, $0.index) < ($1.sender.smoothedRTT ?? 0, $1.index) }
    }

    /// Puts a chunk on a subflow and sends it.
    private func assign(_ sf: Subflow, dataOffset: Int, length: Int, dataFin: Bool) {
        let c = Chunk(start: sf.sendEnd, dataOffset: dataOffset, length: length, dataFin: dataFin)
        sf.chunks.append(c)
        sf.sendEnd = c.end
        if sf.sender.nxt == c.start { sendSegment(sf, at: c.start) }
    }

    /// The scheduler: reinjections first, then new data, onto subflows with room.
    private func pumpDownload() {
        guard established else { return }
        for sf in subflows { pumpSubflow(sf) }
        let total = config.download.count
        for sf in usable {
            while sf.sender.room >= min(sf.payloadSize, max(1, total - dataNxt)) && sf.sender.nxt == sf.sendEnd {
                if let r = reinjectQueue.first {
                    let lo = max(r.lowerBound, dataUna)
                    guard lo < r.upperBound else { reinjectQueue.removeFirst(); continue }
                    let n = min(sf.payloadSize, r.upperBound - lo)
                    reinjectQueue[0] = (lo + n) ..< r.upperBound
                    reinjectedBytes += n
                    assign(sf, dataOffset: lo, length: n, dataFin: false)
                    continue
                }
                guard dataNxt < total else { break }
                let n = min(sf.payloadSize, total - dataNxt, dataRightEdge - dataNxt)
                guard n > 0, n == sf.payloadSize || dataNxt + n == total || dataNxt == dataUna else { break }
                let fin = config.dataFinWithData && dataNxt + n == total
                assign(sf, dataOffset: dataNxt, length: n, dataFin: fin)
                dataNxt += n
                if fin { dataFinSent = true }
            }
            sf.timer.set(sf.sender.timerDeadline)
        }
        if dataNxt == total && !dataFinSent, let sf = usable.first {
            dataFinSent = true
            sendDataFinAlone(on: sf)
        }
        let sentEnd = dataNxt + (dataFinSent ? 1 : 0)
        if dataUna < sentEnd && dataTimer.deadline == nil { dataTimer.set(scheduler.now + dataRTO) }
    }

    private func sendDataFinAlone(on sf: Subflow) {
        let total = config.download.count
        send(sf, seq: sf.seq(sf.sender.nxt), flags: TCPFlags.ack,
             dss: DSS(dataAck: dataAckValue, mapping: DSSMapping(dsn: idsn &+ 1 &+ UInt64(total), subflowSeq: 0, length: 1), dataFin: true))
    }

    private func subflowTimeout(_ sf: Subflow) {
        guard sf.state != .reset else { return }
        sf.sender.onTimeout(now: scheduler.now)
        log.note(name, "subflow \(sf.index) RTO (backoff \(sf.sender.backoff))")
        if sf.state == .synReceived { sendSynAck(sf); return }
        if sf.sender.backoff >= 2 && !sf.suspect {
            let others = subflows.filter { $0 !== sf && $0.state == .established && !$0.suspect && $0.finOffset == nil }
            if !others.isEmpty {
                sf.suspect = true
                reinjectUnacknowledged(of: sf)
                log.note(name, "subflow \(sf.index) suspect: reinjecting")
            }
        }
        pumpSubflow(sf, force: true)
        pumpDownload()
    }

    /// Queues what a subflow holds beyond its ACK and the DATA_ACK for the others.
    private func reinjectUnacknowledged(of sf: Subflow) {
        for c in sf.chunks where c.end > sf.sender.una && c.dataOffset + c.length > dataUna {
            reinjectQueue.append(c.dataOffset ..< c.dataOffset + c.length)
        }
    }

    /// The DATA_ACK has not moved for a while: send the first unacknowledged
    /// data (or the DATA_FIN) again, on the best subflow.
    private func dataTimeout() {
        let total = config.download.count
        let sentEnd = dataNxt + (dataFinSent ? 1 : 0)
        guard dataUna < sentEnd else { return }
        dataBackoff += 1
        dataLevelRetransmits += 1
        log.note(name, "data-level timeout at \(dataUna) (backoff \(dataBackoff))")
        if let sf = usable.first {
            if dataUna >= total {
                sendDataFinAlone(on: sf)
            } else {
                reinjectQueue.insert(dataUna ..< min(dataNxt, dataUna + sf.payloadSize), at: 0)
            }
        }
        dataTimer.set(scheduler.now + dataRTO)
        pumpDownload()
    }

    /// After every event: send, and close the subflows once both DATA_FINs are acknowledged.
    private func progress() {
        pumpDownload()
        if !closing && dataFinReceived && dataFinAcked {
            closing = true
            log.note(name, "both DATA_FINs acknowledged: closing the subflows")
            for sf in subflows where sf.state == .established {
                sf.finOffset = sf.sendEnd
                pumpSubflow(sf)
            }
        }
    }
}

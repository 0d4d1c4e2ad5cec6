import MPTCPStack

/// What went wrong in a run, and (when asked for) a trace of every packet.
package final class SimLog {
    private let scheduler: SimScheduler
    /// Protocol violations and data errors, first ones first (capped).
    package private(set) var violations: [String] = []
    /// The last `traceLimit` events, when tracing.
    package private(set) var trace: [String] = []
    package let tracing: Bool
    package let traceLimit: Int

    package init(scheduler: SimScheduler, tracing: Bool = false, traceLimit: Int = 400) {
        self.scheduler = scheduler
        self.tracing = tracing
        self.traceLimit = traceLimit
    }

    package func violation(_ who: String, _ what: String) {
        if violations.count < 40 { violations.append("[\(scheduler.now)] \(who): \(what)") }
        note(who, "VIOLATION " + what)
    }

    package func note(_ who: String, _ what: @autoclosure () -> String) {
        guard tracing else { return }
        if trace.count >= traceLimit { trace.removeFirst(trace.count - traceLimit + 1) }
        trace.append("[\(scheduler.now)] \(who): \(what())")
    }
}

/// A plain TCP host on the LAN, the client behind the gateway (what the
/// engine relies on, so a correct TCP in everything the engine can see):
/// active open with Linux's SYN options (MSS, SACK-permitted, timestamps,
/// window scale 7); sends `upload` and then FIN (piggybacked on the last
/// segment); receives the server's stream and checks it byte for byte
/// against `download`; cumulative ACKs (immediate, or delayed: every second
/// full segment or 40 ms), immediate duplicate ACKs for out-of-order data;
/// RTO with backoff, fast retransmit and NewReno recovery (`SimSender`);
/// respects the peer's window and its own congestion window. SACK is
/// offered but never used (the server model does not grant it).
package final class SimTCPClient {
    package struct Config {
        package var local: Endpoint
        package var remote: Endpoint
        package var upload: SimStream
        package var download: SimStream
        package var isn: UInt32
        package var rcvBuffer = 512 * 1024
        package var windowScale: UInt8 = 7
        package var delayedAck = false
        /// Passive open (a plain TCP server behind a second gateway):
        /// answers the SYN with the options it offered, then as above.
        package var passive = false
        package var name = "client"
        /// The MSS announced in the SYN (MTU 1500 minus IP and TCP headers).
        package var mss: UInt16 { if case .v6 = local.address { return 1440 } else { return 1460 } }
    }

    package enum State { case idle, synSent, listen, synReceived, established, reset }

    package let config: Config
    private let scheduler: SimScheduler
    private let log: SimLog
    /// Hands a packet to the LAN link.
    package var transmit: ([UInt8]) -> Void = { _ in }

    package private(set) var state = State.idle
    package private(set) var sender = SimSender()
    private var rtoTimer: SimTimer!
    private var delackTimer: SimTimer!
    private var isn: TCPSeq
    // Receive side: offsets from the peer's ISN + 1 (the first data byte is 0).
    private var irs = TCPSeq(0)
    private var rcv = SimReassembly()
    private var peerFinAt: Int?
    package private(set) var finReceived = false
    package private(set) var downloadVerified = 0
    private var peerWindowScale: UInt8 = 0
    private var hasPeerWindowScale = false
    private var timestamps = false
    private var tsRecent: UInt32 = 0
    private var payloadSize = 536
    private var segmentsUnacked = 0
    private var name: String { config.name }
    private var peerSackOK = false

    /// Offset of our FIN: the SYN is 0, the data 1 ... count.
    private var finOffset: Int { config.upload.count + 1 }
    /// Our FIN is acknowledged.
    package var finAcked: Bool { sender.una > finOffset }
    /// Uploaded bytes the peer acknowledged.
    package var uploadAcked: Int { min(max(sender.una - 1, 0), config.upload.count) }
    /// Everything sent and acknowledged, everything received and checked.
    package var done: Bool { finAcked && finReceived && downloadVerified == config.download.count }
    package var senderStats: String {
        "retransmits \(sender.retransmittedSegments) timeouts \(sender.timeouts) fast-retransmits \(sender.fastRetransmits)"
    }

    package init(config: Config, scheduler: SimScheduler, log: SimLog) {
        self.config = config
        self.scheduler = scheduler
        self.log = log
        isn = TCPSeq(config.isn)
        rtoTimer = SimTimer(scheduler) { [unowned self] in timeout() }
        delackTimer = SimTimer(scheduler) { [unowned self] in sendAck() }
    }

    /// Passive open: waits for the peer's SYN.
    package func listen() { state = .listen }

    /// Active open.
    package func connect() {
        state = .synSent
        send(at: 0, now: scheduler.now)
        syncTimer()
    }

    // MARK: Sending

    private func seq(_ offset: Int) -> TCPSeq { isn + UInt32(truncatingIfNeeded: offset) }
    private var rcvNxt: TCPSeq { irs + 1 + UInt32(truncatingIfNeeded: rcv.next + (finReceived ? 1 : 0)) }

    private var advertisedWindow: UInt16 {
        UInt16(min((config.rcvBuffer - rcv.pendingBytes) >> Int(config.windowScale), 65_535))
    }

    private var tsOptions: [TCPOption] {
        timestamps ? [.noOperation, .noOperation, .timestamps(value: scheduler.now.simMilliseconds, echoReply: tsRecent)] : []
    }

    /// Sends what lies at `offset` (the SYN, data up to one segment with the
    /// FIN if it reaches the end, or the FIN alone), at most `limit` bytes.
    /// Returns the offset after it.
    @discardableResult
    private func send(at offset: Int, limit: Int = .max, now: Instant) -> Int {
        if offset == 0 && config.passive {
            var opts: [TCPOption] = [.maxSegmentSize(config.mss)]
            if peerSackOK { opts.append(.sackPermitted) }
            if timestamps { opts.append(.timestamps(value: now.simMilliseconds, echoReply: tsRecent)) }
            if hasPeerWindowScale { opts += [.noOperation, .windowScale(config.windowScale)] }
            transmit(simPacket(from: config.local, to: config.remote, seq: isn, ack: irs + 1, flags: TCPFlags.syn | TCPFlags.ack,
                               window: 64_240, options: opts))
            sender.sent(0, 1, now: now)
            return 1
        }
        if offset == 0 {
            let opts: [TCPOption] = [.maxSegmentSize(config.mss), .sackPermitted,
                                     .timestamps(value: now.simMilliseconds, echoReply: 0), .noOperation,
                                     .windowScale(config.windowScale)]
            transmit(simPacket(from: config.local, to: config.remote, seq: isn, ack: TCPSeq(0), flags: TCPFlags.syn,
                               window: 64_240, options: opts))
            sender.sent(0, 1, now: now)
            return 1
        }
        let n = max(0, min(payloadSize, limit, finOffset - offset))
        let end = offset + n
        var flags = TCPFlags.ack
        if end == finOffset { flags |= TCPFlags.fin | (n > 0 ? TCPFlags.psh : 0) }
        let payload = config.upload.bytes(offset - 1 ..< end - 1)
        transmit(simPacket(from: config.local, to: config.remote, seq: seq(offset), ack: rcvNxt, flags: flags,
                           window: advertisedWindow, options: tsOptions, payload: payload))
        let after = end + (flags & TCPFlags.fin != 0 ? 1 : 0)
        sender.sent(offset, after, now: now)
        segmentsUnacked = 0
        delackTimer.stop()
        return after
    }

    /// Sends new (or, after a timeout, old) segments while the windows
    /// allow. `force`: send one segment even if they do not (a retransmission
    /// after a timeout, or a zero-window probe).
    private func pump(force: Bool = false) {
        guard state == .established else { return }
        var force = force
        while sender.nxt <= finOffset {
            let room = sender.room
            let remaining = finOffset - sender.nxt
            if force {
                force = false
                send(at: sender.nxt, limit: max(1, room), now: scheduler.now)
                continue
            }
            guard room > 0 || remaining == 0 else { break }
            // Sender-side silly-window avoidance: no runt while data is in flight.
            if room < min(payloadSize, remaining) && sender.outstanding { break }
            send(at: sender.nxt, limit: max(room, 0), now: scheduler.now)
        }
        if !sender.outstanding && sender.nxt <= finOffset && sender.peerWindow == 0 {
            sender.armPersist(now: scheduler.now)
        }
        syncTimer()
    }

    private func sendAck() {
        guard state == .established else { return }
        segmentsUnacked = 0
        delackTimer.stop()
        transmit(simPacket(from: config.local, to: config.remote, seq: seq(sender.nxt), ack: rcvNxt, flags: TCPFlags.ack,
                           window: advertisedWindow, options: tsOptions))
    }

    private func syncTimer() { rtoTimer.set(sender.timerDeadline) }

    private func timeout() {
        guard state == .synSent || state == .synReceived || state == .established else { return }
        sender.onTimeout(now: scheduler.now)
        log.note(name, "RTO (backoff \(sender.backoff)), resending from \(sender.nxt)")
        if state == .synSent || state == .synReceived { send(at: 0, now: scheduler.now); syncTimer() } else { pump(force: true) }
    }

    // MARK: Receiving

    package func receive(_ bytes: [UInt8]) {
        guard let s = SimSegment(bytes) else { log.violation(name, "undecodable packet"); return }
        log.note(name, "< " + s.summary)
        if let d = s.defect { log.violation(name, d + ": " + s.summary); return }
        guard s.destination == config.local && s.source == config.remote else {
            log.violation(name, "packet for another connection: \(s.summary)"); return
        }
        // (A passive host gets the peer's SYN with MP_CAPABLE: the gateway
        // lets an MPTCP-native host answer for itself.)
        if !s.mptcp.isEmpty && !(config.passive && s.has(TCPFlags.syn) && !s.has(TCPFlags.ack)) {
            log.violation(name, "MPTCP option reached the plain TCP host: \(s.summary)")
        }
        if s.has(TCPFlags.rst) {
            if state != .reset { log.violation(name, "connection reset: \(s.summary)") }
            state = .reset
            rtoTimer.stop(); delackTimer.stop()
            return
        }
        switch state {
        case .idle, .reset: return
        case .listen:
            guard s.has(TCPFlags.syn) && !s.has(TCPFlags.ack) else { log.violation(name, "unexpected segment in LISTEN: \(s.summary)"); return }
            irs = s.seq
            hasPeerWindowScale = s.windowScale != nil
            peerWindowScale = s.windowScale ?? 0
            peerSackOK = s.sackPermitted
            timestamps = s.timestamp != nil
            if let ts = s.timestamp { tsRecent = ts.value }
            let mss = Int(min(s.mss ?? 536, config.mss))
            payloadSize = mss - (timestamps ? 12 : 0)
            state = .synReceived
            send(at: 0, now: scheduler.now)
            syncTimer()
        case .synReceived:
            if s.has(TCPFlags.syn) {
                // The peer repeats its SYN: our SYN/ACK was lost.
                if s.seq == irs && !s.has(TCPFlags.ack) { send(at: 0, now: scheduler.now) } else { log.violation(name, "unexpected SYN in SYN-RECEIVED: \(s.summary)") }
                return
            }
            guard s.has(TCPFlags.ack) && s.ack == isn + 1 else { log.violation(name, "unexpected segment in SYN-RECEIVED: \(s.summary)"); return }
            _ = sender.onAck(1, window: Int(s.window) << Int(peerWindowScale), pureAck: false, now: scheduler.now)
            sender.established(mss: payloadSize)
            state = .established
            established(s)
        case .synSent:
            guard s.has(TCPFlags.syn) && s.has(TCPFlags.ack) && s.ack == isn + 1 else {
                log.violation(name, "unexpected segment in SYN-SENT: \(s.summary)"); return
            }
            irs = s.seq
            peerWindowScale = s.windowScale ?? 0
            hasPeerWindowScale = s.windowScale != nil
            timestamps = s.timestamp != nil
            if let ts = s.timestamp { tsRecent = ts.value }
            let mss = Int(min(s.mss ?? 536, config.mss))
            payloadSize = mss - (timestamps ? 12 : 0)
            _ = sender.onAck(1, window: Int(s.window), pureAck: false, now: scheduler.now)
            sender.established(mss: payloadSize)
            state = .established
            sendAck() // the third ACK
            pump()
        case .established:
            established(s)
        }
    }

    private func established(_ s: SimSegment) {
        let now = scheduler.now
        if s.has(TCPFlags.syn) {
            // A retransmitted SYN/ACK: our third ACK was lost.
            if s.seq == irs { sendAck() } else { log.violation(name, "SYN with another ISN: \(s.summary)") }
            return
        }
        guard s.has(TCPFlags.ack) else { log.violation(name, "segment without ACK: \(s.summary)"); return }

        // The acknowledgment.
        let ackOffset = sender.una + Int(s.ack - seq(sender.una))
        let window = Int(s.window) << Int(peerWindowScale)
        let pure = s.payload.isEmpty && !s.has(TCPFlags.fin)
        let (outcome, retransmit) = sender.onAck(ackOffset, window: window, pureAck: pure, now: now)
        if outcome == .beyondSent {
            log.violation(name, "ACK of data never sent (ack offset \(ackOffset), sent up to \(sender.max)): \(s.summary)")
        }
        if retransmit { send(at: sender.una, now: now) }

        // Data and FIN.
        let start = rcv.next + Int(s.seq - (irs + 1 + UInt32(truncatingIfNeeded: rcv.next)))
        var ackNow = false
        if !s.payload.isEmpty {
            // Every byte must be the server's, wherever it lands.
            if start >= 0, let bad = config.download.firstMismatch(s.payload, at: start) {
                log.violation(name, "download byte \(bad) differs from the server's stream (segment \(s.summary))")
            }
            if start + s.payload.count <= rcv.next || finReceived {
                ackNow = true // a duplicate: tell the sender where we are
            } else if start > rcv.next {
                ackNow = true // out of order: duplicate ACK at once
                if start + s.payload.count <= rcv.next + config.rcvBuffer { _ = rcv.insert(s.payload, at: start) }
            } else {
                let from = rcv.next
                _ = rcv.insert(s.payload, at: start)
                downloadVerified = rcv.next // every byte was checked on arrival
                if rcv.pendingBytes > 0 || start < from { ackNow = true } // filled a gap
                segmentsUnacked += 1
            }
            if s.has(TCPFlags.ack), let ts = s.timestamp, start <= rcv.next { tsRecent = ts.value }
        }
        if s.has(TCPFlags.fin) {
            let at = start + s.payload.count
            if let f = peerFinAt, f != at { log.violation(name, "FIN moved from \(f) to \(at)") }
            peerFinAt = at
            ackNow = true
        }
        if let f = peerFinAt, !finReceived, rcv.next >= f {
            if f != config.download.count || rcv.next != f {
                log.violation(name, "FIN at \(f) but the download is \(config.download.count) bytes (received \(rcv.next))")
            }
            finReceived = true
            log.note(name, "FIN received, download complete: \(downloadVerified) bytes")
        }
        if ackNow || (!s.payload.isEmpty && (!config.delayedAck || segmentsUnacked >= 2)) {
            sendAck()
        } else if !s.payload.isEmpty && delackTimer.deadline == nil {
            delackTimer.set(now + .milliseconds(40))
        }
        pump()
    }
}

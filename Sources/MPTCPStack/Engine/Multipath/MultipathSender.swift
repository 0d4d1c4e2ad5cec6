// Multipath, a subflow's sender: RTT samples, ACK and SACK processing,
// congestion window growth and reduction (with undo), retransmission,
// reinjection onto other subflows, and giving a subflow up.

extension Engine {
    // MARK: - Subflow sender

    /// The RTT the peer's echo of our timestamp gives (seconds), if it
    /// echoes one of ours from the last minute.
    func echoedRTT(_ p: Subflow, _ opts: TCPOptionSummary, now: Instant) -> Double? {
        guard p.timestamps && opts.has(.timestamps) && opts.tsEchoReply != 0 else { return nil }
        let ts = Int32(bitPattern: ms(now) &+ p.tsOffset &- opts.tsEchoReply)
        return ts >= 0 && ts < 60_000 ? Double(max(ts, 1)) / 1000 : nil
    }

    func rttSample(_ p: inout Subflow, _ r: Double) {
        p.rtt.sample(r, minRTO: config.tuning.minRTO)
    }

    func onSubflowAck(_ c: Connection, _ p: inout Subflow, _ k: Int, ack: TCPSeq, opts: TCPOptionSummary, pure: Bool,
                              windowChanged: Bool, now: Instant) {
        guard let mp = c.mp else { return }
        if p.finSent && ack == p.finSeq + 1 { p.sndUna = ack; p.segments.removeAll(); p.sackedBytes = 0; p.rtoAt = nil; return }
        guard !(p.sndNxt < ack) else { return }
        if p.sndUna < ack {
            let acked = Int(ack - p.sndUna)
            var sample: Double?
            while let s = p.segments.first, !(ack < s.seq + s.length) {
                if !s.retransmitted { sample = Double(now.nanoseconds &- s.sentAt.nanoseconds) / 1e9 }
                if s.sacked { p.sackedBytes -= Int(s.length) }
                if s.retransmitted { p.rtxInFlight = max(0, p.rtxInFlight - Int(s.length)) }
                _ = p.segments.popFirst()
            }
            p.sndUna = ack
            // The echoed timestamp measures even retransmitted segments
            // (RFC 7323 §4); without timestamps, Karn's rule.
            if let echoed = echoedRTT(p, opts, now: now) { sample = echoed }
            if let sample {
                rttSample(&p, sample)
                p.rtt.noteMinimum(sample)
                // Leave slow start when the delay rises (queues building at
                // the bottleneck: HyStart's delay test), before the
                // overshoot that a tbf or a drop-tail queue answers with a
                // burst of losses.
                if p.cwnd < p.ssthresh && p.cwnd >= Double(16 * p.mss) && sample > p.rtt.minRTT * 1.25 + 0.004 {
                    p.ssthresh = p.cwnd
                }
            }
            if p.backoff > 0 {
                // Progress: the backed-off timeout gives way to the estimate.
                p.rtt.resetTimeout(minRTO: config.tuning.minRTO)
            }
            p.dupAcks = 0
            p.backoff = 0
            p.suspect = false
            if let u = p.undoTS, p.timestamps, opts.has(.timestamps), opts.tsEchoReply != 0,
               Int32(bitPattern: opts.tsEchoReply &- u) < 0 {
                // This ACK was sent for data we had sent before our first
                // retransmission: the originals arrived, nothing was lost
                // (the path reordered them, or delayed its ACKs).
                undoRecovery(&p)
            }
            if p.inRecovery {
                if !(ack < p.recover) {
                    p.inRecovery = false
                    p.undoTS = nil
                    p.cwnd = p.ssthresh
                } else if let j = firstLost(p) {
                    retransmit(c, mp, &p, k, j, now: now) // partial ACK: the next hole the SACKs show
                }
            } else {
                increaseWindow(mp, &p, k, acked: acked)
            }
            if p.rtoRecovery {
                if !(ack < p.recover) {
                    p.rtoRecovery = false
                    p.undoTS = nil
                } else {
                    // Resend what is presumed lost while the window allows.
                    while Int(p.cwnd) - p.rtxInFlight >= p.mss,
                          let j = p.segments.firstIndex(where: { !$0.sacked && !$0.retransmitted }), p.segments[j].seq < p.recover {
                        retransmit(c, mp, &p, k, j, now: now)
                        if p.backoff >= config.tuning.maxBackoff { break }
                    }
                }
            }
            // Our FIN, once sent, is outstanding until its own ACK (which
            // returns above): the timer stays for it even with no data left.
            p.rtoAt = p.segments.isEmpty && !p.finSent ? nil : now + .nanoseconds(Int64(p.rto * 1e9))
        } else if pure && ack == p.sndUna && !p.segments.isEmpty {
            var newlySacked = 0
            if opts.has(.sack) {
                for i in 0 ..< opts.sack.count {
                    let b = opts.sack[i]
                    for j in p.segments.indices where !p.segments[j].sacked && !(p.segments[j].seq < b.left)
                        && !(b.right < p.segments[j].seq + p.segments[j].length) {
                        p.segments[j].sacked = true
                        p.sackedBytes += Int(p.segments[j].length)
                        newlySacked += 1
                    }
                }
            }
            guard newlySacked > 0 || !windowChanged else { return }
            p.dupAcks += 1
            // One reduction per window of data (NewReno's "recover" point),
            // once the SACKs (or, without SACK, the duplicate ACKs) show a
            // loss rather than reordering.
            let lost = opts.has(.sack) ? firstLost(p) : (p.dupAcks >= p.dupThresh && !p.inRecovery ? 0 : nil)
            if let j = lost, !p.inRecovery && !p.rtoRecovery && !(p.sndUna < p.recover) {
                p.inRecovery = true
                p.recover = p.sndNxt
                reduceWindow(&p, now: now)
                p.cwnd = p.ssthresh
                stats.fastRetransmits &+= 1
                retransmit(c, mp, &p, k, j, now: now)
            } else if p.inRecovery, let j = lost {
                // One more lost segment per duplicate ACK.
                retransmit(c, mp, &p, k, j, now: now)
            }
        }
    }

    /// Slow start, then RFC 6356 LIA (`LinkedIncrease`) in congestion avoidance.
    func increaseWindow(_ mp: MPConn, _ p: inout Subflow, _ k: Int, acked: Int) {
        if p.cwnd < p.ssthresh {
            p.cwnd += Double(min(acked, 2 * p.mss))
            return
        }
        p.cwnd += LinkedIncrease.increase(p, at: k, in: mp.paths, acked: acked, mss: p.mss)
    }

    /// The first segment the SACKs show lost (RFC 6675 IsLost, counted in
    /// segments): not SACKed, not yet resent, with at least `dupThresh`
    /// SACKed segments above it. Segments merely still in flight (or
    /// overtaken by a few others) are left alone.
    func firstLost(_ p: Subflow) -> Int? {
        guard p.sackedBytes > 0 else { return nil }
        var above = 0
        var boundary = -1
        var i = p.segments.count - 1
        while i >= 0 {
            if p.segments[i].sacked {
                above += 1
                if above >= p.dupThresh { boundary = i; break }
            }
            i -= 1
        }
        guard boundary > 0 else { return nil }
        for j in 0 ..< boundary where !p.segments[j].sacked && !p.segments[j].retransmitted { return j }
        return nil
    }

    /// On a loss (fast retransmit or RTO): half the window, as Linux (not
    /// the flight), keeping what to restore should it prove spurious (the
    /// state from before the first reduction of an episode).
    func reduceWindow(_ p: inout Subflow, now: Instant) {
        if p.undoTS == nil {
            p.priorCwnd = p.cwnd
            p.priorSsthresh = p.ssthresh
            p.undoTS = ms(now) &+ p.tsOffset
        }
        p.ssthresh = max(p.cwnd / 2, Double(2 * p.mss))
    }

    /// A recovery that proved spurious: the window as it was, and more
    /// patience with reordering on this subflow.
    func undoRecovery(_ p: inout Subflow) {
        p.undoTS = nil
        p.cwnd = max(p.cwnd, p.priorCwnd)
        p.ssthresh = max(p.ssthresh, p.priorSsthresh)
        p.inRecovery = false
        p.rtoRecovery = false
        p.dupThresh = min(p.dupThresh + 3, 64)
        stats.spuriousRecoveries &+= 1
    }

    func retransmitFirst(_ c: Connection, _ mp: MPConn, _ p: inout Subflow, _ k: Int, now: Instant) {
        if let j = p.segments.firstIndex(where: { !$0.sacked }) { retransmit(c, mp, &p, k, j, now: now) }
    }

    func retransmit(_ c: Connection, _ mp: MPConn, _ p: inout Subflow, _ k: Int, _ j: Int, now: Instant) {
        let s = p.segments[j]
        p.segments[j].retransmitted = true
        p.segments[j].sentAt = now
        p.rtxInFlight += Int(s.length)
        stats.retransmits &+= 1
        guard mp.holds(s.dsn, length: s.length) else {
            // Its bytes were acknowledged at data level (sent again on
            // another subflow) and are gone: this subflow cannot fill its
            // hole. It is reset and joined anew.
            p.backoff = config.tuning.maxBackoff
            return
        }
        mp.paths[k] = p
        sendData(c, mp, k, dsn: s.dsn, length: Int(s.length), dataFin: s.dataFin, now: now, retransmitOf: s.seq)
        p = mp.paths[k]
    }

    /// Frees what no subflow needs any more. When a subflow that lags behind
    /// (its holes were filled at data level by the others) keeps the buffer
    /// nearly full, it is reset and joined anew rather than stall the
    /// connection.
    func releaseBuffer(_ c: inout Connection, _ h: Int, now: Instant) {
        guard let mp = c.mp else { return }
        mp.releaseAcknowledged()
        guard dsnBefore(mp.ringStart, mp.bufStart), mp.buffered > mp.capacity - mp.capacity / 8 else { return }
        for k in mp.paths.indices where mp.paths[k].state == .active {
            if mp.paths[k].segments.contains(where: { $0.length > 0 && $0.dsn == mp.ringStart }) {
                stats.subflowsReleased &+= 1
                failPath(&c, h, k, now: now, sendReset: true)
                return
            }
        }
    }

    /// Puts subflow `k`'s unacknowledged data back for the other subflows.
    func reinject(_ mp: MPConn, _ k: Int) {
        guard mp.paths.indices.contains(where: { $0 != k && mp.paths[$0].usable }) else { return }
        for s in mp.paths[k].segments where dsnBefore(mp.bufStart, s.dsn &+ UInt64(s.length)) && s.length > 0 {
            if let last = mp.reinject.last, last.end == s.dsn {
                mp.reinject[mp.reinject.count - 1].end = s.dsn &+ UInt64(s.length)
            } else {
                mp.reinject.append((s.dsn, s.dsn &+ UInt64(s.length)))
            }
        }
        if mp.paths[k].segments.contains(where: { $0.dataFin }) { mp.dataFinSentAt = nil }
    }

    func failPath(_ c: inout Connection, _ h: Int, _ k: Int, now: Instant, sendReset: Bool) {
        guard let mp = c.mp else { return }
        journal(h)
        if sendReset && mp.paths[k].state != .failed && mp.paths[k].state != .unused {
            sendControl(c, mp, k, flags: TCPFlags.rst | TCPFlags.ack, now: now, first: .mpTCPRST(MPTCPRst(reason: 0)))
        }
        reinject(mp, k)
        if mp.paths[k].state == .active { stats.subflowsFailed &+= 1 }
        mp.paths[k].state = .failed
        mp.paths[k].segments.removeAll()
        mp.paths[k].sackedBytes = 0
        mp.paths[k].rtoAt = nil
        // The peer opened a passive subflow: it is the one to open it again.
        mp.paths[k].retryAt = mp.paths[k].passive ? nil : now + config.tuning.rejoinInterval
        mp.releaseAcknowledged()
        mpPush(&c, h, now: now)
        // No subflow left and nothing for us to join (the responder role:
        // the peer joins us, and a Linux peer does not re-create failed
        // subflows; or the peer never showed it has our key, so no join may
        // be made, §3.2): the connection cannot go on, so both ends are
        // reset rather than left to the idle timeout.
        if c.phase == .established && !mp.finishing && (mp.targets.isEmpty || !c.fullyEstablished)
            && !mp.paths.contains(where: { $0.state == .active || $0.state == .preEstablished || $0.state == .joinSent || $0.state == .joinReceived }) {
            stats.abortedBoth &+= 1
            mpResetPeer(c, mp)
            _ = mpAbort(&c, h, now: now, fastclose: false)
        }
    }
}

// Multipath timers: retransmission, probes of silent subflows, rejoins,
// the data-level timer, and the path manager's answers to what the peer
// asks (challenge ACKs, REMOVE_ADDR, resets).

extension Engine {
    // MARK: - Timers

    /// Runs what is due on a multipath connection and queues its next timer.
    func mpTimer(_ h: Int, now: Instant) {
        guard var c = conns[h], let mp = c.mp else { return }
        mp.timerAt = nil
        for k in mp.paths.indices {
            var p = mp.paths[k]
            switch p.state {
            case .joinSent, .preEstablished, .joinReceived:
                if p.joinSentAt + config.tuning.joinRetransmit <= now {
                    if p.joinTries >= 4 {
                        failPath(&c, h, k, now: now, sendReset: p.state != .joinSent)
                        continue
                    }
                    p.joinTries += 1
                    p.joinSentAt = now
                    mp.paths[k] = p
                    switch p.state {
                    case .joinSent: sendJoinSYN(c, mp, k, now: now)
                    case .joinReceived: sendJoinSynAck(c, mp, k, now: now)
                    default: sendJoinAck(c, mp, k, now: now)
                    }
                }
            case .active:
                if let at = p.removeAt, at <= now {
                    // No answer to the probe: the address is gone.
                    stats.removeAddrApplied &+= 1
                    let id = p.remoteID
                    failPath(&c, h, k, now: now, sendReset: true)
                    mp.paths[k].retryAt = nil
                    mp.paths[k].removeAt = nil
                    // The address stays a target while another subflow to it answered.
                    if !mp.paths.contains(where: { $0.remoteID == id && $0.state == .active && $0.removeAt == nil }) {
                        removeTarget(&c, h, mp, id: id, now: now)
                    }
                    continue
                }
                if p.rtoAt == nil && probeDue(c, mp, k, now: now) {
                    if p.probesUnanswered >= (p.stallProbe ? 1 : config.tuning.maxProbes) {
                        // Dead: given up, and the peer told (REMOVE_ADDR on
                        // a working subflow; an RST would not get through).
                        stats.deadSubflowsDetected &+= 1
                        // With the others sharing its fate: same uplink, same local address.
                        let target = p.local, u = p.uplink
                        _ = abandon(&c, h, mp, now: now, reset: true) { $0.local == target && $0.uplink == u }
                        continue
                    }
                    // A keepalive: one byte before what we have sent, no data.
                    let stalled = downloadStalled(c, mp, now: now)
                    sendControl(c, mp, k, flags: TCPFlags.ack, now: now, seq: p.sndNxt - 1)
                    mp.paths[k].probesUnanswered += 1
                    mp.paths[k].lastProbe = now
                    mp.paths[k].stallProbe = stalled
                    mp.paths[k].probeAt = now + (stalled ? .nanoseconds(Int64(max(config.tuning.stallProbeWait, 2 * p.srtt) * 1e9)) : config.tuning.probeInterval)
                    continue
                }
                guard let at = p.rtoAt, at <= now else { continue }
                stats.rtoExpiries &+= 1
                p.backoff += 1
                if p.backoff > config.tuning.maxBackoff {
                    mp.paths[k] = p
                    failPath(&c, h, k, now: now, sendReset: true)
                    continue
                }
                p.rtt.backOff()
                reduceWindow(&p, now: now)
                p.cwnd = Double(p.mss)
                p.inRecovery = false
                p.dupAcks = 0
                for j in p.segments.indices { p.segments[j].sacked = false; p.segments[j].retransmitted = false }
                p.sackedBytes = 0
                p.rtxInFlight = 0
                p.rtoRecovery = true
                p.recover = p.sndNxt
                if p.finSent && p.segments.isEmpty {
                    mp.paths[k] = p
                    sendControl(c, mp, k, flags: TCPFlags.fin | TCPFlags.ack, now: now, seq: p.finSeq)
                    p = mp.paths[k]
                } else {
                    retransmitFirst(c, mp, &p, k, now: now)
                }
                if p.backoff >= config.tuning.maxBackoff && !p.finSent {
                    mp.paths[k] = p
                    failPath(&c, h, k, now: now, sendReset: true)
                    continue
                }
                p.rtoAt = now + .nanoseconds(Int64(p.rto * 1e9))
                mp.paths[k] = p
                if !p.suspect {
                    mp.paths[k].suspect = true
                    reinject(mp, k)
                }
            case .unused, .failed:
                break
            }
        }
        // Data-level retransmission (as Linux's MPTCP-level timer): data the
        // subflows have delivered but the peer's DATA_ACK does not cover
        // after `dataRTO` goes out again from the head, on the best subflow.
        if mp.sendNext != mp.bufStart && mp.reinject.isEmpty,
           mp.dataAckProgress + .nanoseconds(Int64(dataRTO(mp) * 1e9)) <= now {
            let head = min(Int(mp.sendNext &- mp.bufStart), 64 * 1024)
            mp.reinject.append((mp.bufStart, mp.bufStart &+ UInt64(head)))
            mp.dataAckProgress = now
            mp.dataRTO = min(mp.dataRTO * 2, 30)
            stats.dataLevelRetransmits &+= 1
        }
        downTimer(&c, mp, now: now)
        // A connection quiet for `compactAfter` with nothing outstanding
        // gives its buffers back (looked at again later while it is busy).
        if !mp.compacted && mp.dataAt + config.tuning.compactAfter <= now {
            if mp.idle {
                mp.compact()
                stats.compactions &+= 1
            } else {
                mp.dataAt = now
            }
        }
        if mp.announceUnechoed != 0 && mp.announceTries < 3 && mp.announcedAt + .seconds(1) <= now && c.phase == .established {
            announceUplinks(c, mp, now: now)
        }
        // A DATA_FIN alone is not covered by any subflow ACK: resend it.
        if let at = mp.dataFinSentAt, let f = mp.dataFinDSN, !c.clientFinAcked, mp.bufEnd == f,
           at + .seconds(1) <= now, let k = mp.paths.firstIndex(where: { $0.usable }) {
            sendData(c, mp, k, dsn: f, length: 0, dataFin: true, now: now)
            mp.dataFinSentAt = now
        }
        mpOpenJoins(&c, h, now: now)
        mpPush(&c, h, now: now)
        conns[h] = c
        scheduleTimer(&c, h, now: now)
    }

    /// When subflow `p` is due a liveness probe: it is silent, we have
    /// nothing outstanding on it, and another subflow of the connection has
    /// heard from the peer lately (a connection idle as a whole is left alone).
    func probeTime(_ c: Connection, _ mp: MPConn, _ p: Subflow) -> Instant? {
        guard c.phase == .established, !mp.finishing, p.segments.isEmpty, !p.finSent else { return nil }
        guard mp.paths.contains(where: { $0.state == .active && $0.lastReceived > p.lastReceived }) else { return nil }
        if let at = p.probeAt { return at }
        let silent = p.lastReceived + config.tuning.silentAfter
        guard forwardedBeyondAck(c) else { return silent }
        var stalled = max(p.lastReceived, mp.clientAckMoved) + config.tuning.stallAfter
        if stalled < p.lastProbe + config.tuning.probeSpacing { stalled = p.lastProbe + config.tuning.probeSpacing }
        return min(silent, stalled)
    }

    /// Data forwarded to the client up to `end`: when nothing was outstanding
    /// before, the stall clock starts now (not at the client's last ACK,
    /// which may be old after an idle time).
    func forwarded(_ c: inout Connection, _ mp: MPConn, upTo end: TCPSeq, now: Instant) {
        guard c.deliveredMax < end else { return }
        if c.haveDataAckToPeer && !forwardedBeyondAck(c) { mp.clientAckMoved = now }
        c.deliveredMax = end
    }

    /// The download is stuck at a data-level hole: the client's cumulative
    /// ACK has not moved for `stallAfter` with data forwarded beyond it.
    func downloadStalled(_ c: Connection, _ mp: MPConn, now: Instant) -> Bool {
        forwardedBeyondAck(c) && mp.clientAckMoved + config.tuning.stallAfter <= now
    }

    /// Data has gone to the client beyond its cumulative ACK.
    func forwardedBeyondAck(_ c: Connection) -> Bool {
        c.haveDataAckToPeer && c.clientSeq(ofDownloadDSN: c.dataAckToPeer) < c.deliveredMax
    }

    func probeDue(_ c: Connection, _ mp: MPConn, _ k: Int, now: Instant) -> Bool {
        guard let at = probeTime(c, mp, mp.paths[k]) else { return false }
        // The others must be alive now, not just more recent.
        guard mp.paths.contains(where: { $0.state == .active && $0.lastReceived + config.tuning.silentAfter > now }) else { return false }
        return at <= now
    }

    /// The data-level timeout: its own backoff, but never shorter than twice
    /// the slowest working subflow's RTO (a subflow's own recovery first).
    func dataRTO(_ mp: MPConn) -> Double {
        var r = mp.dataRTO
        for p in mp.paths where p.state == .active { r = max(r, 2 * p.rto) }
        return r
    }

    /// Queues the connection's earliest timer in the engine's heap (once).
    func scheduleTimer(_ c: inout Connection, _ h: Int, now: Instant) {
        guard let mp = c.mp, c.phase != .fallback else { return }
        var next: Instant?
        func consider(_ t: Instant?) { if let t, next == nil || t < next! { next = t } }
        for p in mp.paths {
            switch p.state {
            case .joinSent, .preEstablished, .joinReceived: consider(p.joinSentAt + config.tuning.joinRetransmit)
            case .active:
                consider(p.rtoAt)
                consider(p.removeAt)
                if p.rtoAt == nil, let at = probeTime(c, mp, p) { consider(at) }
            case .failed: if !mp.finishing && c.phase == .established { consider(p.retryAt) }
            case .unused: break
            }
        }
        if let at = mp.dataFinSentAt, !c.clientFinAcked { consider(at + .seconds(1)) }
        if mp.announceUnechoed != 0 && mp.announceTries < 3 { consider(mp.announcedAt + .seconds(1)) }
        consider(mp.down?.timerAt)
        if !mp.compacted { consider(mp.dataAt + config.tuning.compactAfter) }
        if mp.sendNext != mp.bufStart && mp.reinject.isEmpty { consider(mp.dataAckProgress + .nanoseconds(Int64(dataRTO(mp) * 1e9))) }
        guard var n = next else { return }
        // Never in the past: whatever is due but cannot act now (no usable
        // subflow, say) is looked at again a millisecond later, not in a loop.
        if !(now < n) { n = now + .milliseconds(1) }
        if let cur = mp.timerAt, !(n < cur) { return }
        mp.timerAt = n
        deadlines.insert(Deadline(at: n, handle: h, generation: c.generation, timer: true))
    }

    /// A challenge ACK on subflow `k` (RFC 5961, rate-limited per connection).
    func mpChallenge(_ c: inout Connection, _ mp: MPConn, _ k: Int, now: Instant) {
        guard c.phase == .established, challengeDue(&c, now: now) else { return }
        stats.challengeAcks &+= 1
        sendAck(c, mp, k, now: now)
    }

    /// The peer's address `id` is gone for good: no rejoining it. If that
    /// leaves the connection with no working subflow and nothing to join,
    /// it cannot go on: both ends are reset (never left hanging).
    func removeTarget(_ c: inout Connection, _ h: Int, _ mp: MPConn, id: UInt8, now: Instant) {
        mp.targets.removeAll { $0.id == id }
        let working = mp.paths.contains { $0.state == .active || $0.state == .preEstablished || $0.state == .joinSent || $0.state == .joinReceived }
        if !working && mp.targets.isEmpty && c.phase == .established {
            stats.abortedBoth &+= 1
            mpResetPeer(c, mp)
            _ = mpAbort(&c, h, now: now, fastclose: false)
        }
    }

    /// RST with MP_FASTCLOSE (the peer's key: the whole connection) and
    /// MP_TCPRST on the initial 4-tuple, whatever state its subflow is in.
    func mpResetPeer(_ c: Connection, _ mp: MPConn) {
        guard let out = outbox.reserve(), let p = mp.paths.first else { return }
        var w = ByteWriter(writer.options)
        MPTCPOption.mpFastclose(MPFastclose(receiverKey: c.remoteKey)).write(into: &w)
        MPTCPOption.mpTCPRST(MPTCPRst(reason: MPTCPRst.reasonMPTCPError)).write(into: &w)
        let len = SegmentWriter.writeBare(into: out, source: p.local, destination: p.remote, seq: p.sndNxt, ack: p.rcvNxt,
                                          flags: TCPFlags.rst | TCPFlags.ack, window: 0,
                                          options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< w.offset]))
        if len > 0 { outbox.commit(length: len, towards: .uplink(p.uplink)); stats.originated &+= 1; stats.fastcloseSent &+= 1 }
    }
}

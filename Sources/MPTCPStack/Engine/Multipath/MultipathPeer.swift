// Multipath, the peer's side: a segment on a subflow validated, acknowledged
// and its data moved onto the client's connection at its data-level place;
// what the translator itself sends to the client.

extension Engine {
    // MARK: - From the peer

    func mpFromPeer(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, _ k: Int, opts: TCPOptionSummary,
                    now: Instant, gso: Bool) -> Verdict {
        let mp = c.mp!
        guard k < mp.paths.count else { return drop(.closed) }
        let t = v.tcp
        if let verdict = mpValidatePeer(v, &c, h, k, opts: opts, now: now) { return verdict }
        var p = mp.paths[k]
        if let verdict = mpPeerHandshake(v, &c, h, k, &p, opts: opts, now: now) { return verdict }
        p.lastReceived = now
        p.probesUnanswered = 0
        p.probeAt = nil
        p.stallProbe = false
        if p.removeAt != nil && p.removeProbedAt < now && !opts.has(.removeAddr) {
            p.removeAt = nil // it answered: the address still works (a forged or stale REMOVE_ADDR)
            stats.removeAddrIgnored &+= 1
        }
        if p.timestamps && opts.has(.timestamps) && !(t.seq - p.rcvNxt > 0) { p.remoteTSval = opts.tsValue }

        // Subflow-level ACK of what we sent.
        // A duplicate ACK: a pure ACK at snd.una, no address signalling, and
        // either the same window (RFC 5681) or new SACK information. A
        // window update alone is none (as in Linux): an MPTCP window is the
        // connection's and moves with every subflow's progress.
        let windowChanged = t.window != p.lastWindow
        p.lastWindow = t.window
        if t.has(TCPFlags.ack) {
            let pure = t.payload.isEmpty && !t.has(TCPFlags.fin) && opts.present.isDisjoint(with: .signalling)
            onSubflowAck(c, &p, k, ack: t.ack, opts: opts, pure: pure, windowChanged: windowChanged, now: now)
        }

        var toClient = false
        if let verdict = mpPeerDataLevel(v, &c, h, k, &p, opts: opts, now: now, toClient: &toClient) { return verdict }
        if let verdict = mpPeerSignalling(&c, h, k, &p, opts: opts, now: now) { return verdict }
        let (forward, dsn) = mpPeerReceive(v, &c, k, &p)
        mp.paths[k] = p
        return mpDeliver(v, &c, h, k, opts: opts, forward: forward, dsn: dsn, toClient: toClient, now: now, gso: gso)
    }

    /// A peer segment on subflow `k`, validated before anything acts on it
    /// (RFC 793 §3.3, RFC 5961, RFC 8684 §3.5): the verdict when it stops
    /// here (dropped, challenged, or a reset or MP_FASTCLOSE that acts).
    private func mpValidatePeer(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, _ k: Int, opts: TCPOptionSummary,
                                now: Instant) -> Verdict? {
        let mp = c.mp!
        let t = v.tcp
        let p = mp.paths[k]
        // Nothing acts before it is validated (RFC 793 §3.3, RFC 5961).
        let established = p.state == .active || p.state == .preEstablished
        if t.has(TCPFlags.rst) {
            let valid: Bool
            switch p.state {
            case .joinSent: valid = t.has(TCPFlags.ack) && t.ack == p.localISN + 1 // it answers our SYN
            case .unused, .failed: valid = false
            default: valid = t.seq == p.rcvNxt
            }
            guard valid else {
                if established && pathSegmentAcceptable(c, p, seq: t.seq) && !(t.seq - p.rcvNxt < 0) {
                    stats.rstChallenged &+= 1
                    mpChallenge(&c, mp, k, now: now)
                } else {
                    stats.rstIgnored &+= 1
                }
                return drop(.invalid)
            }
        } else if established && !pathSegmentAcceptable(c, p, seq: t.seq) {
            stats.outOfWindow &+= 1
            mpChallenge(&c, mp, k, now: now)
            return drop(.invalid)
        }
        if opts.has(.mpFastclose) && opts.mpFastclose.receiverKey != c.localKey {
            stats.fastcloseRejected &+= 1 // §3.5: only with our key
            return drop(.invalid)
        }
        if t.has(TCPFlags.rst) {
            if opts.has(.mpFastclose) || !mp.paths.enumerated().contains(where: { $0.offset != k && $0.element.state == .active }) {
                return mpAbort(&c, h, now: now, fastclose: opts.has(.mpFastclose))
            }
            let refusedJoin = p.state == .joinSent || p.state == .preEstablished
            failPath(&c, h, k, now: now, sendReset: false)
            if refusedJoin { mp.paths[k].retryAt = now + config.tuning.refusedJoinRetry }
            scheduleTimer(&c, h, now: now)
            return drop(.consumed)
        }
        if opts.has(.mpFastclose) { return mpAbort(&c, h, now: now, fastclose: true) }
        return nil
    }

    /// The subflow's handshake states (MP_JOIN both ways, the fourth ACK, a
    /// repeated SYN/ACK): the verdict when the segment ends there.
    private func mpPeerHandshake(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, _ k: Int, _ p: inout Subflow,
                                 opts: TCPOptionSummary, now: Instant) -> Verdict? {
        let mp = c.mp!
        let t = v.tcp
        switch p.state {
        case .unused, .failed:
            // A subflow we gave up on: reset it, as a TCP with no socket
            // would (RFC 9293 §3.10.7.1), so the peer stops using it.
            if !t.has(TCPFlags.rst) && p.state == .failed && t.has(TCPFlags.ack) {
                sendControl(c, mp, k, flags: TCPFlags.rst, now: now, first: .mpTCPRST(MPTCPRst(reason: 0)),
                            seq: t.ack)
            }
            return drop(.closed)
        case .joinSent:
            guard t.has(TCPFlags.syn) && t.has(TCPFlags.ack) && t.ack == p.localISN + 1,
                  opts.has(.mpJoin), case let .synAck(flags, _, truncated, nonce) = opts.mpJoin else {
                return drop(.badMPTCP)
            }
            let expect = MPTCPCrypto.joinHMAC(keyLocal: c.remoteKey, keyRemote: c.localKey, nonceLocal: nonce, nonceRemote: p.localNonce)
            guard expect.a == truncated else {
                stats.joinsRejected &+= 1
                p.rcvNxt = t.seq + 1
                mp.paths[k] = p
                sendControl(c, mp, k, flags: TCPFlags.rst | TCPFlags.ack, now: now, first: .mpTCPRST(MPTCPRst(reason: 0)))
                failPath(&c, h, k, now: now, sendReset: false)
                return drop(.badMPTCP)
            }
            if flags & 1 != 0 { p.backup = true }
            if case let .synAck(_, id, _, _) = opts.mpJoin { p.remoteID = id }
            p.remoteNonce = nonce
            p.remoteISN = t.seq
            p.rcvNxt = t.seq + 1
            p.sndUna = p.localISN + 1
            p.sndNxt = p.localISN + 1
            p.recover = p.sndUna
            p.timestamps = p.timestamps && opts.has(.timestamps)
            p.remoteTSval = opts.tsValue
            p.peerWScale = opts.has(.windowScale) ? opts.windowScale : 0
            setPathMSS(&p, peerMSS: opts.has(.mss) ? opts.mss : 536, checksums: c.checksums)
            p.cwnd = Double(10 * p.mss)
            // RTT: from the echoed timestamp (valid even after SYN
            // retransmissions), else from an unrepeated SYN.
            let rtt = Double(now.nanoseconds &- p.joinSentAt.nanoseconds) / 1e9
            if let echoed = echoedRTT(p, opts, now: now) {
                rttSample(&p, echoed)
            } else if p.joinTries == 1 && rtt > 0 {
                rttSample(&p, rtt)
            }
            p.state = .preEstablished
            p.joinSentAt = now
            p.retryAt = nil
            mp.paths[k] = p
            sendJoinAck(c, mp, k, now: now)
            scheduleTimer(&c, h, now: now)
            return drop(.consumed)
        case .joinReceived:
            if t.has(TCPFlags.syn) {
                if !t.has(TCPFlags.ack) && t.seq == p.remoteISN { sendJoinSynAck(c, mp, k, now: now) } // our SYN/ACK was lost
                return drop(.consumed)
            }
            guard t.has(TCPFlags.ack) && t.ack == p.localISN + 1, opts.has(.mpJoin), case let .ack(_, mac) = opts.mpJoin else {
                return drop(.badMPTCP)
            }
            let expect = MPTCPCrypto.joinHMAC(keyLocal: c.remoteKey, keyRemote: c.localKey, nonceLocal: p.remoteNonce, nonceRemote: p.localNonce)
            guard expect == mac else {
                stats.joinsRefused &+= 1
                sendControl(c, mp, k, flags: TCPFlags.rst | TCPFlags.ack, now: now, first: .mpTCPRST(MPTCPRst(reason: 0)), seq: t.ack)
                failPath(&c, h, k, now: now, sendReset: false)
                mp.paths[k].retryAt = nil
                return drop(.badMPTCP)
            }
            p.state = .active
            p.sndUna = p.localISN + 1
            p.recover = p.sndUna
            if let echoed = echoedRTT(p, opts, now: now) {
                rttSample(&p, echoed)
            } else {
                let rtt = Double(now.nanoseconds &- p.joinSentAt.nanoseconds) / 1e9
                if rtt > 0 && rtt < 10 { rttSample(&p, rtt) }
            }
            p.lastReceived = now
            p.retryAt = nil
            mp.paths[k] = p
            sendControl(c, mp, k, flags: TCPFlags.ack, now: now) // the fourth ACK
            stats.joinsAccepted &+= 1
            stats.subflowsOpened &+= 1
            mpPush(&c, h, now: now)
            scheduleTimer(&c, h, now: now)
            return drop(.consumed)
        case .preEstablished:
            if t.has(TCPFlags.syn) {
                sendJoinAck(c, mp, k, now: now) // our third ACK was lost
                return drop(.consumed)
            }
            guard t.has(TCPFlags.ack) && t.ack == p.localISN + 1 else { return drop(.badMPTCP) }
            p.state = .active // the fourth ACK
            stats.subflowsOpened &+= 1
        case .active:
            if t.has(TCPFlags.syn) {
                if k == 0 {
                    // A retransmitted SYN/ACK (the client's third ACK was
                    // lost): answer it again.
                    sendControl(c, mp, 0, flags: TCPFlags.ack, now: now,
                                first: .mpCapable(MPCapable(version: 1, flags: capableFlags(c), senderKey: c.localKey, receiverKey: c.remoteKey)))
                }
                return drop(.consumed)
            }
        }
        return nil
    }

    /// Data level (DSS): DATA_ACK of our upload, the peer's window, its
    /// mapping, DATA_FIN; `toClient` when the client should hear of it.
    private func mpPeerDataLevel(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, _ k: Int, _ p: inout Subflow,
                                 opts: TCPOptionSummary, now: Instant, toClient: inout Bool) -> Verdict? {
        let mp = c.mp!
        let t = v.tcp
        if opts.has(.dss) {
            if !c.fullyEstablished {
                c.fullyEstablished = true
                mp.paths[k] = p
                mpOpenJoins(&c, h, now: now)
                p = mp.paths[k]
            }
            let d = opts.dss
            if let a = d.dataAck {
                let full = d.dataAckIs8 ? a : DataSeq.expand(low32: UInt32(truncatingIfNeeded: a), near: DataSeq(mp.bufStart)).rawValue
                if dsnBefore(mp.bufStart, full) && !dsnBefore(mp.bufEnd &+ 1, full) {
                    c.peerDataAck = full
                    c.havePeerDataAck = true
                    mp.bufStart = dsnBefore(mp.bufEnd, full) ? mp.bufEnd : full
                    mp.dataAckProgress = now
                    mp.dataRTO = 1.0
                    if dsnBefore(mp.sendNext, mp.bufStart) { mp.sendNext = mp.bufStart }
                    toClient = true
                } else if !c.havePeerDataAck && full == mp.bufStart {
                    c.peerDataAck = full
                    c.havePeerDataAck = true
                }
                if full == c.peerDataAck || toClient {
                    let edge = full &+ (UInt64(t.window) << UInt64(p.peerWScale))
                    if dsnBefore(mp.peerWindowEdge, edge) { mp.peerWindowEdge = edge; toClient = true }
                }
                if let f = mp.dataFinDSN, dsnBefore(f, c.peerDataAck) { c.clientFinAcked = true }
            }
            if let m = d.mapping {
                let near = p.mapping.valid ? p.mapping.dsn : c.remoteIDSN &+ 1
                let dsn = d.dsnIs8 ? m.dsn : DataSeq.expand(low32: UInt32(truncatingIfNeeded: m.dsn), near: DataSeq(near)).rawValue
                guard downloadInWindow(c, dsn: dsn, length: UInt64(m.length)) else {
                    stats.dataOutOfWindow &+= 1
                    mp.paths[k] = p
                    return drop(.invalid)
                }
                if m.length == 0 && !d.dataFin {
                    // An infinite mapping: with several subflows a fallback to
                    // TCP cannot be translated (§3.7 allows it with one
                    // subflow only). Both ends are reset: the client, and the
                    // peer with MP_FASTCLOSE (the whole connection).
                    mp.paths[k] = p
                    stats.abortedBoth &+= 1
                    mpResetPeer(c, mp)
                    return mpAbort(&c, h, now: now, fastclose: false)
                }
                if d.dataFin && m.length == 1 && t.payload.isEmpty {
                    c.peerDataFinDSN = dsn
                } else {
                    p.mapping = PeerMapping(dsn: dsn, ssn: m.subflowSeq, length: UInt32(m.length), dataFin: d.dataFin, valid: true)
                    if d.dataFin { c.peerDataFinDSN = dsn &+ UInt64(m.length) &- 1 }
                }
            }
        }
        return nil
    }

    /// The path manager's options (MP_CAPABLE data, MP_PRIO, ADD_ADDR,
    /// REMOVE_ADDR): the verdict when the subflow is gone.
    private func mpPeerSignalling(_ c: inout Connection, _ h: Int, _ k: Int, _ p: inout Subflow,
                                  opts: TCPOptionSummary, now: Instant) -> Verdict? {
        let mp = c.mp!
        if k == 0 && c.responder && !opts.has(.dss) && opts.has(.mpCapable), let len = opts.mpCapable.dataLevelLength, len > 0 {
            // Responder role: the peer's first data with MP_CAPABLE (our
            // answer to its third ACK has not reached it): DSN = IDSN + 1,
            // subflow sequence 1 (§3.1).
            p.mapping = PeerMapping(dsn: c.remoteIDSN &+ 1, ssn: 1, length: UInt32(len), dataFin: false, valid: true)
        }
        if opts.has(.mpPrio) {
            // The peer asks us to use this subflow only as a backup (or no
            // longer): RFC 8684 §3.3.8.
            p.backup = opts.mpPrio.backup
        }
        if opts.has(.addAddr) && opts.addAddr.echo, opts.addAddr.addressID > 0 {
            mp.announceUnechoed &= ~(1 << (opts.addAddr.addressID - 1)) // the peer has our announcement
        }
        if opts.has(.addAddr) && !opts.addAddr.echo {
            let a = opts.addAddr
            stats.addAddrReceived &+= 1
            mp.paths[k] = p
            if a.hmac == MPTCPCrypto.addAddrHMAC(senderKey: c.remoteKey, receiverKey: c.localKey, addressID: a.addressID,
                                                 address: a.address, port: a.port) {
                // Echoed (§3.4.1: or the peer keeps resending it), then joined
                // from every uplink, within `addAddrAccepted`.
                sendControl(c, mp, k, flags: TCPFlags.ack, now: now,
                            first: .addAddr(AddAddr(echo: true, addressID: a.addressID, address: a.address, port: a.port)))
                acceptAnnounced(c, mp, a)
                mpOpenJoins(&c, h, now: now)
                p = mp.paths[k]
            } else {
                stats.addAddrRejected &+= 1 // §3.4.1: silently ignored
            }
        }
        if opts.has(.removeAddr) {
            // The peer no longer has these addresses: their subflows are
            // reset (their data goes out again on the others) and not rejoined.
            // §3.4.2: a working subflow to such an address is probed first
            // (a keepalive) and removed only if it does not answer: a forged
            // REMOVE_ADDR costs an ACK, not the connection.
            stats.removeAddrReceived &+= 1
            mp.paths[k] = p
            let ids = opts.removeAddr.addressIDs
            for i in 0 ..< ids.count {
                let id = ids[i]
                var probed = false
                for j in mp.paths.indices where mp.paths[j].remoteID == id && mp.paths[j].state != .failed && mp.paths[j].state != .unused {
                    if mp.paths[j].state == .active {
                        if mp.paths[j].removeAt == nil {
                            mp.paths[j].removeAt = now + .nanoseconds(Int64(max(0.25, 3 * mp.paths[j].srtt) * 1e9))
                            mp.paths[j].removeProbedAt = now
                            sendControl(c, mp, j, flags: TCPFlags.ack, now: now, seq: mp.paths[j].sndNxt - 1)
                            stats.removeAddrProbes &+= 1
                        }
                        probed = true
                    } else {
                        failPath(&c, h, j, now: now, sendReset: true)
                        mp.paths[j].retryAt = nil
                    }
                }
                if !probed { removeTarget(&c, h, mp, id: id, now: now) }
            }
            p = mp.paths[k]
            if p.state == .failed {
                scheduleTimer(&c, h, now: now)
                return drop(.consumed)
            }
        }
        return nil
    }

    /// Subflow-level receive: sequence space, out-of-order ranges, FIN,
    /// ACKs due; whether its data goes on to the client, and its DSN.
    private func mpPeerReceive(_ v: TCPPacketView, _ c: inout Connection, _ k: Int, _ p: inout Subflow) -> (forward: Bool, dsn: UInt64) {
        let mp = c.mp!
        let t = v.tcp
        let n = UInt32(t.payload.count)
        var forward = false
        var dsn: UInt64 = 0
        if n > 0 {
            let end = t.seq + n
            if !(p.rcvNxt < end) {
                p.ackPending = true // a duplicate: ACK again
            } else {
                if !(p.rcvNxt < t.seq) {
                    var next = end
                    p.ooo.absorb(into: &next) // the ranges it reaches are in order now
                    p.rcvNxt = next
                } else {
                    p.ooo.add(t.seq, end, limit: config.tuning.maxOOORanges)
                }
                p.ackPending = true
                if let d = p.mapping.dsn(atRelative: UInt32(bitPattern: t.seq - p.remoteISN)) {
                    dsn = d
                    // Data the client has acknowledged already goes no further.
                    forward = !c.haveDataAckToPeer || dsnBefore(c.dataAckToPeer, d &+ UInt64(n))
                } else {
                    stats.dropped[Int(DropReason.unmapped.rawValue)] &+= 1
                }
            }
            mp.lastRxPath = k
        }
        if t.has(TCPFlags.fin) {
            if t.seq + n == p.rcvNxt && !p.peerFin { p.rcvNxt = p.rcvNxt + 1; p.peerFin = true }
            p.ackPending = true
        }
        if n == 0 && !t.has(TCPFlags.fin) && t.seq - p.rcvNxt < 0 {
            // A keepalive or zero-window probe (a byte below what we have, no
            // data) is answered, as any TCP does (RFC 9293 §3.8.4): the far
            // end's liveness probe (another nfq-mptcp's stall probe) needs it.
            p.ackPending = true
        }
        return (forward, dsn)
    }

    /// The peer's data moved onto the client's connection (the rewritten
    /// segment is the verdict), or its DATA_FIN alone, or news of its
    /// DATA_ACK; then what that frees, sends and ends.
    private func mpDeliver(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, _ k: Int, opts: TCPOptionSummary,
                           forward: Bool, dsn: UInt64, toClient: Bool, now: Instant, gso: Bool) -> Verdict {
        let mp = c.mp!
        let t = v.tcp
        let p = mp.paths[k]
        var forward = forward
        var toClient = toClient
        let n = UInt32(t.payload.count)
        var verdict = Verdict.drop(.consumed)
        let fin = forward && c.peerDataFinDSN == dsn &+ UInt64(n)
        if fin { c.peerFinForwarded = true }
        if forward { forward = keepForClient(&c, mp, dsn: dsn, t.payload, fin: fin, now: now) }
        if forward {
            let flags = TCPFlags.ack | (t.flags & TCPFlags.psh) | (fin ? TCPFlags.fin : 0)
            let seq = c.clientSeq(ofDownloadDSN: dsn)
            let segEnd = seq + n + (flags & TCPFlags.fin != 0 ? 1 : 0)
            forwarded(&c, mp, upTo: segEnd, now: now)
            // TSecr: the client's TSval as of when we sent what the peer echoes.
            var echo = mp.clientTSval
            if p.timestamps && opts.has(.timestamps) && opts.tsEchoReply != 0 {
                echo = mp.clientTS(asOf: opts.tsEchoReply &- p.tsOffset)
            }
            let ol = clientOptions(mp, now: now, echo: echo)
            mp.lastAckToClient = clientAckNumber(c)
            mp.lastWindowToClient = windowToClient(c, mp)
            if let hl = SegmentWriter.writeMoved(into: headerBuffer, original: v, source: c.key.server, destination: c.key.client,
                                                 seq: seq, ack: mp.lastAckToClient, flags: flags, window: mp.lastWindowToClient,
                                                 options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< ol]),
                                                 computeChecksum: !gso) {
                verdict = .rewrite(headerLength: hl, payloadOffset: v.tcpOffset + v.tcp.headerLength)
                stats.translatedToLAN &+= 1
                toClient = false
            } else {
                verdict = drop(.tooBig)
            }
        } else if let f = c.peerDataFinDSN, !c.peerFinAcked, n == 0,
                  opts.has(.dss) && opts.dss.dataFin || (t.has(TCPFlags.fin) && !c.peerFinForwarded) {
            // The DATA_FIN alone: a FIN for the client at its place.
            let seq = c.clientSeq(ofDownloadDSN: f)
            if c.deliveredMax < seq + 1 { c.deliveredMax = seq + 1 }
            c.peerFinForwarded = true
            sendToClient(c, mp, seq: seq, flags: TCPFlags.fin | TCPFlags.ack, now: now)
            toClient = false
        }
        if toClient {
            // The peer's DATA_ACK (or window) moved: tell the client, with
            // this very segment when nothing else of it goes on.
            if config.tuning.acksByVerdict, case .drop(.consumed) = verdict, !gso, let ack = clientAckVerdict(v, c, mp, now: now) {
                verdict = ack
            } else if config.tuning.batchAcks {
                mp.clientAckDue = true
                queueAcks(c, h, mp)
            } else {
                sendToClient(c, mp, seq: c.deliveredMax, flags: TCPFlags.ack, now: now)
            }
        }
        releaseBuffer(&c, h, now: now)
        mpPush(&c, h, now: now)
        for j in mp.paths.indices where mp.paths[j].ackPending && mp.paths[j].state == .active {
            // A hole in the subflow's sequence: its ACK (and SACK) leaves now.
            if config.tuning.batchAcks && mp.paths[j].ooo.isEmpty {
                queueAcks(c, h, mp)
            } else {
                sendAck(c, mp, j, now: now)
            }
        }
        mpFinishIfDone(&c, h, now: now)
        scheduleTimer(&c, h, now: now)
        return verdict
    }

    /// Connection `h` has ACKs waiting for `endOfBatch`.
    func queueAcks(_ c: Connection, _ h: Int, _ mp: MPConn) {
        guard !mp.ackQueued else { return }
        mp.ackQueued = true
        ackDue.append((h, c.generation))
    }

    /// The ACKs that waited (`batchAcks`): the client's, then each
    /// subflow's; what went out meanwhile (a data segment carries the
    /// subflow's ACK) is not sent again.
    func sendBatchedAcks(_ c: Connection, _ mp: MPConn, now: Instant) {
        if mp.clientAckDue {
            mp.clientAckDue = false
            if c.phase != .closed { sendToClient(c, mp, seq: c.deliveredMax, flags: TCPFlags.ack, now: now) }
        }
        for j in mp.paths.indices where mp.paths[j].ackPending && mp.paths[j].state == .active { sendAck(c, mp, j, now: now) }
    }

    /// Options towards the client: timestamps only (our clock, its TSval echoed).
    func clientOptions(_ mp: MPConn, now: Instant, echo: UInt32? = nil) -> Int {
        var w = ByteWriter(writer.options)
        if mp.clientTimestamps {
            w.timestampsOption(value: ms(now) &+ mp.clientTSOffset, echo: echo ?? mp.clientTSval, aligned: true)
        }
        return w.offset
    }

    func clientAckNumber(_ c: Connection) -> TCPSeq {
        c.clientAck(ofDataAck: c.havePeerDataAck ? c.peerDataAck : c.localIDSN &+ 1)
    }

    /// The window the client may fill: the peer's data-level window, but
    /// never beyond what the send buffer can hold.
    func windowToClient(_ c: Connection, _ mp: MPConn) -> UInt16 {
        let una = c.havePeerDataAck ? c.peerDataAck : c.localIDSN &+ 1
        // Right edge: the peer's window, and what the buffer can hold.
        var edge = mp.ringStart &+ UInt64(mp.capacity)
        if dsnBefore(mp.peerWindowEdge, edge) { edge = mp.peerWindowEdge }
        let bytes = dsnBefore(una, edge) ? edge &- una : 0
        return UInt16(min(65535, bytes >> UInt64(mp.peerWScaleToClient)))
    }

    /// The client's ACK written over the peer's segment `v` (which goes no
    /// further itself): the ACK `sendToClient` would send, as the verdict
    /// instead of from the outbox. Nil when there is nothing new to tell.
    func clientAckVerdict(_ v: TCPPacketView, _ c: Connection, _ mp: MPConn, now: Instant) -> Verdict? {
        let ack = clientAckNumber(c)
        let window = windowToClient(c, mp)
        guard ack != mp.lastAckToClient || window != mp.lastWindowToClient else { return nil }
        let ol = clientOptions(mp, now: now, echo: c.havePeerDataAck ? mp.clientTS(acking: c.peerDataAck) : nil)
        guard let hl = SegmentWriter.writeMoved(into: headerBuffer, original: v, source: c.key.server, destination: c.key.client,
                                                seq: c.deliveredMax, ack: ack, flags: TCPFlags.ack, window: window,
                                                options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< ol]),
                                                computeChecksum: true, payload: UnsafeRawBufferPointer(start: nil, count: 0))
        else { return nil }
        mp.lastAckToClient = ack
        mp.lastWindowToClient = window
        return carried(headerLength: hl, towards: .lan)
    }

    func sendToClient(_ c: Connection, _ mp: MPConn, seq: TCPSeq, flags: UInt8, now: Instant) {
        let ack = clientAckNumber(c)
        let window = windowToClient(c, mp)
        if flags == TCPFlags.ack && ack == mp.lastAckToClient && window == mp.lastWindowToClient {
            // Nothing new: a repeated ACK would look like a duplicate (and a
            // client that has closed would answer it with a RST).
            return
        }
        mp.lastAckToClient = ack
        mp.lastWindowToClient = window
        let ol = clientOptions(mp, now: now, echo: c.havePeerDataAck ? mp.clientTS(acking: c.peerDataAck) : nil)
        guard let out = outbox.reserve() else { return }
        let len = SegmentWriter.writeBare(into: out, source: c.key.server, destination: c.key.client, seq: seq,
                                          ack: ack, flags: flags, window: window,
                                          options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< ol]))
        if len > 0 {
            outbox.commit(length: len, towards: .lan)
            stats.originated &+= 1
        }
    }

    func sendJoinAck(_ c: Connection, _ mp: MPConn, _ k: Int, now: Instant) {
        let p = mp.paths[k]
        let mac = MPTCPCrypto.joinHMAC(keyLocal: c.localKey, keyRemote: c.remoteKey, nonceLocal: p.localNonce, nonceRemote: p.remoteNonce)
        sendControl(c, mp, k, flags: TCPFlags.ack, now: now, first: .mpJoin(.ack(reserved: 0, hmac: mac)))
    }
}

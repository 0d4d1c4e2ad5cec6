// Multipath, the client's side: its segments taken into the send buffer,
// the scheduler that puts buffered data on subflows, and the writers of
// what goes out on a subflow (data, control segments, ACKs).

extension Engine {
    // MARK: - From the client

    func mpFromClient(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, now: Instant, gso: Bool) -> Verdict {
        let mp = c.mp!
        let t = v.tcp
        if t.has(TCPFlags.rst) {
            // After a clean close the client's RST ends nothing more.
            if c.phase == .closed { return drop(.closed) }
            // The client aborted: MP_FASTCLOSE on every subflow (§3.5).
            for k in mp.paths.indices where mp.paths[k].state == .active || mp.paths[k].state == .preEstablished {
                sendControl(c, mp, k, flags: TCPFlags.rst | TCPFlags.ack, now: now,
                            first: .mpFastclose(MPFastclose(receiverKey: c.remoteKey)), second: .mpTCPRST(MPTCPRst(reason: 0)))
            }
            stats.fastcloseSent &+= 1
            conns[h] = c
            close(h, now: now, reset: true)
            c = conns[h]!
            return drop(.consumed)
        }
        guard t.has(TCPFlags.ack) else { return drop(.consumed) }
        if c.phase == .closed && mp.resetClient {
            // Our reset went at the highest sequence forwarded; a client
            // still short of it (a data-level hole: the subflows deliver out
            // of order) takes it for a blind reset and answers with a
            // challenge ACK (RFC 5961 §3.2). As a TCP with no connection
            // answers (RFC 9293 §3.10.7.1): a reset at its ACK number.
            sendToClient(c, mp, seq: t.ack, flags: TCPFlags.rst, now: now)
            stats.clientResetsRepeated &+= 1
            return drop(.closed)
        }
        let o = TCPOptionSummary(parsing: t.optionArea)
        if mp.clientTimestamps, o.has(.timestamps) {
            mp.clientTSval = o.tsValue
            mp.recordClientTS(o.tsValue, at: ms(now))
        }
        let windowChanged = mp.clientWindow != t.window
        mp.clientWindow = t.window

        // The client's ACK is our DATA_ACK to the peer.
        let dataAck = c.downloadDSN(ofClientAck: t.ack, near: c.haveDataAckToPeer ? c.dataAckToPeer : c.remoteIDSN &+ 1)
        var ackAdvanced = false
        if !c.haveDataAckToPeer {
            c.dataAckToPeer = dataAck
            c.haveDataAckToPeer = true
            mp.clientAckMoved = now
        } else if dsnBefore(c.dataAckToPeer, dataAck) {
            ackAdvanced = true
            c.dataAckToPeer = dataAck
            mp.clientAckMoved = now
        }
        if let pf = c.peerDataFinDSN, dsnBefore(pf, c.dataAckToPeer) { c.peerFinAcked = true }
        // The right edge of its window: what the peer may send and we forward
        // (a reordered older ACK shows an older edge, never a larger one).
        let edge = dataAck &+ (UInt64(t.window) << UInt64(mp.clientWScale))
        if mp.clientEdge == nil || dsnBefore(mp.clientEdge!, edge) { mp.clientEdge = edge }
        downOnClientAck(&c, mp, sack: o.sack, now: now)

        let n = t.payload.count
        if n > 0 || t.has(TCPFlags.fin) {
            let dsn = c.uploadDSN(t.seq)
            let end = dsn &+ UInt64(n)
            if n > 0 {
                let took = mp.append(dsn: dsn, t.payload)
                mp.noteData(now: now)
                if took > 0 && mp.clientTimestamps { mp.recordDataTS(mp.clientTSval, end: mp.bufEnd) }
                stats.bufferedBytes &+= UInt64(took)
            }
            // The FIN counts once every byte before it is here (it may come
            // beyond a gap, the LAN having reordered the client's segments).
            if t.has(TCPFlags.fin) && mp.dataFinDSN == nil && !dsnBefore(mp.ringStart &+ UInt64(mp.capacity), end) {
                mp.pendingFinDSN = end
            }
            if let f = mp.pendingFinDSN, mp.dataFinDSN == nil, !dsnBefore(mp.bufEnd, f) {
                mp.dataFinDSN = f
                mp.pendingFinDSN = nil
            }
            // Beyond a gap: held, silently (no duplicate ACK, no SACK: a
            // BBR client would shrink to the LAN's bandwidth-delay product;
            // docs/decisions.md). A lost segment comes on the client's timeout.
            if !mp.outOfOrder.isEmpty && dsnBefore(mp.bufEnd, dsn) { stats.clientOutOfOrder &+= 1 }
            if c.lastUploadDSN != mp.bufEnd { c.lastUploadDSN = mp.bufEnd }
        }
        if !c.fullyEstablished && n == 0 && !t.has(TCPFlags.fin) {
            // The third ACK (and pure ACKs until the peer shows it has our
            // key): MP_CAPABLE with both keys (§3.1).
            sendControl(c, mp, 0, flags: TCPFlags.ack, now: now,
                        first: .mpCapable(MPCapable(version: 1, flags: capableFlags(c), senderKey: c.localKey, receiverKey: c.remoteKey)))
            return drop(.consumed)
        }
        let before = outbox.count
        let carried = n > 0 ? carryFirstTransmission(v, c, mp, gso: gso, now: now) : nil
        mpPush(&c, h, now: now)
        var verdict = carried
        if carried == nil && outbox.count == before && (ackAdvanced || windowChanged), let k = bestAckPath(mp) {
            // Our DATA_ACK moved (or the window): a pure ACK becomes it.
            if config.tuning.acksByVerdict && n == 0 && !t.has(TCPFlags.fin) && !gso {
                verdict = subflowAckVerdict(v, c, mp, k, now: now)
            }
            if verdict == nil {
                if config.tuning.batchAcks {
                    mp.paths[k].ackPending = true
                    queueAcks(c, h, mp)
                } else {
                    sendAck(c, mp, k, now: now)
                }
            }
        }
        if verdict == nil && n > 0 && !t.has(TCPFlags.fin) && c.fullyEstablished && c.phase == .established
            && mp.sendNext != mp.bufEnd {
            // Data waits for room: the packet waits with it, to carry it.
            verdict = hold(mp, gso: gso, length: n)
        }
        mpFinishIfDone(&c, h, now: now)
        scheduleTimer(&c, h, now: now)
        return verdict ?? drop(.consumed)
    }

    /// The client's data segment leaves as the first transmission of the
    /// oldest data not yet sent (its own bytes, or older ones still waiting
    /// for room) on the subflow the scheduler picks: a new header in place
    /// of the client's, the payload from the send buffer (where a copy stays
    /// for retransmission), and the packet's GSO size kept, so the kernel
    /// cuts a super-segment into wire segments that all carry its one DSS
    /// mapping (docs/datapath.md). Nil when it can carry nothing: what is
    /// left goes from the outbox (`mpPush`).
    func carryFirstTransmission(_ v: TCPPacketView, _ c: Connection, _ mp: MPConn, gso: Bool, now: Instant) -> Verdict? {
        guard config.tuning.carryByVerdict, c.fullyEstablished, c.phase == .established,
              mp.reinject.isEmpty, mp.dataFinDSN == nil else { return nil }
        let dsn = mp.sendNext
        guard dsnBefore(dsn, mp.bufEnd), dsnBefore(dsn, mp.peerWindowEdge) else { return nil }
        let unsent = Int(mp.bufEnd &- dsn)
        let window = Int(mp.peerWindowEdge &- dsn)
        guard let k = scheduler.pick(mp.paths, want: min(unsent, window)) else { return nil }
        let p = mp.paths[k]
        guard burstAllowance(p) >= config.tuning.carryMinSegments * p.mss else { return nil }
        // A super-segment: its GSO size (the client's segment) must fit this
        // subflow's segments, and the whole must fit a verdict. One segment:
        // no larger than the client's, and than this subflow's.
        let most: Int
        if gso {
            guard mp.lanSegmentMax > 0, mp.lanSegmentMax <= p.mss else { return nil }
            most = SegmentWriter.maxPacketLength - (p.local.address.isIPv6 ? 40 : 20) - 60
        } else {
            most = min(v.tcp.payload.count, p.mss)
        }
        // As `sendQueued`: within the congestion window, or one segment;
        // and no larger a burst than Linux would send as one TSO frame.
        let cwndRoom = max(Int(p.cwnd) - p.pipe, p.mss)
        let payload = mp.bytes(at: dsn, max: min(unsent, window, most, cwndRoom, burstAllowance(p)))
        let length = payload.count
        // A super-segment must stay more than one segment: the kernel will
        // not cut a GSO packet no longer than its segment size (EINVAL), and
        // drops it without a counter where it would cut it in software.
        guard length > 0, !gso || length > mp.lanSegmentMax else { return nil }
        let first = dataOption(c, p, k, dsn: dsn, seq: p.sndNxt, length: length, dataFin: false, payload: payload)
        let ol = pathOptions(mp, p, now: now, first: first, sack: false)
        guard let hl = SegmentWriter.writeMoved(into: headerBuffer, original: v, source: p.local, destination: p.remote,
                                                seq: p.sndNxt, ack: p.rcvNxt, flags: TCPFlags.ack | TCPFlags.psh,
                                                window: windowToPeer(mp),
                                                options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< ol]),
                                                computeChecksum: !gso, payload: payload) else { return nil }
        noteDataSent(mp, k, seq: p.sndNxt, dsn: dsn, length: length, dataFin: false, first: true,
                     segmentSize: gso ? mp.lanSegmentMax : p.mss, now: now)
        if mp.sendNext == mp.bufStart { mp.dataAckProgress = now }
        mp.sendNext = dsn &+ UInt64(length)
        stats.carriedSegments &+= 1
        stats.carriedBytes &+= UInt64(length)
        return carried(headerLength: hl, towards: .uplink(p.uplink), payload: payload)
    }

    /// The most a subflow sends as one super-segment: about a millisecond
    /// at its pacing rate (Linux's `tcp_tso_autosize`: the pacing rate is
    /// twice cwnd/srtt in slow start, 1.2 times after), at least two
    /// segments. At tens of Mbit/s a carried super-segment is then a few
    /// segments, as the kernel's own; at Gbit/s rates it is all of one.
    func burstAllowance(_ p: Subflow) -> Int {
        guard p.srtt > 0 else { return 2 * p.mss }
        let factor = p.cwnd < p.ssthresh ? 2.0 : 1.2
        return max(2 * p.mss, Int(min(factor * p.cwnd / p.srtt / 1000, 1e9)))
    }

    /// A `.carry` verdict: the headers written, the payload (none: an ACK).
    func carried(headerLength hl: Int, towards side: Side,
                 payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) -> Verdict {
        carriedPayload = payload
        carriedTowards = side
        if payload.isEmpty { stats.acksByVerdict &+= 1 }
        return .carry(headerLength: hl)
    }

    /// The ACK `sendAck` would send on subflow `k`, written over the
    /// client's pure ACK `v` (which goes no further itself). Nil when it
    /// cannot be written.
    func subflowAckVerdict(_ v: TCPPacketView, _ c: Connection, _ mp: MPConn, _ k: Int, now: Instant) -> Verdict? {
        let p = mp.paths[k]
        let ol = pathOptions(mp, p, now: now, first: .dss(DSS(dataAck: dataAckOption(c), dataAck8: false)))
        guard let hl = SegmentWriter.writeMoved(into: headerBuffer, original: v, source: p.local, destination: p.remote,
                                                seq: p.finSent ? p.finSeq + 1 : p.sndNxt, ack: p.rcvNxt, flags: TCPFlags.ack,
                                                window: windowToPeer(mp),
                                                options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< ol]),
                                                computeChecksum: true, payload: UnsafeRawBufferPointer(start: nil, count: 0))
        else { return nil }
        mp.paths[k].ackPending = false
        return carried(headerLength: hl, towards: .uplink(p.uplink))
    }

    /// A subflow that can carry a pure ACK: the last one data came on, else any active one.
    func bestAckPath(_ mp: MPConn) -> Int? {
        if mp.lastRxPath < mp.paths.count && mp.paths[mp.lastRxPath].state == .active { return mp.lastRxPath }
        return mp.paths.firstIndex { $0.state == .active }
    }

    // MARK: - Scheduler

    /// Sends buffered data (reinjections first) while windows allow.
    func mpPush(_ c: inout Connection, _ h: Int, now: Instant) {
        guard let mp = c.mp, c.phase == .established || c.phase == .closed, !mp.paths.isEmpty else { return }
        sendQueued(c, mp, now: now)
        // Opportunistic reinjection (Raiciu et al., NSDI 2012): nothing new
        // can go out, a subflow still has room, and the DATA_ACK has waited
        // longer than that subflow's RTT for the oldest data, which sits on
        // another subflow: send that data again here, so one slow or lossy
        // subflow does not hold up the whole connection (and the client,
        // whose ACKs wait for the DATA_ACK).
        let blocked = mp.sendNext == mp.bufEnd || !dsnBefore(mp.sendNext, mp.peerWindowEdge)
        guard blocked, mp.reinject.isEmpty, dsnBefore(mp.bufStart, mp.sendNext) else { return }
        let from = dsnMax(mp.bufStart, mp.opportunisticUpTo)
        guard dsnBefore(from, mp.sendNext), let k = scheduler.pick(mp.paths, want: 1) else { return }
        let f = mp.paths[k]
        guard now.nanoseconds &- mp.dataAckProgress.nanoseconds > UInt64(max(f.srtt, 0.01) * 1e9),
              !f.segments.contains(where: { $0.dsn == mp.bufStart && $0.length > 0 }) else { return }
        let room = max(f.mss, Int(f.cwnd) - f.pipe)
        let end = dsnBefore(from &+ UInt64(room), mp.sendNext) ? from &+ UInt64(room) : mp.sendNext
        mp.reinject.append((from, end))
        mp.opportunisticUpTo = end
        stats.opportunisticReinjections &+= 1
        sendQueued(c, mp, now: now)
    }

    func sendQueued(_ c: Connection, _ mp: MPConn, now: Instant) {
        while outbox.count < Outbox.slots - 8 {
            var dsn: UInt64
            var end: UInt64
            var reinjecting = false
            if let r = mp.reinject.first {
                if !dsnBefore(mp.bufStart, r.end) || !dsnBefore(r.dsn, mp.sendNext) { _ = mp.reinject.popFirst(); continue }
                dsn = dsnMax(r.dsn, mp.bufStart)
                end = dsnBefore(mp.sendNext, r.end) ? mp.sendNext : r.end
                reinjecting = true
            } else {
                dsn = mp.sendNext
                end = mp.bufEnd
            }
            let avail = Int(end &- dsn)
            let finHere = mp.dataFinDSN == end && !reinjecting && mp.dataFinSentAt == nil
            if avail == 0 && !finHere { break }
            // Data-level flow control (the window is relative to DATA_ACK).
            let room = dsnBefore(dsn, mp.peerWindowEdge) ? Int(mp.peerWindowEdge &- dsn) : 0
            if avail > 0 && room == 0 { break }
            guard let k = scheduler.pick(mp.paths, want: max(1, min(avail, room))) else { break }
            if !reinjecting && avail > 0 && !mp.held.isEmpty,
               let sent = releaseHeld(c, mp, k, dsn: dsn, most: min(avail, room), now: now) {
                // A held client packet carries it (Held.swift).
                if mp.sendNext == mp.bufStart { mp.dataAckProgress = now }
                mp.sendNext = dsn &+ UInt64(sent)
                continue
            }
            let len = min(avail, room, mp.paths[k].mss, Int(mp.capacity - Int(dsn % UInt64(mp.capacity))))
            let fin = finHere && dsn &+ UInt64(len) == end
            if len == 0 && !fin { break }
            sendData(c, mp, k, dsn: dsn, length: len, dataFin: fin, now: now)
            if fin { mp.dataFinSentAt = now }
            if reinjecting {
                stats.reinjectedBytes &+= UInt64(len)
                mp.reinject[0].dsn = dsn &+ UInt64(len)
                if !dsnBefore(mp.reinject[0].dsn, mp.reinject[0].end) { _ = mp.reinject.popFirst() }
            } else {
                if mp.sendNext == mp.bufStart { mp.dataAckProgress = now }
                mp.sendNext = dsn &+ UInt64(len)
            }
            if len == 0 { break }
        }
    }

    // MARK: - Sending on a subflow

    /// Writes our option area into `writer.options`: timestamps, then the
    /// MPTCP options, then a SACK block if there is room. Returns its length.
    /// `sack`: false on data segments, whose payload size leaves room for
    /// timestamps and a DSS only (`payloadMSS`). `timestamps`: false for a
    /// signal that does not fit beside them (an IPv6 ADD_ADDR with port).
    func pathOptions(_ mp: MPConn, _ p: Subflow, now: Instant, first: MPTCPOption?, second: MPTCPOption? = nil,
                             sack: Bool = true, timestamps: Bool = true) -> Int {
        var w = ByteWriter(writer.options)
        if p.timestamps && timestamps { w.timestampsOption(value: ms(now) &+ p.tsOffset, echo: p.remoteTSval, aligned: true) }
        first?.write(into: &w)
        second?.write(into: &w)
        w.padOptions()
        let room = (40 - w.offset - 4) / 8
        if sack && p.ooo.count > 0 && room > 0 {
            // The most recently grown blocks first (RFC 2018 §4), while they fit.
            let n = min(room, p.ooo.count)
            w.sackOptionHeader(blocks: n)
            for i in 0 ..< n { w.u32(p.ooo[i].left.rawValue); w.u32(p.ooo[i].right.rawValue) }
        }
        return w.offset
    }

    func originate(_ p: Subflow, towards side: Side, seq: TCPSeq, ack: TCPSeq, flags: UInt8, window: UInt16,
                           optionLength: Int, payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        guard let out = outbox.reserve() else { return }
        let len = SegmentWriter.writeBare(into: out, source: p.local, destination: p.remote, seq: seq, ack: ack,
                                          flags: flags, window: window,
                                          options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< optionLength]),
                                          payload: payload)
        if len > 0 {
            outbox.commit(length: len, towards: side)
            stats.originated &+= 1
        }
    }

    func dataAckOption(_ c: Connection) -> UInt64 {
        c.haveDataAckToPeer ? c.dataAckToPeer : c.remoteIDSN &+ 1
    }

    /// Our receive window towards the peer: the client's (same scale on every subflow).
    func windowToPeer(_ mp: MPConn) -> UInt16 { mp.clientWindow }

    func sendData(_ c: Connection, _ mp: MPConn, _ k: Int, dsn: UInt64, length: Int, dataFin: Bool,
                  now: Instant, retransmitOf seq: TCPSeq? = nil) {
        let p = mp.paths[k]
        let payload = length > 0 ? mp.bytes(at: dsn, max: length) : UnsafeRawBufferPointer(start: nil, count: 0)
        let sseq = seq ?? p.sndNxt
        let first = dataOption(c, p, k, dsn: dsn, seq: sseq, length: length, dataFin: dataFin, payload: payload)
        let ol = pathOptions(mp, p, now: now, first: first, sack: length == 0)
        originate(p, towards: .uplink(p.uplink), seq: sseq, ack: p.rcvNxt, flags: TCPFlags.ack | (length > 0 ? TCPFlags.psh : 0),
                  window: windowToPeer(mp), optionLength: ol, payload: payload)
        noteDataSent(mp, k, seq: sseq, dsn: dsn, length: length, dataFin: dataFin, first: seq == nil, now: now)
    }

    /// The MPTCP option of a data segment at subflow sequence `seq`: its DSS
    /// mapping (with DATA_FIN, and the checksum when negotiated), or
    /// MP_CAPABLE for the first data before the peer has shown it has our key.
    func dataOption(_ c: Connection, _ p: Subflow, _ k: Int, dsn: UInt64, seq: TCPSeq, length: Int, dataFin: Bool,
                    payload: UnsafeRawBufferPointer) -> MPTCPOption {
        let rel = seq - p.localISN
        if !c.fullyEstablished && k == 0 && dsn == c.localIDSN &+ 1 && length > 0 && !dataFin && rel == 1 {
            // First data before the peer has shown it has our key: MP_CAPABLE
            // with both keys and the data-level length (§3.1).
            var m = MPCapable(version: 1, flags: capableFlags(c), senderKey: c.localKey, receiverKey: c.remoteKey,
                              dataLevelLength: UInt16(length))
            if c.checksums { m.checksum = DSSChecksum.compute(dsn: dsn, subflowSeq: 1, length: UInt16(length), payload: payload) }
            return .mpCapable(m)
        }
        let mlen = UInt16(length + (dataFin ? 1 : 0))
        let ssn: UInt32 = length == 0 ? 0 : UInt32(bitPattern: rel)
        var m = DSSMapping(dsn: dsn, subflowSeq: ssn, length: mlen)
        if c.checksums { m.checksum = DSSChecksum.compute(dsn: dsn, subflowSeq: ssn, length: mlen, payload: payload) }
        return .dss(DSS(dataAck: dataAckOption(c), dataAck8: true, mapping: m, dsn8: true, dataFin: dataFin))
    }

    /// Subflow `k`'s books after a data segment went out (from the outbox or
    /// carried by a verdict): a first transmission joins its send queue, a
    /// super-segment as the wire segments the kernel cuts it into (of
    /// `segmentSize` bytes), each acknowledged, SACKed and resent alone.
    func noteDataSent(_ mp: MPConn, _ k: Int, seq: TCPSeq, dsn: UInt64, length: Int, dataFin: Bool, first: Bool,
                      segmentSize: Int = Int.max, now: Instant) {
        var p = mp.paths[k]
        p.ackPending = false
        if first && length > 0 {
            var off = 0
            while off < length {
                let n = min(length - off, max(segmentSize, 1))
                p.segments.append(SentSegment(seq: seq + UInt32(off), length: UInt32(n), dsn: dsn &+ UInt64(off), sentAt: now,
                                              dataFin: dataFin && off + n == length))
                off += n
            }
            p.sndNxt = seq + UInt32(length)
        }
        if p.rtoAt == nil && length > 0 { p.rtoAt = now + .nanoseconds(Int64(p.rto * 1e9)) }
        stats.dataSegmentsSent &+= 1
        mp.paths[k] = p
    }

    /// A segment with no data (ACK, RST, FIN) on subflow `k`, carrying a DATA_ACK unless other options are given.
    func sendControl(_ c: Connection, _ mp: MPConn, _ k: Int, flags: UInt8, now: Instant,
                             first: MPTCPOption? = nil, second: MPTCPOption? = nil, seq: TCPSeq? = nil,
                             timestamps: Bool = true) {
        let p = mp.paths[k]
        // A pure ACK carries a 4-byte DATA_ACK (the peer expands it, §3.3.1):
        // it leaves room for two SACK blocks beside the timestamps.
        let opt = first ?? .dss(DSS(dataAck: dataAckOption(c), dataAck8: false))
        let ol = pathOptions(mp, p, now: now, first: opt, second: second, timestamps: timestamps)
        originate(p, towards: .uplink(p.uplink), seq: seq ?? p.sndNxt, ack: p.rcvNxt, flags: flags,
                  window: windowToPeer(mp), optionLength: ol)
    }

    func sendAck(_ c: Connection, _ mp: MPConn, _ k: Int, now: Instant) {
        let p = mp.paths[k]
        // After our FIN the ACK goes at FIN+1.
        sendControl(c, mp, k, flags: TCPFlags.ack, now: now, seq: p.finSent ? p.finSeq + 1 : p.sndNxt)
        mp.paths[k].ackPending = false
    }
}

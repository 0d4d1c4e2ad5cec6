import MPTCPStack

// The genuine ends of a fuzzed connection: what the LAN host and the MPTCP
// peer send next, and how they take what the engine sends them. Kept as
// simple as a real end allows: cumulative ACKs (and SACK blocks from the LAN
// host), go-back-N retransmission on a timeout, the peer's data-level
// resends under new subflow sequence numbers, FIN and DATA_FIN, joins
// answered with the right HMAC (or, for some connections, never).

extension LiveFuzz {
    var ms: UInt32 { UInt32(truncatingIfNeeded: now.nanoseconds / 1_000_000) }
    func peerTSval(_ c: FuzzConn) -> UInt32 { c.tsBase &+ ms }
    func hostTSval(_ c: FuzzConn) -> UInt32 { (c.tsBase ^ 0x5A5A_5A5A) &+ ms }
    var mss: Int { 1400 }

    /// The next genuine packet of `c`, if one of its ends has something to
    /// send. `quiet`: no new data or FIN (the settling at the end).
    func genuineNext(_ c: FuzzConn, quiet: Bool) -> (bytes: [UInt8], side: Side, gso: Bool)? {
        guard c.live else { return nil }
        let hostFirst = rng.next() & 1 == 0
        var out: (bytes: [UInt8], side: Side, gso: Bool)?
        if hostFirst {
            out = hostNext(c, quiet: quiet) ?? peerNext(c, quiet: quiet).map { ($0.bytes, $0.side, false) }
        } else {
            out = peerNext(c, quiet: quiet).map { ($0.bytes, $0.side, false) } ?? hostNext(c, quiet: quiet)
        }
        if let o = out {
            if o.side == .lan {
                let flagsAt = o.bytes.first.map { $0 >> 4 == 4 ? 33 : 53 } ?? 0
                if o.bytes.count > flagsAt, o.bytes[flagsAt] & TCPFlags.syn == 0 { c.lastLan = o.bytes }
            } else {
                c.lastUp = (o.bytes, o.side)
                c.history.append((o.bytes, o.side))
                if c.history.count > 8 { c.history.removeFirst() }
            }
        }
        return out
    }

    /// The connection ends reset: counted by the last mutation fed for it before.
    func noteReset(_ c: FuzzConn) {
        guard c.outcome == .live else { return }
        c.outcome = .reset
        report.resetsAfter[c.lastMutation.map { $0.rawValue + 1 } ?? 0] += 1
    }

    // MARK: - The LAN host

    func hostNext(_ c: FuzzConn, quiet: Bool) -> (bytes: [UInt8], side: Side, gso: Bool)? {
        switch c.host.state {
        case .idle:
            guard !c.responder else { return nil }
            c.host.state = .synSent
            c.host.synAt = now
            return (hostSYN(c), .lan, false)
        case .synSent:
            guard now >= c.host.synAt + .seconds(1) else { return nil }
            c.host.synAt = now
            return (hostSYN(c), .lan, false)
        case .synReceived:
            guard c.host.synAckPending || now >= c.host.synAt + .seconds(1) else { return nil }
            c.host.synAckPending = false
            c.host.synAt = now
            var o = OptionBytes()
            o.synOptions(mss: c.v6 ? 1440 : 1460, ts: hostTSval(c), echo: c.host.tsRecent, wscale: 7)
            let s = Seg(src: c.lan, dst: c.peerEndpoint, seq: c.host.iss, ack: c.host.irs &+ 1,
                        flags: TCPFlags.syn | TCPFlags.ack, window: 65_160, options: o.b)
            return (s.build(), .lan, false)
        case .reset:
            return nil
        case .established:
            break
        }
        var h = c.host
        defer { c.host = h }
        // Timeout: back to the first unacknowledged byte (go-back-N).
        let outstanding = h.sndUna < h.sndMax || (h.finSent && !h.finAcked)
        if !outstanding {
            h.lastProgress = now
        } else if now >= h.lastProgress + .milliseconds(400) {
            h.sndNxt = h.sndUna
            if !h.finAcked { h.finSent = false }
            h.lastProgress = now
        }
        let allowance = min(48_000, max(h.sendWindow, mss))
        let inFlight = h.sndNxt - h.sndUna
        let limit = quiet ? h.sndMax : c.upTotal
        func options(room: Int = 40) -> [UInt8] {
            var o = OptionBytes()
            o.timestamps(hostTSval(c), h.tsRecent)
            let nxt = h.rcvNxt
            let blocks = h.rcv.above(nxt, max: 3).map { (h.irs &+ 1 &+ UInt32(truncatingIfNeeded: $0.lo), h.irs &+ 1 &+ UInt32(truncatingIfNeeded: $0.hi)) }
            if !blocks.isEmpty { o.sack(blocks, room: room - o.b.count) }
            return o.b
        }
        // The third ACK goes first (as Linux sends it), but now and then it
        // is as good as lost: the first data then carries the keys.
        let thirdAck = h.sndMax == 0 && h.pendingAck && !rng.oneIn(20)
        if !thirdAck && h.sndNxt < limit && inFlight < allowance && !(h.pendingAck && rng.percent(40)) {
            var len = rng.percent(70) ? mss : 1 + rng.below(mss)
            var gso = false
            if plane == .oneUplink && rng.oneIn(40) { len = mss * (2 + rng.below(5)); gso = true }
            len = min(len, limit - h.sndNxt, max(allowance - inFlight, 1))
            let fin = !quiet && h.sndNxt + len == c.upTotal && !h.finSent && rng.percent(30)
            let s = Seg(src: c.lan, dst: c.peerEndpoint, seq: h.seq(h.sndNxt), ack: h.ackNumber,
                        flags: TCPFlags.ack | TCPFlags.psh | (fin ? TCPFlags.fin : 0), window: 512,
                        options: options(), payload: c.up.bytes(h.sndNxt, len))
            h.sndNxt += len
            h.sndMax = max(h.sndMax, h.sndNxt)
            if fin { h.finSent = true; h.finEver = true }
            h.pendingAck = false
            return (s.build(), .lan, gso && len > mss)
        }
        if h.sndNxt == c.upTotal && !h.finSent && !h.finAcked && (!quiet || h.finEver) && rng.percent(25) {
            let s = Seg(src: c.lan, dst: c.peerEndpoint, seq: h.seq(c.upTotal), ack: h.ackNumber,
                        flags: TCPFlags.fin | TCPFlags.ack, window: 512, options: options())
            h.finSent = true
            h.finEver = true
            h.pendingAck = false
            return (s.build(), .lan, false)
        }
        if h.pendingAck || rng.oneIn(60) {
            h.pendingAck = false
            let s = Seg(src: c.lan, dst: c.peerEndpoint, seq: h.seq(h.sndNxt) &+ (h.finSent ? 1 : 0), ack: h.ackNumber,
                        flags: TCPFlags.ack, window: 512, options: options())
            return (s.build(), .lan, false)
        }
        return nil
    }

    func hostSYN(_ c: FuzzConn) -> [UInt8] {
        var o = OptionBytes()
        o.synOptions(mss: c.v6 ? 1440 : 1460, ts: hostTSval(c), echo: 0, wscale: 7)
        return Seg(src: c.lan, dst: c.peerEndpoint, seq: c.host.iss, ack: 0, flags: TCPFlags.syn, window: 64_240, options: o.b).build()
    }

    /// A packet the engine let through or sent towards the LAN host.
    func lanReceive(_ c: FuzzConn, _ v: TCPPacketView) {
        let t = v.tcp
        var h = c.host
        defer { c.host = h }
        if t.has(TCPFlags.rst) {
            if h.state != .idle { h.state = .reset; noteReset(c) }
            return
        }
        let o = TCPOptionSummary(parsing: t.optionArea)
        if o.has(.timestamps) { h.tsRecent = o.tsValue }
        if t.has(TCPFlags.syn) {
            if t.has(TCPFlags.ack) {
                // The initiator's SYN/ACK.
                if h.state == .synSent && t.ack.rawValue == h.iss &+ 1 {
                    h.irs = t.seq.rawValue
                    h.state = .established
                    h.pendingAck = true
                    h.remoteWScale = o.has(.windowScale) ? min(o.windowScale, 14) : 0
                    h.sendWindow = Int(t.window)
                    h.lastProgress = now
                } else if h.state == .established && t.seq.rawValue == h.irs {
                    h.pendingAck = true
                }
            } else if c.responder && (h.state == .idle || (h.state == .synReceived && t.seq.rawValue == h.irs)) {
                // The peer's SYN, passed on.
                h.irs = t.seq.rawValue
                h.state = .synReceived
                h.synAckPending = true
                h.remoteWScale = o.has(.windowScale) ? min(o.windowScale, 14) : 0
            }
            return
        }
        guard t.has(TCPFlags.ack) else { return }
        if h.state == .synReceived {
            guard t.ack.rawValue == h.iss &+ 1 else { return }
            h.state = .established
            h.lastProgress = now
        }
        guard h.state == .established else { return }
        let a = seqDiff(t.ack.rawValue, h.iss &+ 1)
        if a > h.sndUna {
            if h.finEver && a >= c.upTotal + 1 {
                h.finAcked = true
                h.sndUna = c.upTotal
            } else {
                h.sndUna = min(a, h.sndMax)
            }
            if h.sndNxt < h.sndUna { h.sndNxt = h.sndUna }
            h.lastProgress = now
        }
        h.sendWindow = Int(t.window) << Int(h.remoteWScale)
        let n = t.payload.count
        let off = seqDiff(t.seq.rawValue, h.irs &+ 1)
        if n > 0 {
            if off + n > 0 { h.rcv.insert(max(0, off), off + n) }
            h.pendingAck = true
        }
        if t.has(TCPFlags.fin) {
            if h.finAt == nil && off + n >= 0 { h.finAt = off + n }
            h.pendingAck = true
        }
    }

    // MARK: - The MPTCP peer

    func peerNext(_ c: FuzzConn, quiet: Bool) -> (bytes: [UInt8], side: Side)? {
        guard !c.peer.dead, !c.peer.subs.isEmpty else { return nil }
        // Responder role: the peer opens the connection.
        if c.peer.subs[0].state == .synSent {
            guard c.peer.subs[0].synAt.nanoseconds == 0 || now >= c.peer.subs[0].synAt + .seconds(1) else { return nil }
            c.peer.subs[0].synAt = now
            var o = OptionBytes()
            o.synOptions(mss: c.v6 ? 1440 : 1460, ts: peerTSval(c), echo: 0, wscale: 7)
            o.add(.mpCapable(MPCapable(version: 1, flags: capableFlags(c))))
            let sub = c.peer.subs[0]
            return (Seg(src: sub.local, dst: sub.remote, seq: sub.iss, ack: 0, flags: TCPFlags.syn, window: 64_240, options: o.b).build(), sub.side)
        }
        // Handshake answers first.
        for k in c.peer.subs.indices where c.peer.subs[k].synAckPending {
            c.peer.subs[k].synAckPending = false
            return (peerSynAck(c, k), c.peer.subs[k].side)
        }
        if c.peer.thirdAckPending {
            c.peer.thirdAckPending = false
            let sub = c.peer.subs[0]
            var o = OptionBytes()
            o.timestamps(peerTSval(c), sub.tsRecent)
            o.add(.mpCapable(MPCapable(version: 1, flags: capableFlags(c), senderKey: c.peerKey, receiverKey: c.key)))
            return (Seg(src: sub.local, dst: sub.remote, seq: sub.iss &+ 1, ack: sub.irs &+ 1, flags: TCPFlags.ack, window: 512,
                        options: o.b).build(), sub.side)
        }
        for k in c.peer.subs.indices where c.peer.subs[k].fourthAckPending {
            c.peer.subs[k].fourthAckPending = false
            return (peerAck(c, k), c.peer.subs[k].side)
        }
        for k in c.peer.subs.indices where c.peer.subs[k].echo != nil && c.peer.subs[k].state == .established {
            let a = c.peer.subs[k].echo!
            c.peer.subs[k].echo = nil
            return (peerAck(c, k, option: .addAddr(a), dss: false), c.peer.subs[k].side)
        }
        guard c.peer.established else { return nil }
        let live = c.peer.subs.indices.filter { c.peer.subs[$0].state == .established && !c.peer.subs[$0].finSent }
        // Subflow-level timeout: the first unacknowledged chunk again, at its place.
        for k in live {
            let s = c.peer.subs[k]
            guard seqDiff(s.sndNxt, s.sndUna) > 0, now >= s.lastProgress + .milliseconds(500),
                  let ch = s.chunks.first(where: { seqDiff($0.ssn &+ UInt32($0.length), s.sndUna) > 0 }) else { continue }
            c.peer.subs[k].lastProgress = now
            return (peerData(c, k, ch), s.side)
        }
        // Data-level timeout: resent under new subflow sequence numbers.
        if c.peer.dataUna < c.peer.dataNxt, now >= c.peer.lastDataProgress + .milliseconds(1500), let k = live.randomElement(using: &rng) {
            c.peer.lastDataProgress = now
            return (peerResend(c, k), c.peer.subs[k].side)
        }
        if c.peer.dataFinSent && !c.peer.dataFinAcked && now >= c.peer.dataFinAt + .seconds(1), let k = live.randomElement(using: &rng) {
            c.peer.dataFinAt = now
            return (peerDataFin(c, k), c.peer.subs[k].side)
        }
        let acks = c.peer.subs.indices.filter { c.peer.subs[$0].pendingAck && c.peer.subs[$0].state == .established }
        if !quiet, !live.isEmpty, c.peer.dataNxt < c.downTotal, c.peer.dataNxt - c.peer.dataUna < 48_000, acks.isEmpty || rng.percent(60) {
            let k = live.randomElement(using: &rng)!
            if c.peer.dataUna < c.peer.dataNxt && rng.oneIn(150) {
                return (peerResend(c, k), c.peer.subs[k].side) // a data-level resend without a timeout
            }
            let len = min(rng.percent(70) ? mss : 1 + rng.below(mss), c.downTotal - c.peer.dataNxt, 48_000 - (c.peer.dataNxt - c.peer.dataUna))
            let ch = Chunk(ssn: c.peer.subs[k].sndNxt, offset: c.peer.dataNxt, length: len)
            record(c, k, ch)
            c.peer.dataNxt += len
            return (peerData(c, k, ch), c.peer.subs[k].side)
        }
        if !quiet, !live.isEmpty, c.peer.dataNxt == c.downTotal, !c.peer.dataFinSent, rng.percent(25) {
            let k = live.randomElement(using: &rng)!
            c.peer.dataFinSent = true
            c.peer.dataFinAt = now
            return (peerDataFin(c, k), c.peer.subs[k].side)
        }
        if c.peer.dataFinAcked && c.peer.lanFinReceived, let k = live.first {
            // Both DATA_FINs are through: FIN on every subflow.
            var s = c.peer.subs[k]
            let seg = Seg(src: s.local, dst: s.remote, seq: s.seqNext, ack: s.ackNumber, flags: TCPFlags.fin | TCPFlags.ack,
                          window: 512, options: peerOptions(c, s, dss: true))
            s.finSent = true
            s.pendingAck = false
            c.peer.subs[k] = s
            return (seg.build(), s.side)
        }
        if let k = acks.first {
            return (peerAck(c, k), c.peer.subs[k].side)
        }
        return nil
    }

    func capableFlags(_ c: FuzzConn) -> UInt8 {
        MPCapable.flagHMACSHA256 | (c.checksums ? MPCapable.flagChecksumRequired : 0)
    }

    /// The DATA_ACK the peer sends: what it has of the LAN host's stream.
    func peerDataAck(_ c: FuzzConn) -> UInt64 {
        c.L &+ 1 &+ UInt64(c.peer.dataRcvEnd) &+ (c.peer.lanFinReceived ? 1 : 0)
    }

    func peerOptions(_ c: FuzzConn, _ s: PeerSub, dss: Bool) -> [UInt8] {
        var o = OptionBytes()
        o.timestamps(peerTSval(c), s.tsRecent)
        if dss { o.add(.dss(DSS(dataAck: peerDataAck(c), dataAck8: !rng.oneIn(8)))) }
        return o.b
    }

    func peerAck(_ c: FuzzConn, _ k: Int, option: MPTCPOption? = nil, dss: Bool = true) -> [UInt8] {
        let s = c.peer.subs[k]
        c.peer.subs[k].pendingAck = false
        var o = OptionBytes()
        o.timestamps(peerTSval(c), s.tsRecent)
        if let option { o.add(option) } else if dss { o.add(.dss(DSS(dataAck: peerDataAck(c), dataAck8: !rng.oneIn(8)))) }
        return Seg(src: s.local, dst: s.remote, seq: s.seqNext, ack: s.ackNumber, flags: TCPFlags.ack, window: 512, options: o.b).build()
    }

    func peerSynAck(_ c: FuzzConn, _ k: Int) -> [UInt8] {
        let s = c.peer.subs[k]
        var o = OptionBytes()
        o.synOptions(mss: c.v6 ? 1440 : 1460, ts: peerTSval(c), echo: s.tsRecent, wscale: 7)
        if k == 0 && !c.responder {
            o.add(.mpCapable(MPCapable(version: 1, flags: capableFlags(c), senderKey: c.peerKey)))
        } else {
            let mac = MPTCPCrypto.joinHMAC(keyLocal: c.peerKey, keyRemote: c.key, nonceLocal: s.peerNonce, nonceRemote: s.engineNonce)
            o.add(.mpJoin(.synAck(flags: 0, addressID: 0, truncatedHMAC: mac.a, nonce: s.peerNonce)))
        }
        return Seg(src: s.local, dst: s.remote, seq: s.iss, ack: s.irs &+ 1, flags: TCPFlags.syn | TCPFlags.ack,
                   window: 65_160, options: o.b).build()
    }

    func record(_ c: FuzzConn, _ k: Int, _ ch: Chunk) {
        c.peer.subs[k].chunks.append(ch)
        c.peer.subs[k].sndNxt = ch.ssn &+ UInt32(ch.length)
        if c.peer.subs[k].chunks.count > 1_024 { c.peer.subs[k].chunks.removeFirst(256) }
        if seqDiff(c.peer.subs[k].sndNxt, c.peer.subs[k].sndUna) == ch.length { c.peer.subs[k].lastProgress = now }
    }

    /// A data segment carrying `ch` on subflow `k`, with its mapping (the
    /// first data in the responder role with MP_CAPABLE while no DSS has come back).
    func peerData(_ c: FuzzConn, _ k: Int, _ ch: Chunk) -> [UInt8] {
        let s = c.peer.subs[k]
        let payload = c.down.bytes(ch.offset, ch.length)
        let dsn = c.R &+ 1 &+ UInt64(ch.offset)
        var o = OptionBytes()
        o.timestamps(peerTSval(c), s.tsRecent)
        if c.responder && !c.peer.sawDSS && k == 0 && ch.offset == 0 && ch.ssn == 1 {
            let cs = c.checksums ? payload.withUnsafeBytes { DSSChecksum.compute(dsn: dsn, subflowSeq: 1, length: UInt16(ch.length), payload: $0) } : nil
            o.add(.mpCapable(MPCapable(version: 1, flags: capableFlags(c), senderKey: c.peerKey, receiverKey: c.key,
                                       dataLevelLength: UInt16(ch.length), checksum: cs)))
        } else {
            let cs = c.checksums ? payload.withUnsafeBytes { DSSChecksum.compute(dsn: dsn, subflowSeq: ch.ssn, length: UInt16(ch.length), payload: $0) } : nil
            o.add(.dss(DSS(dataAck: peerDataAck(c), dataAck8: !rng.oneIn(8),
                           mapping: DSSMapping(dsn: dsn, subflowSeq: ch.ssn, length: UInt16(ch.length), checksum: cs), dsn8: !rng.oneIn(8))))
        }
        c.peer.subs[k].pendingAck = false
        return Seg(src: s.local, dst: s.remote, seq: s.iss &+ ch.ssn, ack: s.ackNumber, flags: TCPFlags.ack | TCPFlags.psh,
                   window: 512, options: o.b, payload: payload).build()
    }

    /// Unacknowledged data from the DATA_ACK on, again, on subflow `k` under
    /// new subflow sequence numbers (a data-level retransmission).
    func peerResend(_ c: FuzzConn, _ k: Int) -> [UInt8] {
        let from = c.peer.dataUna
        let len = min(1 + rng.below(mss), c.peer.dataNxt - from)
        let ch = Chunk(ssn: c.peer.subs[k].sndNxt, offset: from, length: len)
        record(c, k, ch)
        report.dataLevelResends += 1
        return peerData(c, k, ch)
    }

    func peerDataFin(_ c: FuzzConn, _ k: Int) -> [UInt8] {
        let s = c.peer.subs[k]
        var o = OptionBytes()
        o.timestamps(peerTSval(c), s.tsRecent)
        o.add(.dss(DSS(dataAck: peerDataAck(c), mapping: DSSMapping(dsn: c.R &+ 1 &+ UInt64(c.downTotal), subflowSeq: 0, length: 1),
                       dataFin: true)))
        c.peer.subs[k].pendingAck = false
        return Seg(src: s.local, dst: s.remote, seq: s.seqNext, ack: s.ackNumber, flags: TCPFlags.ack, window: 512, options: o.b).build()
    }

    /// A packet the engine let through or sent towards the peer, on its subflow `k`.
    func peerReceive(_ c: FuzzConn, _ k: Int, _ v: TCPPacketView, side: Side) {
        guard !c.peer.dead, k < c.peer.subs.count else { return }
        let t = v.tcp
        let o = TCPOptionSummary(parsing: t.optionArea)
        var s = c.peer.subs[k]
        defer { if !c.peer.dead, k < c.peer.subs.count { c.peer.subs[k] = s } }
        if o.has(.timestamps) { s.tsRecent = o.tsValue }
        if peerResetOrFastclose(c, k, t, o, &s) { return }
        let syn = t.has(TCPFlags.syn), ack = t.has(TCPFlags.ack)
        // A join SYN on a 4-tuple the engine used before: a new subflow.
        if k > 0 && syn && !ack && t.seq.rawValue != s.irs {
            var fresh = PeerSub(state: .ignored, local: s.local, remote: s.remote, side: side, iss: rng.u32())
            fresh.irs = t.seq.rawValue
            s = fresh
        }
        switch s.state {
        case .ignored:
            guard syn && !ack, case let .syn(_, _, _, nonce)? = o.has(.mpJoin) ? o.mpJoin : nil else { return }
            if c.answersJoins && c.peer.established {
                s.state = .joinReceived
                s.engineNonce = nonce
                s.peerNonce = rng.u32()
                s.synAckPending = true
                s.remoteWScale = o.has(.windowScale) ? o.windowScale : 0
            }
            return
        case .joinReceived:
            if syn && !ack { s.synAckPending = true; return }
            guard ack, !syn, t.ack.rawValue == s.iss &+ 1 else { return }
            guard case let .ack(_, mac)? = o.has(.mpJoin) ? o.mpJoin : nil else { return }
            let expect = MPTCPCrypto.joinHMAC(keyLocal: c.key, keyRemote: c.peerKey, nonceLocal: s.engineNonce, nonceRemote: s.peerNonce)
            if mac != expect { fail("connection \(c.id): the join's third ACK carries HMAC \(mac), expected \(expect)") }
            s.state = .established
            s.fourthAckPending = true
            s.lastProgress = now
            return
        case .synSent:
            // Responder: the LAN host's SYN/ACK with the engine's key.
            guard syn && ack && t.ack.rawValue == s.iss &+ 1 else { return }
            guard o.has(.mpCapable), o.mpCapable.senderKey != nil, c.engineKey != nil else {
                c.peer.dead = true // no MPTCP: a fallback the fuzz does not follow
                c.outcome = .abandoned
                return
            }
            s.irs = t.seq.rawValue
            s.state = .established
            s.remoteWScale = o.has(.windowScale) ? o.windowScale : 0
            s.lastProgress = now
            c.peer.established = true
            c.peer.thirdAckPending = true
            return
        case .synReceived:
            // Initiator: the client's SYN (with MP_CAPABLE), then the third ACK.
            if syn && !ack {
                if t.seq.rawValue == s.irs { s.synAckPending = true; s.remoteWScale = o.has(.windowScale) ? o.windowScale : 0 }
                return
            }
            guard ack && !syn && t.ack.rawValue == s.iss &+ 1 else { return }
            guard c.engineKey != nil else { return }
            if o.has(.mpCapable), let r = o.mpCapable.receiverKey, r != c.peerKey {
                fail("connection \(c.id): the engine's MP_CAPABLE echoes key \(r), the peer's is \(c.peerKey)")
            }
            s.state = .established
            s.pendingAck = true // the first DSS: it has the engine's key
            s.lastProgress = now
            c.peer.established = true
            c.peer.lastDataProgress = now
        case .established:
            if syn {
                if ack && k == 0 && c.responder { c.peer.thirdAckPending = true }
                return
            }
        case .reset:
            return
        }
        // An established subflow.
        if ack {
            let a = seqDiff(t.ack.rawValue, s.iss)
            if a > Int(s.sndUna) {
                s.sndUna = UInt32(min(a, Int(s.sndNxt)))
                s.lastProgress = now
            }
        }
        if o.has(.dss) {
            c.peer.sawDSS = true
            if let da = o.dss.dataAck {
                let full = o.dss.dataAckIs8 ? da : DataSeq.expand(low32: UInt32(truncatingIfNeeded: da), near: DataSeq(c.R &+ 1 &+ UInt64(c.peer.dataUna))).rawValue
                let off = Int(Int64(bitPattern: full &- c.R &- 1))
                if off > c.peer.dataUna {
                    if c.peer.dataFinSent && off >= c.downTotal + 1 {
                        c.peer.dataFinAcked = true
                        c.peer.dataUna = c.downTotal
                    } else {
                        c.peer.dataUna = min(off, c.peer.dataNxt)
                    }
                    c.peer.lastDataProgress = now
                }
            }
        }
        let n = t.payload.count
        let rel = t.seq.rawValue &- s.irs
        if n > 0 {
            let r = Int(Int32(bitPattern: rel)) - 1
            if r + n > 0 { s.rcv.insert(max(0, r), r + n) }
            s.pendingAck = true
            var doff: Int?
            if o.has(.dss), let m = o.dss.mapping, m.length > 0 {
                let dsn = o.dss.dsnIs8 ? m.dsn : DataSeq.expand(low32: UInt32(truncatingIfNeeded: m.dsn),
                                                                near: DataSeq(c.L &+ 1 &+ UInt64(c.peer.dataRcvEnd))).rawValue
                doff = Int(Int64(bitPattern: dsn &- c.L &- 1)) &+ seqDiff(rel, m.subflowSeq)
            } else if k == 0, o.has(.mpCapable), (o.mpCapable.dataLevelLength ?? 0) > 0 {
                doff = r
            }
            if let d = doff, d > -n, d < 1 << 40 { c.peer.dataRcv.insert(max(0, d), d + n) }
        }
        if o.has(.dss), o.dss.dataFin, let m = o.dss.mapping {
            let dsn = o.dss.dsnIs8 ? m.dsn : DataSeq.expand(low32: UInt32(truncatingIfNeeded: m.dsn),
                                                            near: DataSeq(c.L &+ 1 &+ UInt64(c.peer.dataRcvEnd))).rawValue
            let fin = Int(Int64(bitPattern: dsn &- c.L &- 1)) &+ Int(m.length) &- 1
            if c.peer.lanFinAt == nil && fin >= 0 && fin < 1 << 40 { c.peer.lanFinAt = fin }
            s.pendingAck = true
        }
        if t.has(TCPFlags.fin) {
            if Int(Int32(bitPattern: rel)) - 1 + n == s.rcvEnd { s.finRcvd = true }
            s.pendingAck = true
        }
        if n == 0 && !t.has(TCPFlags.fin) && seqDiff(t.seq.rawValue, s.irs &+ 1 &+ UInt32(truncatingIfNeeded: s.rcvEnd)) < 0 {
            s.pendingAck = true // a keepalive probe: answered
        }
        if o.has(.addAddr) && !o.addAddr.echo {
            s.echo = AddAddr(echo: true, addressID: o.addAddr.addressID, address: o.addAddr.address, port: o.addAddr.port)
        }
    }

    /// A RST (the subflow, or with our key the connection) or MP_FASTCLOSE
    /// from the engine: true when it ended the segment's handling.
    private func peerResetOrFastclose(_ c: FuzzConn, _ k: Int, _ t: TCPSegmentView, _ o: TCPOptionSummary, _ s: inout PeerSub) -> Bool {
        if t.has(TCPFlags.rst) {
            if o.has(.mpFastclose) && o.mpFastclose.receiverKey == c.peerKey {
                c.peer.dead = true
                noteReset(c)
                return true
            }
            if s.state != .ignored { s.state = .reset }
            c.peer.subs[k] = s
            if !c.peer.subs.contains(where: { $0.state == .established || $0.state == .synSent || $0.state == .synReceived }) {
                c.peer.dead = true
                noteReset(c)
            }
            return true
        }
        if o.has(.mpFastclose) && o.mpFastclose.receiverKey == c.peerKey {
            c.peer.dead = true
            noteReset(c)
            return true
        }
        return false
    }
}

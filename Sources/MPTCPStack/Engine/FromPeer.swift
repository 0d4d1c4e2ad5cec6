// One uplink, the peer's segments: validated, then translated by rewriting
// their headers (mappings placed in the client's sequence space, DATA_ACK
// turned into the client's ACK, DATA_FIN into FIN); fallback and aborts.

extension Engine {
    // MARK: - Peer (uplink) side

    func fromPeer(_ v: TCPPacketView, handle h: Int, subflow k: Int, uplink u: UInt8, now: Instant, gso: Bool) -> Verdict {
        // (Before the copy below, whose write-back would undo what it records.)
        if conns[h]!.phase == .native { return nativePacket(v, h, fromLAN: false, uplink: u, now: now) }
        conns[h]!.lastSeen = now
        let t = v.tcp
        let opts = TCPOptionSummary(parsing: t.optionArea)
        var c = conns[h]!
        defer { if conns[h]?.generation == c.generation { conns[h] = c } }
        if c.mp != nil && !c.mp!.paths.isEmpty && c.phase != .fallback {
            return mpFromPeer(v, &c, h, k, opts: opts, now: now, gso: gso)
        }

        if let verdict = peerHandshake(v, &c, h, k, uplink: u, opts: opts, now: now, gso: gso) { return verdict }

        // Nothing acts before it is validated (RFC 793 §3.3, RFC 5961, RFC 8684).
        var peerDataAck: UInt64?
        var mappedDSN: UInt64?
        if let verdict = validatePeer(v, &c, h, opts: opts, now: now, gso: gso, peerDataAck: &peerDataAck, mappedDSN: &mappedDSN) {
            return verdict
        }
        let n = UInt32(t.payload.count)
        let rel = t.seq.rawValue &- c.serverISN.rawValue
        if c.initial.timestamps && opts.has(.timestamps) { c.initial.remoteTSval = opts.tsValue }
        var end = t.seq + n
        if t.has(TCPFlags.fin) { end = end + 1 }
        if c.initial.rcvMax < end { c.initial.rcvMax = end }

        var hadSignalling = false
        if let verdict = peerDataLevel(v, &c, h, opts: opts, now: now, gso: gso, peerDataAck: peerDataAck, mappedDSN: mappedDSN,
                                       rel: rel, hadSignalling: &hadSignalling) {
            return verdict
        }

        // Sequence number towards the client: from the DSN of the first byte.
        var seq = t.seq
        var flags = t.flags & ~TCPFlags.fin
        let carriesDataFin = opts.has(.dss) && opts.dss.dataFin
        if n > 0 {
            guard let dsn = c.initial.mapping.dsn(atRelative: rel) else {
                return drop(.unmapped)
            }
            seq = c.clientSeq(ofDownloadDSN: dsn)
            if let f = c.peerDataFinDSN, dsn &+ UInt64(n) == f { flags |= TCPFlags.fin; c.peerFinForwarded = true }
        } else if let f = c.peerDataFinDSN, carriesDataFin || (t.has(TCPFlags.fin) && !c.peerFinAcked) {
            // The DATA_FIN (or the subflow FIN while the client has not yet
            // acknowledged it): a FIN for the client at the DATA_FIN's place.
            seq = c.clientSeq(ofDownloadDSN: f)
            flags |= TCPFlags.fin
            c.peerFinForwarded = true
        } else {
            // A pure ACK, at the place the peer sent it relative to its next
            // sequence number: normally 0, but -1 for a keepalive or
            // zero-window probe (SND.NXT - 1), which the client must see as
            // old so that it answers.
            // (A subflow FIN turned into a pure ACK goes at the next sequence.)
            let offset = t.has(TCPFlags.fin) ? 0 : t.seq - c.initial.rcvMax
            seq = offset < 0 && offset > -(1 << 20) ? c.deliveredMax - UInt32(-offset) : c.deliveredMax
        }
        let segEnd = seq + n + ((flags & TCPFlags.fin) != 0 ? 1 : 0)
        if c.deliveredMax < segEnd { c.deliveredMax = segEnd }

        let ack = c.havePeerDataAck ? c.clientAck(ofDataAck: c.peerDataAck) : t.ack
        if hadSignalling && n == 0 && flags & TCPFlags.fin == 0 && !opts.has(.dss) {
            // Only ADD_ADDR / REMOVE_ADDR / MP_PRIO: nothing for the client
            // (forwarding it would look like a duplicate ACK).
            return drop(.signallingOnly)
        }
        if t.has(TCPFlags.fin) && flags & TCPFlags.fin == 0 {
            // The peer's subflow FIN after the client already has the FIN
            // that stood for the DATA_FIN: the client will not acknowledge
            // it again, so the translator does, at subflow level.
            ackPeer(c, ack: c.initial.rcvMax)
            if c.clientFinAcked { c.initial.closed = true }
        }
        if c.clientFinAcked && n == 0 && flags & TCPFlags.fin == 0 && c.clientFinAckForwarded {
            // The client's FIN is acknowledged and it has been told: a
            // further pure ACK has nothing for it, and a client that has
            // already closed would answer it with a RST.
            return drop(.closed)
        }
        if c.clientFinAcked { c.clientFinAckForwarded = true }
        closeIfDone(&c, h, now)
        stats.translatedToLAN &+= 1
        return emit(v, seq: seq, ack: ack, flags: flags, window: t.window,
                    policy: OptionPolicy(dropMPTCP: true), added: AddedOptions(), gso: gso)
    }

    /// The connection's handshake phases (and fallback): the verdict when
    /// the segment ends there, nil when it goes on as an established one's.
    private func peerHandshake(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, _ k: Int, uplink u: UInt8,
                               opts: TCPOptionSummary, now: Instant, gso: Bool) -> Verdict? {
        let t = v.tcp
        switch c.phase {
        case .fallback:
            stats.passedFallback &+= 1
            return .accept
        case .native:
            return .accept // (handled above)
        case .synReceived:
            if t.has(TCPFlags.syn) {
                // The peer repeats its SYN: on to the LAN host again.
                return t.seq == c.serverISN ? rewritePeerSYN(v, uplink: u, gso: gso) : .accept
            }
            if t.has(TCPFlags.rst) {
                // Acted on only at the next sequence number after the SYN (RFC 5961 §3.2).
                guard t.seq == c.serverISN + 1 else { stats.rstIgnored &+= 1; return drop(.invalid) }
                conns[h] = c; close(h, now: now, reset: true); c = conns[h]!; return .accept
            }
            guard c.lanSynAckSeen, t.has(TCPFlags.ack), t.ack == c.clientISN + 1 else { return drop(.badMPTCP) }
            guard opts.has(.mpCapable), let key = opts.mpCapable.senderKey, opts.mpCapable.receiverKey == c.localKey else {
                // The third ACK without our key echoed: MPTCP was lost on
                // the way (§3.1); plain TCP for the connection's life.
                stats.connectionsFallback &+= 1
                return fallBack(h)
            }
            c.remoteKey = key
            c.remoteIDSN = MPTCPCrypto.idsn(key: key)
            c.fullyEstablished = true // both keys are known to both ends
            c.initial.mapping = PeerMapping(dsn: c.remoteIDSN &+ 1, ssn: 1, length: 0, dataFin: false, valid: false)
            if let len = opts.mpCapable.dataLevelLength, len > 0 {
                // Data on the third ACK: DSN = IDSN + 1, subflow seq 1 (§3.1).
                c.initial.mapping = PeerMapping(dsn: c.remoteIDSN &+ 1, ssn: 1, length: UInt32(len), dataFin: false, valid: true)
            }
            c.phase = .established
            stats.connectionsMPTCP &+= 1
            journal(h)
            if c.mp != nil {
                mpEstablishedResponder(&c, third: t, opts: opts, uplink: u, now: now)
                return mpFromPeer(v, &c, h, k, opts: opts, now: now, gso: gso)
            }
        case .synSent:
            let acksSYN = t.has(TCPFlags.ack) && (t.ack == c.clientISN + 1 || (c.synDataLength > 0 && t.ack == c.clientISN + 1 + c.synDataLength))
            guard t.has(TCPFlags.syn) && acksSYN else {
                // In SYN-SENT a RST counts only when it acknowledges our SYN (RFC 9293 §3.10.7.3).
                if t.has(TCPFlags.rst) {
                    guard acksSYN else { stats.rstIgnored &+= 1; return drop(.invalid) }
                    conns[h] = c; close(h, now: now, reset: true); c = conns[h]!
                }
                return .accept
            }
            guard opts.has(.mpCapable), opts.mpCapable.version == 1, let key = opts.mpCapable.senderKey,
                  opts.mpCapable.hmacSHA256 else {
                // A plain TCP server (or MPTCP stripped on the way): plain TCP
                // for the connection's whole life (§3.7).
                stats.connectionsFallback &+= 1
                return fallBack(h)
            }
            if c.synDataLength > 0 && t.ack == c.clientISN + 1 + c.synDataLength {
                // The peer took the SYN's data (TFO): it precedes IDSN + 1
                // and relative subflow sequence 1 (Linux: the subflow's
                // sequence offset moves past it), so our mappings start after it.
                c.clientISN = c.clientISN + c.synDataLength
                c.initial.localISN = c.clientISN
            }
            c.synDataLength = 0
            c.remoteKey = key
            c.remoteIDSN = MPTCPCrypto.idsn(key: key)
            c.serverISN = t.seq
            c.initial.remoteISN = t.seq
            c.initial.remoteISNKnown = true
            c.initial.rcvMax = t.seq + 1
            c.deliveredMax = t.seq + 1
            c.initial.mapping = PeerMapping(dsn: c.remoteIDSN &+ 1, ssn: 1, length: 0, dataFin: false, valid: false)
            c.checksums = config.requestChecksums || opts.mpCapable.checksumRequired
            c.initial.timestamps = opts.has(.timestamps)
            c.initial.remoteTSval = opts.tsValue
            c.initial.localTSval = opts.tsEchoReply
            c.initial.sndMax = c.clientISN + 1
            c.phase = .established
            stats.connectionsMPTCP &+= 1
            journal(h)
            if c.mp != nil { mpEstablished(&c, synAck: t, opts: opts, uplink: u, now: now) }
            return rewriteSynAck(v, uplink: u, gso: gso)
        case .established, .closed:
            if t.has(TCPFlags.syn) {
                // A retransmitted SYN/ACK: rewrite it the same way.
                guard t.seq == c.serverISN else { return .accept }
                return rewriteSynAck(v, uplink: u, gso: gso)
            }
        }
        return nil
    }

    /// Validation before anything acts (RFC 793 §3.3, RFC 5961, RFC 8684):
    /// RST exactness, the receive window, MP_FASTCLOSE's key, DATA_ACK and
    /// mapping within the data level (their 64-bit values out in
    /// `peerDataAck` and `mappedDSN`); a reset that acts resets the client.
    private func validatePeer(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, opts: TCPOptionSummary, now: Instant,
                              gso: Bool, peerDataAck: inout UInt64?, mappedDSN: inout UInt64?) -> Verdict? {
        let t = v.tcp
        let n = UInt32(t.payload.count)
        if t.has(TCPFlags.rst) && !peerRSTExact(c, seq: t.seq) {
            if peerSegmentAcceptable(c, seq: t.seq, length: 0) {
                stats.rstChallenged &+= 1
                challenge(&c, now: now)
            } else {
                stats.rstIgnored &+= 1
            }
            return drop(.invalid)
        }
        if !t.has(TCPFlags.rst) && !peerSegmentAcceptable(c, seq: t.seq, length: n + (t.has(TCPFlags.fin) ? 1 : 0)) {
            stats.outOfWindow &+= 1
            challenge(&c, now: now) // an unacceptable segment is answered with an ACK
            return drop(.invalid)
        }
        if opts.has(.mpFastclose) && opts.mpFastclose.receiverKey != c.localKey {
            stats.fastcloseRejected &+= 1 // §3.5: only with our key
            return drop(.invalid)
        }
        if opts.has(.dss) {
            let d = opts.dss
            if let a = d.dataAck {
                let full = d.dataAckIs8 ? a : DataSeq.expand(low32: UInt32(truncatingIfNeeded: a),
                                                              near: DataSeq(c.havePeerDataAck ? c.peerDataAck : c.localIDSN &+ 1)).rawValue
                // Only for data we sent (a DATA_ACK going back is a late segment's: ignored below).
                guard c.lastUploadDSN &- full < (1 << 63) else { stats.dataAckInvalid &+= 1; return drop(.invalid) }
                peerDataAck = full
            }
            if let m = d.mapping {
                let near = c.initial.mapping.valid ? c.initial.mapping.dsn : c.remoteIDSN &+ 1
                let dsn = d.dsnIs8 ? m.dsn : DataSeq.expand(low32: UInt32(truncatingIfNeeded: m.dsn), near: DataSeq(near)).rawValue
                guard downloadInWindow(c, dsn: dsn, length: UInt64(m.length)) else { stats.dataOutOfWindow &+= 1; return drop(.invalid) }
                mappedDSN = dsn
            }
        }

        if t.has(TCPFlags.rst) || opts.has(.mpFastclose) {
            if opts.has(.mpFastclose) { stats.fastcloseReceived &+= 1 }
            let wasClosed = c.phase == .closed
            conns[h] = c
            close(h, now: now, reset: true)
            c = conns[h]!
            if wasClosed && !t.has(TCPFlags.rst) { return drop(.closed) }
            // Reset the client at the sequence it expects next.
            let seq = c.deliveredMax
            stats.translatedToLAN &+= 1
            let ack = c.havePeerDataAck ? c.clientAck(ofDataAck: c.peerDataAck) : t.ack
            return emit(v, seq: seq, ack: ack, flags: TCPFlags.rst | TCPFlags.ack,
                        window: 0, policy: OptionPolicy(dropMPTCP: true), added: AddedOptions(), gso: gso,
                        dropPayload: true)
        }
        return nil
    }

    /// The data level: DATA_ACK, the mapping (checksum, DATA_FIN, an
    /// infinite mapping's fallback), MP_CAPABLE data, a stripped MPTCP,
    /// ADD_ADDR echoed; the verdict when the segment ends there.
    private func peerDataLevel(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, opts: TCPOptionSummary, now: Instant,
                               gso: Bool, peerDataAck: UInt64?, mappedDSN: UInt64?, rel: UInt32,
                               hadSignalling: inout Bool) -> Verdict? {
        let t = v.tcp
        let n = UInt32(t.payload.count)
        if opts.has(.dss) {
            c.fullyEstablished = true
            let d = opts.dss
            if let full = peerDataAck {
                if !c.havePeerDataAck || full &- c.peerDataAck < (1 << 62) {
                    c.peerDataAck = full
                    c.havePeerDataAck = true
                }
                if let cf = c.clientFinSeq, c.clientAck(ofDataAck: c.peerDataAck) == cf + 1 { c.clientFinAcked = true }
            }
            if let m = d.mapping, let dsn = mappedDSN {
                if c.checksums, let cs = m.checksum, Int(m.length) == t.payload.count, n > 0,
                   !DSSChecksum.verify(dsn: dsn, subflowSeq: m.subflowSeq, length: m.length, checksum: cs, payload: t.payload) {
                    stats.dssChecksumFailed &+= 1
                    return drop(.badMPTCP)
                }
                if d.dataFin && m.length == 1 && n == 0 {
                    c.peerDataFinDSN = dsn // DATA_FIN alone (§3.3.3)
                } else {
                    if m.length == 0 {
                        // Infinite mapping: the peer falls back to TCP (§3.7).
                        // Passing the subflow on untouched is exact only while
                        // its sequence numbers are the client's (no data-level
                        // resend): then the connection is forgotten, and if the
                        // peer goes on with MPTCP (a forged fallback) its next
                        // packet is an unknown connection's, reset both ways.
                        // Otherwise both ends are reset here.
                        // (Its DSN is that of this segment's first byte; its
                        // subflow sequence number may be 0.)
                        let identity = UInt32(truncatingIfNeeded: dsn &- c.remoteIDSN)
                        guard !c.peerRegions.remapped, identity == rel || identity == m.subflowSeq else {
                            return abortBoth(v, &c, h, now: now, gso: gso)
                        }
                        stats.connectionsFallback &+= 1
                        resets.fellBack(c.key, peerKey: c.remoteKey)
                        return fallBack(h)
                    }
                    c.initial.mapping = PeerMapping(dsn: dsn, ssn: m.subflowSeq, length: UInt32(m.length), dataFin: d.dataFin, valid: true)
                    c.peerRegions.note(ssnRel: m.subflowSeq, dsn: dsn, idsn: c.remoteIDSN)
                    if d.dataFin { c.peerDataFinDSN = dsn &+ UInt64(m.length) &- 1 }
                }
            }
        } else if opts.has(.mpCapable), c.fullyEstablished, n > 0, rel == 1, let len = opts.mpCapable.dataLevelLength, len > 0 {
            // Responder role: the peer's first data with MP_CAPABLE (both
            // keys and the data-level length) because it has not yet seen a
            // DSS from us: DSN = IDSN + 1 at subflow sequence 1 (§3.1).
            if c.checksums, let cs = opts.mpCapable.checksum, Int(len) == t.payload.count,
               !DSSChecksum.verify(dsn: c.remoteIDSN &+ 1, subflowSeq: 1, length: len, checksum: cs, payload: t.payload) {
                stats.dssChecksumFailed &+= 1
                return drop(.badMPTCP)
            }
            c.initial.mapping = PeerMapping(dsn: c.remoteIDSN &+ 1, ssn: 1, length: UInt32(len), dataFin: false, valid: true)
        } else if !c.fullyEstablished && n > 0 && !opts.present.contains(.mpCapable) {
            // Data with no MPTCP option before any DSS: a middlebox removed
            // MPTCP. Continue as plain TCP (§3.7).
            stats.connectionsFallback &+= 1
            return fallBack(h)
        }
        if !opts.present.isDisjoint(with: .signalling) { hadSignalling = true }
        if opts.has(.addAddr) && !opts.addAddr.echo {
            // One uplink: nothing to join it from, but the announcement is
            // echoed (§3.4.1), or the peer keeps sending it.
            let a = opts.addAddr
            stats.addAddrReceived &+= 1
            if a.hmac == MPTCPCrypto.addAddrHMAC(senderKey: c.remoteKey, receiverKey: c.localKey, addressID: a.addressID,
                                                 address: a.address, port: a.port) {
                let ack = c.haveDataAckToPeer ? subflowAck(&c, clientAck: c.clientSeq(ofDownloadDSN: c.dataAckToPeer)) : c.initial.rcvMax
                ackPeer(c, ack: ack, option: .addAddr(AddAddr(echo: true, addressID: a.addressID, address: a.address, port: a.port)))
            } else {
                stats.addAddrRejected &+= 1 // §3.4.1: silently ignored
            }
        }
        return nil
    }

    /// RFC 5961 §3.2 / RFC 793: a challenge ACK to the peer (rate-limited):
    /// where it really is, it learns our RCV.NXT; a peer that has really
    /// reset answers it with a RST at exactly that number.
    func challenge(_ c: inout Connection, now: Instant) {
        guard c.phase == .established, challengeDue(&c, now: now) else { return }
        stats.challengeAcks &+= 1
        ackPeer(c, ack: peerRcvNxt(c))
    }

    /// The translation can no longer be exact: the client gets a RST at the
    /// sequence number it expects (the verdict), the peer a RST with
    /// MP_FASTCLOSE (its key: the whole MPTCP connection) and MP_TCPRST.
    func abortBoth(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, now: Instant, gso: Bool) -> Verdict {
        stats.abortedBoth &+= 1
        stats.fastcloseSent &+= 1
        if let out = outbox.reserve() {
            var w = ByteWriter(writer.options)
            MPTCPOption.mpFastclose(MPFastclose(receiverKey: c.remoteKey)).write(into: &w)
            MPTCPOption.mpTCPRST(MPTCPRst(reason: MPTCPRst.reasonMPTCPError)).write(into: &w)
            let len = SegmentWriter.writeBare(into: out, source: c.initial.local, destination: c.initial.remote,
                                              seq: c.initial.sndMax, ack: peerRcvNxt(c), flags: TCPFlags.rst | TCPFlags.ack, window: 0,
                                              options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< w.offset]))
            if len > 0 { outbox.commit(length: len, towards: .uplink(c.initial.uplink)); stats.originated &+= 1 }
        }
        conns[h] = c
        close(h, now: now, reset: true)
        c = conns[h]!
        stats.translatedToLAN &+= 1
        let ack = c.havePeerDataAck ? c.clientAck(ofDataAck: c.peerDataAck) : v.tcp.ack
        return emit(v, seq: c.deliveredMax, ack: ack, flags: TCPFlags.rst | TCPFlags.ack,
                    window: 0, policy: OptionPolicy(dropMPTCP: true), added: AddedOptions(), gso: gso, dropPayload: true)
    }

    /// Sends the peer a pure ACK (subflow level: `ack`) from the client's
    /// address and sequence space, with a DATA_ACK of what the client has
    /// acknowledged, no more (end-to-end semantics), or with `option`
    /// instead (an ADD_ADDR echo does not fit beside a DSS over IPv6).
    func ackPeer(_ c: Connection, ack: TCPSeq, option: MPTCPOption? = nil) {
        guard let out = outbox.reserve() else { return }
        var w = ByteWriter(writer.options)
        if c.initial.timestamps {
            w.timestampsOption(value: c.initial.localTSval, echo: c.initial.remoteTSval, aligned: true)
        }
        let dataAck = c.haveDataAckToPeer ? c.dataAckToPeer : c.remoteIDSN &+ 1
        (option ?? MPTCPOption.dss(DSS(dataAck: dataAck, dataAck8: true))).write(into: &w)
        w.padOptions()
        let len = SegmentWriter.writeBare(into: out, source: c.initial.local, destination: c.initial.remote,
                                          seq: c.initial.sndMax, ack: ack, flags: TCPFlags.ack,
                                          window: c.initial.window,
                                          options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< w.offset]))
        if len > 0 {
            outbox.commit(length: len, towards: .uplink(c.initial.uplink))
            stats.originated &+= 1
        }
    }

    static func timestamp(_ area: UnsafeRawBufferPointer) -> UInt32? {
        for e in TCPOptionIterator(area) where e.fault == nil && e.kind == TCPOptionKind.timestamps && e.bytes.count == 10 {
            return e.bytes.u32(2)
        }
        return nil
    }

    /// The connection continues as plain TCP for the rest of its life: the
    /// engine forgets it, so its packets pass untouched as untracked ones.
    func fallBack(_ h: Int) -> Verdict {
        conns[h]!.phase = .fallback
        journal(h)
        remove(h)
        return .accept
    }

    func rewriteSynAck(_ v: TCPPacketView, uplink u: UInt8, gso: Bool) -> Verdict {
        emit(v, seq: v.tcp.seq, ack: v.tcp.ack, flags: v.tcp.flags, window: v.tcp.window,
             policy: OptionPolicy(dropMPTCP: true, mssLimit: mssLimit(v, uplink: Int(u), less: config.mssClamp), mssClamp: config.mssClamp),
             added: AddedOptions(), gso: gso)
    }
}

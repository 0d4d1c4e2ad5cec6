// One uplink, the client's segments: translated by rewriting their headers
// (DSS mapping and DATA_ACK added, SACK blocks moved to subflow space).

extension Engine {
    func fromClient(_ v: TCPPacketView, handle h: Int, now: Instant, gso: Bool) -> Verdict {
        conns[h]!.lastSeen = now
        let t = v.tcp
        switch conns[h]!.phase {
        case .fallback:
            stats.passedFallback &+= 1
            return .accept
        case .native:
            return nativePacket(v, h, fromLAN: true, now: now)
        case .synSent:
            if t.has(TCPFlags.rst) { close(h, now: now, reset: true) }
            return .accept
        case .synReceived:
            return lanSynAck(v, handle: h, now: now, gso: gso)
        case .closed:
            if t.has(TCPFlags.rst) { return .accept }
            // Late ACKs of a closed connection still get translated below
            // (the peer may be waiting for the last ACK of its FIN).
        case .established:
            break
        }
        var c = conns[h]!
        defer { if conns[h]?.generation == c.generation { conns[h] = c } }
        if c.mp != nil && !c.mp!.paths.isEmpty { return mpFromClient(v, &c, h, now: now, gso: gso) }

        if t.has(TCPFlags.rst) {
            // The client aborted: abort the MPTCP connection too (§3.5, option B).
            let added = AddedOptions(first: .mpFastclose(MPFastclose(receiverKey: c.remoteKey)),
                                     second: .mpTCPRST(MPTCPRst(reason: 0)))
            let ack = t.has(TCPFlags.ack) ? subflowAck(&c, clientAck: t.ack) : t.ack
            conns[h] = c
            close(h, now: now, reset: true)
            c = conns[h]!
            stats.fastcloseSent &+= 1
            return emit(v, seq: t.seq, ack: ack, flags: t.flags, window: t.window,
                        policy: OptionPolicy(dropMPTCP: true), added: added, gso: gso)
        }
        guard t.has(TCPFlags.ack) else { return .accept }
        if c.initial.closed && t.payload.isEmpty && !t.has(TCPFlags.fin) {
            // Both FINs are acknowledged on the subflow and the peer has
            // closed it: a late ACK (say a D-SACK for a repeated FIN) would
            // only draw a RST.
            return drop(.closed)
        }

        let n = UInt32(t.payload.count)
        let fin = t.has(TCPFlags.fin)
        let rel = t.seq.rawValue &- c.clientISN.rawValue
        let sndEnd = t.seq + n + (fin ? 1 : 0)
        if c.initial.sndMax < sndEnd { c.initial.sndMax = sndEnd }
        c.initial.window = t.window
        if c.initial.timestamps, let ts = Self.timestamp(t.optionArea) { c.initial.localTSval = ts }
        var dataAck = c.remoteIDSN &+ 1
        if c.initial.remoteISNKnown || c.fullyEstablished {
            dataAck = c.downloadDSN(ofClientAck: t.ack, near: c.peerDataFinDSN ?? c.initial.mapping.dsn)
        }
        if !c.haveDataAckToPeer || dataAck &- c.dataAckToPeer < (1 << 62) {
            c.dataAckToPeer = dataAck
            c.haveDataAckToPeer = true
        }
        if (n > 0 || fin) && c.clientFinAcked {
            // The client repeats what the peer has acknowledged: the ACK that
            // told it so was lost on the LAN, so the peer's answer to this
            // one goes to the client again.
            c.clientFinAckForwarded = false
        }
        if fin { c.clientFinSeq = t.seq + n }
        if let pf = c.peerDataFinDSN, dataAck &- pf < (1 << 62), dataAck != pf { c.peerFinAcked = true }
        closeIfDone(&c, h, now)

        var added = AddedOptions()
        if !c.fullyEstablished && n == 0 && !fin {
            // Third ACK (and pure ACKs until the peer shows it has our key):
            // MP_CAPABLE with both keys (§3.1).
            added.first = .mpCapable(MPCapable(version: 1, flags: capableFlags(c), senderKey: c.localKey, receiverKey: c.remoteKey))
        } else if !c.fullyEstablished && n > 0 && rel == 1 && !fin {
            // First data: both keys and the data-level length (§3.1), in case
            // the third ACK was lost. DSN = IDSN+1 and subflow seq 1 are implied.
            var mpc = MPCapable(version: 1, flags: capableFlags(c), senderKey: c.localKey, receiverKey: c.remoteKey,
                                dataLevelLength: UInt16(truncatingIfNeeded: n))
            if c.checksums {
                mpc.checksum = DSSChecksum.compute(dsn: c.localIDSN &+ 1, subflowSeq: 1, length: UInt16(truncatingIfNeeded: n), payload: t.payload)
            }
            added.first = .mpCapable(mpc)
            let end = c.localIDSN &+ 1 &+ UInt64(n)
            if end &- c.lastUploadDSN < (1 << 62) { c.lastUploadDSN = end } // (a retransmission does not take it back)
        } else {
            var dss = DSS(dataAck: dataAck, dataAck8: true)
            if n > 0 || fin {
                let dsn = c.uploadDSN(t.seq)
                let len = n + (fin ? 1 : 0)
                guard len <= 0xffff else { return drop(.tooBig) }
                // A DATA_FIN alone (no data) is mapped with subflow seq 0 (§3.3.3).
                let ssn = n == 0 ? 0 : rel
                var m = DSSMapping(dsn: dsn, subflowSeq: ssn, length: UInt16(len))
                if c.checksums {
                    m.checksum = DSSChecksum.compute(dsn: dsn, subflowSeq: ssn, length: UInt16(len), payload: t.payload)
                }
                dss = DSS(dataAck: dataAck, dataAck8: true, mapping: m, dsn8: true, dataFin: fin)
                let end = dsn &+ UInt64(len)
                if end &- c.lastUploadDSN < (1 << 62) { c.lastUploadDSN = end }
            }
            added.first = .dss(dss)
        }
        stats.translatedToPeer &+= 1
        let ack = subflowAck(&c, clientAck: t.ack)
        c.ackToPeer = ack
        c.haveAckToPeer = true
        var policy = OptionPolicy(dropMPTCP: true)
        if c.peerRegions.remapped {
            policy.dropSACK = true
            policy.sackOverride = translatedSACK(c, t.optionArea)
        }
        return emit(v, seq: t.seq, ack: ack, flags: t.flags, window: t.window, policy: policy, added: added, gso: gso)
    }

    /// The client's SACK blocks in the peer's subflow sequence space (one
    /// uplink, once the peer has resent data at data level), in `sackScratch`;
    /// a block no one region holds is left out. Nil when none is left.
    func translatedSACK(_ c: Connection, _ area: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        for e in TCPOptionIterator(area) where e.fault == nil && e.kind == TCPOptionKind.sack && e.bytes.count >= 10 {
            var w = ByteWriter(sackScratch)
            w.u8(TCPOptionKind.sack); w.u8(2)
            let near = c.peerDataFinDSN ?? c.initial.mapping.dsn
            for i in 0 ..< (e.bytes.count - 2) / 8 {
                let l = c.downloadDSN(ofClientAck: TCPSeq(e.bytes.u32(2 + 8 * i)), near: near)
                let r = c.downloadDSN(ofClientAck: TCPSeq(e.bytes.u32(6 + 8 * i)), near: near)
                guard let (sl, sr) = c.peerRegions.subflowRange(dsn: l, r) else { continue }
                w.u32(c.serverISN.rawValue &+ sl); w.u32(c.serverISN.rawValue &+ sr)
            }
            guard w.offset > 2 else { return nil }
            sackScratch[1] = UInt8(w.offset)
            return UnsafeRawBufferPointer(rebasing: sackScratch[0 ..< w.offset])
        }
        return nil
    }

    func capableFlags(_ c: Connection) -> UInt8 {
        MPCapable.flagHMACSHA256 | (c.checksums ? MPCapable.flagChecksumRequired : 0)
    }

    /// The subflow-level ACK for a client ACK: the same number, but never
    /// beyond what the peer has sent on the subflow (the client may already
    /// acknowledge a FIN that stands for the peer's DATA_FIN).
    /// Once the peer has resent data at data level under new subflow
    /// sequence numbers, the subflow ACK is the first subflow sequence whose
    /// data the client has not acknowledged (`PeerRegions`).
    func subflowAck(_ c: inout Connection, clientAck: TCPSeq) -> TCPSeq {
        var ack = clientAck
        if c.peerRegions.remapped {
            let d = c.downloadDSN(ofClientAck: clientAck, near: c.peerDataFinDSN ?? c.initial.mapping.dsn)
            ack = c.serverISN + c.peerRegions.subflowAck(dataAck: d)
        }
        // peerSndMax is set from the SYN/ACK on; before it there is nothing to cap.
        if c.initial.remoteISNKnown && c.initial.rcvMax < ack { return c.initial.rcvMax }
        return ack
    }
}

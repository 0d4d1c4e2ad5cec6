import DequeModule

// What a segment must show before the engine acts on it (issue 13), and what
// happens to packets of connections the engine does not know.
//
// Subflow level (RFC 793 §3.3, RFC 5961): a peer segment is acted on only
// when it lies in the receive window; a RST only when its sequence number is
// exactly the next expected one (in the window but not exact: a challenge
// ACK, rate-limited; outside: dropped); MP_FASTCLOSE only with our key.
// Data level (RFC 8684 §3.3): a DATA_ACK only for data we have sent, a
// mapping or DATA_FIN only within the data-level receive window, all in 64
// bits. Unknown connections: a packet from an uplink that carries MPTCP
// options for a connection the engine does not know (after a restart, an
// expiry, a forged fallback) is answered with a reset towards both ends,
// never passed on: its bytes cannot be placed.

/// The 4-tuples reset because the engine did not know them, newest last
/// (bounded): the LAN host's answer to our RST (a challenge ACK, when our
/// guess of its sequence number was not exact) gets a RST at exactly the
/// sequence number it acknowledges.
struct ResetMemory {
    static let capacity = 4096
    var set: Set<FlowKey> = []
    var order = Deque<FlowKey>()
    /// Connections forgotten after an infinite mapping (one uplink), with
    /// the peer's key: should the peer go on with MPTCP (the fallback was
    /// forged), its whole connection is closed with MP_FASTCLOSE.
    var fellBack: [FlowKey: UInt64] = [:]
    var fellBackOrder = Deque<FlowKey>()

    mutating func insert(_ k: FlowKey) {
        guard set.insert(k).inserted else { return }
        order.append(k)
        if order.count > Self.capacity, let old = order.popFirst() { set.remove(old) }
    }

    func contains(_ k: FlowKey) -> Bool { set.contains(k) }

    mutating func fellBack(_ k: FlowKey, peerKey: UInt64) {
        if fellBack.updateValue(peerKey, forKey: k) == nil { fellBackOrder.append(k) }
        if fellBackOrder.count > Self.capacity, let old = fellBackOrder.popFirst() { fellBack[old] = nil }
    }
}

extension Engine {
    /// The receive window peer segments are checked against: the client's
    /// last advertised window (scaled), and never less than 64 KiB.
    func receiveWindow(_ c: Connection) -> UInt32 {
        if let mp = c.mp, !mp.paths.isEmpty {
            // Multipath: every subflow advertises the client's window, at its scale.
            return max(UInt32(mp.clientWindow) << UInt32(min(mp.clientWScale, 14)), 65_535)
        }
        return max(UInt32(c.initial.window) << UInt32(min(c.clientWScale, 14)), 65_535)
    }

    /// Multipath: a segment on subflow `p` starts at most a window beyond
    /// what we have received on it. The gateway acknowledges subflow data on
    /// arrival, ahead of the client, and advertises the client's window from
    /// there, so an edge it once advertised may lie beyond the client's
    /// current one by what it holds for the client: the bound is the larger
    /// of the client's window and the download buffer (`sendBuffer`), plus
    /// slack for the scale's rounding.
    func pathSegmentAcceptable(_ c: Connection, _ p: Subflow, seq: TCPSeq) -> Bool {
        let slack = UInt32(65_535) + (1 << UInt32(min(c.mp?.clientWScale ?? 0, 14)))
        let wnd = max(receiveWindow(c), UInt32(clamping: config.sendBuffer))
        return seq - p.rcvNxt <= Int32(clamping: UInt64(wnd) + UInt64(slack))
    }

    /// One uplink: the peer's view of our RCV.NXT on the initial subflow.
    func peerRcvNxt(_ c: Connection) -> TCPSeq {
        c.haveAckToPeer ? c.ackToPeer : c.initial.rcvMax
    }

    /// RFC 793 acceptability on the initial subflow (one uplink): the
    /// segment starts at most a window beyond the peer's view of RCV.NXT and
    /// ends no more than a window (at least 1 MiB) before it (a late
    /// retransmission is passed on: the client drops it as old).
    func peerSegmentAcceptable(_ c: Connection, seq: TCPSeq, length n: UInt32) -> Bool {
        let nxt = peerRcvNxt(c)
        let wnd = receiveWindow(c)
        let ahead = seq - nxt
        let end = (seq + n) - nxt
        // (Slack beyond the edge: the client's scaled window is rounded down
        // to its scale's granularity.)
        let slack = UInt32(65_535) + (1 << UInt32(min(c.clientWScale, 14)))
        return ahead <= Int32(clamping: wnd + slack) && end >= -Int32(clamping: max(wnd, 1 << 20))
    }

    /// RFC 5961 §3.2: a RST is acted on only at exactly the next expected
    /// sequence number: what the peer has sent up to (no data lost), or what
    /// we acknowledged (the peer's answer to a challenge ACK).
    func peerRSTExact(_ c: Connection, seq: TCPSeq) -> Bool {
        seq == c.initial.rcvMax || (c.haveAckToPeer && seq == c.ackToPeer)
    }

    /// A challenge ACK is due (at most one per `challengeInterval`).
    func challengeDue(_ c: inout Connection, now: Instant) -> Bool {
        guard now.nanoseconds &- c.lastChallenge.nanoseconds >= config.tuning.challengeInterval || c.lastChallenge.nanoseconds == 0 else {
            return false
        }
        c.lastChallenge = now
        return true
    }

    /// Data level, our upload: a DATA_ACK may cover only what we have sent
    /// (up to the last DSN told to the peer, DATA_FIN included) and not go
    /// back before the last one (64-bit).
    func dataAckValid(_ c: Connection, _ full: UInt64) -> Bool {
        let low = c.havePeerDataAck ? c.peerDataAck : c.localIDSN &+ 1
        return full &- low < (1 << 63) && c.lastUploadDSN &- full < (1 << 63)
    }

    /// Data level, the download: DSNs `dsn ..< dsn + length` lie within the
    /// data-level receive window (from what the client acknowledged, a
    /// window beyond it; late retransmissions up to 1 GiB back are let
    /// through to the client, which drops them as old).
    /// (The edge: twice the client's window — Linux's sender adds a newer
    /// DATA_ACK to a window it had before, overshooting by up to what the
    /// DATA_ACK moved — and with several uplinks at least the download
    /// buffer, which holds data beyond the client's window.)
    func downloadInWindow(_ c: Connection, dsn: UInt64, length: UInt64) -> Bool {
        let base = c.haveDataAckToPeer ? c.dataAckToPeer : c.remoteIDSN &+ 1
        let off = Int64(bitPattern: dsn &- base)
        var edge = 2 * Int64(receiveWindow(c)) + (1 << 16)
        if c.mp != nil { edge = max(edge, Int64(config.sendBuffer) + Int64(receiveWindow(c))) }
        return off > -(1 << 30) && off <= edge && length <= 1 << 17
    }

    // MARK: - Connections the engine does not know

    /// The packet carries an MPTCP option (kind 30).
    static func hasMPTCPOption(_ v: TCPPacketView) -> Bool {
        for e in TCPOptionIterator(v.tcp.optionArea) where e.fault == nil && e.kind == TCPOptionKind.mptcp { return true }
        return false
    }

    /// A non-SYN packet from uplink `u` with MPTCP options for a connection
    /// the engine does not know: its bytes cannot be placed, so both ends
    /// are reset (the peer's subflow at the sequence number it
    /// acknowledges; the LAN host at the peer's, its next expected one when
    /// nothing was lost). RSTs themselves pass.
    func unknownFromPeer(_ v: TCPPacketView, key: FlowKey, uplink u: UInt8, now: Instant) -> Verdict {
        let t = v.tcp
        guard !t.has(TCPFlags.rst), Self.hasMPTCPOption(v) else { stats.untracked &+= 1; return .accept }
        stats.unknownMPTCP &+= 1
        resets.insert(key)
        guard resetBudget(now) else { return drop(.unknown) }
        let peer = Endpoint(address: v.source, port: t.sourcePort)
        let ours = Endpoint(address: v.destination, port: t.destinationPort)
        let n = UInt32(t.payload.count) + (t.has(TCPFlags.fin) ? 1 : 0)
        // An earlier instance's connection (Recovery.swift): its key closes
        // every subflow at once; the LAN host is probed for its exact place.
        let old = recovered.isEmpty ? nil : recovered[key]
        let fastclose = resets.fellBack[key] ?? old.flatMap { $0.peerKey != 0 ? $0.peerKey : nil }
        originateReset(from: ours, to: peer, seq: t.has(TCPFlags.ack) ? t.ack : TCPSeq(0),
                       ack: t.has(TCPFlags.ack) ? nil : t.seq + n, towards: .uplink(u), fastclose: fastclose)
        if old == nil || old!.lan == key { originateReset(from: peer, to: ours, seq: t.seq, ack: nil, towards: .lan) }
        if let old {
            probeLAN(old.lan)
            stats.recoveryResets &+= 1
        }
        stats.unknownResets &+= 1
        return drop(.unknown)
    }

    /// A packet from the LAN for a connection the engine does not know: if
    /// the engine reset it (above), the LAN host's answer gets a RST at the
    /// sequence number it acknowledges (RFC 5961 §3.2's exact match).
    func unknownFromLAN(_ v: TCPPacketView, key: FlowKey, now: Instant) -> Verdict {
        let t = v.tcp
        let old = !recovered.isEmpty && recovered[key] != nil
        guard resets.contains(key) || old, !t.has(TCPFlags.rst), t.has(TCPFlags.ack) else { stats.untracked &+= 1; return .accept }
        guard resetBudget(now) else { return drop(.unknown) }
        originateReset(from: key.server, to: key.client, seq: t.ack, ack: nil, towards: .lan)
        if old { stats.recoveryResets &+= 1 }
        stats.unknownResets &+= 1
        return drop(.unknown)
    }

    /// A bare RST (with MP_TCPRST towards an uplink, and MP_FASTCLOSE when
    /// the peer's key is known), `ack` set: RST|ACK.
    func originateReset(from: Endpoint, to: Endpoint, seq: TCPSeq, ack: TCPSeq?, towards side: Side, fastclose key: UInt64? = nil) {
        guard let out = outbox.reserve() else { return }
        var w = ByteWriter(writer.options)
        if let key { MPTCPOption.mpFastclose(MPFastclose(receiverKey: key)).write(into: &w); stats.fastcloseSent &+= 1 }
        if case .uplink = side { MPTCPOption.mpTCPRST(MPTCPRst(reason: MPTCPRst.reasonMPTCPError)).write(into: &w) }
        let len = SegmentWriter.writeBare(into: out, source: from, destination: to, seq: seq, ack: ack ?? TCPSeq(0),
                                          flags: TCPFlags.rst | (ack != nil ? TCPFlags.ack : 0), window: 0,
                                          options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< w.offset]))
        if len > 0 { outbox.commit(length: len, towards: side); stats.originated &+= 1 }
    }

    /// Token bucket for resets to unknown connections.
    func resetBudget(_ now: Instant) -> Bool {
        let second = now.nanoseconds / 1_000_000_000
        if second != resetSecond { resetSecond = second; resetsThisSecond = 0 }
        guard resetsThisSecond < config.tuning.unknownResetsPerSecond else { stats.unknownResetsLimited &+= 1; return false }
        resetsThisSecond += 1
        return true
    }
}

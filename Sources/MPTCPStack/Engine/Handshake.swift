// The three-way handshakes: a client SYN from the LAN (initiator role) and a
// peer SYN from an uplink (responder role) get MP_CAPABLE and a table entry;
// the SYN/ACKs that answer them carry the keys.

extension Engine {
    // MARK: - Responder role (the SYN came from an uplink)

    /// A SYN from an uplink towards a LAN host. With MP_CAPABLE (v1, no key:
    /// a v1 SYN carries none) it opens a connection in the responder role:
    /// the SYN goes on to the LAN host with its options kept (MSS clamped),
    /// so an MPTCP-native host can answer for itself. With MP_JOIN it is a
    /// join to one of our connections. Anything else is not ours.
    func peerSYN(_ v: TCPPacketView, key: FlowKey, uplink u: UInt8, now: Instant, gso: Bool) -> Verdict {
        let opts = TCPOptionSummary(parsing: v.tcp.optionArea)
        if opts.has(.mpJoin) {
            guard config.multipath else {
                // One uplink: a join to one of our connections (say from the
                // peer's second address) cannot be served; answered here
                // (RST + MP_TCPRST), it never reaches the LAN host, which
                // would take it for a new plain connection (§3.2). Another
                // token is not ours (an MPTCP-native LAN host's).
                if case let .syn(_, _, token, _) = opts.mpJoin, tokens[token] != nil {
                    return refuseJoin(v, uplink: u, reason: MPTCPRst.reasonProhibited)
                }
                insertNative(key, confirmed: false, now: now) // not ours: a native LAN host's join, if one answers
                stats.untracked &+= 1
                return .accept
            }
            return joinSYNFromPeer(v, opts: opts, uplink: u, now: now)
        }
        guard config.responder, opts.has(.mpCapable), opts.mpCapable.version == 1, opts.mpCapable.senderKey == nil else {
            stats.untracked &+= 1
            return .accept
        }
        guard v.tcp.payload.isEmpty else {
            // TFO towards a plain LAN host: its SYN/ACK (no MP_CAPABLE) ends
            // MPTCP for this connection on the peer's side; the data is the host's to take.
            stats.synDataPassed &+= 1
            stats.untracked &+= 1
            return .accept
        }
        guard table.count < config.maxConnections else { stats.tableFull &+= 1; return .accept }
        var c = Connection(key: key, clientISN: TCPSeq(0), localKey: freshKey(), now: now, deadline: now + config.idleTimeout)
        c.phase = .synReceived
        c.responder = true
        c.serverISN = v.tcp.seq
        c.initial.remoteISN = v.tcp.seq
        c.initial.remoteISNKnown = true
        c.initial.rcvMax = v.tcp.seq + 1
        c.initial.uplink = u
        c.deliveredMax = v.tcp.seq + 1
        c.checksums = config.requestChecksums || opts.mpCapable.checksumRequired
        c.initial.timestamps = opts.has(.timestamps)
        c.initial.remoteTSval = opts.tsValue
        if config.multipath {
            let mp = MPConn(capacity: config.sendBuffer)
            mp.peerSYN = SYNOptions(opts)
            c.mp = mp
        }
        _ = insert(c)
        stats.responderSYNs &+= 1
        return rewritePeerSYN(v, uplink: u, gso: gso)
    }

    /// The peer's SYN towards the LAN host: every option kept (MP_CAPABLE
    /// too), the MSS clamped so that our DSS fits on the host's segments.
    func rewritePeerSYN(_ v: TCPPacketView, uplink u: UInt8, gso: Bool) -> Verdict {
        emit(v, seq: v.tcp.seq, ack: v.tcp.ack, flags: v.tcp.flags, window: v.tcp.window,
             policy: OptionPolicy(dropMPTCP: false, mssLimit: mssLimit(v, uplink: Int(u), less: config.mssClamp), mssClamp: config.mssClamp),
             added: AddedOptions(), gso: gso)
    }

    /// The LAN host's SYN/ACK to the peer. With MP_CAPABLE of its own it is
    /// MPTCP-native: the connection is forgotten and passes untouched.
    /// Otherwise the translator becomes its MPTCP end: our key goes in.
    func lanSynAck(_ v: TCPPacketView, handle h: Int, now: Instant, gso: Bool) -> Verdict {
        let t = v.tcp
        var c = conns[h]!
        guard t.has(TCPFlags.syn) && t.has(TCPFlags.ack) && t.ack == c.serverISN + 1 else {
            if t.has(TCPFlags.rst) { close(h, now: now, reset: true) } // refused: the peer gets the RST as it is
            return .accept
        }
        let opts = TCPOptionSummary(parsing: t.optionArea)
        if !opts.present.isDisjoint(with: .anyMPTCP) {
            stats.passedNative &+= 1
            conns[h]!.phase = .native // kept: its MPTCP packets are not a lost connection's
            stats.nativeConnections &+= 1
            return .accept
        }
        if !c.lanSynAckSeen || c.clientISN != t.seq {
            c.lanSynAckSeen = true
            c.clientWScale = opts.has(.windowScale) ? opts.windowScale : 0
            c.clientISN = t.seq
            c.initial.localISN = t.seq
            c.initial.sndMax = t.seq + 1
            c.initial.timestamps = c.initial.timestamps && opts.has(.timestamps)
            c.initial.localTSval = opts.tsValue
            if let mp = c.mp {
                mp.clientWScale = opts.has(.windowScale) ? opts.windowScale : 0
                mp.clientMSS = opts.has(.mss) ? opts.mss : 536
                mp.clientTimestamps = opts.has(.timestamps)
                mp.clientTSval = opts.tsValue
                mp.clientSackOK = opts.has(.sackPermitted)
                mp.clientWindow = t.window
                mp.synAckAt = now
            }
            conns[h] = c
        }
        let added = AddedOptions(first: .mpCapable(MPCapable(version: 1, flags: capableFlags(c), senderKey: c.localKey)))
        return emit(v, seq: t.seq, ack: t.ack, flags: t.flags, window: t.window,
                    policy: OptionPolicy(dropMPTCP: true, mssLimit: mssLimit(v, uplink: Int(c.initial.uplink))), added: added, gso: gso)
    }

    // MARK: - Client (LAN) side

    func clientSYN(_ v: TCPPacketView, key: FlowKey, now: Instant, gso: Bool) -> Verdict {
        let opts = TCPOptionSummary(parsing: v.tcp.optionArea)
        if let h = table[key] {
            if conns[h]!.clientISN == v.tcp.seq && conns[h]!.phase == .synSent {
                conns[h]!.lastSeen = now
                return rewriteClientSYN(v, handle: h, gso: gso) // retransmitted SYN: same key
            }
            remove(h) // port reuse: the old connection is gone from the client's view
        }
        // A LAN host that speaks MPTCP itself, or a SYN with no option room
        // left, passes as plain TCP, untracked. A SYN with data (TCP Fast
        // Open) gets MP_CAPABLE like any other (RFC 8684 appendix B).
        if !opts.present.isDisjoint(with: .anyMPTCP) {
            insertNative(key, now: now)
            stats.untracked &+= 1
            return .accept
        }
        if opts.usedLength + 4 > 40 {
            stats.noOptionRoom &+= 1
            stats.untracked &+= 1
            return .accept
        }
        guard table.count < config.maxConnections else { stats.tableFull &+= 1; return .accept }
        var c = Connection(key: key, clientISN: v.tcp.seq, localKey: freshKey(), now: now, deadline: now + config.idleTimeout)
        c.synDataLength = UInt32(v.tcp.payload.count)
        c.clientWScale = opts.has(.windowScale) ? opts.windowScale : 0
        if config.multipath {
            let mp = MPConn(capacity: config.sendBuffer)
            mp.clientWScale = opts.has(.windowScale) ? opts.windowScale : 0
            mp.clientMSS = opts.has(.mss) ? opts.mss : 536
            mp.clientTimestamps = opts.has(.timestamps)
            mp.clientTSval = opts.tsValue
            mp.clientSackOK = opts.has(.sackPermitted)
            mp.clientWindow = v.tcp.window
            c.mp = mp
        }
        let h = insert(c)
        return rewriteClientSYN(v, handle: h, gso: gso)
    }

    func rewriteClientSYN(_ v: TCPPacketView, handle h: Int, gso: Bool) -> Verdict {
        var flags = MPCapable.flagHMACSHA256
        if config.requestChecksums { flags |= MPCapable.flagChecksumRequired }
        let added = AddedOptions(first: .mpCapable(MPCapable(version: 1, flags: flags)))
        return emit(v, seq: v.tcp.seq, ack: v.tcp.ack, flags: v.tcp.flags, window: v.tcp.window,
                    policy: OptionPolicy(dropMPTCP: true, mssLimit: initialMSSLimit(v)), added: added, gso: gso)
    }
}

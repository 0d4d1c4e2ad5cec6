// Multipath set-up and joins (RFC 8684 §3.2): the initial subflow as a
// `Subflow`, our uplinks announced, the peer's MP_JOIN SYNs taken or
// refused, our own joins from every uplink and their source ports.

extension Engine {
    // MARK: - Set-up

    /// The SYN/ACK of the initial subflow arrived: subflow 0 becomes a path.
    func mpEstablished(_ c: inout Connection, synAck t: TCPSegmentView, opts: TCPOptionSummary, uplink: UInt8, now: Instant) {
        guard let mp = c.mp else { return }
        // Our clock continues the client's (its SYN carried its TSval).
        startInitialPath(c, mp, uplink: uplink, peerISN: t.seq, peer: opts, peerTSval: opts.tsValue,
                         hostTSAt: c.lastSeen, tsAdjust: 1, peerWindow: UInt64(t.window), now: now)
        // Flag C: the peer takes no new subflows to the address and port of
        // this one (say a load-balanced address); only addresses it
        // announces are joined (RFC 8684 §3.1).
        let noNewToSource = opts.mpCapable.flags & MPCapable.flagNoNewSubflowsToSource != 0
        mp.targets = noNewToSource ? [] : [(UInt8(0), c.key.server)]
    }

    /// Responder role: the peer's third ACK (both keys) arrived: subflow 0
    /// becomes a path, from the peer's SYN (`mp.peerSYN`) and the LAN host's
    /// SYN/ACK; the LAN host gets the ACK that completes its handshake, and
    /// the peer hears of our other uplinks (ADD_ADDR) to join them.
    func mpEstablishedResponder(_ c: inout Connection, third t: TCPSegmentView, opts: TCPOptionSummary, uplink: UInt8, now: Instant) {
        guard let mp = c.mp else { return }
        let syn = mp.peerSYN.summary
        // Our clock on the subflow continues the LAN host's (its SYN/ACK carried its TSval).
        startInitialPath(c, mp, uplink: uplink, peerISN: c.serverISN, peer: syn, peerTSval: opts.tsValue,
                         hostTSAt: mp.synAckAt, tsAdjust: 0,
                         peerWindow: UInt64(t.window) << UInt64(syn.has(.windowScale) ? syn.windowScale : 0), now: now)
        if let len = opts.mpCapable.dataLevelLength, len > 0 {
            mp.paths[0].mapping = PeerMapping(dsn: c.remoteIDSN &+ 1, ssn: 1, length: UInt32(len), dataFin: false, valid: true)
        }
        mp.targets = [] // the peer opened the connection: it joins us (it may sit behind a NAT)
        sendToClient(c, mp, seq: c.deliveredMax, flags: TCPFlags.ack, now: now)
        if config.announceUplinks {
            // Every uplink but the one the connection came in on (its path is taken).
            for u in config.uplinks.indices where u != Int(uplink) && u < 8 { mp.announceUnechoed |= 1 << UInt8(u) }
            if mp.announceUnechoed != 0 { announceUplinks(c, mp, now: now) }
        }
    }

    /// Subflow 0 as a `Subflow`, in either role: our side continues the LAN
    /// host's sequence space (and its timestamp clock as of `hostTSAt`),
    /// the peer's options come from its SYN or SYN/ACK (`peer`); the first
    /// RTT sample is the time since `hostTSAt`. The send buffer starts at
    /// our IDSN + 1 with `peerWindow` bytes of the peer's window.
    func startInitialPath(_ c: Connection, _ mp: MPConn, uplink: UInt8, peerISN: TCPSeq, peer: TCPOptionSummary,
                                  peerTSval: UInt32, hostTSAt: Instant, tsAdjust: UInt32, peerWindow: UInt64, now: Instant) {
        var p = Subflow(local: c.key.client, remote: c.key.server)
        p.state = .active
        p.uplink = uplink
        p.localISN = c.clientISN
        p.sndUna = c.clientISN + 1
        p.sndNxt = c.clientISN + 1
        p.recover = p.sndUna
        p.remoteISN = peerISN
        p.rcvNxt = peerISN + 1
        p.timestamps = peer.has(.timestamps) && mp.clientTimestamps
        p.remoteTSval = peerTSval
        mp.clientUsesSACK = mp.clientSackOK && peer.has(.sackPermitted)
        p.tsOffset = mp.clientTSval &- ms(hostTSAt) &+ tsAdjust
        p.peerWScale = peer.has(.windowScale) ? peer.windowScale : 0
        setPathMSS(&p, peerMSS: peer.has(.mss) ? peer.mss : 536, checksums: c.checksums)
        p.announcedMSS = initialAnnouncedMSS(c, mp, uplink: Int(uplink))
        // What the LAN host was told in the same handshake (rewritten with
        // the clamp), less its timestamps: its largest segment.
        let v6 = c.key.client.address.isIPv6
        let limit = segmentLimit(uplink: Int(uplink), v6: v6).map { UInt16(clamping: $0 - Int(config.mssClamp)) }
        let told = peer.has(.mss) ? SegmentWriter.clampedMSS(peer.mss, policy: OptionPolicy(mssLimit: limit, mssClamp: config.mssClamp))
                                  : (v6 ? 1220 : 536)
        mp.lanSegmentMax = Int(told) - (mp.clientTimestamps ? 12 : 0)
        p.cwnd = Double(10 * p.mss)
        let rtt = Double(now.nanoseconds &- hostTSAt.nanoseconds) / 1e9
        if rtt > 0 && rtt < 10 { rttSample(&p, rtt) }
        p.lastReceived = now
        mp.paths = [p]
        mp.peerWScaleToClient = p.peerWScale
        mp.clientTSOffset = peerTSval &- ms(now)
        mp.bufStart = c.localIDSN &+ 1
        mp.ringStart = mp.bufStart
        mp.bufEnd = mp.bufStart
        mp.sendNext = mp.bufStart
        mp.peerWindowEdge = mp.bufStart &+ peerWindow
        stats.subflowsOpened &+= 1
    }

    /// ADD_ADDR for every uplink address of the peer's family (ID = uplink
    /// index + 1, as our own joins use), one pure ACK each on subflow 0;
    /// sent again from the timer until the peer echoes them (§3.4.1).
    func announceUplinks(_ c: Connection, _ mp: MPConn, now: Instant) {
        mp.announcedAt = now
        mp.announceTries += 1
        for (u, up) in config.uplinks.enumerated() where !uplinkDown[u] && mp.announceUnechoed & (1 << UInt8(u)) != 0 {
            guard let a = up.addresses.first(where: { $0.sameFamily(as: c.key.server.address) }) else { continue }
            let id = UInt8(truncatingIfNeeded: u + 1)
            // With a port: the top of the join port range, which the gateway
            // queues (any other port of its own address is its own stack's).
            let port = config.joinPorts.upperBound
            let mac = MPTCPCrypto.addAddrHMAC(senderKey: c.localKey, receiverKey: c.remoteKey, addressID: id, address: a, port: port)
            let option = AddAddr(addressID: id, address: a, port: port, hmac: mac)
            // IPv6 with port and HMAC is 30 bytes: beside timestamps (12)
            // over the 40-byte option space. Then the signal goes on a pure
            // ACK without the timestamp option (Linux takes it: it drops no
            // segment for a missing timestamp; the ACK carries no data for
            // PAWS to protect). Counted, so that a peer that never echoes it
            // can be told apart.
            let fits = (mp.paths[0].timestamps ? 12 : 0) + option.encodedLength <= 40
            guard option.encodedLength <= 40 else { stats.addAddrUnsent &+= 1; continue }
            if !fits { stats.addAddrWithoutTimestamps &+= 1 }
            sendControl(c, mp, 0, flags: TCPFlags.ack, now: now, first: .addAddr(option), timestamps: fits)
            stats.addAddrSent &+= 1
        }
    }

    /// The peer's MP_JOIN SYN to one of our addresses (an uplink's, or the
    /// LAN host's for the initial 4-tuple's address): found by token,
    /// answered with our SYN/ACK and HMAC; a subflow once its third ACK's
    /// HMAC checks. An unknown token is not ours (a native MPTCP host on the
    /// LAN, or our own stack, answers it); a known one over the limit is refused.
    func joinSYNFromPeer(_ v: TCPPacketView, opts: TCPOptionSummary, uplink u: UInt8, now: Instant) -> Verdict {
        guard case let .syn(flags, addressID, token, nonce) = opts.mpJoin, let h = tokens[token], var c = conns[h] else {
            // Not ours: a native LAN host's (or the gateway's own stack's) join.
            insertNative(FlowKey(client: Endpoint(address: v.destination, port: v.tcp.destinationPort),
                                 server: Endpoint(address: v.source, port: v.tcp.sourcePort)), confirmed: false, now: now)
            stats.untracked &+= 1
            return .accept
        }
        let t = v.tcp
        let local = Endpoint(address: v.destination, port: t.destinationPort)
        let remote = Endpoint(address: v.source, port: t.sourcePort)
        guard let mp = c.mp, c.phase == .established, c.fullyEstablished, !mp.finishing, !uplinkDown[Int(u)] else {
            return refuseJoin(v, uplink: u)
        }
        var slot = mp.paths.indices.first { $0 != 0 && mp.paths[$0].passive && mp.paths[$0].state == .failed }
        if slot == nil && mp.paths.count < min(config.maxSubflows, 8) {
            mp.paths.append(Subflow(local: local, remote: remote))
            slot = mp.paths.count - 1
        }
        guard let k = slot else { return refuseJoin(v, uplink: u) }
        let old = mp.paths[k]
        if table[FlowKey(client: old.local, server: old.remote)] == h | (k << 32) {
            table[FlowKey(client: old.local, server: old.remote)] = nil
        }
        var p = Subflow(local: local, remote: remote)
        p.passive = true
        p.state = .joinReceived
        p.uplink = u
        // Our ID for the address it joined: 0 for the connection's own, else the uplink's.
        p.addressID = 0
        for (i, up) in config.uplinks.enumerated() where up.addresses.contains(local.address) { p.addressID = UInt8(truncatingIfNeeded: i + 1) }
        p.remoteID = addressID
        p.backup = flags & 1 != 0
        p.localISN = TCPSeq(UInt32(truncatingIfNeeded: rng.next()))
        p.sndUna = p.localISN
        p.sndNxt = p.localISN + 1
        p.recover = p.localISN + 1
        p.remoteISN = t.seq
        p.rcvNxt = t.seq + 1
        p.localNonce = UInt32(truncatingIfNeeded: rng.next())
        p.remoteNonce = nonce
        p.tsOffset = UInt32(truncatingIfNeeded: rng.next())
        p.timestamps = mp.clientTimestamps && opts.has(.timestamps)
        p.remoteTSval = opts.tsValue
        p.peerWScale = opts.has(.windowScale) ? opts.windowScale : 0
        p.peerSackOK = opts.has(.sackPermitted)
        setPathMSS(&p, peerMSS: opts.has(.mss) ? opts.mss : 536, checksums: c.checksums)
        p.cwnd = Double(10 * p.mss)
        p.joinSentAt = now
        p.joinTries = 1
        mp.paths[k] = p
        table[FlowKey(client: local, server: remote)] = h | (k << 32)
        journal(h)
        sendJoinSynAck(c, mp, k, now: now)
        scheduleTimer(&c, h, now: now)
        conns[h] = c
        return drop(.consumed)
    }

    /// The peer's MP_JOIN SYN on the 4-tuple of a subflow of ours that is
    /// over (failed: its table entry stays until the slot is reused) or that
    /// the peer has evidently given up (a passive subflow, and a SYN with
    /// another initial sequence number than the one it began with): the
    /// peer has reused its source port for a new subflow, of this connection
    /// or of another one. A peer that joins from a range of ports (another
    /// nfq-mptcp, `--join-ports`) reuses them as soon as they are free on its
    /// side, and its joins must be answered (docs/decisions.md). The old subflow is
    /// forgotten (no RST: it would reach the new one) and the SYN taken as
    /// any join. nil: the SYN is the old subflow's own (or no join), left to it.
    func joinOnOldSubflow(_ v: TCPPacketView, handle h: Int, subflow k: Int, uplink u: UInt8, now: Instant) -> Verdict? {
        guard var c = conns[h], let mp = c.mp, k < mp.paths.count else { return nil }
        let opts = TCPOptionSummary(parsing: v.tcp.optionArea)
        // Only for a join some connection of ours takes (a SYN that could
        // not become a subflow leaves the old one alone).
        guard case let .syn(_, _, token, _) = opts.mpJoin, tokens[token] != nil else { return nil }
        let p = mp.paths[k]
        switch p.state {
        case .failed, .unused: break
        case .joinReceived: guard p.passive && v.tcp.seq != p.remoteISN else { return nil }
        case .active:
            // RFC 5961 §4: a SYN on a live subflow gets a challenge ACK, not a
            // teardown (the token is no secret to whoever saw the set-up). A
            // peer that really reused the port answers it with a RST at
            // exactly our RCV.NXT, which ends the old subflow; its SYN,
            // repeated a second later, is then taken.
            guard p.passive && v.tcp.seq != p.remoteISN else { return nil }
            mpChallenge(&c, mp, k, now: now)
            conns[h] = c
            return drop(.invalid)
        default: return nil
        }
        if p.state != .failed && p.state != .unused {
            failPath(&c, h, k, now: now, sendReset: false)
            scheduleTimer(&c, h, now: now)
            conns[h] = c
        }
        table[FlowKey(client: p.local, server: p.remote)] = nil
        return joinSYNFromPeer(v, opts: opts, uplink: u, now: now)
    }

    /// A join we will not take: reset (so the peer stops, and the SYN does
    /// not reach a LAN host that would take it for a new connection).
    func refuseJoin(_ v: TCPPacketView, uplink u: UInt8, reason: UInt8 = 0) -> Verdict {
        stats.joinsRefused &+= 1
        var w = ByteWriter(writer.options)
        MPTCPOption.mpTCPRST(MPTCPRst(reason: reason)).write(into: &w)
        w.padOptions()
        if let out = outbox.reserve() {
            let len = SegmentWriter.writeBare(into: out, source: Endpoint(address: v.destination, port: v.tcp.destinationPort),
                                              destination: Endpoint(address: v.source, port: v.tcp.sourcePort),
                                              seq: TCPSeq(0), ack: v.tcp.seq + 1, flags: TCPFlags.rst | TCPFlags.ack, window: 0,
                                              options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< w.offset]))
            if len > 0 { outbox.commit(length: len, towards: .uplink(u)); stats.originated &+= 1 }
        }
        return drop(.badMPTCP)
    }

    func sendJoinSynAck(_ c: Connection, _ mp: MPConn, _ k: Int, now: Instant) {
        let p = mp.paths[k]
        let mac = MPTCPCrypto.joinHMAC(keyLocal: c.localKey, keyRemote: c.remoteKey, nonceLocal: p.localNonce, nonceRemote: p.remoteNonce)
        var w = ByteWriter(writer.options)
        w.mssOption(announceMSS(mp, k))
        if mp.clientSackOK && p.peerSackOK { w.sackPermittedOption() }
        if p.timestamps { w.timestampsOption(value: ms(now) &+ p.tsOffset, echo: p.remoteTSval, aligned: false) }
        w.windowScaleOption(mp.clientWScale)
        MPTCPOption.mpJoin(.synAck(flags: p.backup ? 1 : 0, addressID: p.addressID, truncatedHMAC: mac.a, nonce: p.localNonce)).write(into: &w)
        w.padOptions()
        originate(p, towards: .uplink(p.uplink), seq: p.localISN, ack: p.rcvNxt, flags: TCPFlags.syn | TCPFlags.ack,
                  window: 65535, optionLength: w.offset)
    }

    static func payloadMSS(peerMSS: UInt16, timestamps: Bool, checksums: Bool) -> Int {
        // Options on our data segments: timestamps (12) and a DSS with an
        // 8-byte DATA_ACK and DSN (26, 28 with the checksum), padded.
        max(64, Int(peerMSS) - (timestamps ? 12 : 0) - 28)
    }

    /// Opens a subflow from every uplink to every target address that has
    /// none (once the peer has shown it knows our key, RFC 8684 §3.2), and
    /// re-opens failed ones.
    func mpOpenJoins(_ c: inout Connection, _ h: Int, now: Instant) {
        guard let mp = c.mp, c.fullyEstablished, c.phase == .established, !mp.finishing else { return }
        for target in mp.targets {
            for u in config.uplinks.indices where !uplinkDown[u] { openJoin(&c, h, mp, target, uplink: u, now: now) }
        }
        scheduleTimer(&c, h, now: now)
    }

    func openJoin(_ c: inout Connection, _ h: Int, _ mp: MPConn, _ target: (id: UInt8, remote: Endpoint), uplink u: Int,
                          now: Instant) {
        let up = config.uplinks[u]
        // A failed subflow's slot is reused for its successor, except the
        // initial one's: its 4-tuple is the client's, which stays in the
        // table for the client's packets.
        var candidate: Int?
        var busy = false
        for (k, p) in mp.paths.enumerated() where p.uplink == UInt8(u) && p.remote == target.remote {
            switch p.state {
            case .unused: break
            case .failed:
                guard let r = p.retryAt else { break }
                if r > now { busy = true } else if k == 0 { mp.paths[0].retryAt = nil } else if candidate == nil { candidate = k }
            default: busy = true
            }
        }
        if busy { return }
        guard let local = up.addresses.first(where: { $0.sameFamily(as: target.remote.address) }) else { return }
        var slot = candidate
        let append = slot == nil && mp.paths.count < min(config.maxSubflows, 8)
        if slot == nil && !append {
            // The slot of a subflow to an address the peer has removed.
            slot = mp.paths.indices.first { j in
                j != 0 && mp.paths[j].state == .failed && !mp.targets.contains { $0.remote == mp.paths[j].remote }
            }
        }
        guard slot != nil || append else { return }
        // The source port before the slot: with none free (every port of the
        // range in use towards this address) no slot is appended for a join
        // that is never sent, and a failed subflow waiting for its successor
        // tries again a `rejoinInterval` later (docs/decisions.md).
        guard let port = freeJoinPort(local: local, remote: target.remote, reusing: candidate.map { h | ($0 << 32) }, now: now) else {
            if let k = candidate { mp.paths[k].retryAt = now + config.tuning.rejoinInterval }
            return
        }
        if append {
            mp.paths.append(Subflow(local: c.key.client, remote: c.key.server))
            slot = mp.paths.count - 1
        }
        guard let k = slot else { return }
        let old = mp.paths[k]
        if table[FlowKey(client: old.local, server: old.remote)] == h | (k << 32) {
            table[FlowKey(client: old.local, server: old.remote)] = nil
        }
        var p = Subflow(local: Endpoint(address: local, port: port), remote: target.remote)
        p.remoteID = target.id
        p.state = .joinSent
        p.uplink = UInt8(u)
        p.addressID = UInt8(truncatingIfNeeded: u + 1) // 0 is the client's own address
        p.backup = up.backup
        p.localISN = TCPSeq(UInt32(truncatingIfNeeded: rng.next()))
        p.sndUna = p.localISN
        p.sndNxt = p.localISN + 1
        p.localNonce = UInt32(truncatingIfNeeded: rng.next())
        p.tsOffset = UInt32(truncatingIfNeeded: rng.next())
        p.timestamps = mp.clientTimestamps
        p.joinSentAt = now
        p.joinTries = 1
        p.retryAt = now + config.tuning.rejoinInterval
        mp.paths[k] = p
        table[FlowKey(client: p.local, server: p.remote)] = h | (k << 32)
        journal(h)
        sendJoinSYN(c, mp, k, now: now)
        stats.joinsSent &+= 1
    }

    /// A source port of the range for a join from `local` to `remote`: one
    /// no entry of the table holds, or the one `reusing` (the failed subflow
    /// the join replaces) holds.
    /// (When none is free, the range is not scanned again for that target
    /// for a `rejoinInterval`: `joinPortsFull`.)
    func freeJoinPort(local: IPAddress, remote: Endpoint, reusing: Int? = nil, now: Instant) -> UInt16? {
        if let i = joinPortsFull.firstIndex(where: { $0.local == local && $0.remote == remote }) {
            if now < joinPortsFull[i].until && reusing == nil { return nil }
            joinPortsFull.remove(at: i)
        }
        // The range's last port is kept for the peer's joins to our announced addresses.
        let span = max(1, Int(config.joinPorts.upperBound) - Int(config.joinPorts.lowerBound))
        for _ in 0 ..< span {
            let port = UInt16(Int(config.joinPorts.lowerBound) + nextJoinPort % span)
            nextJoinPort &+= 1
            let e = table[FlowKey(client: Endpoint(address: local, port: port), server: remote)]
            if e == nil || (reusing != nil && e == reusing) { return port }
        }
        if joinPortsFull.count >= 16 { joinPortsFull.removeFirst() }
        joinPortsFull.append((local, remote, now + config.tuning.rejoinInterval))
        return nil
    }

    func sendJoinSYN(_ c: Connection, _ mp: MPConn, _ k: Int, now: Instant) {
        let p = mp.paths[k]
        var w = ByteWriter(writer.options)
        w.mssOption(announceMSS(mp, k))
        if mp.clientSackOK { w.sackPermittedOption() }
        if p.timestamps { w.timestampsOption(value: ms(now) &+ p.tsOffset, echo: 0, aligned: false) }
        w.windowScaleOption(mp.clientWScale)
        MPTCPOption.mpJoin(.syn(flags: p.backup ? 1 : 0, addressID: p.addressID,
                                token: MPTCPCrypto.token(key: c.remoteKey), nonce: p.localNonce)).write(into: &w)
        w.padOptions()
        originate(p, towards: .uplink(p.uplink), seq: p.localISN, ack: TCPSeq(0), flags: TCPFlags.syn,
                  window: 65535, optionLength: w.offset)
    }
}

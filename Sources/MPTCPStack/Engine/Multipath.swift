// Multipath connections (more than one uplink configured).
//
// The translator is the TCP endpoint of every subflow: its own sequence
// space, RTT estimate, congestion window and retransmissions per subflow.
// The client's bytes are copied into the connection's send buffer and the
// client's segment is consumed; the scheduler sends them on the subflows as
// their windows allow. The client is acknowledged only when the peer's
// DATA_ACK covers its bytes (end-to-end semantics are kept). Peer data is
// acknowledged per subflow and moved onto the client's connection at its
// data-level place; the client's own TCP puts segments from different
// subflows back in order.
//
// Scheduler: the lowest smoothed RTT among subflows with congestion window
// room, but never a subflow whose RTT is more than `slowPathFactor` times the
// best one's (the fast path would deliver sooner once it has room; sending on
// the slow one only provokes data-level reordering at the receiver).
// Congestion control: RFC 6356 LIA (coupled, so subflows sharing a
// bottleneck take no more than one TCP would), NewReno-style recovery with
// SACK-guided retransmission, RFC 6298 RTO with backoff.
// Failure: on an RTO the subflow's data goes out again on the others and the
// subflow gets no new data until it acknowledges something; after
// `maxBackoff` RTOs without progress it is reset and a new MP_JOIN is tried
// from the same uplink every `rejoinInterval`.

extension Engine {
    static var slowPathFactor: Double { 3.0 }
    static var maxBackoff: Int { 3 }
    static var rejoinInterval: Duration { .seconds(1) }
    /// MP_JOIN SYN / third ACK retransmission: every second, four times,
    /// then a fresh join (so a restored uplink is back within about 1 s).
    static var joinRetransmit: Duration { .seconds(1) }
    /// After the peer refuses a join (RST): wait this long before the next.
    static var refusedJoinRetry: Duration { .seconds(10) }
    /// A subflow silent this long while another one of the connection is
    /// receiving gets keepalive probes (the peer must answer them, RFC 9293
    /// §3.8.4; Linux rate-limits such answers to one per 500 ms) ...
    static var silentAfter: Duration { .seconds(1) }
    static var probeInterval: Duration { .milliseconds(600) }
    /// ... and is given up after this many go unanswered: this is how a
    /// dead uplink is noticed when the translator has nothing to send on it.
    static var maxProbes: Int { 2 }
    /// Sooner when the download has stalled: the client's cumulative ACK has
    /// not moved for `stallAfter` though we forwarded data beyond it (a
    /// data-level hole the peer's other subflows cannot fill), and a subflow
    /// has been silent as long. It gets one probe, and is given up if that
    /// goes unanswered for `stallProbeWait` (at least twice its RTT): the
    /// peer then hears a REMOVE_ADDR, closes its side and sends the hole
    /// again on another subflow, where its own timers would take seconds
    /// (Linux marks a subflow stale only after several RTOs).
    static var stallAfter: Duration { .milliseconds(150) }
    static var stallProbeWait: Double { 0.12 }
    /// Linux answers out-of-window segments at most once per 500 ms
    /// (`tcp_invalid_ratelimit`): probes on one subflow are further apart.
    static var probeSpacing: Duration { .milliseconds(550) }
    static var minRTO: Double { 0.2 }

    @inline(__always) func ms(_ now: Instant) -> UInt32 { UInt32(truncatingIfNeeded: now.nanoseconds / 1_000_000) }

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
        let syn = mp.peerSYN
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
    private func startInitialPath(_ c: Connection, _ mp: MPConn, uplink: UInt8, peerISN: TCPSeq, peer: TCPOptionSummary,
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
    /// side; these SYNs used to be dropped here without an answer (as the
    /// old subflow's), so beyond about a range's worth of connections every
    /// failed subflow's successor, and the joins of the connections that
    /// took its port, went unanswered and failed in turn. The old subflow is
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
        while w.offset & 3 != 0 { w.u8(1) }
        if let out = outbox.reserve() {
            let len = SegmentWriter.writeBare(into: out, source: Endpoint(address: v.destination, port: v.tcp.destinationPort),
                                              destination: Endpoint(address: v.source, port: v.tcp.sourcePort),
                                              seq: TCPSeq(0), ack: v.tcp.seq + 1, flags: TCPFlags.rst | TCPFlags.ack, window: 0,
                                              options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< w.offset]))
            if len > 0 { outbox.commit(length: len, towards: .uplink(u)); stats.originated &+= 1 }
        }
        return drop(.badMPTCP)
    }

    private func sendJoinSynAck(_ c: Connection, _ mp: MPConn, _ k: Int, now: Instant) {
        let p = mp.paths[k]
        let mac = MPTCPCrypto.joinHMAC(keyLocal: c.localKey, keyRemote: c.remoteKey, nonceLocal: p.localNonce, nonceRemote: p.remoteNonce)
        var w = ByteWriter(writer.options)
        w.u8(2); w.u8(4); w.u16(announceMSS(mp, k))
        if mp.clientSackOK && p.peerSackOK { w.u8(4); w.u8(2) }
        if p.timestamps { w.u8(8); w.u8(10); w.u32(ms(now) &+ p.tsOffset); w.u32(p.remoteTSval) }
        w.u8(1); w.u8(3); w.u8(3); w.u8(mp.clientWScale)
        MPTCPOption.mpJoin(.synAck(flags: p.backup ? 1 : 0, addressID: p.addressID, truncatedHMAC: mac.a, nonce: p.localNonce)).write(into: &w)
        while w.offset & 3 != 0 { w.u8(1) }
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

    private func openJoin(_ c: inout Connection, _ h: Int, _ mp: MPConn, _ target: (id: UInt8, remote: Endpoint), uplink u: Int,
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
        // that is never sent (they used to fill every connection beyond the
        // range's size with unused slots), and a failed subflow waiting for
        // its successor tries again a `rejoinInterval` later, not at every
        // timer (its past `retryAt` kept its connection's timer firing every
        // millisecond, each time scanning the whole range).
        guard let port = freeJoinPort(local: local, remote: target.remote, reusing: candidate.map { h | ($0 << 32) }, now: now) else {
            if let k = candidate { mp.paths[k].retryAt = now + Self.rejoinInterval }
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
        p.retryAt = now + Self.rejoinInterval
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
    private func freeJoinPort(local: IPAddress, remote: Endpoint, reusing: Int? = nil, now: Instant) -> UInt16? {
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
        joinPortsFull.append((local, remote, now + Self.rejoinInterval))
        return nil
    }

    private func sendJoinSYN(_ c: Connection, _ mp: MPConn, _ k: Int, now: Instant) {
        let p = mp.paths[k]
        var w = ByteWriter(writer.options)
        w.u8(2); w.u8(4); w.u16(announceMSS(mp, k))
        if mp.clientSackOK { w.u8(4); w.u8(2) }
        if p.timestamps { w.u8(8); w.u8(10); w.u32(ms(now) &+ p.tsOffset); w.u32(0) }
        w.u8(1); w.u8(3); w.u8(3); w.u8(mp.clientWScale)
        MPTCPOption.mpJoin(.syn(flags: p.backup ? 1 : 0, addressID: p.addressID,
                                token: MPTCPCrypto.token(key: c.remoteKey), nonce: p.localNonce)).write(into: &w)
        while w.offset & 3 != 0 { w.u8(1) }
        originate(p, towards: .uplink(p.uplink), seq: p.localISN, ack: TCPSeq(0), flags: TCPFlags.syn,
                  window: 65535, optionLength: w.offset)
    }

    // MARK: - From the client

    func mpFromClient(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, now: Instant) -> Verdict {
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
            // Beyond a gap: held, silently. Neither an immediate duplicate
            // ACK nor SACK blocks: the client would take an RTT sample from
            // a segment SACKed a LAN's delay after it sent it, and BBR,
            // keeping the minimum for 10 s, would shrink its window to a
            // LAN's bandwidth-delay product (seen here: 4 Mbit/s for 10 s).
            // A reordered segment fills the gap a moment later; a lost one
            // is resent on the client's own timeout.
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
        mpPush(&c, h, now: now)
        if outbox.count == before && (ackAdvanced || windowChanged) {
            let k = bestAckPath(mp)
            if let k { sendAck(c, mp, k, now: now) }
        }
        mpFinishIfDone(&c, h, now: now)
        scheduleTimer(&c, h, now: now)
        return drop(.consumed)
    }

    /// A subflow that can carry a pure ACK: the last one data came on, else any active one.
    private func bestAckPath(_ mp: MPConn) -> Int? {
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
        guard dsnBefore(from, mp.sendNext), let k = pickPath(mp, want: 1) else { return }
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

    private func sendQueued(_ c: Connection, _ mp: MPConn, now: Instant) {
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
            guard let k = pickPath(mp, want: max(1, min(avail, room))) else { break }
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

    /// The subflow for the next segment: usable, with congestion window room,
    /// lowest smoothed RTT, and not much slower than the best subflow.
    private func pickPath(_ mp: MPConn, want: Int) -> Int? {
        let hasRegular = mp.paths.contains { $0.usable && !$0.backup }
        var bestRTT = Double.greatestFiniteMagnitude
        for p in mp.paths where p.usable && (!p.backup || !hasRegular) {
            bestRTT = min(bestRTT, p.srtt > 0 ? p.srtt : p.rto)
        }
        var pick: Int?
        var pickRTT = Double.greatestFiniteMagnitude
        for (k, p) in mp.paths.enumerated() where p.usable && (!p.backup || !hasRegular) {
            let room = Int(p.cwnd) - p.pipe
            guard room >= min(want, p.mss) else { continue }
            let rtt = p.srtt > 0 ? p.srtt : p.rto
            // (A subflow with no RTT sample yet gets its chance: its first
            // ACK gives one.)
            if p.srtt > 0 && rtt > bestRTT * Self.slowPathFactor && rtt - bestRTT > 0.010 { continue }
            if rtt < pickRTT { pick = k; pickRTT = rtt }
        }
        return pick
    }

    // MARK: - Sending on a subflow

    /// Writes our option area into `writer.options`: timestamps, then the
    /// MPTCP options, then a SACK block if there is room. Returns its length.
    /// `sack`: false on data segments, whose payload size leaves room for
    /// timestamps and a DSS only (`payloadMSS`). `timestamps`: false for a
    /// signal that does not fit beside them (an IPv6 ADD_ADDR with port).
    private func pathOptions(_ mp: MPConn, _ p: Subflow, now: Instant, first: MPTCPOption?, second: MPTCPOption? = nil,
                             sack: Bool = true, timestamps: Bool = true) -> Int {
        var w = ByteWriter(writer.options)
        if p.timestamps && timestamps { w.u8(1); w.u8(1); w.u8(8); w.u8(10); w.u32(ms(now) &+ p.tsOffset); w.u32(p.remoteTSval) }
        first?.write(into: &w)
        second?.write(into: &w)
        while w.offset & 3 != 0 { w.u8(1) }
        let room = (40 - w.offset - 4) / 8
        if sack && p.ooo.count > 0 && room > 0 {
            // The most recently grown blocks first (RFC 2018 §4), while they fit.
            let n = min(room, p.ooo.count)
            w.u8(1); w.u8(1); w.u8(5); w.u8(UInt8(2 + 8 * n))
            for i in 0 ..< n { w.u32(p.ooo[i].left.rawValue); w.u32(p.ooo[i].right.rawValue) }
        }
        return w.offset
    }

    private func originate(_ p: Subflow, towards side: Side, seq: TCPSeq, ack: TCPSeq, flags: UInt8, window: UInt16,
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

    private func dataAckOption(_ c: Connection) -> UInt64 {
        c.haveDataAckToPeer ? c.dataAckToPeer : c.remoteIDSN &+ 1
    }

    /// Our receive window towards the peer: the client's (same scale on every subflow).
    private func windowToPeer(_ mp: MPConn) -> UInt16 { mp.clientWindow }

    func sendData(_ c: Connection, _ mp: MPConn, _ k: Int, dsn: UInt64, length: Int, dataFin: Bool,
                  now: Instant, retransmitOf seq: TCPSeq? = nil) {
        var p = mp.paths[k]
        let payload = length > 0 ? mp.bytes(at: dsn, max: length) : UnsafeRawBufferPointer(start: nil, count: 0)
        let sseq = seq ?? p.sndNxt
        let rel = sseq - p.localISN
        let first: MPTCPOption
        if !c.fullyEstablished && k == 0 && dsn == c.localIDSN &+ 1 && length > 0 && !dataFin && rel == 1 {
            // First data before the peer has shown it has our key: MP_CAPABLE
            // with both keys and the data-level length (§3.1).
            var m = MPCapable(version: 1, flags: capableFlags(c), senderKey: c.localKey, receiverKey: c.remoteKey,
                              dataLevelLength: UInt16(length))
            if c.checksums { m.checksum = DSSChecksum.compute(dsn: dsn, subflowSeq: 1, length: UInt16(length), payload: payload) }
            first = .mpCapable(m)
        } else {
            let mlen = UInt16(length + (dataFin ? 1 : 0))
            let ssn: UInt32 = length == 0 ? 0 : UInt32(bitPattern: rel)
            var m = DSSMapping(dsn: dsn, subflowSeq: ssn, length: mlen)
            if c.checksums { m.checksum = DSSChecksum.compute(dsn: dsn, subflowSeq: ssn, length: mlen, payload: payload) }
            first = .dss(DSS(dataAck: dataAckOption(c), dataAck8: true, mapping: m, dsn8: true, dataFin: dataFin))
        }
        let ol = pathOptions(mp, p, now: now, first: first, sack: length == 0)
        originate(p, towards: .uplink(p.uplink), seq: sseq, ack: p.rcvNxt, flags: TCPFlags.ack | (length > 0 ? TCPFlags.psh : 0),
                  window: windowToPeer(mp), optionLength: ol, payload: payload)
        p.ackPending = false
        if seq == nil && length > 0 {
            p.segments.append(SentSegment(seq: sseq, length: UInt32(length), dsn: dsn, sentAt: now, dataFin: dataFin))
            p.sndNxt = sseq + UInt32(length)
        }
        if p.rtoAt == nil && length > 0 { p.rtoAt = now + .nanoseconds(Int64(p.rto * 1e9)) }
        stats.dataSegmentsSent &+= 1
        mp.paths[k] = p
    }

    /// A segment with no data (ACK, RST, FIN) on subflow `k`, carrying a DATA_ACK unless other options are given.
    private func sendControl(_ c: Connection, _ mp: MPConn, _ k: Int, flags: UInt8, now: Instant,
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

    private func sendAck(_ c: Connection, _ mp: MPConn, _ k: Int, now: Instant) {
        let p = mp.paths[k]
        // After our FIN the ACK goes at FIN+1.
        sendControl(c, mp, k, flags: TCPFlags.ack, now: now, seq: p.finSent ? p.finSeq + 1 : p.sndNxt)
        mp.paths[k].ackPending = false
    }

    // MARK: - From the peer

    func mpFromPeer(_ v: TCPPacketView, _ c: inout Connection, _ h: Int, _ k: Int, opts: TCPOptionSummary,
                    now: Instant, gso: Bool) -> Verdict {
        let mp = c.mp!
        guard k < mp.paths.count else { return drop(.closed) }
        let t = v.tcp
        var p = mp.paths[k]
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
            if refusedJoin { mp.paths[k].retryAt = now + Self.refusedJoinRetry }
            scheduleTimer(&c, h, now: now)
            return drop(.consumed)
        }
        if opts.has(.mpFastclose) { return mpAbort(&c, h, now: now, fastclose: true) }

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

        // Data level.
        var toClient = false
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

        // Subflow-level receive.
        let n = UInt32(t.payload.count)
        var forward = false
        var dsn: UInt64 = 0
        if n > 0 {
            let end = t.seq + n
            if !(p.rcvNxt < end) {
                p.ackPending = true // a duplicate: ACK again
            } else {
                if !(p.rcvNxt < t.seq) {
                    p.rcvNxt = end
                    mergeOOO(&p)
                } else {
                    addOOO(&p, t.seq, end)
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
        mp.paths[k] = p

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
            // The peer's DATA_ACK (or window) moved: tell the client.
            sendToClient(c, mp, seq: c.deliveredMax, flags: TCPFlags.ack, now: now)
        }
        releaseBuffer(&c, h, now: now)
        mpPush(&c, h, now: now)
        for j in mp.paths.indices where mp.paths[j].ackPending && mp.paths[j].state == .active { sendAck(c, mp, j, now: now) }
        mpFinishIfDone(&c, h, now: now)
        scheduleTimer(&c, h, now: now)
        return verdict
    }

    /// Options towards the client: timestamps only (our clock, its TSval echoed).
    func clientOptions(_ mp: MPConn, now: Instant, echo: UInt32? = nil) -> Int {
        var w = ByteWriter(writer.options)
        if mp.clientTimestamps {
            w.u8(1); w.u8(1); w.u8(8); w.u8(10); w.u32(ms(now) &+ mp.clientTSOffset); w.u32(echo ?? mp.clientTSval)
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

    private func sendToClient(_ c: Connection, _ mp: MPConn, seq: TCPSeq, flags: UInt8, now: Instant) {
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

    private func sendJoinAck(_ c: Connection, _ mp: MPConn, _ k: Int, now: Instant) {
        let p = mp.paths[k]
        let mac = MPTCPCrypto.joinHMAC(keyLocal: c.localKey, keyRemote: c.remoteKey, nonceLocal: p.localNonce, nonceRemote: p.remoteNonce)
        sendControl(c, mp, k, flags: TCPFlags.ack, now: now, first: .mpJoin(.ack(reserved: 0, hmac: mac)))
    }

    // MARK: - Subflow sender

    /// The RTT the peer's echo of our timestamp gives (seconds), if it
    /// echoes one of ours from the last minute.
    private func echoedRTT(_ p: Subflow, _ opts: TCPOptionSummary, now: Instant) -> Double? {
        guard p.timestamps && opts.has(.timestamps) && opts.tsEchoReply != 0 else { return nil }
        let ts = Int32(bitPattern: ms(now) &+ p.tsOffset &- opts.tsEchoReply)
        return ts >= 0 && ts < 60_000 ? Double(max(ts, 1)) / 1000 : nil
    }

    private func rttSample(_ p: inout Subflow, _ r: Double) {
        if p.srtt == 0 {
            p.srtt = r; p.rttvar = r / 2
        } else {
            p.rttvar = 0.75 * p.rttvar + 0.25 * abs(p.srtt - r)
            p.srtt = 0.875 * p.srtt + 0.125 * r
        }
        p.rto = min(60, max(Self.minRTO, p.srtt + max(0.001, 4 * p.rttvar)))
    }

    private func onSubflowAck(_ c: Connection, _ p: inout Subflow, _ k: Int, ack: TCPSeq, opts: TCPOptionSummary, pure: Bool,
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
                p.minRTT = p.minRTT == 0 ? sample : min(p.minRTT, sample)
                // Leave slow start when the delay rises (queues building at
                // the bottleneck: HyStart's delay test), before the
                // overshoot that a tbf or a drop-tail queue answers with a
                // burst of losses.
                if p.cwnd < p.ssthresh && p.cwnd >= Double(16 * p.mss) && sample > p.minRTT * 1.25 + 0.004 {
                    p.ssthresh = p.cwnd
                }
            }
            if p.backoff > 0 {
                // Progress: the backed-off timeout gives way to the estimate.
                p.rto = min(60, max(Self.minRTO, p.srtt + max(0.001, 4 * p.rttvar)))
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
                        if p.backoff >= Self.maxBackoff { break }
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
    private func increaseWindow(_ mp: MPConn, _ p: inout Subflow, _ k: Int, acked: Int) {
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
    private func firstLost(_ p: Subflow) -> Int? {
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
    private func reduceWindow(_ p: inout Subflow, now: Instant) {
        if p.undoTS == nil {
            p.priorCwnd = p.cwnd
            p.priorSsthresh = p.ssthresh
            p.undoTS = ms(now) &+ p.tsOffset
        }
        p.ssthresh = max(p.cwnd / 2, Double(2 * p.mss))
    }

    /// A recovery that proved spurious: the window as it was, and more
    /// patience with reordering on this subflow.
    private func undoRecovery(_ p: inout Subflow) {
        p.undoTS = nil
        p.cwnd = max(p.cwnd, p.priorCwnd)
        p.ssthresh = max(p.ssthresh, p.priorSsthresh)
        p.inRecovery = false
        p.rtoRecovery = false
        p.dupThresh = min(p.dupThresh + 3, 64)
        stats.spuriousRecoveries &+= 1
    }

    private func retransmitFirst(_ c: Connection, _ mp: MPConn, _ p: inout Subflow, _ k: Int, now: Instant) {
        if let j = p.segments.firstIndex(where: { !$0.sacked }) { retransmit(c, mp, &p, k, j, now: now) }
    }

    private func retransmit(_ c: Connection, _ mp: MPConn, _ p: inout Subflow, _ k: Int, _ j: Int, now: Instant) {
        let s = p.segments[j]
        p.segments[j].retransmitted = true
        p.segments[j].sentAt = now
        p.rtxInFlight += Int(s.length)
        stats.retransmits &+= 1
        guard mp.holds(s.dsn, length: s.length) else {
            // Its bytes were acknowledged at data level (sent again on
            // another subflow) and are gone: this subflow cannot fill its
            // hole. It is reset and joined anew.
            p.backoff = Self.maxBackoff
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
    private func releaseBuffer(_ c: inout Connection, _ h: Int, now: Instant) {
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
    private func reinject(_ mp: MPConn, _ k: Int) {
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
        mp.paths[k].retryAt = mp.paths[k].passive ? nil : now + Self.rejoinInterval
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

    // MARK: - Timers

    /// Runs what is due on a multipath connection and queues its next timer.
    func mpTimer(_ h: Int, now: Instant) {
        guard var c = conns[h], let mp = c.mp else { return }
        mp.timerAt = nil
        for k in mp.paths.indices {
            var p = mp.paths[k]
            switch p.state {
            case .joinSent, .preEstablished, .joinReceived:
                if p.joinSentAt + Self.joinRetransmit <= now {
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
                    if p.probesUnanswered >= (p.stallProbe ? 1 : Self.maxProbes) {
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
                    mp.paths[k].probeAt = now + (stalled ? .nanoseconds(Int64(max(Self.stallProbeWait, 2 * p.srtt) * 1e9)) : Self.probeInterval)
                    continue
                }
                guard let at = p.rtoAt, at <= now else { continue }
                stats.rtoExpiries &+= 1
                p.backoff += 1
                if p.backoff > Self.maxBackoff {
                    mp.paths[k] = p
                    failPath(&c, h, k, now: now, sendReset: true)
                    continue
                }
                p.rto = min(60, p.rto * 2)
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
                if p.backoff >= Self.maxBackoff && !p.finSent {
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
    private func probeTime(_ c: Connection, _ mp: MPConn, _ p: Subflow) -> Instant? {
        guard c.phase == .established, !mp.finishing, p.segments.isEmpty, !p.finSent else { return nil }
        guard mp.paths.contains(where: { $0.state == .active && $0.lastReceived > p.lastReceived }) else { return nil }
        if let at = p.probeAt { return at }
        let silent = p.lastReceived + Self.silentAfter
        guard forwardedBeyondAck(c) else { return silent }
        var stalled = max(p.lastReceived, mp.clientAckMoved) + Self.stallAfter
        if stalled < p.lastProbe + Self.probeSpacing { stalled = p.lastProbe + Self.probeSpacing }
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
    private func downloadStalled(_ c: Connection, _ mp: MPConn, now: Instant) -> Bool {
        forwardedBeyondAck(c) && mp.clientAckMoved + Self.stallAfter <= now
    }

    /// Data has gone to the client beyond its cumulative ACK.
    private func forwardedBeyondAck(_ c: Connection) -> Bool {
        c.haveDataAckToPeer && c.clientSeq(ofDownloadDSN: c.dataAckToPeer) < c.deliveredMax
    }

    private func probeDue(_ c: Connection, _ mp: MPConn, _ k: Int, now: Instant) -> Bool {
        guard let at = probeTime(c, mp, mp.paths[k]) else { return false }
        // The others must be alive now, not just more recent.
        guard mp.paths.contains(where: { $0.state == .active && $0.lastReceived + Self.silentAfter > now }) else { return false }
        return at <= now
    }

    /// The data-level timeout: its own backoff, but never shorter than twice
    /// the slowest working subflow's RTO (a subflow's own recovery first).
    private func dataRTO(_ mp: MPConn) -> Double {
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
            case .joinSent, .preEstablished, .joinReceived: consider(p.joinSentAt + Self.joinRetransmit)
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

    // MARK: - Ending

    /// Both data-level FINs acknowledged: FIN every subflow, then time-wait.
    private func mpFinishIfDone(_ c: inout Connection, _ h: Int, now: Instant) {
        guard let mp = c.mp, c.clientFinAcked && c.peerFinAcked, !mp.finishing else { return }
        mp.finishing = true
        for k in mp.paths.indices where mp.paths[k].state == .preEstablished || mp.paths[k].state == .joinSent || mp.paths[k].state == .joinReceived {
            // A join still under way has no use now.
            if mp.paths[k].state != .joinSent {
                sendControl(c, mp, k, flags: TCPFlags.rst, now: now, first: .mpTCPRST(MPTCPRst(reason: 0)))
            }
            mp.paths[k].state = .failed
            mp.paths[k].retryAt = nil
        }
        for k in mp.paths.indices where mp.paths[k].state == .active {
            let p = mp.paths[k]
            sendControl(c, mp, k, flags: TCPFlags.fin | TCPFlags.ack, now: now, seq: p.sndNxt)
            mp.paths[k].finSent = true
            mp.paths[k].finSeq = p.sndNxt
            mp.paths[k].rtoAt = now + .nanoseconds(Int64(p.rto * 1e9))
        }
        conns[h] = c
        close(h, now: now, reset: false)
        c = conns[h]!
    }

    private func mpAbort(_ c: inout Connection, _ h: Int, now: Instant, fastclose: Bool) -> Verdict {
        guard let mp = c.mp else { return drop(.closed) }
        if fastclose { stats.fastcloseReceived &+= 1 }
        let wasClosed = c.phase == .closed
        conns[h] = c
        close(h, now: now, reset: true)
        c = conns[h]!
        if !wasClosed { sendToClient(c, mp, seq: c.deliveredMax, flags: TCPFlags.rst | TCPFlags.ack, now: now) }
        return drop(.consumed)
    }

    // MARK: - Receive bookkeeping

    static var maxOOORanges: Int { 64 }

    private func addOOO(_ p: inout Subflow, _ l: TCPSeq, _ r: TCPSeq) {
        var left = l, right = r
        var i = 0
        while i < p.ooo.count {
            let b = p.ooo[i]
            if !(right < b.left) && !(b.right < left) {
                if b.left < left { left = b.left }
                if right < b.right { right = b.right }
                p.ooo.remove(at: i)
            } else {
                i += 1
            }
        }
        p.ooo.insert(SACKBlock(left: left, right: right), at: 0)
        if p.ooo.count > Self.maxOOORanges { p.ooo.removeLast() } // the peer resends it; the data level has it
    }

    private func mergeOOO(_ p: inout Subflow) {
        var changed = true
        while changed {
            changed = false
            var i = 0
            while i < p.ooo.count {
                let b = p.ooo[i]
                if !(p.rcvNxt < b.left) {
                    if p.rcvNxt < b.right { p.rcvNxt = b.right }
                    p.ooo.remove(at: i)
                    changed = true
                } else {
                    i += 1
                }
            }
        }
    }

}

extension IPAddress {
    func sameFamily(as other: IPAddress) -> Bool {
        switch (self, other) {
        case (.v4, .v4), (.v6, .v6): return true
        default: return false
        }
    }
}

extension Engine {
    /// One line per multipath connection and subflow (for debugging and the
    /// daemon's SIGUSR1 dump; not on the data path).
    public var multipathState: String {
        var out = ""
        _ = multipathState(from: 0, slots: conns.count, into: &out)
        return out
    }

    /// `multipathState` in parts: the lines of the connections in table
    /// slots `cursor ..< cursor + slots` (a handle is a slot), appended to
    /// `out`. Returns the cursor of the next part, nil after the last. The
    /// daemon writes one part per loop pass, so a dump of a full table never
    /// holds up the packets.
    public func multipathState(from cursor: Int, slots: Int, into out: inout String) -> Int? {
        let start = min(max(cursor, 0), conns.count)
        let end = start + min(max(slots, 1), conns.count - start)
        for c in conns[start ..< end] {
            guard let c, let mp = c.mp else { continue }
            let base = mp.ringStart
            func rel(_ x: UInt64) -> Int64 { Int64(bitPattern: x &- base) }
            out += "\(c.key.client) -> \(c.key.server) phase \(c.phase) buffered \(mp.buffered) dataAck+\(rel(mp.bufStart)) "
                + "sendNext+\(rel(mp.sendNext)) end+\(rel(mp.bufEnd)) window+\(rel(mp.peerWindowEdge)) reinject \(mp.reinject.count) "
                + "dataRTO \(mp.dataRTO)\n"
            for (k, p) in mp.paths.enumerated() {
                out += "  [\(k)] \(p.state) uplink \(p.uplink)\(p.backup ? " backup" : "")\(p.suspect ? " suspect" : "") "
                    + "flight \(p.flight) cwnd \(Int(p.cwnd)) ssthresh \(p.ssthresh > 1e12 ? -1 : Int(p.ssthresh)) srtt \(Int(p.srtt * 1000))ms "
                    + "rto \(Int(p.rto * 1000))ms backoff \(p.backoff) segs \(p.segments.count)"
                    + (p.segments.first.map { " first dsn+\(rel($0.dsn)) len \($0.length) retx \($0.retransmitted)" } ?? "")
                    + "\(p.inRecovery ? " recovery" : "")\n"
            }
        }
        return end < conns.count ? end : nil
    }
}

extension Engine {
    /// A verified announcement: a new target address (or an announced one
    /// moved), of the client's family, while fewer than `addAddrAccepted`.
    func acceptAnnounced(_ c: Connection, _ mp: MPConn, _ a: AddAddr) {
        let remote = Endpoint(address: a.address, port: a.port ?? c.key.server.port)
        guard remote.address.sameFamily(as: c.key.server.address) else { return }
        if let i = mp.targets.firstIndex(where: { $0.id == a.addressID && $0.id != 0 }) {
            mp.targets[i].remote = remote
        } else if !mp.targets.contains(where: { $0.remote == remote }),
                  mp.targets.reduce(0, { $0 + ($1.id != 0 ? 1 : 0) }) < config.addAddrAccepted {
            mp.targets.append((a.addressID, remote))
        }
    }
}

extension Engine {
    /// The caller saw uplink `u` go down or come back (its link state). Down:
    /// every subflow on it is given up at once, its data going out again on
    /// the others (no waiting for RTOs), and the peer is sent a REMOVE_ADDR
    /// for the uplink's address on a surviving subflow, so it stops sending
    /// on those subflows too (its own timeouts would take seconds); no joins
    /// from it while it is down. Up: joins from it are made again at once.
    public func uplink(_ u: Int, isUp: Bool, now: Instant) {
        guard u < uplinkDown.count, uplinkDown[u] == isUp else { return }
        uplinkDown[u] = !isUp
        for h in conns.indices {
            guard var c = conns[h], let mp = c.mp, c.phase == .established, !mp.paths.isEmpty else { continue }
            if isUp {
                for k in mp.paths.indices where mp.paths[k].uplink == UInt8(u) && mp.paths[k].state == .failed && mp.paths[k].retryAt != nil {
                    mp.paths[k].retryAt = now
                }
                mpOpenJoins(&c, h, now: now)
            } else {
                stats.subflowsLinkDown &+= UInt64(abandon(&c, h, mp, now: now) { $0.uplink == UInt8(u) })
            }
            scheduleTimer(&c, h, now: now)
            conns[h] = c
        }
    }

    /// A destination-unreachable error about a segment of one of our
    /// subflows (from a router on its path, or the peer): with another
    /// subflow working, that subflow is given up at once, as if its uplink
    /// had gone down (a single-path TCP would treat the error as soft, RFC
    /// 5461; here the data has somewhere else to go), and joined again after
    /// `rejoinInterval`. Only for a sequence number we have in flight (RFC
    /// 5927 §4.1: a blind attacker does not know it).
    func icmpUnreachable(_ e: ICMPUnreachableView, now: Instant) {
        if let mtu = e.mtu { return icmpTooBig(e, mtu: mtu, now: now) } // the path works, for smaller segments
        stats.icmpUnreachable &+= 1
        guard let entry = table[FlowKey(client: e.source, server: e.destination)] else { return }
        let h = entry & 0xffff_ffff, k = entry >> 32
        guard var c = conns[h], let mp = c.mp, c.phase == .established, k < mp.paths.count else { return }
        let p = mp.paths[k]
        guard p.state == .active || p.state == .preEstablished || p.state == .joinSent,
              !(e.seq < p.sndUna), !(p.sndNxt < e.seq),
              mp.paths.indices.contains(where: { $0 != k && mp.paths[$0].state == .active }) else { return }
        let target = p.local, u = p.uplink
        stats.subflowsUnreachable &+= UInt64(abandon(&c, h, mp, now: now) { $0.local == target && $0.uplink == u })
        scheduleTimer(&c, h, now: now)
        conns[h] = c
    }

    /// Gives up the live subflows that `which` selects (their data goes out
    /// again on the others) and tells the peer with a REMOVE_ADDR of their
    /// addresses on a surviving subflow, so it stops sending on them too.
    /// Returns how many were given up.
    /// `reset`: an RST goes on each too (in case it was not dead after all).
    private func abandon(_ c: inout Connection, _ h: Int, _ mp: MPConn, now: Instant, reset: Bool = false,
                         _ which: (Subflow) -> Bool) -> Int {
        var ids = InlineBytes40()
        var n = 0
        for k in mp.paths.indices where which(mp.paths[k]) {
            switch mp.paths[k].state {
            case .active, .preEstablished, .joinSent, .joinReceived:
                let id = mp.paths[k].addressID
                if mp.paths[k].state == .active || mp.paths[k].state == .preEstablished, !(0 ..< ids.count).contains(where: { ids[$0] == id }) { _ = ids.append(id) }
                failPath(&c, h, k, now: now, sendReset: reset)
                n += 1
            case .unused, .failed:
                break
            }
        }
        // An address still used by a working subflow is not removed (in the
        // responder role the LAN host's address, ID 0, and an announced one
        // are reached over several uplinks): the peer finds those dead itself.
        var live = InlineBytes40()
        for j in 0 ..< ids.count where !mp.paths.contains(where: { $0.state == .active && $0.addressID == ids[j] }) { _ = live.append(ids[j]) }
        ids = live
        if ids.count > 0, let k = mp.paths.firstIndex(where: { $0.state == .active }) {
            sendControl(c, mp, k, flags: TCPFlags.ack, now: now, first: .removeAddr(RemoveAddr(addressIDs: ids)))
            stats.removeAddrSent &+= 1
        }
        return n
    }
}

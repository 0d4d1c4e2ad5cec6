// Multipath connections ending (DATA_FIN exchange, aborts), and the path
// manager's link and ICMP events, announced addresses, and the debug dump.

extension Engine {
    // MARK: - Ending

    /// Both data-level FINs acknowledged: FIN every subflow, then time-wait.
    func mpFinishIfDone(_ c: inout Connection, _ h: Int, now: Instant) {
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

    func mpAbort(_ c: inout Connection, _ h: Int, now: Instant, fastclose: Bool) -> Verdict {
        guard let mp = c.mp else { return drop(.closed) }
        if fastclose { stats.fastcloseReceived &+= 1 }
        let wasClosed = c.phase == .closed
        conns[h] = c
        close(h, now: now, reset: true)
        c = conns[h]!
        if !wasClosed {
            sendToClient(c, mp, seq: c.deliveredMax, flags: TCPFlags.rst | TCPFlags.ack, now: now)
            mp.resetClient = true
        }
        return drop(.consumed)
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
        for h in start ..< end {
            guard let c = conns[h], let mp = c.mp else { continue }
            let base = mp.ringStart
            func rel(_ x: UInt64) -> Int64 { Int64(bitPattern: x &- base) }
            out += "\(c.key.client) -> \(c.key.server) phase \(c.phase) buffered \(mp.buffered) dataAck+\(rel(mp.bufStart)) "
                + "sendNext+\(rel(mp.sendNext)) end+\(rel(mp.bufEnd)) window+\(rel(mp.peerWindowEdge)) reinject \(mp.reinject.count) "
                + "dataRTO \(mp.dataRTO)\n"
            for (k, p) in mp.paths.enumerated() {
                out += "  [\(k)] \(p.state) uplink \(p.uplink)\(p.backup ? " backup" : "")\(p.suspect ? " suspect" : "") "
                    + "flight \(p.flight) cwnd \(Int(p.cwnd)) ssthresh \(p.ssthresh > 1e12 ? -1 : Int(p.ssthresh)) srtt \(Int(p.srtt * 1000))ms min \(Int(p.rtt.minRTT * 1000))ms "
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
    func abandon(_ c: inout Connection, _ h: Int, _ mp: MPConn, now: Instant, reset: Bool = false,
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

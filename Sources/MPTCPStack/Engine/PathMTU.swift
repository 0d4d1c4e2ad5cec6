// Segment sizes per uplink and per subflow (issue 12).
//
// An uplink may carry less than the LAN: PPPoE (1492), an LTE modem or a
// tunnel (1400, 1280). Two limits follow from its MTU:
// - what the peer may send us on a subflow of that uplink: the MSS we
//   announce there (in the join SYN or SYN/ACK, and in the initial subflow's
//   SYN or SYN/ACK) is at most the MTU less the fixed IP and TCP headers
//   (RFC 6691 §2: the sender takes its own options off that). A larger
//   segment does not fit the interface on arrival (veth drops it; so does a
//   PPPoE or tunnel interface);
// - what we send on a subflow: our segments are sized from the smaller of
//   the peer's MSS and the path MTU (the uplink's, lowered by ICMP
//   fragmentation-needed / packet-too-big from a router beyond it, or by a
//   send the caller reports too big for the interface, EMSGSIZE), less our
//   options (timestamps and a full DSS). A raw socket refuses a packet
//   larger than its interface's MTU (EMSGSIZE) and does not fragment it.
// In the one-uplink plane the client's segments are forwarded by verdict
// and keep their size: there the only lever is the MSS in the SYN and
// SYN/ACK, clamped by the uplink's MTU too.

extension Engine {
    /// The largest MSS (MTU less the fixed IP and TCP headers) uplink `u`
    /// carries for IPv6 or IPv4 packets; nil when its MTU is unknown.
    func segmentLimit(uplink u: Int, v6: Bool) -> Int? {
        guard u >= 0, u < uplinkMTU.count, uplinkMTU[u] > 0 else { return nil }
        // Never below what any IPv4 path carries (576) or IPv6 (1280): a
        // mistaken configuration makes segments small, not impossible.
        return max(uplinkMTU[u], v6 ? 1280 : 576) - (v6 ? 60 : 40)
    }

    /// The MSS option limit for a SYN or SYN/ACK whose sender's segments
    /// cross uplink `u` growing by `clamp` bytes of our options.
    func mssLimit(_ v: TCPPacketView, uplink u: Int, less clamp: UInt16 = 0) -> UInt16? {
        guard let l = segmentLimit(uplink: u, v6: v.family == .v6) else { return nil }
        return UInt16(clamping: l - Int(clamp))
    }

    /// The MSS limit for the client's SYN in the initiator role: routing
    /// picks the uplink the initial subflow leaves by, so what every uplink
    /// can take in (uplink 1 is usually the one, by the main table's
    /// default route; the others cost a few bytes per segment at most).
    func initialMSSLimit(_ v: TCPPacketView) -> UInt16? {
        initialSegmentLimit(v6: v.family == .v6).map { UInt16(clamping: $0) }
    }

    private func initialSegmentLimit(v6: Bool) -> Int? {
        var limit: Int?
        for u in uplinkMTU.indices {
            if let l = segmentLimit(uplink: u, v6: v6), limit == nil || l < limit! { limit = l }
        }
        return limit
    }

    /// The MSS the peer heard on the initial subflow (arrived by `uplink`):
    /// the client's SYN clamped for every uplink (initiator), or the LAN
    /// host's SYN/ACK clamped for this one (responder).
    func initialAnnouncedMSS(_ c: Connection, _ mp: MPConn, uplink: Int) -> UInt16 {
        let v6 = c.key.client.address.isIPv6
        let limit = c.responder ? segmentLimit(uplink: uplink, v6: v6) : initialSegmentLimit(v6: v6)
        return min(mp.clientMSS, UInt16(clamping: limit ?? 65535))
    }

    /// The MSS to announce on subflow `k` (join SYN or SYN/ACK): the LAN
    /// host's, at most what the subflow's uplink takes in. Recorded: an
    /// uplink MTU lowered below it later leaves the peer's full-sized
    /// segments no way in (`uplink(_:mtu:now:)`).
    func announceMSS(_ mp: MPConn, _ k: Int) -> UInt16 {
        let p = mp.paths[k]
        var mss = mp.clientMSS
        if let l = segmentLimit(uplink: Int(p.uplink), v6: p.local.address.isIPv6) { mss = min(mss, UInt16(clamping: l)) }
        mp.paths[k].announcedMSS = mss
        return mss
    }

    /// Sets subflow `p`'s segment size from the MSS the peer announced and
    /// its path MTU (its uplink's, unless ICMP or a failed send showed less).
    func setPathMSS(_ p: inout Subflow, peerMSS: UInt16, checksums: Bool) {
        p.peerMSS = peerMSS
        let u = Int(p.uplink)
        if u < uplinkMTU.count, uplinkMTU[u] > 0, p.mtu == 0 || uplinkMTU[u] < p.mtu { p.mtu = uplinkMTU[u] }
        p.mss = Self.payloadMSS(peerMSS: Self.segmentSize(p), timestamps: p.timestamps, checksums: checksums)
    }

    /// A subflow's MSS as the wire allows it: the peer's, the path MTU less
    /// the fixed headers, and what an outbox slot holds.
    static func segmentSize(_ p: Subflow) -> UInt16 {
        let header = p.local.address.isIPv6 ? 60 : 40
        var s = min(Int(p.peerMSS), Outbox.slotSize - 60)
        if p.mtu > 0 { s = min(s, p.mtu - header) }
        return UInt16(clamping: max(s, 0))
    }

    /// The next smaller of the common MTUs (RFC 1191 §7's plateaus): the
    /// guess when an error does not say (a router older than RFC 1191, or a
    /// failed send with no MTU known).
    static func plateau(below size: Int) -> Int {
        for m in [8166, 4352, 2002, 1492, 1280, 1006, 576] where m < size { return m }
        return 576
    }

    /// Lowers subflow `k`'s path MTU to `mtu` (never raises it), and its
    /// segment size with it. Segments in flight that are larger than the new
    /// size are split, so that a retransmission fits too (the send queue
    /// maps subflow sequence to DSN linearly within a segment). Returns the
    /// sequence range the split segments covered (empty: none was), nil when
    /// the segment size did not go down.
    @discardableResult
    func lowerPathMTU(_ mp: MPConn, _ k: Int, to mtu: Int, checksums: Bool) -> (from: TCPSeq, to: TCPSeq)? {
        var p = mp.paths[k]
        guard mtu > 0, p.mtu == 0 || mtu < p.mtu else { return nil }
        p.mtu = mtu
        let old = p.mss
        // Before the handshake the peer's MSS is not known: set from it later.
        if p.state == .active || p.state == .preEstablished {
            p.mss = Self.payloadMSS(peerMSS: Self.segmentSize(p), timestamps: p.timestamps, checksums: checksums)
        }
        mp.paths[k] = p
        guard p.mss < old else { return nil }
        stats.mssLowered &+= 1
        let mss = UInt32(p.mss)
        var from: TCPSeq?, to = p.sndUna
        var j = 0
        while j < p.segments.count {
            let s = p.segments[j]
            if s.length > mss {
                var head = s
                head.length = mss
                head.dataFin = false
                var tail = s
                tail.seq = s.seq + mss
                tail.dsn = s.dsn &+ UInt64(mss)
                tail.length = s.length - mss
                p.segments[j] = head
                p.segments.insert(tail, at: j + 1)
                if from == nil { from = s.seq }
                to = s.seq + s.length
            }
            j += 1
        }
        return (from ?? to, to)
    }

    /// Sends subflow `k`'s segments that lie within [from, to) and are not
    /// SACKed again, each at its (new, smaller) size, as first
    /// transmissions: the originals never arrived because they were too
    /// big, not because of congestion (as Linux's tcp_simple_retransmit), so
    /// no window is reduced and their send time is now.
    private func resendSmaller(_ c: Connection, _ mp: MPConn, _ k: Int, from: TCPSeq, to: TCPSeq, now: Instant) {
        var j = 0
        while j < mp.paths[k].segments.count && outbox.count < Outbox.slots - 8 {
            let s = mp.paths[k].segments[j]
            j += 1
            guard !(s.seq < from), !(to < s.seq + s.length), !s.sacked, mp.holds(s.dsn, length: s.length) else { continue }
            mp.paths[k].segments[j - 1].sentAt = now
            sendData(c, mp, k, dsn: s.dsn, length: Int(s.length), dataFin: s.dataFin, now: now, retransmitOf: s.seq)
        }
    }

    /// The subflow a packet we sent belongs to (its 4-tuple as we sent it).
    private func subflow(from src: Endpoint, to dst: Endpoint) -> (h: Int, k: Int)? {
        guard let entry = table[FlowKey(client: src, server: dst)] else { return nil }
        let h = entry & 0xffff_ffff, k = entry >> 32
        guard let c = conns[h], let mp = c.mp, k < mp.paths.count,
              mp.paths[k].local == src, mp.paths[k].remote == dst else { return nil }
        return (h, k)
    }

    /// ICMP fragmentation-needed or ICMPv6 packet-too-big about a segment of
    /// one of our subflows (a link beyond the uplink carries less than it):
    /// the subflow's path MTU goes down to what the error says, and what it
    /// has in flight that was too big goes out again in smaller segments.
    /// Only for a sequence number in flight (RFC 5927 §4.1), and never below
    /// 576 bytes (IPv4) or 1280 (IPv6, RFC 8201 §4).
    func icmpTooBig(_ e: ICMPUnreachableView, mtu reported: Int, now: Instant) {
        stats.icmpTooBig &+= 1
        guard let (h, k) = subflow(from: e.source, to: e.destination), var c = conns[h], let mp = c.mp else { return }
        let p = mp.paths[k]
        guard p.state == .active || p.state == .preEstablished, !(e.seq < p.sndUna), e.seq < p.sndNxt else { return }
        var mtu = reported
        if mtu <= 0 || mtu >= e.quotedLength { mtu = Self.plateau(below: e.quotedLength) }
        mtu = max(mtu, e.source.address.isIPv6 ? 1280 : 576)
        guard let split = lowerPathMTU(mp, k, to: mtu, checksums: c.checksums) else { return }
        resendSmaller(c, mp, k, from: split.from, to: split.to, now: now)
        scheduleTimer(&c, h, now: now)
        conns[h] = c
    }

    /// The caller could not send `packet` (from the outbox, towards `side`):
    /// it was too big for the interface (EMSGSIZE). `mtu`: the interface's
    /// MTU if the caller knows it. The subflow's segment size goes down to
    /// fit, and the packet's data goes out again in smaller segments (the
    /// packet never left). Call it for each such packet, before the outbox
    /// is emptied (what it sends is added after the packets there).
    public func sendFailed(packet: UnsafeRawBufferPointer, side: Side, mtu: Int?, now: Instant) {
        stats.sendTooBig &+= 1
        guard case .uplink = side, let v = try? TCPPacketView(packet) else { return }
        let src = Endpoint(address: v.source, port: v.tcp.sourcePort)
        let dst = Endpoint(address: v.destination, port: v.tcp.destinationPort)
        guard let (h, k) = subflow(from: src, to: dst), var c = conns[h], let mp = c.mp else { return }
        var m = mtu ?? 0
        if m <= 0 || m >= v.ip.count { m = Self.plateau(below: v.ip.count) }
        lowerPathMTU(mp, k, to: m, checksums: c.checksums)
        // Resent only if smaller now (else a packet the interface refuses
        // for another reason would be sent again and again: its
        // retransmission timer takes over).
        let n = v.tcp.payload.count
        guard n > 0, mp.paths[k].mss < n else { return }
        resendSmaller(c, mp, k, from: v.tcp.seq, to: v.tcp.seq + UInt32(n), now: now)
        scheduleTimer(&c, h, now: now)
        conns[h] = c
    }

    /// The caller saw uplink `u`'s MTU change. New subflows on it announce
    /// and send what it carries now. When it went down, the subflows on it
    /// send smaller segments from now on (the ones in flight left already;
    /// their retransmissions are split), and a subflow whose announced MSS
    /// no longer fits is given up (the peer's full-sized segments would be
    /// dropped on arrival) and joined again, with a smaller MSS, a second
    /// later.
    public func uplink(_ u: Int, mtu: Int, now: Instant) {
        guard u >= 0, u < uplinkMTU.count, mtu > 0, uplinkMTU[u] != mtu else { return }
        let lowered = mtu < uplinkMTU[u]
        uplinkMTU[u] = mtu
        guard lowered else { return }
        for h in conns.indices {
            guard var c = conns[h], let mp = c.mp, !mp.paths.isEmpty, c.phase == .established else { continue }
            for k in mp.paths.indices where mp.paths[k].uplink == UInt8(u) {
                let p = mp.paths[k]
                switch p.state {
                case .active, .preEstablished, .joinSent, .joinReceived:
                    lowerPathMTU(mp, k, to: mtu, checksums: c.checksums)
                    let limit = segmentLimit(uplink: u, v6: p.local.address.isIPv6) ?? Int.max
                    if Int(p.announcedMSS) > limit {
                        stats.subflowsOverMTU &+= 1
                        failPath(&c, h, k, now: now, sendReset: p.state != .joinSent)
                    }
                case .unused, .failed:
                    break
                }
            }
            scheduleTimer(&c, h, now: now)
            conns[h] = c
        }
    }
}

extension IPAddress {
    var isIPv6: Bool { if case .v6 = self { return true } else { return false } }
}

import MPTCPStack

// Mutated packets for the live fuzz: mostly from the uplink side (what an
// attacker beyond the gateway, or a broken middlebox, can send), some from
// the LAN. Each starts from the connection's last genuine packet (or is
// wholly random on its 4-tuple); the kinds are those of the offline
// mutation fuzz (bits, lengths, option kinds) plus the MPTCP signals the
// engine must validate (issue 13).
//
// A mutated packet's payload is set to the stream bytes at the place the
// packet itself claims (`claim`): so whatever of it the engine rightly
// accepts lands where the genuine stream holds the same bytes, and a wrong
// byte at the LAN host or the peer is the engine's.

enum MutationKind: Int, CaseIterable {
    case flipBits, randomBytes, seqSmall, seqLarge, ackSmall, ackLarge, rst, fin, syn, flags, window
    case dss, dataFin, fastclose, removeAddr, addAddr, joinSYN, join, mpPrio, mpFail, mpCapable
    case truncatedOption, randomOption, stripMPTCP, replay, randomPacket, ipCorrupt
    case lanSeq, lanAck, lanRST, lanFIN, lanOptions, lanFlip

    var name: String { "\(self)" }

    /// Relative weights of the uplink-side kinds.
    static let uplinkWeights: [(MutationKind, Int)] = [
        (.flipBits, 8), (.randomBytes, 3), (.seqSmall, 6), (.seqLarge, 3), (.ackSmall, 4), (.ackLarge, 2),
        (.rst, 4), (.fin, 3), (.syn, 2), (.flags, 2), (.window, 2),
        (.dss, 10), (.dataFin, 3), (.fastclose, 2), (.removeAddr, 3), (.addAddr, 2), (.joinSYN, 3), (.join, 2),
        (.mpPrio, 2), (.mpFail, 2), (.mpCapable, 2), (.truncatedOption, 3), (.randomOption, 2), (.stripMPTCP, 3),
        (.replay, 4), (.randomPacket, 3), (.ipCorrupt, 1),
    ]
    static let lanWeights: [(MutationKind, Int)] = [
        (.lanSeq, 8), (.lanAck, 6), (.lanRST, 1), (.lanFIN, 4), (.lanOptions, 6), (.lanFlip, 6),
    ]
}

/// Where a packet's payload claims to lie.
enum Claim {
    /// At this offset of this stream.
    case offset(Int, FuzzStream)
    /// Nowhere the genuine end ever put data: bytes no stream holds there.
    case poison(Int, FuzzStream)
    /// Better without payload (a forged mapping may be in force).
    case strip
    /// Not one of our connections.
    case leave
}

extension LiveFuzz {
    static func pick(_ table: [(MutationKind, Int)], _ rng: inout SeededRandom) -> MutationKind {
        let total = table.reduce(0) { $0 + $1.1 }
        var r = rng.below(total)
        for (k, w) in table {
            if r < w { return k }
            r -= w
        }
        return table[0].0
    }

    /// A mutated packet for connection `c`, or nil when it has sent nothing yet.
    func mutate(_ c: FuzzConn) -> (bytes: [UInt8], side: Side, kind: MutationKind)? {
        if rng.percent(85), let base = c.lastUp { return uplinkMutation(c, base.bytes, base.side) }
        if let base = c.lastLan { return lanMutation(c, base) }
        return nil
    }

    // MARK: - From the uplink side

    func uplinkMutation(_ c: FuzzConn, _ base: [UInt8], _ baseSide: Side) -> (bytes: [UInt8], side: Side, kind: MutationKind)? {
        let kind = Self.pick(MutationKind.uplinkWeights, &rng)
        guard var s = Seg(parsing: base) else { return nil }
        var side = baseSide
        var raw: ((inout [UInt8]) -> Void)?
        switch kind {
        case .flipBits:
            let n = 1 + rng.below(4)
            let headersOnly = rng.percent(70)
            raw = { b in for _ in 0 ..< n { let p = self.rng.below(headersOnly ? min(b.count, 80) : b.count); b[p] ^= 1 << UInt8(self.rng.below(8)) } }
        case .randomBytes:
            let n = 1 + rng.below(3)
            raw = { b in for _ in 0 ..< n { b[self.rng.below(min(b.count, 80))] = self.rng.u8() } }
        case .seqSmall: s.seq = s.seq &+ UInt32(bitPattern: Int32(rng.smallOffset(rng.percent(50) ? 64 : 70_000)))
        case .seqLarge: s.seq = rng.percent(50) ? rng.u32() : s.seq &+ (1 << 30) &+ rng.u32() % (1 << 30)
        case .ackSmall: s.ack = s.ack &+ UInt32(bitPattern: Int32(rng.smallOffset(rng.percent(50) ? 64 : 70_000)))
        case .ackLarge: s.ack = rng.u32()
        case .rst:
            s.flags |= TCPFlags.rst
            if rng.percent(40) { s.flags &= ~TCPFlags.ack }
            if rng.percent(90) { s.seq = s.seq &+ UInt32(bitPattern: Int32(rng.smallOffset(rng.percent(50) ? 8 : 100_000))) }
            if rng.percent(50) { s.payload = [] }
        case .fin: s.flags |= TCPFlags.fin
        case .syn:
            s.flags |= TCPFlags.syn
            if rng.percent(50) { s.flags &= ~TCPFlags.ack }
        case .flags:
            s.flags = rng.u8()
            if rng.percent(80) { s.flags &= ~TCPFlags.rst } // (a RST at the genuine place is just a reset)
        case .window: s.window = [0, 1, rng.u16()][rng.below(3)]
        case .dss: replaceMPTCP(&s, with: [.dss(randomDSS(c, s))])
        case .dataFin:
            let dsn = c.R &+ 1 &+ UInt64(c.downTotal) &+ (rng.percent(50) ? 0 : UInt64(bitPattern: Int64(rng.smallOffset(5_000))))
            let dss = DSS(dataAck: rng.percent(80) ? peerDataAck(c) : rng.next(), dataAck8: true,
                          mapping: DSSMapping(dsn: dsn, subflowSeq: rng.percent(70) ? 0 : rng.u32(), length: rng.percent(80) ? 1 : UInt16(rng.below(3_000))),
                          dsn8: !rng.oneIn(5), dataFin: true)
            replaceMPTCP(&s, with: [.dss(dss)])
            if rng.percent(70) { s.payload = [] }
        case .fastclose:
            let key = rng.oneIn(20) && c.engineKey != nil ? c.key : rng.next()
            replaceMPTCP(&s, with: [.mpFastclose(MPFastclose(receiverKey: key))])
            if rng.percent(30) { s.flags |= TCPFlags.rst }
            if rng.percent(70) { s.payload = [] }
        case .removeAddr:
            var ids = InlineBytes40()
            if rng.percent(70) { _ = ids.append(0) } else { for _ in 0 ... rng.below(3) { _ = ids.append(rng.u8() % 4) } }
            replaceMPTCP(&s, with: [.removeAddr(RemoveAddr(addressIDs: ids))])
            if rng.percent(70) { s.payload = [] }
        case .addAddr:
            let addr: IPAddress = c.v6 == rng.percent(80) ? .v6(IPv6Address(high: rng.next(), low: rng.next())) : .v4(IPv4Address(rng.u32()))
            let id = rng.u8() % 8, port: UInt16? = rng.percent(50) ? rng.u16() : nil
            let hmac = rng.oneIn(10) && c.engineKey != nil
                ? MPTCPCrypto.addAddrHMAC(senderKey: c.peerKey, receiverKey: c.key, addressID: id, address: addr, port: port) : rng.next()
            replaceMPTCP(&s, with: [.addAddr(AddAddr(echo: rng.oneIn(6), addressID: id, address: addr, port: port, hmac: hmac))], keepTimestamps: rng.percent(50))
            if rng.percent(70) { s.payload = [] }
        case .joinSYN:
            forgedJoinSYN(c, &s, side: &side)
        case .join:
            let j: MPJoin
            switch rng.below(3) {
            case 0: j = .syn(flags: rng.u8() & 15, addressID: rng.u8(), token: rng.u32(), nonce: rng.u32())
            case 1: j = .synAck(flags: rng.u8() & 15, addressID: rng.u8(), truncatedHMAC: rng.next(), nonce: rng.u32())
            default: j = .ack(reserved: 0, hmac: HMAC160(a: rng.next(), b: rng.next(), c: rng.u32()))
            }
            replaceMPTCP(&s, with: [.mpJoin(j)])
            if rng.percent(50) { s.flags |= TCPFlags.syn }
        case .mpPrio:
            replaceMPTCP(&s, with: [.mpPrio(MPPrio(backup: rng.next() & 1 == 0, addressID: rng.percent(30) ? rng.u8() : nil))])
        case .mpFail:
            let dsn = rng.percent(50) ? c.R &+ 1 &+ UInt64(c.peer.dataUna) : rng.next()
            replaceMPTCP(&s, with: [.mpFail(MPFail(dsn: dsn))])
        case .mpCapable:
            let key = rng.percent(50) ? c.peerKey : rng.next()
            let other = rng.percent(50) && c.engineKey != nil ? c.key : rng.next()
            let m: MPCapable
            switch rng.below(5) {
            case 0: m = MPCapable(version: rng.percent(80) ? 1 : rng.u8() & 15, flags: rng.u8())
            case 1: m = MPCapable(flags: capableFlags(c), senderKey: key)
            case 2: m = MPCapable(flags: capableFlags(c), senderKey: key, receiverKey: other)
            case 3: m = MPCapable(flags: capableFlags(c), senderKey: key, receiverKey: other, dataLevelLength: UInt16(rng.below(3_000)))
            default: m = MPCapable(flags: capableFlags(c), senderKey: key, receiverKey: other, dataLevelLength: UInt16(rng.below(3_000)), checksum: rng.u16())
            }
            replaceMPTCP(&s, with: [.mpCapable(m)])
            if rng.percent(30) { s.flags |= TCPFlags.syn }
        case .truncatedOption:
            var area = s.options
            let elems = optionElements(area)
            var at = 0
            var target: (start: Int, len: Int)?
            for e in elems {
                if e.count >= 2 && e[0] > 1 && (target == nil || e[0] == TCPOptionKind.mptcp) { target = (at, e.count) }
                at += e.count
            }
            if let t = target {
                switch rng.below(3) {
                case 0: area[t.start + 1] = UInt8(rng.below(2))                        // length 0 or 1
                case 1: area[t.start + 1] = UInt8(min(255, t.len + 1 + rng.below(40))) // beyond the area
                default:
                    let cut = 2 + rng.below(max(1, t.len - 2))                           // cut short, length kept
                    area.removeSubrange(t.start + cut ..< t.start + t.len)
                }
                s.options = area
            }
        case .randomOption:
            var bytes: [UInt8] = [rng.percent(30) ? TCPOptionKind.mptcp : rng.u8(), 0]
            let len = 2 + rng.below(14)
            bytes[1] = rng.percent(80) ? UInt8(len) : rng.u8()
            for _ in 2 ..< len { bytes.append(rng.u8()) }
            let at = rng.below(s.options.count + 1)
            s.options.insert(contentsOf: bytes, at: at)
            if s.options.count > 40 { s.options.removeLast(s.options.count - 40) }
        case .stripMPTCP:
            replaceMPTCP(&s, with: [])
        case .replay:
            guard let old = c.history.randomElement(using: &rng) else { return nil }
            return (old.bytes, old.side, .replay)
        case .randomPacket:
            randomPacket(c, &s)
        case .ipCorrupt:
            raw = { b in
                switch self.rng.below(5) {
                case 0: b.removeLast(self.rng.below(b.count))                                  // truncated
                case 1: b[0] = b[0] & 0xf0 | UInt8(self.rng.below(16))                        // IHL / traffic class
                case 2: let l = self.rng.u16(); b[2] = UInt8(l >> 8); b[3] = UInt8(l & 0xff) // IPv4 total length / IPv6 flow label
                case 3: b[0] = b[0] & 0x0f | UInt8(self.rng.below(16)) << 4                   // version
                default: b[b[0] >> 4 == 4 ? 9 : 6] = [0, 1, 6, 17, 44, 58, 60][self.rng.below(7)] // protocol / next header
                }
            }
        default:
            return nil
        }
        return (finish(s, side: side, raw: raw, lan: false), side, kind)
    }

    /// An MP_JOIN SYN with the token of a live connection (this one's or
    /// another's), from the peer's address to the LAN host or an uplink.
    private func forgedJoinSYN(_ c: FuzzConn, _ s: inout Seg, side: inout Side) {
        // An MP_JOIN SYN with the token of a live connection (this one's or another's).
        let target = rng.percent(70) ? c : (slots.compactMap { $0 }.filter { $0.engineKey != nil }.randomElement(using: &rng) ?? c)
        let token = target.engineKey.map { MPTCPCrypto.token(key: $0) } ?? rng.u32()
        var to = c.lan
        side = .uplink(0)
        if plane == .twoUplinks && rng.percent(60) {
            let u = rng.below(2)
            to = Endpoint(address: c.v6 ? Self.uplinkAddresses[u].1 : Self.uplinkAddresses[u].0, port: 61_999)
            side = .uplink(UInt8(u))
        }
        var o = OptionBytes()
        o.synOptions(mss: 1460, ts: peerTSval(c), echo: 0, wscale: 7)
        o.add(.mpJoin(.syn(flags: rng.u8() & 1, addressID: rng.u8(), token: token, nonce: rng.u32())))
        // (Never on the connection's own 4-tuple: once the engine has
        // forgotten the connection it takes such a SYN for a native MPTCP
        // connection's, and then passes the peer's MPTCP data on
        // untranslated, or, once that native entry is closed, translates
        // the LAN host's packets with zero keys; see the report.)
        let from = Endpoint(address: c.peerEndpoint.address, port: UInt16(32_768 + rng.below(28_000)))
        s = Seg(src: from, dst: to, seq: rng.u32(), ack: 0, flags: TCPFlags.syn, window: 64_240, options: o.b)
    }

    /// A packet of random header fields and options (random bytes, or a
    /// jumble of real options) near or far from the connection's numbers.
    private func randomPacket(_ c: FuzzConn, _ s: inout Seg) {
        var area: [UInt8] = []
        let n = rng.below(41)
        if rng.percent(50) {
            for _ in 0 ..< n { area.append(rng.u8()) }
        } else {
            // A jumble of real options.
            var o = OptionBytes()
            while o.b.count < n {
                switch rng.below(6) {
                case 0: o.nop()
                case 1: o.add(.timestamps(value: rng.u32(), echoReply: rng.u32()))
                case 2: o.add(.dss(randomDSS(c, s)))
                case 3: o.add(.maxSegmentSize(rng.u16()))
                case 4: o.add(.mpCapable(MPCapable(senderKey: rng.next())))
                default: o.add(.removeAddr(RemoveAddr(addressIDs: InlineBytes40([rng.u8() % 3])!)))
                }
            }
            area = Array(o.b.prefix(40))
        }
        let near = rng.percent(50)
        s = Seg(src: s.src, dst: s.dst, seq: near ? s.seq &+ UInt32(bitPattern: Int32(rng.smallOffset(20_000))) : rng.u32(),
                ack: near ? s.ack : rng.u32(), flags: rng.u8() & (rng.percent(80) ? ~TCPFlags.rst : 0xff), window: rng.u16(), options: area,
                payload: [UInt8](repeating: 0, count: rng.percent(50) ? 0 : rng.below(1_400)))
    }

    // MARK: - From the LAN side

    func lanMutation(_ c: FuzzConn, _ base: [UInt8]) -> (bytes: [UInt8], side: Side, kind: MutationKind)? {
        let kind = Self.pick(MutationKind.lanWeights, &rng)
        guard var s = Seg(parsing: base) else { return nil }
        var raw: ((inout [UInt8]) -> Void)?
        switch kind {
        case .lanSeq:
            // Stays at or after the stream's start (the LAN host is no attacker).
            let off = seqDiff(s.seq, c.host.iss &+ 1)
            let d = rng.percent(70) ? rng.smallOffset(3_000) : rng.below(1 << 24)
            s.seq = c.host.iss &+ 1 &+ UInt32(truncatingIfNeeded: max(0, off + d))
        case .lanAck:
            // Near what the LAN host has: with two uplinks an ACK far beyond
            // what it was sent moves the engine's reference for the
            // download's DSNs (by up to 2^31 a segment), and a forged mapping
            // 2^32 beyond then passes the data-level window; see the report.
            s.ack = s.ack &+ UInt32(bitPattern: Int32(rng.smallOffset(rng.percent(50) ? 3_000 : 70_000)))
        case .lanRST:
            s.flags = TCPFlags.rst | (rng.percent(50) ? TCPFlags.ack : 0)
            if rng.percent(50) { s.seq = s.seq &+ UInt32(bitPattern: Int32(rng.smallOffset(5_000))) }
            s.payload = []
        case .lanFIN:
            s.flags |= TCPFlags.fin
        case .lanOptions:
            switch rng.below(3) {
            case 0: s.options.append(contentsOf: [TCPOptionKind.mptcp, UInt8(2 + rng.below(20)), rng.u8()])
            case 1:
                var o = OptionBytes()
                o.add(rng.percent(50) ? .dss(randomDSS(c, s)) : .mpCapable(MPCapable(senderKey: rng.next(), receiverKey: rng.next())))
                s.options += o.b
            default:
                s.options = (0 ..< rng.below(41)).map { _ in rng.u8() }
            }
            if s.options.count > 40 { s.options.removeLast(s.options.count - 40) }
        case .lanFlip:
            // In the IP header's TOS, identification and TTL, and in the TCP
            // header from its data offset on (the LAN host's sequence numbers
            // stay its own: a segment 2^31 off moves the engine's reference
            // for the upload's DSNs, see the report).
            let n = 1 + rng.below(3)
            raw = { b in
                let tcp = b[0] >> 4 == 4 ? 20 : 40
                let ipFields = b[0] >> 4 == 4 ? [1, 4, 5, 8] : [1, 2, 3, 7]
                for _ in 0 ..< n {
                    let p = self.rng.percent(20) ? ipFields[self.rng.below(ipFields.count)] : tcp + 12 + self.rng.below(max(1, min(b.count, tcp + 60) - tcp - 12))
                    if p < b.count { b[p] ^= 1 << UInt8(self.rng.below(8)) }
                }
            }
        default:
            return nil
        }
        return (finish(s, side: .lan, raw: raw, lan: true), .lan, kind)
    }

    // MARK: - Building

    /// Replaces the MPTCP options of `s` by `new` (timestamps kept unless
    /// told; other options dropped when there is no room).
    func replaceMPTCP(_ s: inout Seg, with new: [MPTCPOption], keepTimestamps: Bool = true) {
        var kept: [[UInt8]] = optionElements(s.options).filter { e in
            e[0] != TCPOptionKind.mptcp && e[0] != TCPOptionKind.endOfList && (keepTimestamps || e[0] != TCPOptionKind.timestamps)
        }
        var o = OptionBytes()
        for m in new { o.add(m) }
        while kept.reduce(0, { $0 + $1.count }) + o.b.count > 40, let i = kept.lastIndex(where: { $0[0] != TCPOptionKind.noOperation }) ?? kept.indices.last {
            kept.remove(at: i)
        }
        s.options = kept.flatMap { $0 } + o.b
    }

    /// A DSS with fields near the genuine ones and far from them.
    func randomDSS(_ c: FuzzConn, _ s: Seg) -> DSS {
        var dataAck: UInt64?
        if rng.percent(80) {
            switch rng.below(5) {
            case 0: dataAck = peerDataAck(c)
            case 1: dataAck = peerDataAck(c) &+ UInt64(bitPattern: Int64(rng.smallOffset(70_000)))
            case 2: dataAck = c.L &+ 1 &+ UInt64(c.upTotal) &+ UInt64(rng.below(3))
            case 3: dataAck = rng.next()
            default: dataAck = c.L &+ UInt64(bitPattern: Int64(rng.smallOffset(1 << 40)))
            }
        }
        var mapping: DSSMapping?
        if rng.percent(80) {
            let near = c.R &+ 1 &+ UInt64(rng.percent(50) ? c.peer.dataNxt : c.peer.dataUna)
            let dsn: UInt64
            switch rng.below(4) {
            case 0: dsn = near
            case 1: dsn = near &+ UInt64(bitPattern: Int64(rng.smallOffset(70_000)))
            case 2: dsn = rng.next()
            default: dsn = near &+ UInt64(bitPattern: Int64(rng.smallOffset(1 << 33)))
            }
            let sub = flows[FlowID(local: s.dst, remote: s.src)].map { c.peer.subs[min($0.sub, c.peer.subs.count - 1)] }
            let rel = s.seq &- (sub?.iss ?? c.peerISN)
            let ssn: UInt32
            switch rng.below(4) {
            case 0: ssn = rel
            case 1: ssn = rel &+ UInt32(bitPattern: Int32(rng.smallOffset(3_000)))
            case 2: ssn = 0
            default: ssn = rng.u32()
            }
            let len: UInt16
            switch rng.below(10) {
            case 0: len = 0 // an infinite mapping
            case 1, 2, 3: len = UInt16(s.payload.count)
            case 4, 5: len = UInt16(1 + rng.below(3_000))
            case 6, 7: len = UInt16(s.payload.count &+ 1)
            default: len = rng.u16()
            }
            mapping = DSSMapping(dsn: dsn, subflowSeq: ssn, length: len, checksum: c.checksums || rng.oneIn(20) ? rng.u16() : nil)
        }
        return DSS(dataAck: dataAck, dataAck8: !rng.oneIn(4), mapping: mapping, dsn8: !rng.oneIn(4), dataFin: rng.oneIn(8))
    }

    /// The packet of a mutation: its payload set to what it claims to be,
    /// the DSS checksum fixed (mostly), raw mutations applied, the IP and
    /// TCP checksums fixed (mostly).
    func finish(_ s: Seg, side: Side, raw: ((inout [UInt8]) -> Void)?, lan: Bool) -> [UInt8] {
        var b = s.build()
        guard !b.isEmpty else { return b }
        if let raw {
            raw(&b)
            if lan, !b.isEmpty {
                // Never a SYN from the LAN host mid-connection (port reuse is another test).
                let at = b[0] >> 4 == 4 ? Int(b[0] & 0x0f) * 4 + 13 : 53
                if at < b.count { b[at] &= ~TCPFlags.syn }
            }
        }
        // The claim is read off the packet as built (padding included), as the engine reads it.
        regenerate(&b, side: side)
        if raw == nil && rng.percent(80), var again = Seg(parsing: b), !again.payload.isEmpty {
            fixMappingChecksum(&again, side: side)
            b = again.build()
        }
        if !rng.oneIn(25) { fixChecksums(&b) }
        if side != .lan { noteForgedMapping(b) }
        return b
    }

    /// The payload of a mutated packet, set to what it claims.
    func regenerate(_ b: inout [UInt8], side: Side) {
        guard let (start, n, c): (Int, Int, Claim) = b.withUnsafeBytes({ raw in
            guard let v = try? TCPPacketView(raw), !v.tcp.payload.isEmpty else { return nil }
            let t = v.tcp
            let cl = claim(side: side, src: Endpoint(address: v.source, port: t.sourcePort), dst: Endpoint(address: v.destination, port: t.destinationPort),
                           seq: t.seq.rawValue, flags: t.flags, area: Array(t.optionArea), n: t.payload.count)
            return (v.tcpOffset + t.headerLength, t.payload.count, cl)
        }) else { return }
        switch c {
        case .offset(let o, let st):
            let p = st.bytes(o, n)
            for i in 0 ..< n { b[start + i] = p[i] }
        case .poison(let o, let st):
            let p = st.bytes(o, n)
            for i in 0 ..< n { b[start + i] = p[i] ^ 0xA5 }
        case .strip:
            b.removeSubrange(start ..< start + n)
            if b[0] >> 4 == 4 {
                let l = UInt16(truncatingIfNeeded: Int(UInt16(b[2]) << 8 | UInt16(b[3])) - n)
                b[2] = UInt8(l >> 8); b[3] = UInt8(l & 0xff)
            } else {
                let l = UInt16(truncatingIfNeeded: Int(UInt16(b[4]) << 8 | UInt16(b[5])) - n)
                b[4] = UInt8(l >> 8); b[5] = UInt8(l & 0xff)
            }
        case .leave:
            break
        }
    }

    /// Where the payload of a packet with these fields lies, as the engine
    /// would place it if it took the packet.
    func claim(side: Side, src: Endpoint, dst: Endpoint, seq: UInt32, flags: UInt8, area: [UInt8], n: Int) -> Claim {
        let syn = flags & TCPFlags.syn != 0
        if side == .lan {
            guard let e = flows[FlowID(local: src, remote: dst)], e.sub == 0 else { return .leave }
            let off = seqDiff(seq &+ (syn ? 1 : 0), e.conn.host.iss &+ 1)
            return off >= 0 ? .offset(off, e.conn.up) : .strip
        }
        guard let e = flows[FlowID(local: dst, remote: src)], e.sub < e.conn.peer.subs.count else { return .leave }
        let c = e.conn, sub = c.peer.subs[e.sub]
        // Data on a SYN, and an infinite mapping: the subflow's own numbering.
        let identity = seqDiff(seq &+ (syn ? 1 : 0), sub.iss &+ 1)
        if syn { return .offset(identity, c.down) }
        let o = area.withUnsafeBytes { TCPOptionSummary(parsing: $0) }
        let rel = seq &- sub.iss
        if o.has(.dss), let m = o.dss.mapping {
            if m.length == 0 { return .offset(identity, c.down) }
            let dsn = o.dss.dsnIs8 ? m.dsn : DataSeq.expand(low32: UInt32(truncatingIfNeeded: m.dsn),
                                                            near: DataSeq(c.R &+ 1 &+ UInt64(c.peer.dataNxt))).rawValue
            return .offset(Int(Int64(bitPattern: dsn &- c.R &- 1)) &+ seqDiff(rel, m.subflowSeq), c.down)
        }
        if o.has(.mpCapable), (o.mpCapable.dataLevelLength ?? 0) > 0, e.sub == 0,
           plane == .oneUplink ? rel == 1 : c.responder {
            // The first data's mapping (DSN IDSN + 1 at relative 1), where the
            // engine takes it as one: with one uplink at relative 1, with two in
            // the responder role; elsewhere the mapping in force places it.
            return .offset(identity, c.down)
        }
        if sub.forgedMapping { return .strip }
        if let ch = sub.chunk(covering: rel) { return .offset(ch.offset + Int(rel &- ch.ssn), c.down) }
        return .poison(identity, c.down)
    }

    /// A mutated packet from an uplink that carries a mapping: the engine
    /// may now hold it for its subflow.
    func noteForgedMapping(_ b: [UInt8]) {
        b.withUnsafeBytes { raw in
            guard let v = try? TCPPacketView(raw),
                  let e = flows[FlowID(local: Endpoint(address: v.destination, port: v.tcp.destinationPort),
                                       remote: Endpoint(address: v.source, port: v.tcp.sourcePort))],
                  e.sub < e.conn.peer.subs.count else { return }
            let o = TCPOptionSummary(parsing: v.tcp.optionArea)
            if let m = o.has(.dss) ? o.dss.mapping : nil, !(o.dss.dataFin && m.length == 1 && v.tcp.payload.isEmpty) {
                e.conn.peer.subs[e.sub].forgedMapping = true
            } else if o.has(.mpCapable), (o.mpCapable.dataLevelLength ?? 0) > 0 {
                e.conn.peer.subs[e.sub].forgedMapping = true
            }
        }
    }

    /// Recomputes the DSS (or MP_CAPABLE) checksum of a segment's mapping
    /// over its payload, where the mapping covers exactly the payload.
    func fixMappingChecksum(_ s: inout Seg, side: Side) {
        guard side != .lan, let e = flows[FlowID(local: s.dst, remote: s.src)], e.sub < e.conn.peer.subs.count else { return }
        let c = e.conn, sub = c.peer.subs[e.sub]
        var out: [UInt8] = []
        var changed = false
        for el in optionElements(s.options) {
            guard el.count >= 4, el[0] == TCPOptionKind.mptcp,
                  let m = el.withUnsafeBytes({ try? MPTCPOption(parsing: $0) }) else { out += el; continue }
            switch m {
            case .dss(var d):
                guard var map = d.mapping, map.checksum != nil, Int(map.length) == s.payload.count else { out += el; continue }
                let dsn = d.dsnIs8 ? map.dsn : DataSeq.expand(low32: UInt32(truncatingIfNeeded: map.dsn), near: DataSeq(c.R &+ 1 &+ UInt64(c.peer.dataNxt))).rawValue
                map.checksum = s.payload.withUnsafeBytes { DSSChecksum.compute(dsn: dsn, subflowSeq: map.subflowSeq, length: map.length, payload: $0) }
                d.mapping = map
                var o = OptionBytes()
                o.add(.dss(d))
                out += o.b
                changed = true
            case .mpCapable(var m):
                guard let len = m.dataLevelLength, m.checksum != nil, Int(len) == s.payload.count, s.seq &- sub.iss == 1 else { out += el; continue }
                m.checksum = s.payload.withUnsafeBytes { DSSChecksum.compute(dsn: c.R &+ 1, subflowSeq: 1, length: len, payload: $0) }
                var o = OptionBytes()
                o.add(.mpCapable(m))
                out += o.b
                changed = true
            default:
                out += el
            }
        }
        if changed && out.count == s.options.count { s.options = out }
    }
}

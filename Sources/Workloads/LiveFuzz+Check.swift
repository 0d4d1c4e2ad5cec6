import MPTCPStack

// The invariants of the live fuzz, checked on every packet that leaves the
// engine (rewritten or originated), and on the engine's multipath state.

extension LiveFuzz {
    /// Checks a packet leaving the engine towards `side`. `strict`: its
    /// input was genuine (or the engine made it whole), so every option
    /// must decode and the IP length must be exact. Returns false when it
    /// does not even parse.
    @discardableResult
    public func check(_ out: [UInt8], towards side: Side, gso: Bool = false, strict: Bool = true, what: String) -> Bool {
        report.outputsChecked += 1
        let problem: String? = out.withUnsafeBytes { raw in
            let v: TCPPacketView
            do { v = try TCPPacketView(raw) } catch { return "does not parse as TCP/IP (\(error))" }
            switch v.family {
            case .v4:
                guard let ip = try? IPv4PacketView(raw) else { return "no IPv4 view" }
                if !ip.headerChecksumValid { return "IPv4 header checksum invalid" }
                if strict && Int(ip.totalLength) != raw.count { return "IPv4 total length \(ip.totalLength) for \(raw.count) bytes" }
            case .v6:
                if strict && 40 + Int(raw.be16(4)) != raw.count { return "IPv6 payload length \(raw.be16(4)) for \(raw.count) bytes" }
            }
            if gso {
                let pseudo = TCPChecksum.pseudoHeader(source: v.source, destination: v.destination, length: v.tcp.bytes.count)
                if v.tcp.checksum != pseudo.folded { return "GSO: the checksum field is not the pseudo-header sum" }
            } else if !v.tcpChecksumValid {
                return "TCP checksum invalid"
            }
            let hl = v.tcp.headerLength
            if hl < 20 || hl - 20 > 40 { return "TCP header length \(hl)" }
            var mptcp = false
            for e in TCPOptionIterator(v.tcp.optionArea) {
                if let f = e.fault { return "option structure fault \(f) at \(e.offset)" }
                if strict, case .malformed(let why, _) = e.option { return "option kind \(e.kind) does not decode: \(why)" }
                if e.kind == TCPOptionKind.mptcp { mptcp = true }
            }
            if side == .lan && mptcp && !v.tcp.has(TCPFlags.syn) { return "an MPTCP option towards the LAN" }
            return nil
        }
        if let problem {
            fail("\(what): \(problem): \(summary(out)) \(hex(out.prefix(96)))")
            return false
        }
        checkData(out, towards: side, what: what)
        if out.count > 100 { lastChecked[side == .lan ? 0 : 1] = out }
        return true
    }

    /// A genuine packet the engine passed unchanged: its bytes are the
    /// engine's to place when the end it reaches takes them (a LAN host in
    /// SYN-SENT drops data).
    func checkAccepted(_ b: [UInt8], towards side: Side) {
        if side == .lan {
            let taken: Bool = b.withUnsafeBytes { raw in
                guard let v = try? TCPPacketView(raw),
                      let e = flows[FlowID(local: Endpoint(address: v.destination, port: v.tcp.destinationPort),
                                           remote: Endpoint(address: v.source, port: v.tcp.sourcePort))] else { return false }
                return e.conn.host.state == .established
            }
            guard taken else { return }
        }
        checkData(b, towards: side, what: "accepted genuine packet")
    }

    /// Every payload byte at its place: towards the LAN in the peer's stream
    /// (from the peer's ISN on the initial subflow), towards an uplink under
    /// a mapping in the LAN host's stream (from the engine's IDSN).
    func checkData(_ out: [UInt8], towards side: Side, what: String) {
        out.withUnsafeBytes { raw in
            guard let v = try? TCPPacketView(raw) else { return }
            let t = v.tcp
            let src = Endpoint(address: v.source, port: t.sourcePort), dst = Endpoint(address: v.destination, port: t.destinationPort)
            let n = t.payload.count
            if side == .lan {
                guard n > 0, let e = flows[FlowID(local: dst, remote: src)], e.sub == 0 else { return }
                let c = e.conn
                let off = seqDiff(t.seq.rawValue &+ (t.has(TCPFlags.syn) ? 1 : 0), c.peerISN &+ 1)
                report.segmentsCheckedDown += 1
                let before = off < 0 ? (off < -n ? n : -off) : 0
                report.bytesBeforeStart += before
                c.downChecked += n - before
                if let i = c.down.firstMismatch(t.payload, at: off) {
                    fail("""
                        \(what): connection \(c.id) (\(c.responder ? "responder" : "initiator")): byte \(i) of \(n) towards the LAN at \
                        seq \(t.seq.rawValue &+ UInt32(i)) (stream offset \(off &+ i)) is \(t.payload[i]), the peer's stream holds \(c.down.byte(off &+ i)); \
                        \(summary(out))
                        """)
                }
                return
            }
            guard let e = flows[FlowID(local: src, remote: dst)] else { return }
            let c = e.conn
            let o = TCPOptionSummary(parsing: t.optionArea)
            if e.sub == 0, o.has(.mpCapable), let k = o.mpCapable.senderKey, !(t.has(TCPFlags.syn) && !t.has(TCPFlags.ack)) {
                // A new key only with a new handshake (a half-open entry that
                // expired, the SYN come again): never on an established connection.
                let handshake = t.has(TCPFlags.syn) || !c.peer.established
                if let old = c.engineKey, old != k, !handshake {
                    fail("\(what): connection \(c.id): the engine's key was \(old), now \(k): \(summary(out))")
                }
                if c.engineKey == nil || handshake {
                    c.engineKey = k
                    c.L = MPTCPCrypto.idsn(key: k)
                }
            }
            guard n > 0 else { return }
            let isn = e.sub == 0 ? c.host.iss : (e.sub < c.peer.subs.count ? c.peer.subs[e.sub].irs : 0)
            let rel = t.seq.rawValue &- isn
            let base: Int, covered: Int
            if o.has(.dss), let m = o.dss.mapping, m.length > 0 {
                // (Mapped data before the engine has told its key: a finding
                // of its own, not checkable here.)
                guard c.engineKey != nil else { report.unkeyedUpload += n; return }
                let dsn = o.dss.dsnIs8 ? m.dsn : DataSeq.expand(low32: UInt32(truncatingIfNeeded: m.dsn),
                                                                near: DataSeq(c.L &+ 1 &+ UInt64(c.host.sndNxt))).rawValue
                let into = seqDiff(rel, m.subflowSeq)
                covered = Int(m.length) - (o.dss.dataFin ? 1 : 0)
                if into < 0 || into + n > covered {
                    fail("\(what): connection \(c.id): the mapping (ssn \(m.subflowSeq), \(m.length) bytes) does not cover the payload at relative \(rel), \(n) bytes: \(summary(out))")
                    return
                }
                if let cs = m.checksum, into == 0, n == covered,
                   !DSSChecksum.verify(dsn: dsn, subflowSeq: m.subflowSeq, length: m.length, checksum: cs, payload: t.payload) {
                    fail("\(what): connection \(c.id): DSS checksum invalid: \(summary(out))")
                }
                base = Int(Int64(bitPattern: dsn &- c.L &- 1)) &+ into
            } else if e.sub == 0, o.has(.mpCapable), let len = o.mpCapable.dataLevelLength, len > 0 {
                guard c.engineKey != nil else { return }
                let into = seqDiff(rel, 1)
                if into < 0 || into + n > Int(len) {
                    fail("\(what): connection \(c.id): MP_CAPABLE's data-level length \(len) does not cover the payload at relative \(rel), \(n) bytes")
                    return
                }
                if let cs = o.mpCapable.checksum, into == 0, n == Int(len),
                   !DSSChecksum.verify(dsn: c.L &+ 1, subflowSeq: 1, length: len, checksum: cs, payload: t.payload) {
                    fail("\(what): connection \(c.id): MP_CAPABLE checksum invalid: \(summary(out))")
                }
                base = into
            } else {
                report.unmappedUpload += n
                return
            }
            report.segmentsCheckedUp += 1
            let before = base < 0 ? (base < -n ? n : -base) : 0
            report.bytesBeforeStart += before
            c.upChecked += n - before
            if let i = c.up.firstMismatch(t.payload, at: base) {
                fail("""
                    \(what): connection \(c.id) (\(c.responder ? "responder" : "initiator")) subflow \(e.sub): byte \(i) of \(n) towards the peer \
                    at data offset \(base &+ i) is \(t.payload[i]), the LAN host's stream holds \(c.up.byte(base &+ i)); \(summary(out))
                    """)
            }
        }
    }

    /// Two uplinks: every connection the engine has established has a
    /// subflow that works or is being joined. One seen with every subflow
    /// failed at two looks 10 s apart, and no MP_JOIN SYN for it between,
    /// is stuck (the engine must reset it at both ends instead).
    func scanMultipath() {
        lastScan = index
        guard plane == .twoUplinks else { return }
        let text = engine.multipathState
        var current: FuzzConn?
        var established = false
        var states: [Substring] = []
        var lines: [Substring] = []
        var seen: [FuzzConn] = []
        func flush() {
            guard let c = current else { return }
            seen.append(c)
            report.connectionsInDumps += 1
            let allFailed = established && !states.isEmpty && states.allSatisfy { $0 == "failed" || $0 == "unused" }
            if !allFailed {
                c.allFailedSince = nil
                return
            }
            guard let since = c.allFailedSince else {
                c.allFailedSince = now
                watched.append(c)
                return
            }
            if now >= since + .seconds(10) && c.lastJoinSYN < since && !c.stuckReported {
                c.stuckReported = true
                fail("""
                    connection \(c.id) (\(c.responder ? "responder" : "initiator"), \(c.outcome.name)): every subflow failed since \(since), \
                    nothing rejoining at \(now): \(lines.joined(separator: " | "))
                    """, issue: .stuckSubflows)
            }
        }
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ")
            if line.first == " " {
                if words.count > 1 { states.append(words[1]) }
                lines.append(line)
            } else {
                flush()
                states = []
                lines = [line]
                current = words.count > 4 ? byDumpName["\(words[0]) -> \(words[2])"] : nil
                established = words.count > 4 && words[4] == "established"
            }
        }
        flush()
        // Those no longer in the table (reset, closed, expired) are fine.
        for c in watched where !seen.contains(where: { $0 === c }) { c.allFailedSince = nil }
        watched.removeAll { $0.allFailedSince == nil }
    }
}

func hex(_ b: some Collection<UInt8>) -> String {
    let d = Array("0123456789abcdef")
    var s = ""
    for x in b { s.append(d[Int(x >> 4)]); s.append(d[Int(x & 15)]) }
    return s
}

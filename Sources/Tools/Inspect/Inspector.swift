import MPTCPStack

/// Decodes captured packets into records for `nfq-mptcp inspect`.
///
/// Per packet it shows every TCP and MPTCP option field; across packets it
/// remembers the MPTCP keys it has seen (MP_CAPABLE carries them in the
/// clear) so that it can derive tokens and IDSNs and verify MP_JOIN and
/// ADD_ADDR HMACs and the MP_FASTCLOSE key. This is a debugging tool, not
/// the data path: it allocates freely.
public final class Inspector {
    public struct Endpoint: Hashable, CustomStringConvertible {
        public var address: IPAddress
        public var port: UInt16
        public var description: String {
            switch address {
            case .v4: return "\(address):\(port)"
            case .v6: return "[\(address)]:\(port)"
            }
        }
    }

    /// Unordered pair of endpoints: one TCP subflow seen in both directions.
    struct Flow: Hashable {
        let a: Endpoint, b: Endpoint
        init(_ x: Endpoint, _ y: Endpoint) {
            if x.description < y.description { a = x; b = y } else { a = y; b = x }
        }
    }

    final class FlowState {
        var keys: [Endpoint: UInt64] = [:]
        var nonces: [Endpoint: UInt32] = [:]
        /// Initial sequence number of each direction (from its SYN).
        var isn: [Endpoint: UInt32] = [:]
        /// The checksummed DSS mapping each direction is filling.
        var pending: [Endpoint: PendingMapping] = [:]
    }

    /// A DSS mapping that carries a checksum, collected byte by byte over
    /// the segments it spans (Linux repeats one mapping over many segments)
    /// so its checksum can be verified once it is complete.
    struct PendingMapping {
        var dsn: UInt64, ssn: UInt32, length: UInt16, checksum: UInt16
        var bytes: [UInt8]
        var filled: [Bool]
        var missing: Int
        var reported = false

        init(dsn: UInt64, ssn: UInt32, length: UInt16, checksum: UInt16) {
            self.dsn = dsn; self.ssn = ssn; self.length = length; self.checksum = checksum
            bytes = [UInt8](repeating: 0, count: Int(length))
            filled = [Bool](repeating: false, count: Int(length))
            missing = Int(length)
        }

        func same(_ o: PendingMapping) -> Bool { dsn == o.dsn && ssn == o.ssn && length == o.length && checksum == o.checksum }
    }

    /// Counters over the whole run.
    public struct Totals {
        public var packets = 0
        public var tcp = 0
        public var undecodable = 0
        public var malformedOptions = 0
        public var subtypes: [String: Int] = [:]
        public var hmacChecked = 0
        public var hmacFailed = 0
    }

    private var flows: [Flow: FlowState] = [:]
    /// token -> (key with that token, the other key of the connection)
    private var keysByToken: [UInt32: (UInt64, UInt64)] = [:]
    public private(set) var totals = Totals()
    private var firstTime: Double?

    public init() {}

    private func state(_ f: Flow) -> FlowState {
        if let s = flows[f] { return s }
        let s = FlowState()
        flows[f] = s
        return s
    }

    /// One packet's record as an ordered JSON object.
    public func inspect(frame: Int, seconds: Int, microseconds: Int, ip: UnsafeRawBufferPointer,
                        truncatedCapture: Bool = false) -> JSONValue {
        totals.packets += 1
        let t = Double(seconds) + Double(microseconds) / 1e6
        if firstTime == nil { firstTime = t }
        var o = JSONObjectBuilder()
        o.add("frame", frame)
        o.add("time", .string(String(format3: t - firstTime!)))
        let v: TCPPacketView
        do { v = try TCPPacketView(ip, allowTruncated: truncatedCapture) } catch {
            totals.undecodable += 1
            o.add("error", String(describing: error.reason))
            o.add("length", ip.count)
            return o.value
        }
        totals.tcp += 1
        let src = Endpoint(address: v.source, port: v.tcp.sourcePort)
        let dst = Endpoint(address: v.destination, port: v.tcp.destinationPort)
        let flow = Flow(src, dst)
        o.add("ip", v.family == .v4 ? 4 : 6)
        o.add("src", v.source.description)
        o.add("sport", Int(v.tcp.sourcePort))
        o.add("dst", v.destination.description)
        o.add("dport", Int(v.tcp.destinationPort))
        o.add("flags", TCPFlags.string(v.tcp.flags))
        o.add("seq", v.tcp.seq.rawValue)
        o.add("ack", v.tcp.ack.rawValue)
        o.add("win", Int(v.tcp.window))
        let stated: Int
        switch v.family {
        case .v4: stated = Int(ip.u16be(2)) - v.tcpOffset - v.tcp.headerLength
        case .v6: stated = 40 + Int(ip.u16be(4)) - v.tcpOffset - v.tcp.headerLength
        }
        o.add("len", stated)
        o.add("csum", hex(UInt64(v.tcp.checksum), digits: 4))
        if stated == v.tcp.payload.count {
            let ok = v.tcpChecksumValid
            o.add("csum_ok", ok)
            // Captured before the NIC (or veth) filled it in: the field holds
            // only the pseudo-header sum (checksum offload), not an error.
            if !ok && v.tcp.checksum == TCPChecksum.pseudoHeader(source: v.source, destination: v.destination,
                                                                 length: v.tcp.bytes.count).folded {
                o.add("csum_partial", true)
            }
        } else {
            o.add("captured_len", v.tcp.payload.count)
        }
        var opts: [JSONValue] = []
        for e in v.tcp.options {
            opts.append(option(e, src: src, dst: dst, flow: flow, tcp: v.tcp))
        }
        o.add("options", .array(opts))
        if !truncatedCapture, let c = dssChecksum(v, src: src, flow: flow) { o.add("dss_checksum", c) }
        return o.value
    }

    private func option(_ e: TCPOptionIterator.Element, src: Endpoint, dst: Endpoint, flow: Flow,
                        tcp: TCPSegmentView) -> JSONValue {
        var o = JSONObjectBuilder()
        let opt: TCPOption
        do { opt = try e.parse() } catch {
            totals.malformedOptions += 1
            o.add("kind", "malformed")
            o.add("kind_num", Int(e.kind))
            if e.kind == TCPOptionKind.mptcp && e.bytes.count >= 3 {
                let st = e.bytes[2] >> 4
                o.add("subtype", MPTCPSubtype(rawValue: st)?.description ?? "unknown")
                o.add("subtype_num", Int(st))
            }
            o.add("length", e.bytes.count)
            o.add("reason", String(describing: error.reason))
            o.add("hex", hexBytes(e.bytes))
            return o.value
        }
        switch opt {
        case .endOfList(let p):
            o.add("kind", "eol")
            o.add("padding", p.count)
        case .noOperation: o.add("kind", "nop")
        case .maxSegmentSize(let v): o.add("kind", "mss"); o.add("mss", Int(v))
        case .windowScale(let v): o.add("kind", "wscale"); o.add("shift", Int(v))
        case .sackPermitted: o.add("kind", "sack_perm")
        case .sack(let s):
            o.add("kind", "sack")
            o.add("blocks", .array((0 ..< s.count).map { .array([.uint(UInt64(s[$0].left.rawValue)), .uint(UInt64(s[$0].right.rawValue))]) }))
        case .timestamps(let v, let e):
            o.add("kind", "timestamp"); o.add("tsval", v); o.add("tsecr", e)
        case .unknown(let k, let b):
            o.add("kind", "unknown"); o.add("kind_num", Int(k)); o.add("length", b.count); o.add("hex", hexBytes(b.array))
        case .malformed(let r, let b):
            o.add("kind", "malformed"); o.add("reason", String(describing: r.reason)); o.add("hex", hexBytes(b.array))
        case .mptcp(let m):
            o.add("kind", "mptcp")
            o.add("subtype", MPTCPSubtype(rawValue: m.subtype)?.description ?? "unknown")
            o.add("subtype_num", Int(m.subtype))
            o.add("length", m.encodedLength)
            totals.subtypes[MPTCPSubtype(rawValue: m.subtype)?.description ?? "unknown", default: 0] += 1
            mptcp(m, into: &o, src: src, dst: dst, flow: flow, tcp: tcp)
        }
        return o.value
    }

    /// Feeds this segment's payload into its direction's checksummed mapping;
    /// returns a verdict when this segment completes one.
    private func dssChecksum(_ v: TCPPacketView, src: Endpoint, flow: Flow) -> JSONValue? {
        let st = state(flow)
        if v.tcp.has(TCPFlags.syn) { st.isn[src] = v.tcp.seq.rawValue; st.pending[src] = nil; return nil }
        let sum = TCPOptionSummary(parsing: v.tcp.optionArea)
        var m: PendingMapping?
        var dataFinOnly = false
        if sum.has(.dss), let mp = sum.dss.mapping, let c = mp.checksum, sum.dss.dsnIs8 {
            m = PendingMapping(dsn: mp.dsn, ssn: mp.subflowSeq, length: mp.length, checksum: c)
            dataFinOnly = sum.dss.dataFin && mp.subflowSeq == 0 && mp.length == 1
        } else if sum.has(.mpCapable), let l = sum.mpCapable.dataLevelLength, let c = sum.mpCapable.checksum,
                  let k = sum.mpCapable.senderKey {
            m = PendingMapping(dsn: MPTCPCrypto.idsn(key: k) &+ 1, ssn: 1, length: l, checksum: c)
        }
        if dataFinOnly, let m {
            // A DATA_FIN alone: the checksum covers the pseudo-header only.
            totals.hmacChecked += 1
            let ok = DSSChecksum.verify(dsn: m.dsn, subflowSeq: 0, length: 1, checksum: m.checksum,
                                        payload: UnsafeRawBufferPointer(start: nil, count: 0))
            if !ok { totals.hmacFailed += 1 }
            return .object([("dsn", .uint(m.dsn)), ("length", .uint(1)), ("valid", .bool(ok))])
        }
        if let m, !(st.pending[src]?.same(m) ?? false) { st.pending[src] = m }
        guard var p = st.pending[src], !p.reported, let isn = st.isn[src], v.tcp.payload.count > 0 else { return nil }
        let rel = v.tcp.seq.rawValue &- isn
        let start = Int(Int32(bitPattern: rel &- p.ssn))
        let payload = v.tcp.payload
        for i in 0 ..< payload.count {
            let j = start + i
            if j >= 0 && j < Int(p.length) && !p.filled[j] {
                p.filled[j] = true
                p.bytes[j] = payload[i]
                p.missing -= 1
            }
        }
        var verdict: JSONValue?
        if p.missing == 0 {
            p.reported = true
            let ok = p.bytes.withUnsafeBytes {
                DSSChecksum.verify(dsn: p.dsn, subflowSeq: p.ssn, length: p.length, checksum: p.checksum, payload: $0)
            }
            totals.hmacChecked += 1
            if !ok { totals.hmacFailed += 1 }
            verdict = .object([("dsn", .uint(p.dsn)), ("length", .uint(UInt64(p.length))), ("valid", .bool(ok))])
        }
        st.pending[src] = p
        return verdict
    }

    private func keyFields(_ prefix: String, _ key: UInt64, into o: inout JSONObjectBuilder) {
        o.add(prefix + "_key", hex(key, digits: 16))
        o.add(prefix + "_token", hex(UInt64(MPTCPCrypto.token(key: key)), digits: 8))
        o.add(prefix + "_idsn", MPTCPCrypto.idsn(key: key))
    }

    private func verdict(_ ok: Bool?, into o: inout JSONObjectBuilder, _ name: String = "hmac_valid") {
        guard let ok else { return }
        totals.hmacChecked += 1
        if !ok { totals.hmacFailed += 1 }
        o.add(name, ok)
    }

    private func mptcp(_ m: MPTCPOption, into o: inout JSONObjectBuilder, src: Endpoint, dst: Endpoint,
                       flow: Flow, tcp: TCPSegmentView) {
        switch m {
        case .mpCapable(let c):
            o.add("version", Int(c.version))
            o.add("flags", hex(UInt64(c.flags), digits: 2))
            o.add("checksum_required", c.flags & 0x80 != 0)
            o.add("extensibility", c.flags & 0x40 != 0)
            o.add("no_new_subflows_to_source", c.flags & 0x20 != 0)
            o.add("hmac_sha256", c.flags & 0x01 != 0)
            let st = state(flow)
            if let k = c.senderKey { keyFields("sender", k, into: &o); st.keys[src] = k }
            if let k = c.receiverKey { keyFields("receiver", k, into: &o); st.keys[dst] = k }
            if let l = c.dataLevelLength { o.add("data_level_length", Int(l)) }
            if let x = c.checksum { o.add("checksum", hex(UInt64(x), digits: 4)) }
            if let a = st.keys[src], let b = st.keys[dst] {
                keysByToken[MPTCPCrypto.token(key: a)] = (a, b)
                keysByToken[MPTCPCrypto.token(key: b)] = (b, a)
            }
        case .mpJoin(let j):
            let st = state(flow)
            switch j {
            case let .syn(flags, id, token, nonce):
                o.add("form", "syn")
                o.add("backup", flags & 1 != 0)
                o.add("address_id", Int(id))
                o.add("token", hex(UInt64(token), digits: 8))
                o.add("nonce", hex(UInt64(nonce), digits: 8))
                st.nonces[src] = nonce
                if let (recv, send) = keysByToken[token] {
                    st.keys[dst] = recv
                    st.keys[src] = send
                    o.add("token_known", true)
                } else {
                    o.add("token_known", false)
                }
            case let .synAck(flags, id, mac, nonce):
                o.add("form", "synack")
                o.add("backup", flags & 1 != 0)
                o.add("address_id", Int(id))
                o.add("truncated_hmac", hex(mac, digits: 16))
                o.add("nonce", hex(UInt64(nonce), digits: 8))
                st.nonces[src] = nonce
                if let kl = st.keys[src], let kr = st.keys[dst], let nr = st.nonces[dst] {
                    let h = MPTCPCrypto.joinHMAC(keyLocal: kl, keyRemote: kr, nonceLocal: nonce, nonceRemote: nr)
                    verdict(h.a == mac, into: &o)
                }
            case let .ack(_, mac):
                o.add("form", "ack")
                o.add("hmac", "0x" + mac.description)
                if let kl = st.keys[src], let kr = st.keys[dst], let nl = st.nonces[src], let nr = st.nonces[dst] {
                    let h = MPTCPCrypto.joinHMAC(keyLocal: kl, keyRemote: kr, nonceLocal: nl, nonceRemote: nr)
                    verdict(h == mac, into: &o)
                }
            }
        case .dss(let d):
            o.add("flags", hex(UInt64(d.flags), digits: 2))
            o.add("data_fin", d.dataFin)
            if let a = d.dataAck {
                o.add("data_ack", a)
                o.add("data_ack_len", d.dataAckIs8 ? 8 : 4)
            }
            if let mp = d.mapping {
                o.add("dsn", mp.dsn)
                o.add("dsn_len", d.dsnIs8 ? 8 : 4)
                o.add("subflow_seq", mp.subflowSeq)
                o.add("data_level_length", Int(mp.length))
                if let c = mp.checksum { o.add("checksum", hex(UInt64(c), digits: 4)) }
            }
        case .addAddr(let a):
            o.add("echo", a.echo)
            o.add("address_id", Int(a.addressID))
            switch a.address {
            case .v4: o.add("ipver", 4)
            case .v6: o.add("ipver", 6)
            }
            o.add("address", a.address.description)
            if let p = a.port { o.add("port", Int(p)) }
            if let h = a.hmac {
                o.add("hmac", hex(h, digits: 16))
                let st = state(flow)
                if let ks = st.keys[src], let kr = st.keys[dst] {
                    verdict(MPTCPCrypto.addAddrHMAC(senderKey: ks, receiverKey: kr, addressID: a.addressID,
                                                    address: a.address, port: a.port) == h, into: &o)
                }
            }
        case .removeAddr(let r):
            o.add("address_ids", .array(r.addressIDs.array.map { .uint(UInt64($0)) }))
        case .mpPrio(let p):
            o.add("backup", p.backup)
            if let id = p.addressID { o.add("address_id", Int(id)) }
        case .mpFail(let f):
            o.add("dsn", f.dsn)
        case .mpFastclose(let f):
            o.add("receiver_key", hex(f.receiverKey, digits: 16))
            if let k = state(flow).keys[dst] { verdict(k == f.receiverKey, into: &o, "key_valid") }
        case .mpTCPRST(let r):
            o.add("flags", hex(UInt64(r.flags), digits: 1))
            o.add("transient", r.transient)
            o.add("reason", Int(r.reason))
            o.add("reason_text", Self.resetReason(r.reason))
        case .other(_, let b):
            o.add("hex", hexBytes(b.array))
        }
    }

    /// RFC 8684 §3.6 reason codes.
    static func resetReason(_ r: UInt8) -> String {
        switch r {
        case 0: return "unspecified"
        case 1: return "MPTCP-specific error"
        case 2: return "lack of resources"
        case 3: return "administratively prohibited"
        case 4: return "too much outstanding data"
        case 5: return "unacceptable performance"
        case 6: return "middlebox interference"
        default: return "unknown"
        }
    }
}

extension UnsafeRawBufferPointer {
    func u16be(_ o: Int) -> UInt16 { UInt16(self[o]) << 8 | UInt16(self[o + 1]) }
}

extension String {
    /// Seconds with six decimals, without Foundation's formatter.
    init(format3 t: Double) {
        let us = Int((t * 1e6).rounded())
        let s = us / 1_000_000, f = abs(us % 1_000_000)
        let fs = String(f)
        self = "\(s)." + String(repeating: "0", count: 6 - fs.count) + fs
    }
}

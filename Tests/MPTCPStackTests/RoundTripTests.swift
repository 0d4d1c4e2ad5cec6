import MPTCPStack
import TestSupport
import Testing

@Suite("Hand-built option vectors (RFC 8684 layouts)")
struct HandmadeOptionTests {
    @Test("decodes to the expected value", arguments: Handmade.options)
    func decode(_ o: OptionVector) throws {
        #expect(try parseOption(o.bytes).get() == o.expected)
        #expect(o.expected.encodedLength == o.bytes.count)
        #expect(o.expected.kind == o.bytes[0])
        // The iterator sees exactly one option, with no fault.
        var n = 0
        o.bytes.withUnsafeBytes { raw in
            for e in TCPOptionIterator(raw) {
                n += 1
                #expect(e.fault == nil)
                #expect(e.offset == 0 && e.bytes.count == o.bytes.count)
                #expect(e.option == o.expected)
            }
        }
        #expect(n == 1)
        if case .mptcp(let m) = o.expected {
            #expect(try parseMPTCP(o.bytes).get() == m)
            #expect(m.subtype == o.bytes[2] >> 4)
        }
    }

    @Test("accessors of decoded fields")
    func accessors() throws {
        func mp(_ hex: String) throws -> MPTCPOption { try parseMPTCP(hexBytes(hex)).get() }
        guard case .mpCapable(let c) = try mp("1e 18 01 81 1122334455667788 99aabbccddeeff00 05dc abcd") else { Issue.record(); return }
        #expect(c.checksumRequired && c.hmacSHA256)
        #expect(c.dataLevelLength == 1500 && c.checksum == 0xabcd && c.encodedLength == 24)
        guard case .mpCapable(let c2) = try mp("1e 04 01 e0") else { Issue.record(); return }
        #expect(c2.flags & MPCapable.flagExtensibility != 0 && c2.flags & MPCapable.flagNoNewSubflowsToSource != 0)
        #expect(c2.checksumRequired && !c2.hmacSHA256)
        guard case .mpJoin(let j) = try mp("1e 0c 11 02 0e568f1e 11be9d50") else { Issue.record(); return }
        #expect(j.backup)
        guard case .mpJoin(let j2) = try mp("1e 10 11 03 e160d3b40d8a9f88 aa6e4144") else { Issue.record(); return }
        #expect(j2.backup && j2.encodedLength == 16)
        guard case .mpPrio(let p) = try mp("1e 03 51") else { Issue.record(); return }
        #expect(p.backup && p.addressID == nil && p.encodedLength == 3)
        guard case .mpPrio(let p4) = try mp("1e 04 50 02") else { Issue.record(); return }
        #expect(!p4.backup && p4.addressID == 2 && p4.encodedLength == 4)
        guard case .mpTCPRST(let r) = try mp("1e 04 81 03") else { Issue.record(); return }
        #expect(r.transient && r.reason == 3)
        guard case .mpTCPRST(let r2) = try mp("1e 04 8e 06") else { Issue.record(); return }
        #expect(!r2.transient && r2.flags == 0xe)
        guard case .dss(let d) = try mp("1e 14 20 15 aabbccdd 12345678 00000000 0001 1234") else { Issue.record(); return }
        #expect(!d.dataAckIs8 && !d.dsnIs8 && d.dataFin)
        #expect(d.dataAck == 0xaabb_ccdd && d.mapping?.checksum == 0x1234 && d.encodedLength == 20)
        guard case .addAddr(let a) = try mp("1e 1e 30 03 fd200002000000000000000000000002 1f91 1122334455667788") else { Issue.record(); return }
        #expect(!a.echo && a.port == 8081 && a.address.description == "fd20:2::2" && a.address.encodedLength == 16)
        guard case .removeAddr(let ra) = try mp("1e 06 40 01 02 07") else { Issue.record(); return }
        #expect(ra.addressIDs.array == [1, 2, 7] && ra.encodedLength == 6 && ra.reserved == 0)
        guard case .mpFail(let f) = try mp("1e 0c 6f ff 0102030405060708") else { Issue.record(); return }
        #expect(f.reserved == 0xfff && f.dsn == 0x0102_0304_0506_0708)
    }
}

@Suite("Round trips")
struct RoundTripTests {
    @Test("packet: parse then emit gives the original bytes", arguments: Captured.all)
    func packet(_ v: Vector) throws {
        let p = try parsePacket(v.bytes).get()
        #expect(p.encodedLength == v.bytes.count)
        let out = try p.emitted()
        #expect(out == v.bytes, "\(v.name): \(hex(out)) != \(hex(v.bytes))")
        // And once more from the emitted bytes.
        #expect(try parsePacket(out).get() == p)
    }

    @Test("TCP header alone: parse then emit", arguments: Captured.all)
    func tcpHeader(_ v: Vector) throws {
        let seg = Array(tcpSegment(of: v.bytes))
        let h = try attempt(seg) { raw throws(WireError) in try TCPHeader(parsing: raw) }.get()
        var out = [UInt8](repeating: 0, count: h.encodedLength)
        try out.withUnsafeMutableBytes { buf in
            var w = ByteWriter(buf)
            try h.emit(into: &w)
            #expect(w.offset == h.encodedLength)
        }
        #expect(out[...] == seg.prefix(h.encodedLength))
    }

    @Test("each option of each captured packet: parse then write gives its bytes", arguments: Captured.all)
    func capturedOptions(_ v: Vector) throws {
        let area = optionArea(of: v.bytes)
        var rebuilt: [UInt8] = []
        try area.withUnsafeBytes { raw in
            for e in TCPOptionIterator(raw) {
                let bytes = Array(e.bytes)
                let o = try parseOption(bytes).get()
                #expect(try e.parse() == o)
                let out = emit(o)
                #expect(out == bytes, "\(v.name) option at \(e.offset): \(hex(out)) != \(hex(bytes))")
                rebuilt += out
            }
        }
        #expect(rebuilt == area)
        // The list as a whole.
        let list = area.withUnsafeBytes { TCPOptionList(parsing: $0) }
        #expect(emit(list) == area)
    }

    @Test("each hand-built option: parse then write gives its bytes", arguments: Handmade.options)
    func handmadeOption(_ o: OptionVector) throws {
        let parsed = try parseOption(o.bytes).get()
        #expect(emit(parsed) == o.bytes)
        #expect(emit(o.expected) == o.bytes)
    }

    /// Options built from values (not from bytes).
    static let valueOptions: [TCPOption] = {
        var out: [TCPOption] = Handmade.options.map(\.expected)
        let mappings: [DSSMapping?] = [nil, DSSMapping(dsn: 0xffff_ffff_ffff_fffe, subflowSeq: 0xffff_ffff, length: 0xffff),
                                       DSSMapping(dsn: 0x1_0000_0001, subflowSeq: 7, length: 9, checksum: 0)]
        for ack in [nil, UInt64(0x0123_4567_89ab_cdef)] {
            for ack8 in [true, false] {
                for m in mappings {
                    for dsn8 in [true, false] {
                        for fin in [true, false] {
                            out.append(.mptcp(.dss(DSS(dataAck: ack, dataAck8: ack8, mapping: m, dsn8: dsn8, dataFin: fin))))
                        }
                    }
                }
            }
        }
        let addresses: [IPAddress] = [.v4(IPv4Address(192, 0, 2, 1)), .v6(IPv6Address("2001:db8::1")!)]
        for a in addresses {
            for port in [nil, UInt16(443)] {
                for mac in [nil, UInt64(0xfeed_face_cafe_beef)] {
                    for echo in [true, false] {
                        out.append(.mptcp(.addAddr(AddAddr(echo: echo, addressID: 9, address: a, port: port, hmac: mac))))
                    }
                }
            }
        }
        for n in [1, 2, 5, 36] {
            out.append(.mptcp(.removeAddr(RemoveAddr(addressIDs: InlineBytes40((0 ..< n).map { UInt8($0 * 7 & 0xff) })!))))
        }
        out += [
            .mptcp(.mpCapable(MPCapable())),
            .mptcp(.mpCapable(MPCapable(senderKey: 1))),
            .mptcp(.mpCapable(MPCapable(senderKey: 1, receiverKey: 2))),
            .mptcp(.mpCapable(MPCapable(senderKey: 1, receiverKey: 2, dataLevelLength: 3))),
            .mptcp(.mpCapable(MPCapable(flags: 0x81, senderKey: 1, receiverKey: 2, dataLevelLength: 3, checksum: 4))),
            .mptcp(.mpJoin(.syn(flags: 1, addressID: 255, token: 0xffff_ffff, nonce: 0))),
            .mptcp(.mpJoin(.synAck(flags: 0, addressID: 0, truncatedHMAC: 0x8000_0000_0000_0001, nonce: 1))),
            .mptcp(.mpJoin(.ack(reserved: 0, hmac: HMAC160(a: 1, b: 2, c: 3)))),
            .mptcp(.mpPrio(MPPrio(backup: false))),
            .mptcp(.mpPrio(MPPrio(backup: true, addressID: 0))),
            .mptcp(.mpFail(MPFail(dsn: .max))),
            .mptcp(.mpFastclose(MPFastclose(receiverKey: 0))),
            .mptcp(.mpTCPRST(MPTCPRst(reason: 255))),
            .mptcp(.mpTCPRST(MPTCPRst(flags: 0xf, reason: 0))),
            .maxSegmentSize(0), .maxSegmentSize(.max), .windowScale(0), .windowScale(255),
            .timestamps(value: .max, echoReply: 0), .endOfList(padding: InlineBytes40()),
        ]
        return out
    }()

    @Test("value-constructed options: emit then parse gives the same value")
    func valueOptionsRoundTrip() throws {
        #expect(Self.valueOptions.count > 100)
        for o in Self.valueOptions {
            let bytes = emit(o)
            #expect(bytes.count == o.encodedLength)
            if o.kind > 1 { #expect(Int(bytes[1]) == bytes.count, "length byte of \(o)") }
            let back = parseOption(bytes)
            #expect(back.value == o, "\(o) -> \(hex(bytes)) -> \(back)")
        }
    }

    @Test("DSS initialiser sets flags from its arguments")
    func dssFlags() {
        #expect(DSS().flags == 0)
        #expect(DSS(dataAck: 1).flags == 0x03)
        #expect(DSS(dataAck: 1, dataAck8: false).flags == 0x01)
        #expect(DSS(mapping: DSSMapping(dsn: 1, subflowSeq: 1, length: 1)).flags == 0x0c)
        #expect(DSS(mapping: DSSMapping(dsn: 1, subflowSeq: 1, length: 1), dsn8: false).flags == 0x04)
        #expect(DSS(dataAck: 1, mapping: DSSMapping(dsn: 1, subflowSeq: 1, length: 1), dataFin: true).flags == 0x1f)
        // Narrow forms keep only the low 32 bits.
        let d = DSS(dataAck: 0x1_2345_6789, dataAck8: false, mapping: DSSMapping(dsn: 0xa_bcde_f012, subflowSeq: 0, length: 0), dsn8: false)
        #expect(d.dataAck == 0x2345_6789 && d.mapping?.dsn == 0xbcde_f012)
        #expect(d.encodedLength == 18)
        #expect(emit(.mptcp(.dss(d))) == hexBytes("1e 12 20 05 23456789 bcdef012 00000000 0000"))
    }

    @Test("a whole option list built from values emits, pads and parses back")
    func optionListFromValues() throws {
        var list = TCPOptionList()
        list.append(.noOperation)
        list.append(.noOperation)
        list.append(.timestamps(value: 1, echoReply: 2))
        list.append(.mptcp(.dss(DSS(dataAck: 3, mapping: DSSMapping(dsn: 4, subflowSeq: 5, length: 6)))))
        #expect(list.count == 4 && list.encodedLength == 38)
        let h = TCPHeader(sourcePort: 1, destinationPort: 2, seq: TCPSeq(3), ack: TCPSeq(4), flags: TCPFlags.ack,
                          window: 5, options: list)
        #expect(h.encodedLength == 60)
        var out = [UInt8](repeating: 0xAA, count: 60)
        try out.withUnsafeMutableBytes { buf in var w = ByteWriter(buf); try h.emit(into: &w) }
        #expect(out[12] == 0xf0)
        #expect(out[58 ..< 60] == [0, 0]) // two EOL bytes of padding
        let back = try attempt(out) { raw throws(WireError) in try TCPHeader(parsing: raw) }.get()
        // Padding comes back as an explicit EOL option.
        var expected = list
        expected.append(.endOfList(padding: InlineBytes40([0])!))
        #expect(back.options == expected)
        #expect(back.seq == TCPSeq(3) && back.ack == TCPSeq(4) && back.window == 5)
        // A full list refuses to grow; too many option bytes cannot be emitted.
        var full = TCPOptionList()
        for _ in 0 ..< 40 { let ok = full.append(.noOperation); #expect(ok) }
        let overflow = full.append(.noOperation)
        #expect(!overflow && full.count == 40)
        full = TCPOptionList()
        for _ in 0 ..< 5 { full.append(.timestamps(value: 0, echoReply: 0)) }
        let big = TCPHeader(sourcePort: 1, destinationPort: 2, seq: TCPSeq(0), ack: TCPSeq(0), flags: 0, window: 0, options: full)
        var buf = [UInt8](repeating: 0, count: 100)
        let r: Result<Void, WireError> = buf.withUnsafeMutableBytes { b in
            var w = ByteWriter(b)
            do throws(WireError) { try big.emit(into: &w); return .success(()) } catch { return .failure(error) }
        }
        #expect(r.error == .noRoom)
    }

    @Test("packets built from values: fixLengthsAndChecksums, emit, verify, parse back")
    func packetsFromValues() throws {
        var opts = TCPOptionList()
        opts.append(.maxSegmentSize(1400))
        opts.append(.mptcp(.mpCapable(MPCapable())))
        let tcp = TCPHeader(sourcePort: 40000, destinationPort: 80, seq: TCPSeq(0xffff_fff0), ack: TCPSeq(0),
                            flags: TCPFlags.syn, window: 65535, options: opts)
        let payload: [UInt8] = Array("hello, odd".utf8) // odd length on purpose
        let v4 = TCPPacket(ipHeader: .v4(IPv4Header(totalLength: 0, identification: 0x1234,
                                                    source: IPv4Address("192.0.2.1")!, destination: IPv4Address("198.51.100.2")!)),
                           tcpHeader: tcp, payload: payload + [0x21])
        let v6 = TCPPacket(ipHeader: .v6(IPv6Header(flowLabel: 0xabcde, payloadLength: 0,
                                                    source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8:0:1::2")!)),
                           tcpHeader: tcp, payload: payload)
        for var p in [v4, v6] {
            p.fixLengthsAndChecksums()
            let bytes = try p.emitted()
            #expect(bytes.count == p.encodedLength)
            #expect(try parsePacket(bytes).get() == p)
            bytes.withUnsafeBytes { raw in
                guard let v = try? TCPPacketView(raw) else { Issue.record("does not parse"); return }
                #expect(v.tcpChecksumValid)
                #expect(v.computedTCPChecksum() == p.tcpHeader.checksum)
                #expect(v.tcp.payload.count == p.payload.count)
                if v.family == .v4 { #expect((try? IPv4PacketView(raw))?.headerChecksumValid == true) }
            }
            // An independent checksum over the emitted bytes agrees.
            #expect(referenceTCPChecksumOK(bytes))
        }
    }

    @Test("IPv4 with header options round-trips")
    func ipv4Options() throws {
        var b = Captured.aSYN.bytes
        // Insert a 4-byte IP option area (NOP, NOP, NOP, EOL): IHL 6, total + 4.
        b.insert(contentsOf: [1, 1, 1, 0], at: 20)
        b[0] = 0x46
        b[3] += 4
        b[10] = 0; b[11] = 0
        let c = referenceChecksum(Array(b[0 ..< 24]))
        b[10] = UInt8(c >> 8); b[11] = UInt8(c & 0xff)
        let p = try parsePacket(b).get()
        guard case .v4(let h) = p.ipHeader else { Issue.record(); return }
        #expect(h.options.array == [1, 1, 1, 0])
        #expect(h.encodedLength == 24)
        #expect(h.computedChecksum() == c)
        #expect(try p.emitted() == b)
        b.withUnsafeBytes { raw in
            let v = try! TCPPacketView(raw)
            #expect(v.tcpOffset == 24)
            #expect(v.tcp.sourcePort == 60916)
            #expect(v.tcpChecksumValid) // the pseudo-header does not cover IP options
            #expect((try? IPv4PacketView(raw))?.headerChecksumValid == true)
        }
    }

    @Test("IPv6 extension headers are walked and kept")
    func ipv6ExtensionHeaders() throws {
        let base = Captured.eSYN.bytes
        func withExt(_ first: UInt8, _ ext: [UInt8]) -> [UInt8] {
            var b = base
            b.insert(contentsOf: ext, at: 40)
            b[6] = first
            let plen = Int(b[4]) << 8 | Int(b[5]) + ext.count
            b[4] = UInt8(plen >> 8); b[5] = UInt8(plen & 0xff)
            return b
        }
        // Hop-by-hop (PadN) then destination options (16 bytes), then TCP.
        let hbh: [UInt8] = [60, 0, 1, 4, 0, 0, 0, 0]
        let dst: [UInt8] = [6, 1, 1, 12] + [UInt8](repeating: 0, count: 12)
        let b = withExt(0, hbh + dst)
        let p = try parsePacket(b).get()
        #expect(p.extensionHeaders == hbh + dst)
        #expect(try p.emitted() == b)
        #expect(p.tcpHeader.options.array == Golden.options["eSYN"]!)
        try b.withUnsafeBytes { raw in
            let ip = try IPv6PacketView(raw)
            #expect(ip.upperLayerOffset == 64 && ip.upperLayerProtocol == 6 && ip.nextHeader == 0)
            let v = try TCPPacketView(raw)
            #expect(v.tcpOffset == 64)
            #expect(v.tcpChecksumValid) // the upper-layer length is unchanged
        }
        // A first fragment (offset 0, M=1) still has the TCP header.
        let frag0 = withExt(44, [6, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef])
        #expect(parsePacket(frag0).value?.tcpHeader.sourcePort == 40060)
        // A later fragment is a typed error, as is a non-TCP upper layer.
        let frag1 = withExt(44, [6, 0, 0x05, 0x00, 0xde, 0xad, 0xbe, 0xef])
        #expect(parsePacket(frag1).error == .fragment)
        let fragAt8 = withExt(44, [6, 0, 0x00, 0x08, 0xde, 0xad, 0xbe, 0xef]) // offset 1 (8 bytes), M=0
        #expect(parsePacket(fragAt8).error == .fragment)
        let fragRes = withExt(44, [6, 0, 0x00, 0x07, 0xde, 0xad, 0xbe, 0xef]) // offset 0, Res and M set
        #expect(parsePacket(fragRes).value?.extensionHeaders.count == 8)
        let udp = withExt(60, [17, 0, 1, 4, 0, 0, 0, 0])
        #expect(parsePacket(udp).error == .notTCP)
        // An extension header running past the packet.
        let long = withExt(0, [6, 9, 1, 4, 0, 0, 0, 0])
        #expect(parsePacket(long).error == .truncated)
    }

    @Test("typed errors for malformed IP and TCP headers")
    func typedErrors() {
        let a = Captured.aSYN.bytes
        #expect(parsePacket([]).error == .truncated)
        do { var b = a; b[0] = 0x55; #expect(parsePacket(b).error == .badVersion) }
        do { var b = a; b[0] = 0x44; #expect(parsePacket(b).error == .badHeaderLength) }
        do { var b = a; b[0] = 0x4f; #expect(parsePacket(b).error == .truncated) } // IHL 60 leaves 4 bytes of TCP
        do { var b = a; b[2] = 0; b[3] = 19; #expect(parsePacket(b).error == .badTotalLength) }
        do { var b = a; b[2] = 0; b[3] = 65; #expect(parsePacket(b).error == .truncated) }
        do { var b = a; b[9] = 17; #expect(parsePacket(b).error == .notTCP) }
        do { var b = a; b[7] = 1; #expect(parsePacket(b).error == .fragment) }
        do { var b = a; b[6] = 0x20; b[7] = 0; #expect(parsePacket(b).value != nil) } // MF only: a first fragment
        do { var b = a; b[6] = 0x1f; b[7] = 0xff; #expect(parsePacket(b).error == .fragment) }
        do { var b = a; b[32] = 0x40; #expect(parsePacket(b).error == .badHeaderLength) } // TCP data offset 4
        do { var b = a; b[32] = 0xc0; #expect(parsePacket(b).error == .truncated) } // data offset 48 > 44 bytes
        // Extra bytes after the IP length (link padding) are ignored.
        let padded = a + [0, 0, 0, 0, 0, 0]
        #expect(parsePacket(padded).value == parsePacket(a).value)
        #expect(try! parsePacket(padded).get().emitted() == a)
    }
}

/// RFC 1071 by the book: 16-bit big-endian words, end-around carry.
func referenceChecksum(_ b: [UInt8]) -> UInt16 {
    var sum: UInt32 = 0
    var i = 0
    while i + 1 < b.count { sum += UInt32(b[i]) << 8 | UInt32(b[i + 1]); i += 2 }
    if i < b.count { sum += UInt32(b[i]) << 8 }
    while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
    return ~UInt16(sum)
}

/// Verifies the TCP checksum of an IP packet (no extension headers) independently.
func referenceTCPChecksumOK(_ ip: [UInt8]) -> Bool {
    let seg = Array(tcpSegment(of: ip))
    var pseudo: [UInt8]
    if ip[0] >> 4 == 4 {
        pseudo = Array(ip[12 ..< 20]) + [0, 6, UInt8(seg.count >> 8), UInt8(seg.count & 0xff)]
    } else {
        pseudo = Array(ip[8 ..< 40]) + [0, 0, UInt8(seg.count >> 8), UInt8(seg.count & 0xff), 0, 0, 0, 6]
    }
    return referenceChecksum(pseudo + seg) == 0
}

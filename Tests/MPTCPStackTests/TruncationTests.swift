import MPTCPStack
import TestSupport
import Testing

@Suite("Truncation")
struct TruncationTests {
    @Test("every captured packet cut at every length is a typed .truncated error", arguments: Captured.all)
    func packetPrefixes(_ v: Vector) {
        let b = v.bytes
        for n in 0 ..< b.count {
            let prefix = Array(b[0 ..< n])
            let r = parsePacket(prefix)
            #expect(r.error == .truncated, "\(v.name) cut at \(n): \(r)")
            let viewResult = attempt(prefix) { raw throws(WireError) in try TCPPacketView(raw).tcp.sourcePort }
            #expect(viewResult.error == .truncated, "\(v.name) cut at \(n)")
        }
    }

    @Test("the TCP segment cut at every length: truncated inside the header, else a shorter payload", arguments: Captured.all)
    func segmentPrefixes(_ v: Vector) {
        let seg = Array(tcpSegment(of: v.bytes))
        let hl = Int(seg[12] >> 4) * 4
        for n in 0 ... seg.count {
            let r = attempt(Array(seg[0 ..< n])) { raw throws(WireError) in try TCPSegmentView(raw).payload.count }
            if n < hl {
                #expect(r.error == .truncated, "\(v.name) segment cut at \(n)")
            } else {
                #expect(r.value == n - hl, "\(v.name) segment cut at \(n)")
                let h = attempt(Array(seg[0 ..< n])) { raw throws(WireError) in try TCPHeader(parsing: raw) }
                #expect(h.value?.options.array == Golden.options[v.name])
            }
        }
    }

    @Test("the option area cut at every length never traps and re-emits byte for byte", arguments: Captured.all)
    func optionAreaPrefixes(_ v: Vector) {
        let area = optionArea(of: v.bytes)
        for n in 0 ... area.count {
            let prefix = Array(area[0 ..< n])
            let list = prefix.withUnsafeBytes { TCPOptionList(parsing: $0) }
            #expect(emit(list) == prefix, "\(v.name) area cut at \(n)")
            let s = prefix.withUnsafeBytes { TCPOptionSummary(parsing: $0) }
            #expect(s.usedLength <= n)
            // Every option of the cut area is either whole (and as in the full
            // area) or, for the last one only, a structural fault.
            var faults = 0
            prefix.withUnsafeBytes { raw in
                for e in TCPOptionIterator(raw) {
                    if e.fault != nil { faults += 1; #expect(e.offset + e.bytes.count == n) }
                }
            }
            #expect(faults <= 1)
            #expect(s.malformedCount >= faults)
        }
    }

    /// Every single option we have: the hand-built ones and each option of each capture.
    static let singleOptions: [[UInt8]] = {
        var out = Handmade.options.map(\.bytes)
        for v in Captured.all {
            optionArea(of: v.bytes).withUnsafeBytes { raw in
                for e in TCPOptionIterator(raw) { out.append(Array(e.bytes)) }
            }
        }
        return out
    }()

    @Test("single options cut at every length: the iterator reports a fault and parse throws")
    func optionPrefixes() {
        for full in Self.singleOptions where full[0] > 1 {
            for n in 1 ..< full.count {
                let prefix = Array(full[0 ..< n])
                var elements: [(Int, Int, WireError?)] = []
                var parsed: Result<TCPOption, WireError>?
                prefix.withUnsafeBytes { raw in
                    for e in TCPOptionIterator(raw) {
                        elements.append((e.offset, e.bytes.count, e.fault))
                        parsed = attempt(Array(e.bytes)) { raw throws(WireError) in try e.parse() }
                        #expect(e.option == .malformed(reason: e.fault ?? .badField, bytes: InlineBytes40(Array(e.bytes))!))
                    }
                }
                let fault: WireError = n == 1 ? .optionMissingLength : .optionOverrun
                #expect(elements.count == 1 && elements[0].0 == 0 && elements[0].1 == n && elements[0].2 == fault,
                        "\(hex(full)) cut at \(n)")
                #expect(parsed?.error == fault)
                #expect(parseOption(prefix).error == (n == 1 ? .optionMissingLength : .badOptionLength), "\(hex(full)) cut at \(n)")
            }
        }
    }

    /// The lengths RFC 8684 allows for an MPTCP option, given its subtype and (for DSS) flags.
    static func legal(_ subtype: UInt8, dssFlags: UInt8, _ len: Int) -> Bool {
        switch subtype {
        case 0: return [4, 12, 20, 22, 24].contains(len)
        case 1: return [12, 16, 24].contains(len)
        case 2:
            var need = 4
            if dssFlags & 1 != 0 { need += dssFlags & 2 != 0 ? 8 : 4 }
            if dssFlags & 4 != 0 { need += (dssFlags & 8 != 0 ? 8 : 4) + 6 }
            return len == need || (dssFlags & 4 != 0 && len == need + 2)
        case 3: return [8, 10, 16, 18, 20, 22, 28, 30].contains(len)
        case 4: return len >= 4
        case 5: return len == 3 || len == 4
        case 6, 7: return len == 12
        case 8: return len == 4
        default: return len >= 3
        }
    }

    @Test("MPTCP options shortened with a consistent length byte decode only at legal lengths")
    func mptcpConsistentLengths() {
        var tried = 0, decoded = 0
        for full in Self.singleOptions where full[0] == 30 {
            let subtype = full[2] >> 4
            for n in 2 ... full.count {
                var b = Array(full[0 ..< n])
                b[1] = UInt8(n)
                let r = parseOption(b)
                tried += 1
                if n >= 4 || subtype != 2, Self.legal(subtype, dssFlags: n >= 4 ? b[3] : 0, n) && n >= 3 {
                    decoded += 1
                    guard case .mptcp(let m)? = r.value else { Issue.record("\(hex(b)) should decode: \(r)"); continue }
                    #expect(m.subtype == subtype && m.encodedLength == n)
                    #expect(emit(m) == b)
                } else {
                    #expect(r.error == .badOptionLength, "\(hex(b)) should not decode: \(r)")
                }
            }
        }
        #expect(tried > 500 && decoded > 100)
    }

    @Test("plain TCP options with a wrong length byte are typed errors")
    func plainTCPLengths() {
        for (kind, good) in [(UInt8(2), 4), (3, 3), (4, 2), (8, 10)] {
            for n in 2 ... 12 where n != good {
                var b = [UInt8](repeating: 0, count: n)
                b[0] = kind; b[1] = UInt8(n)
                #expect(parseOption(b).error == .badOptionLength, "kind \(kind) len \(n)")
            }
        }
        for n in 2 ... 40 {
            var b = [UInt8](repeating: 0, count: n)
            b[0] = 5; b[1] = UInt8(n)
            let ok = n >= 10 && (n - 2) % 8 == 0
            #expect((parseOption(b).value != nil) == ok, "SACK len \(n)")
        }
        // A NOP parsed with trailing bytes, length byte disagreeing, length < 2 via the iterator.
        #expect(parseOption([1, 1]).error == .badOptionLength)
        #expect(parseOption([2, 5, 0, 0]).error == .badOptionLength)
        #expect(parseOption([]).error == .truncated)
        for len: UInt8 in [0, 1] {
            let area: [UInt8] = [1, 2, len, 0, 0]
            area.withUnsafeBytes { raw in
                var it = TCPOptionIterator(raw)
                #expect(it.next()?.fault == nil)
                let e = it.next()
                #expect(e?.fault == .optionLengthTooSmall && e?.offset == 1 && e?.bytes.count == 4)
                #expect(it.next() == nil)
            }
        }
    }

    @Test("single options longer than any option area are typed errors, not traps")
    func oversizeOptions() {
        for n in 41 ... 255 {
            for (kind, third) in [(UInt8(0), UInt8(0)), (1, 0), (5, 0), (99, 0), (30, 0x40), (30, 0xf0), (30, 0x20), (30, 0x90)] {
                var b = [UInt8](repeating: 0, count: n)
                b[0] = kind; b[1] = UInt8(n); b[2] = third
                let r = parseOption(b)
                #expect(r.error == .optionOverrun, "kind \(kind) len \(n): \(r)")
                if kind == 30 { #expect(parseMPTCP(b).error == .badOptionLength, "len \(n)") }
            }
        }
        // 40 bytes is still fine: an unknown option, an EOL with 39 bytes of padding, REMOVE_ADDR with 37 ids.
        var b = [UInt8](repeating: 7, count: 40)
        b[0] = 99; b[1] = 40
        #expect(parseOption(b).value == .unknown(kind: 99, bytes: InlineBytes40(b)!))
        b[0] = 0
        #expect(parseOption(b).value == .endOfList(padding: InlineBytes40(b.dropFirst())!))
        b[0] = 30; b[2] = 0x40
        guard case .mptcp(.removeAddr(let r))? = parseOption(b).value else { Issue.record("REMOVE_ADDR"); return }
        #expect(r.addressIDs.count == 37)
    }

    @Test("every MPTCP subtype, DSS flag byte and length 3...40: decodes exactly at the RFC 8684 lengths")
    func mptcpLengthTable() {
        var rng = SplitMix64(seed: 0x1E_0005)
        for subtype in UInt8(0) ... 15 {
            for flags in subtype == 2 ? Array(UInt8(0) ..< 32) + [0xe0, 0xff] : [UInt8(0x01)] {
                for n in 3 ... 40 {
                    var b = (0 ..< n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                    b[0] = 30; b[1] = UInt8(n); b[2] = subtype << 4 | b[2] & 0x0f
                    if n > 3 { b[3] = flags }
                    let r = parseOption(b)
                    if Self.legal(subtype, dssFlags: flags, n) && !(subtype == 2 && n < 4) {
                        guard case .mptcp(let m)? = r.value else { Issue.record("\(hex(b)) should decode: \(r)"); continue }
                        #expect(m.subtype == subtype && m.encodedLength == n && emit(m) == b, "\(hex(b))")
                    } else {
                        #expect(r.error == .badOptionLength, "\(hex(b)) should not decode: \(r)")
                    }
                }
            }
        }
    }
}

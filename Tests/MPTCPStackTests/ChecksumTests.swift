import MPTCPStack
import TestSupport
import Testing

@Suite("Checksums")
struct ChecksumTests {
    @Test("TCP checksum of every captured packet verifies and recomputes to the carried value", arguments: Captured.all)
    func tcpChecksum(_ v: Vector) throws {
        #expect(referenceTCPChecksumOK(v.bytes), "independent check")
        try v.bytes.withUnsafeBytes { raw in
            let p = try TCPPacketView(raw)
            #expect(p.tcpChecksumValid)
            #expect(p.computedTCPChecksum() == p.tcp.checksum)
            // With the field zeroed, compute() (default: field is zero) gives the same.
            var seg = Array(p.tcp.bytes)
            seg[16] = 0; seg[17] = 0
            let c = seg.withUnsafeBytes { TCPChecksum.compute(source: p.source, destination: p.destination, segment: $0) }
            #expect(c == p.tcp.checksum)
            if p.family == .v4 {
                let ip = try IPv4PacketView(raw)
                #expect(ip.headerChecksumValid)
                #expect(IPv4Header(ip).computedChecksum() == ip.headerChecksum)
                #expect(referenceChecksum(Array(v.bytes[0 ..< 20])) == 0)
            }
        }
        // Any single flipped bit in the TCP segment is detected.
        let start = v.bytes.count - tcpSegment(of: v.bytes).count
        for i in stride(from: start, to: v.bytes.count, by: max(1, (v.bytes.count - start) / 64)) {
            var b = v.bytes
            b[i] ^= 0x04
            b.withUnsafeBytes { raw in
                guard let p = try? TCPPacketView(raw) else { return } // data offset bits can break the header
                #expect(!p.tcpChecksumValid, "\(v.name) bit flip at \(i)")
                if i == start + 16 || i == start + 17 {
                    #expect(p.computedTCPChecksum() == p.tcp.checksum ^ (i == start + 16 ? 0x0400 : 0x0004))
                } else {
                    #expect(p.computedTCPChecksum() != p.tcp.checksum)
                }
            }
        }
    }

    /// Buffers for the chunking tests: every captured packet plus odd-length patterns.
    static let buffers: [[UInt8]] = {
        var out = Captured.all.map(\.bytes)
        var rng = SplitMix64(seed: 0xC5_0003)
        for n in [0, 1, 2, 3, 5, 7, 8, 31, 33, 64, 101] {
            out.append((0 ..< n).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        }
        out.append([UInt8](repeating: 0xff, count: 77))
        out.append([UInt8](repeating: 0, count: 9))
        return out
    }()

    @Test("InternetChecksum: the same bytes in two chunks split at every offset give the same sum")
    func chunking() {
        for b in Self.buffers {
            let ref = referenceChecksum(b)
            var whole = InternetChecksum()
            b.withUnsafeBytes { whole.add(bytes: $0) }
            #expect(whole.checksum == ref, "whole, \(b.count) bytes")
            for i in 0 ... b.count {
                var c = InternetChecksum()
                b.withUnsafeBytes { raw in
                    c.add(bytes: UnsafeRawBufferPointer(rebasing: raw[0 ..< i]))
                    c.add(bytes: UnsafeRawBufferPointer(rebasing: raw[i...]))
                }
                if c.checksum != ref { Issue.record("split at \(i) of \(b.count): \(c.checksum) != \(ref)") }
            }
        }
    }

    @Test("InternetChecksum: many small chunks of random sizes, and 16/32/64-bit values at odd offsets")
    func manyChunks() {
        var rng = SplitMix64(seed: 0xC5_0004)
        for _ in 0 ..< 2000 {
            let n = Int(rng.next() % 200)
            let b = (0 ..< n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var c = InternetChecksum()
            var expected: [UInt8] = []
            var i = 0
            b.withUnsafeBytes { raw in
                while i < n {
                    let k = min(n - i, Int(rng.next() % 7))
                    c.add(bytes: UnsafeRawBufferPointer(rebasing: raw[i ..< i + k]))
                    expected += b[i ..< i + k]
                    i += k
                    // Interleave integer adds, at whatever parity we are at.
                    switch rng.next() % 4 {
                    case 0:
                        let v = UInt16(truncatingIfNeeded: rng.next())
                        c.add(v); expected += [UInt8(v >> 8), UInt8(v & 0xff)]
                    case 1:
                        let v = UInt32(truncatingIfNeeded: rng.next())
                        c.add(v); expected += (0 ..< 4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) }
                    case 2:
                        let v = rng.next()
                        c.add(v); expected += (0 ..< 8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64($0))) }
                    default: break
                    }
                }
            }
            if c.checksum != referenceChecksum(expected) {
                Issue.record("chunked \(hex(expected)): \(c.checksum) != \(referenceChecksum(expected))")
                return
            }
        }
    }

    @Test("InternetChecksum.add(IPAddress) equals adding the address bytes")
    func addresses() {
        let v4 = IPAddress("10.20.1.2")!, v6 = IPAddress("fd20:3::2")!
        var a = InternetChecksum(); a.add(v4); a.add(v6)
        let bytes: [UInt8] = [10, 20, 1, 2, 0xfd, 0x20, 0, 3] + [UInt8](repeating: 0, count: 11) + [2]
        #expect(a.checksum == referenceChecksum(bytes))
    }

    @Test("RFC 1624 incremental update equals a full recomputation after changing seq/ack", arguments: Captured.all)
    func incremental(_ v: Vector) throws {
        var rng = SplitMix64(seed: 0x1624)
        let off = v.bytes.count - tcpSegment(of: v.bytes).count
        for trial in 0 ..< 200 {
            var b = v.bytes
            let field = trial % 2 == 0 ? off + 4 : off + 8 // seq, ack
            let old = UInt32(b[field]) << 24 | UInt32(b[field + 1]) << 16 | UInt32(b[field + 2]) << 8 | UInt32(b[field + 3])
            let new: UInt32 = switch trial {
            case 0, 1: 0
            case 2, 3: 0xffff_ffff
            case 4, 5: old &+ 1
            case 6, 7: ~old
            default: UInt32(truncatingIfNeeded: rng.next())
            }
            for k in 0 ..< 4 { b[field + k] = UInt8(truncatingIfNeeded: new >> (24 - 8 * UInt32(k))) }
            let oldSum = UInt16(b[off + 16]) << 8 | UInt16(b[off + 17])
            let updated = InternetChecksum.update(oldSum, old: old, new: new)
            let full = try b.withUnsafeBytes { try TCPPacketView($0).computedTCPChecksum() }
            #expect(updated == full, "\(v.name) field \(field - off) \(old) -> \(new)")
            b[off + 16] = UInt8(updated >> 8); b[off + 17] = UInt8(updated & 0xff)
            #expect(referenceTCPChecksumOK(b))
        }
        // 16-bit fields: the window, and the IPv4 TTL/protocol word in the header checksum.
        var b = v.bytes
        let oldWin = UInt16(b[off + 14]) << 8 | UInt16(b[off + 15])
        let newWin: UInt16 = oldWin ^ 0xa5a5
        b[off + 14] = UInt8(newWin >> 8); b[off + 15] = UInt8(newWin & 0xff)
        let oldSum = UInt16(b[off + 16]) << 8 | UInt16(b[off + 17])
        let updated = InternetChecksum.update(oldSum, old: oldWin, new: newWin)
        #expect(try b.withUnsafeBytes { try TCPPacketView($0).computedTCPChecksum() } == updated)
        if b[0] >> 4 == 4 {
            let oldWord = UInt16(b[8]) << 8 | UInt16(b[9])
            b[8] = 1 // TTL 64 -> 1
            let newWord = UInt16(b[8]) << 8 | UInt16(b[9])
            let hc = InternetChecksum.update(UInt16(b[10]) << 8 | UInt16(b[11]), old: oldWord, new: newWord)
            b[10] = 0; b[11] = 0
            #expect(hc == referenceChecksum(Array(b[0 ..< 20])))
        }
    }

    @Test("RFC 1624 update over edge and random words equals recomputation")
    func incrementalEdges() {
        // A 2-word header [m, other]; `other` chosen so that carries and the
        // two forms of zero all occur.
        var rng = SplitMix64(seed: 0x1624_0002)
        let edges: [UInt16] = [0, 1, 2, 0x7fff, 0x8000, 0x8001, 0xfffd, 0xfffe, 0xffff]
        let words = edges + (0 ..< 21).map { _ in UInt16(truncatingIfNeeded: rng.next()) }
        func bytes(_ a: UInt16, _ b: UInt16) -> [UInt8] { [UInt8(a >> 8), UInt8(a & 0xff), UInt8(b >> 8), UInt8(b & 0xff)] }
        var checked = 0
        for other in words {
            for m in words {
                let hc = referenceChecksum(bytes(m, other))
                // All-zero data (sum +0) cannot occur under a TCP/IP pseudo-header
                // (the protocol is 6), and is where eqn. 3 yields -0 (RFC 1624 §5).
                for m2 in words where !(other == 0 && (m == 0 || m2 == 0)) {
                    let want = referenceChecksum(bytes(m2, other))
                    let got = InternetChecksum.update(hc, old: m, new: m2)
                    if got != want { Issue.record("update(\(hc), \(m) -> \(m2)) with \(other) = \(got), want \(want)"); return }
                    checked += 1
                }
            }
        }
        #expect(checked > 26_000)
        // The case that needs the second end-around carry: HC 0, 0 -> 1.
        #expect(InternetChecksum.update(UInt16(0), old: UInt16(0), new: UInt16(1)) == 0xfffe)
        // 32-bit form, across both halves.
        #expect(InternetChecksum.update(referenceChecksum([0, 0, 0, 0, 0xff, 0xff]), old: UInt32(0), new: UInt32(0x0001_0001))
                == referenceChecksum([0, 1, 0, 1, 0xff, 0xff]))
    }

    @Test("DSS checksum: compute, verify, and detect a flipped payload bit")
    func dssChecksum() {
        var rng = SplitMix64(seed: 0xD55)
        for n in [0, 1, 2, 3, 68, 1279, 1400] {
            let payload = (0 ..< n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let dsn = rng.next(), ssn = UInt32(truncatingIfNeeded: rng.next()), len = UInt16(n)
            let c = payload.withUnsafeBytes { DSSChecksum.compute(dsn: dsn, subflowSeq: ssn, length: len, payload: $0) }
            // RFC 8684 §3.3.1: pseudo-header DSN(64) ‖ SSN(32) ‖ length(16) ‖ zero(16), then the payload.
            var pseudo: [UInt8] = (0 ..< 8).map { UInt8(truncatingIfNeeded: dsn >> (56 - 8 * UInt64($0))) }
            pseudo += (0 ..< 4).map { UInt8(truncatingIfNeeded: ssn >> (24 - 8 * UInt32($0))) }
            pseudo += [UInt8(len >> 8), UInt8(len & 0xff), 0, 0]
            #expect(c == referenceChecksum(pseudo + payload), "n=\(n)")
            #expect(payload.withUnsafeBytes { DSSChecksum.verify(dsn: dsn, subflowSeq: ssn, length: len, checksum: c, payload: $0) })
            #expect(!payload.withUnsafeBytes { DSSChecksum.verify(dsn: dsn &+ 1, subflowSeq: ssn, length: len, checksum: c, payload: $0) })
            #expect(!payload.withUnsafeBytes { DSSChecksum.verify(dsn: dsn, subflowSeq: ssn &+ 1, length: len, checksum: c, payload: $0) })
            #expect(!payload.withUnsafeBytes { DSSChecksum.verify(dsn: dsn, subflowSeq: ssn, length: len &+ 1, checksum: c, payload: $0) })
            for bit in [0, 7, 8 * max(0, n - 1) + 3] where n > 0 {
                var bad = payload
                bad[bit / 8] ^= 1 << UInt8(bit % 8)
                #expect(!bad.withUnsafeBytes { DSSChecksum.verify(dsn: dsn, subflowSeq: ssn, length: len, checksum: c, payload: $0) },
                        "n=\(n) bit \(bit)")
            }
        }
        // On the data of a real packet: capture a frame 8's mapping and payload.
        let p = try! parsePacket(Captured.aData8.bytes).get()
        guard case .mptcp(.dss(let d)) = p.tcpHeader.options[3], let m = d.mapping else { Issue.record(); return }
        let c = p.payload.withUnsafeBytes { DSSChecksum.compute(dsn: m.dsn, subflowSeq: m.subflowSeq, length: m.length, payload: $0) }
        #expect(p.payload.withUnsafeBytes { DSSChecksum.verify(dsn: m.dsn, subflowSeq: m.subflowSeq, length: m.length, checksum: c, payload: $0) })
        var bad = p.payload
        bad[33] ^= 0x80
        #expect(!bad.withUnsafeBytes { DSSChecksum.verify(dsn: m.dsn, subflowSeq: m.subflowSeq, length: m.length, checksum: c, payload: $0) })
    }
}

import MPTCPStack
import TestSupport
import Testing

/// Seeded mutation fuzzing of the captured packets. A failure message names
/// the seed, the iteration and the input, so a failure reproduces exactly.
@Suite("Mutation fuzz")
struct FuzzTests {
    static let seed: UInt64 = 0x4D50_5443_5F46_5A31
    static let iterations = 120_000

    /// Positions (in the IP packet) of each option's kind byte, per vector.
    static let optionKindPositions: [[Int]] = Captured.all.map { v in
        let b = v.bytes
        let tcpOff = b.count - tcpSegment(of: b).count
        var out: [Int] = []
        optionArea(of: b).withUnsafeBytes { raw in
            for e in TCPOptionIterator(raw) { out.append(tcpOff + 20 + e.offset) }
        }
        return out
    }

    static func mutate(_ b: inout [UInt8], kinds: [Int], _ rng: inout SplitMix64) -> String {
        func pos() -> Int {
            // Half the time stay within the headers, where the parsing happens.
            let limit = rng.next() & 1 == 0 ? min(b.count, 100) : b.count
            return Int(rng.next() % UInt64(max(limit, 1)))
        }
        guard !b.isEmpty else { b = [UInt8(truncatingIfNeeded: rng.next())]; return "seed byte" }
        switch rng.next() % 11 {
        case 0:
            let p = pos(), bit = UInt8(rng.next() % 8)
            b[p] ^= 1 << bit
            return "flip bit \(bit) at \(p)"
        case 1:
            let p = pos(); b[p] = UInt8(truncatingIfNeeded: rng.next())
            return "random byte at \(p)"
        case 2:
            let p = pos(); b[p] = 0
            return "zero at \(p)"
        case 3:
            let p = pos(); b[p] = 0xff
            return "0xff at \(p)"
        case 4, 5:
            // An option length byte set to 0, 1, 2, 255 or something small.
            guard let k = kinds.randomElement(using: &rng), k + 1 < b.count else { return "no option" }
            let values: [UInt8] = [0, 1, 2, 255, UInt8(rng.next() % 42)]
            let v = values[Int(rng.next() % UInt64(values.count))]
            b[k + 1] = v
            return "option length at \(k + 1) = \(v)"
        case 6:
            // An option kind, MPTCP subtype nibble or DSS/ADD_ADDR flag byte.
            guard let k = kinds.randomElement(using: &rng), k + 3 < b.count else { return "no option" }
            switch rng.next() % 3 {
            case 0:
                let kinds: [UInt8] = [0, 1, 2, 3, 4, 5, 8, 30, UInt8(truncatingIfNeeded: rng.next())]
                b[k] = kinds[Int(rng.next() % UInt64(kinds.count))]
                return "option kind at \(k) = \(b[k])"
            case 1:
                b[k + 2] = UInt8(rng.next() % 16) << 4 | b[k + 2] & 0x0f
                return "subtype at \(k + 2) = \(b[k + 2] >> 4)"
            default:
                b[k + 3] = UInt8(truncatingIfNeeded: rng.next())
                return "byte 3 of option at \(k) = \(b[k + 3])"
            }
        case 7:
            let n = Int(rng.next() % UInt64(b.count))
            b.removeSubrange(n...)
            return "truncate to \(n)"
        case 8:
            let p = Int(rng.next() % UInt64(b.count + 1))
            let n = 1 + Int(rng.next() % 8)
            b.insert(contentsOf: (0 ..< n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: p)
            return "insert \(n) at \(p)"
        case 9:
            // Structural fields: IHL / IPv6 next header, lengths, TCP data offset.
            let v4 = b[0] >> 4 == 4
            switch rng.next() % 4 {
            case 0:
                if v4 { b[0] = 0x40 | UInt8(rng.next() % 16) } else if b.count > 6 { b[6] = [0, 6, 17, 43, 44, 60, 59][Int(rng.next() % 7)] }
                return "IHL / next header"
            case 1:
                let o = v4 ? 2 : 4
                guard b.count > o + 1 else { return "short" }
                let delta = Int(rng.next() % 17) - 8
                let cur = Int(b[o]) << 8 | Int(b[o + 1])
                let new = UInt16(truncatingIfNeeded: rng.next() % 8 == 0 ? Int(rng.next() & 0xffff) : cur + delta)
                b[o] = UInt8(new >> 8); b[o + 1] = UInt8(new & 0xff)
                return "IP length \(cur) -> \(new)"
            default:
                let off = (v4 ? Int(b[0] & 0x0f) * 4 : 40) + 12
                guard off < b.count else { return "short" }
                b[off] = UInt8(rng.next() % 16) << 4 | b[off] & 0x0f
                return "TCP data offset \(b[off] >> 4)"
            }
        default:
            b[0] = b[0] & 0x0f | UInt8(rng.next() % 16) << 4
            return "IP version \(b[0] >> 4)"
        }
    }

    /// Runs every decoder over `b`; returns a description of the first
    /// inconsistency, or nil.
    static func check(_ b: [UInt8]) -> String? {
        let packet = parsePacket(b)
        let viewFacts: Result<(ipLength: Int, problem: String?), WireError> = attempt(b) { raw throws(WireError) in
            let v = try TCPPacketView(raw)
            let area = v.tcp.optionArea
            // The iterator tiles the option area; at most the last element has a fault.
            var next = 0
            var faulted = false
            for e in v.tcp.options {
                if e.offset != next || faulted { return (v.ip.count, "iterator does not tile the area") }
                next = e.offset + e.bytes.count
                if e.fault != nil { faulted = true }
                let o = e.option
                if emit(o) != Array(e.bytes) { return (v.ip.count, "option \(o) does not re-emit its bytes") }
                if case .malformed = o {} else if let again = parseOption(emit(o)).value, again != o {
                    return (v.ip.count, "option \(o) re-parses as \(again)")
                }
            }
            if next != area.count { return (v.ip.count, "iterator stops at \(next) of \(area.count)") }
            let s = TCPOptionSummary(parsing: area)
            if s.usedLength > area.count || (s.malformedCount > 0) != s.has(.malformed) {
                return (v.ip.count, "summary inconsistent")
            }
            let list = TCPOptionList(parsing: area)
            if emit(list) != Array(area) { return (v.ip.count, "option list does not re-emit the area") }
            // The checksum routines must run on anything that parses.
            let c = v.computedTCPChecksum()
            // 0x0000 and 0xffff are the two forms of zero in one's complement (RFC 1624 §3).
            let sameValue = c == v.tcp.checksum || (c == 0 && v.tcp.checksum == 0xffff)
            if v.tcpChecksumValid != sameValue {
                return (v.ip.count, "tcpChecksumValid disagrees with computedTCPChecksum")
            }
            return (v.ip.count, nil)
        }
        switch (packet, viewFacts) {
        case (.failure(let e1), .failure(let e2)):
            return e1 == e2 ? nil : "TCPPacket error \(e1) but view error \(e2)"
        case (.success, .failure(let e)):
            return "TCPPacket parses but the view throws \(e)"
        case (.failure(let e), .success):
            return "the view parses but TCPPacket throws \(e)"
        case (.success(let p), .success(let facts)):
            if let problem = facts.problem { return problem }
            let out: [UInt8]
            do { out = try p.emitted() } catch { return "emitted() threw \(error)" }
            if out != Array(b[0 ..< facts.ipLength]) { return "emitted bytes differ: \(hex(out))" }
            switch parsePacket(out) {
            case .failure(let e): return "re-parse failed: \(e)"
            case .success(let again): return again == p ? nil : "re-parse differs"
            }
        }
    }

    @Test("mutations of the captured packets: typed errors or exact round trips, never a trap")
    func fuzz() {
        var rng = SplitMix64(seed: Self.seed)
        let vectors = Captured.all
        var failures = 0
        var parsed = 0, errors: [WireError: Int] = [:]
        for iteration in 0 ..< Self.iterations {
            let vi = Int(rng.next() % UInt64(vectors.count))
            var b = vectors[vi].bytes
            var steps: [String] = []
            for _ in 0 ... rng.next() % 3 {
                steps.append(Self.mutate(&b, kinds: Self.optionKindPositions[vi], &rng))
            }
            if let problem = Self.check(b) {
                failures += 1
                Issue.record("""
                    fuzz seed 0x\(String(Self.seed, radix: 16)) iteration \(iteration), \(vectors[vi].name) \
                    mutated by [\(steps.joined(separator: "; "))]: \(problem)
                    input: \(hex(b))
                    """)
                if failures >= 10 { return }
            }
            switch parsePacket(b) {
            case .success: parsed += 1
            case .failure(let e): errors[e, default: 0] += 1
            }
            // Raw option areas of up to 40 bytes cut from the mutated bytes.
            if iteration % 4 == 0, b.count > 20 {
                let start = Int(rng.next() % UInt64(b.count - 20)) + 20
                let area = Array(b[start ..< min(b.count, start + Int(rng.next() % 41))])
                let list = area.withUnsafeBytes { TCPOptionList(parsing: $0) }
                if emit(list) != area {
                    failures += 1
                    Issue.record("fuzz seed 0x\(String(Self.seed, radix: 16)) iteration \(iteration): area \(hex(area)) does not round-trip")
                }
                _ = area.withUnsafeBytes { TCPOptionSummary(parsing: $0) }
            }
        }
        // The mutations must exercise both outcomes and a variety of errors.
        #expect(parsed > Self.iterations / 5, "parsed \(parsed)")
        #expect(Self.iterations - parsed > Self.iterations / 5)
        #expect(errors.keys.count >= 5, "errors seen: \(errors)")
    }
}

import MPTCPStack
import Testing

private func ranges(_ r: ReceiveRanges) -> [[UInt32]] {
    (0 ..< r.count).map { [r[$0].left.rawValue, r[$0].right.rawValue] }
}

@Suite("A subflow's out-of-order receive ranges (announced as SACK blocks)")
struct ReceiveRangesTests {
    @Test("the most recently grown range first (RFC 2018 §4)")
    func mostRecentFirst() {
        var r = ReceiveRanges()
        r.add(TCPSeq(2000), TCPSeq(3000), limit: 4)
        r.add(TCPSeq(5000), TCPSeq(6000), limit: 4)
        #expect(ranges(r) == [[5000, 6000], [2000, 3000]])
        r.add(TCPSeq(3000), TCPSeq(3500), limit: 4) // grows the older one: it comes first
        #expect(ranges(r) == [[2000, 3500], [5000, 6000]])
    }

    @Test("overlapping and touching ranges merge into one")
    func merge() {
        var r = ReceiveRanges()
        r.add(TCPSeq(2000), TCPSeq(3000), limit: 4)
        r.add(TCPSeq(4000), TCPSeq(5000), limit: 4)
        r.add(TCPSeq(2500), TCPSeq(4000), limit: 4) // bridges both
        #expect(ranges(r) == [[2000, 5000]])
    }

    @Test("beyond the limit the oldest range is forgotten")
    func bounded() {
        var r = ReceiveRanges()
        for k in 0 ..< 5 { r.add(TCPSeq(UInt32(10_000 * (k + 1))), TCPSeq(UInt32(10_000 * (k + 1) + 100)), limit: 3) }
        #expect(ranges(r) == [[50_000, 50_100], [40_000, 40_100], [30_000, 30_100]])
    }

    @Test("the next expected number takes every range it reaches, also through a chain")
    func absorb() {
        var r = ReceiveRanges()
        r.add(TCPSeq(3000), TCPSeq(4000), limit: 4)
        r.add(TCPSeq(2000), TCPSeq(3000), limit: 4) // merges with the first (touching)
        r.add(TCPSeq(6000), TCPSeq(7000), limit: 4)
        var next = TCPSeq(2000)
        r.absorb(into: &next)
        #expect(next == TCPSeq(4000))
        #expect(ranges(r) == [[6000, 7000]])
        var behind = TCPSeq(5000)
        r.absorb(into: &behind) // a gap before 6000: nothing taken
        #expect(behind == TCPSeq(5000) && r.count == 1)
    }

    @Test("across the sequence wrap")
    func wraps() {
        var r = ReceiveRanges()
        r.add(TCPSeq(0xFFFF_FF00), TCPSeq(0x0000_0100), limit: 4)
        var next = TCPSeq(0xFFFF_FE00)
        r.absorb(into: &next)
        #expect(next == TCPSeq(0xFFFF_FE00)) // a gap of 0x100
        next = TCPSeq(0xFFFF_FF00)
        r.absorb(into: &next)
        #expect(next == TCPSeq(0x0000_0100) && r.isEmpty)
    }
}

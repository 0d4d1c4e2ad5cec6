import MPTCPStack
import TestSupport
import Testing

@Suite("Sequence numbers")
struct SequenceTests {
    @Test("TCPSeq compares across the 32-bit wrap")
    func tcpSeqWrap() {
        let hi = TCPSeq(0xffff_fff0), lo = TCPSeq(0x10)
        #expect(hi < lo)
        #expect(!(lo < hi))
        #expect(lo > hi && hi <= lo && lo >= hi)
        #expect(hi + 0x20 == lo)
        #expect(lo - 0x20 == hi)
        #expect(lo - hi == 32)
        #expect(hi - lo == -32)
        #expect(TCPSeq(0) - 1 == TCPSeq(0xffff_ffff))
        #expect(TCPSeq(0xffff_ffff) < TCPSeq(0))
        #expect(max(hi, lo) == lo)
        #expect(!(lo < lo))
        // 2^31 - 1 ahead is after; the description is the raw value.
        #expect(TCPSeq(0) < TCPSeq(0x7fff_ffff))
        #expect(TCPSeq(0x7fff_ffff) < TCPSeq(0x8000_0000))
        #expect(TCPSeq(0x8000_0001) < TCPSeq(0))
        #expect(TCPSeq(0x8000_0000) - TCPSeq(0) == Int32.min)
        #expect(TCPSeq(4_294_967_295).description == "4294967295")
    }

    @Test("TCPSeq: exactly one of a < b, b < a for every distance 1 ..< 2^31")
    func tcpSeqAntisymmetry() {
        var rng = SplitMix64(seed: 0x5EC_0001)
        for _ in 0 ..< 10_000 {
            let a = TCPSeq(UInt32(truncatingIfNeeded: rng.next()))
            let d = UInt32(truncatingIfNeeded: rng.next()) % 0x7fff_ffff + 1
            let b = a + d
            #expect(a < b && !(b < a), "a=\(a) d=\(d)")
            #expect(b - a == Int32(d) && a - b == -Int32(d))
        }
    }

    @Test("DataSeq compares across the 64-bit wrap")
    func dataSeqWrap() {
        let hi = DataSeq(0xffff_ffff_ffff_fff0), lo = DataSeq(5)
        #expect(hi < lo && !(lo < hi))
        #expect(lo - hi == 21 && hi - lo == -21)
        #expect(hi + 21 == lo)
        #expect(DataSeq(0x7fff_ffff_ffff_ffff) > DataSeq(0))
    }

    @Test("DataSeq.expand across the 32-bit boundary, both directions")
    func expandBoundary() {
        // Forward: the peer's 32-bit DSN wrapped past 2^32 while we were just below.
        #expect(DataSeq.expand(low32: 0x10, near: DataSeq(0x0000_0001_ffff_fff0)) == DataSeq(0x0000_0002_0000_0010))
        // Backward: an old segment from just before the boundary after we crossed it.
        #expect(DataSeq.expand(low32: 0xffff_fff0, near: DataSeq(0x0000_0002_0000_0010)) == DataSeq(0x0000_0001_ffff_fff0))
        // Same epoch, both sides.
        #expect(DataSeq.expand(low32: 0x1234, near: DataSeq(0x0000_0005_0000_1000)) == DataSeq(0x0000_0005_0000_1234))
        #expect(DataSeq.expand(low32: 0x0fff, near: DataSeq(0x0000_0005_0000_1000)) == DataSeq(0x0000_0005_0000_0fff))
        // Across the 64-bit wrap.
        #expect(DataSeq.expand(low32: 0xffff_fff0, near: DataSeq(0x10)) == DataSeq(0xffff_ffff_ffff_fff0))
        #expect(DataSeq.expand(low32: 0x10, near: DataSeq(0xffff_ffff_ffff_fff0)) == DataSeq(0x10))
        // The captured 4-byte DATA_ACK of capture a, expanded near the server's IDSN.
        let idsn = Keys.a.serverIDSN
        #expect(DataSeq.expand(low32: 0x6889_56a7, near: DataSeq(idsn)) == DataSeq(idsn &+ 1))
    }

    @Test("DataSeq.expand recovers any DSN within 2^31 of the reference")
    func expandProperty() {
        var rng = SplitMix64(seed: 0xD5_0002)
        for i in 0 ..< 20_000 {
            // A quarter of the references sit just below, a quarter just above, a 32-bit boundary.
            let r = rng.next(), small = rng.next() & 0xff
            let near = DataSeq(i % 4 == 0 ? r | 0xffff_ff00 : i % 4 == 1 ? r & ~0xffff_ffff | small : r)
            let delta = Int64(Int32(truncatingIfNeeded: rng.next()))
            guard delta != Int64(Int32.min) else { continue }
            let actual = near + UInt64(bitPattern: delta)
            let got = DataSeq.expand(low32: UInt32(truncatingIfNeeded: actual.rawValue), near: near)
            #expect(got == actual, "near=\(near) delta=\(delta)")
        }
        // The extremes of the window, on both sides of a 32-bit boundary.
        for low: UInt64 in [0, 1, 0x10, 0x7fff_fffe, 0x7fff_ffff, 0x8000_0000, 0x8000_0001, 0xffff_fff0, 0xffff_ffff] {
            for high: UInt64 in [0, 7, 0xffff_ffff] {
                let near = DataSeq(high << 32 | low)
                for delta: Int64 in [0, 1, -1, Int64(Int32.max), Int64(Int32.max) - 1, -Int64(Int32.max), -Int64(Int32.max) + 1] {
                    let actual = near + UInt64(bitPattern: delta)
                    let got = DataSeq.expand(low32: UInt32(truncatingIfNeeded: actual.rawValue), near: near)
                    #expect(got == actual, "near=\(near) delta=\(delta)")
                }
            }
        }
        // Exactly 2^31 away is ambiguous; the result still has the right low bits and is 2^31 away.
        let near = DataSeq(0x0000_0003_0000_0000)
        let got = DataSeq.expand(low32: 0x8000_0000, near: near)
        #expect(UInt32(truncatingIfNeeded: got.rawValue) == 0x8000_0000)
        #expect(abs(got - near) == 1 << 31)
    }
}

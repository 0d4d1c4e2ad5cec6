import MPTCPStack
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension SimTests {
    /// Two uplinks, each with 1% loss and 1% reordering in both directions.
    /// The LAN loses nothing here: a segment the gateway forwards to the
    /// client and the LAN then drops is recovered only by the peer's
    /// data-level retransmission (local retransmission to the client is not
    /// built), which this model server does not do.
    @Test("two uplinks, 1% loss and reordering on each, 500 seeds (sizes, rates, delays, IPv4/IPv6 vary)")
    func twoUplinksLossy() {
        var failures = 0
        let list = seeds(500)
        for seed in list {
            var r = SplitMix64(seed: seed ^ 0x2_5EED)
            var s = SimScenario(seed: seed)
            s.upload = 48 * 1024 + Int(r.next() % (96 * 1024))
            s.download = 48 * 1024 + Int(r.next() % (96 * 1024))
            s.ipv6 = r.next() % 4 == 0
            s.delayedAck = r.next() % 2 == 0
            s.dataFinWithData = r.next() % 2 == 0
            func lossy() -> LinkProfile {
                LinkProfile(rate: Double(1_000_000 + r.next() % 2_000_000), delay: .milliseconds(5 + Int64(r.next() % 40)),
                            loss: 0.01, reorder: 0.01, reorderDelay: .milliseconds(2 + Int64(r.next() % 6)), queueLimit: 64 * 1024)
            }
            s.uplinks = [SimUplink(lossy()), SimUplink(lossy())]
            s.deadline = .seconds(90)
            let o = simulate(s)
            if getenv("SIM_VERBOSE") != nil { expectClean(o) }
            if !o.ok {
                failures += 1
                if failures <= 3 { expectClean(o) }
                print("SIM seed \(seed) failed: \(o.headline)")
            }
        }
        #expect(failures == 0, "\(failures) of \(list.count) seeds failed (the first three are reported above)")
    }
}

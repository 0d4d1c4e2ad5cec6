import MPTCPStack
import Testing

extension SimTests {
    /// Two uplinks, each with 1% loss and 1% reordering in both directions.
    /// The LAN loses nothing here: a segment the gateway forwards to the
    /// client and the LAN then drops is recovered only by the peer's
    /// data-level retransmission (local retransmission to the client is not
    /// built), which this model server does not do.
    @Test("two uplinks, 1% loss and reordering on each, 500 seeds (sizes, rates, delays, IPv4/IPv6 vary)")
    func twoUplinksLossy() {
        sweep(500, salt: 0x2_5EED) { seed, r in
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
            return s
        }
    }
}

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
            s.varyEndpoints(&r)
            func lossy() -> LinkProfile {
                LinkProfile(rate: Double(1_000_000 + r.next() % 2_000_000), delay: .milliseconds(5 + Int64(r.next() % 40)),
                            loss: 0.01, reorder: 0.01, reorderDelay: .milliseconds(2 + Int64(r.next() % 6)), queueLimit: 64 * 1024)
            }
            s.uplinks = [SimUplink(lossy()), SimUplink(lossy())]
            s.deadline = .seconds(90)
            return s
        }
    }

    /// The client's segments reordered (and some lost) on the LAN on their
    /// way to a two-uplink gateway: the engine keeps what comes beyond a
    /// gap and SACKs it, so only the gap is sent again.
    @Test("two uplinks; the LAN reorders 5% and loses 1% of the client's segments, 300 seeds")
    func twoUplinksReorderingLAN() {
        let outcomes = sweep(300, salt: 0x3_5EED) { seed, r in
            var s = SimScenario(seed: seed)
            s.upload = 128 * 1024 + Int(r.next() % (256 * 1024))
            s.download = 16 * 1024
            s.varyEndpoints(&r)
            s.lan = LinkProfile(rate: 125_000_000, delay: .microseconds(100), loss: 0.01, reorder: 0.05,
                                reorderDelay: .microseconds(50 + Int64(r.next() % 400)))
            s.lanToClient = LinkProfile(rate: 125_000_000, delay: .microseconds(100))
            func path() -> LinkProfile {
                LinkProfile(rate: Double(1_000_000 + r.next() % 2_000_000), delay: .milliseconds(5 + Int64(r.next() % 40)),
                            queueLimit: 64 * 1024)
            }
            s.uplinks = [SimUplink(path()), SimUplink(path())]
            s.deadline = .seconds(90)
            return s
        }

        // The gap path was taken. (This model client has no SACK, so it
        // still resends after a gap as NewReno does; the Linux client in
        // the netns test resends only the gap.)
        let held = outcomes.reduce(0) { $0 + $1.engineStats.clientOutOfOrder }
        #expect(held > 1000, "client segments held beyond a gap: \(held)")
    }
}

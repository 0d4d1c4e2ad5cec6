import MPTCPStack
import Testing

private struct Sub: CoupledSubflow {
    var cwnd: Double
    var srtt: Double
    var flight: Int
    var isActive = true
}

@Suite("RFC 6356 linked increases")
struct CoupledTests {
    @Test("one subflow alone grows like TCP: one MSS per window of ACKs")
    func single() {
        let s = [Sub(cwnd: 14200, srtt: 0.04, flight: 14200)]
        let inc = LinkedIncrease.increase(s[0], at: 0, in: s, acked: 1420, mss: 1420)
        #expect(abs(inc - 1420.0 * 1420 / 14200) < 1e-9)
    }

    @Test("two equal subflows through one bottleneck: together no more than one TCP (half each)")
    func twoEqual() {
        let s = [Sub(cwnd: 14200, srtt: 0.04, flight: 14200), Sub(cwnd: 14200, srtt: 0.04, flight: 14200)]
        let inc = LinkedIncrease.increase(s[0], at: 0, in: s, acked: 1420, mss: 1420)
        // alpha = total * (w/r²) / (2w/r)² = 1/2: each grows by alpha * mss² / total per MSS
        // acknowledged, together what one TCP with their summed window grows.
        #expect(abs(inc - 0.5 * 1420 * 1420 / 28400) < 1e-9)
    }

    @Test("a subflow with nothing in flight is left out of the sums, whatever its old window (issue 5: the federation download at a third of its rate)")
    func idleLeftOut() {
        // B's four subflows in the half-rate run: two on uplink 1 sending,
        // one on uplink 2 sending, one on uplink 2 idle with a 115 kB window.
        let sending = [Sub(cwnd: 16723, srtt: 0.041, flight: 15620), Sub(cwnd: 16147, srtt: 0.041, flight: 15620),
                       Sub(cwnd: 36753, srtt: 0.072, flight: 35500)]
        let withIdle = sending + [Sub(cwnd: 115_384, srtt: 0.138, flight: 0)]
        let a = LinkedIncrease.increase(withIdle[0], at: 0, in: withIdle, acked: 1420, mss: 1420)
        let b = LinkedIncrease.increase(sending[0], at: 0, in: sending, acked: 1420, mss: 1420)
        #expect(a == b)
        // Counted, the idle window made it 4.4 bytes per MSS acknowledged
        // (about 1 kB per second at 41 ms); left out it is over twice that.
        #expect(b > 9)
        // An inactive subflow never counts, nor one without an RTT sample.
        let other = sending + [Sub(cwnd: 115_384, srtt: 0.04, flight: 50_000, isActive: false), Sub(cwnd: 115_384, srtt: 0, flight: 50_000)]
        #expect(LinkedIncrease.increase(other[0], at: 0, in: other, acked: 1420, mss: 1420) == b)
    }

    @Test("the subflow's own state comes from `own`, even with nothing left in flight")
    func ownState() {
        let stale = [Sub(cwnd: 1000, srtt: 0.04, flight: 0), Sub(cwnd: 14200, srtt: 0.04, flight: 14200)]
        let own = Sub(cwnd: 14200, srtt: 0.04, flight: 0) // everything just acknowledged
        let inc = LinkedIncrease.increase(own, at: 0, in: stale, acked: 1420, mss: 1420)
        #expect(abs(inc - 0.5 * 1420 * 1420 / 28400) < 1e-9)
    }
}

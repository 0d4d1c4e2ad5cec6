import MPTCPStack
import Testing

@Suite("RFC 6298 RTT estimator")
struct RTTEstimatorTests {
    @Test("before a sample: no SRTT, the initial 1 s timeout")
    func initial() {
        let e = RTTEstimator()
        #expect(e.srtt == 0 && e.rttvar == 0 && e.minRTT == 0)
        #expect(e.rto == 1.0)
    }

    @Test("the first sample: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR (RFC 6298 §2.2)")
    func firstSample() {
        var e = RTTEstimator()
        e.sample(0.1, minRTO: 0.2)
        #expect(e.srtt == 0.1)
        #expect(e.rttvar == 0.05)
        #expect(e.rto == 0.1 + 4 * 0.05)
        #expect(e.minRTT == 0) // only `noteMinimum` keeps the smallest
    }

    @Test("later samples: RTTVAR first from the old SRTT, then SRTT, alpha 1/8, beta 1/4 (RFC 6298 §2.3), bit for bit")
    func smoothing() {
        var e = RTTEstimator()
        e.sample(0.1, minRTO: 0.2)
        e.sample(0.3, minRTO: 0.2)
        let rttvar = 0.75 * 0.05 + 0.25 * abs(0.1 - 0.3)
        let srtt = 0.875 * 0.1 + 0.125 * 0.3
        #expect(e.rttvar == rttvar)
        #expect(e.srtt == srtt)
        #expect(e.rto == srtt + 4 * rttvar)
        e.sample(0.02, minRTO: 0.2)
        let rttvar2 = 0.75 * rttvar + 0.25 * abs(srtt - 0.02)
        let srtt2 = 0.875 * srtt + 0.125 * 0.02
        #expect(e.rttvar == rttvar2)
        #expect(e.srtt == srtt2)
        #expect(e.rto == srtt2 + 4 * rttvar2)
    }

    @Test("the timeout is never below minRTO")
    func floor() {
        var e = RTTEstimator()
        e.sample(0.01, minRTO: 0.2)
        #expect(e.rto == 0.2)
        e.sample(0.01, minRTO: 0.5)
        #expect(e.rto == 0.5)
    }

    @Test("the variance term is at least 1 ms (the clock granularity G)")
    func granularity() {
        var e = RTTEstimator()
        for _ in 0 ..< 40 { e.sample(0.05, minRTO: 0) }
        #expect(4 * e.rttvar < 0.001)
        #expect(e.rto == e.srtt + 0.001)
    }

    @Test("the timeout is never above 60 s, from a sample or backed off")
    func ceiling() {
        var e = RTTEstimator()
        e.sample(30, minRTO: 0.2)
        #expect(e.rto == 60)
        var b = RTTEstimator()
        var expected = 1.0
        for _ in 0 ..< 8 {
            b.backOff()
            expected = min(60, expected * 2)
            #expect(b.rto == expected)
        }
        #expect(b.rto == 60)
    }

    @Test("backing off doubles the timeout and leaves the estimate; progress brings the timeout back to it")
    func backOffAndReset() {
        var e = RTTEstimator()
        e.sample(0.1, minRTO: 0.2)
        let rto = e.rto
        e.backOff()
        e.backOff()
        #expect(e.rto == rto * 2 * 2)
        #expect(e.srtt == 0.1 && e.rttvar == 0.05)
        e.resetTimeout(minRTO: 0.2)
        #expect(e.rto == rto)
    }

    @Test("the smallest RTT: the first noted, then the minimum")
    func minimum() {
        var e = RTTEstimator()
        e.noteMinimum(0.05)
        #expect(e.minRTT == 0.05)
        e.noteMinimum(0.03)
        e.noteMinimum(0.04)
        #expect(e.minRTT == 0.03)
        #expect(e.srtt == 0) // the estimate is apart
    }
}

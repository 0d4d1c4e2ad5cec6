import MPTCPStack
import Testing

private struct Sub: SchedulableSubflow {
    var srtt: Double
    var rto = 1.0
    var cwnd = 14200.0
    var pipe = 0
    var mss = 1420
    var usable = true
    var backup = false
}

@Suite("The scheduler's pick (lowest RTT)")
struct SchedulerTests {
    let scheduler = LowestRTTScheduler(slowPathFactor: 3)

    @Test("the lowest smoothed RTT wins")
    func lowestRTT() {
        let s = [Sub(srtt: 0.05), Sub(srtt: 0.02), Sub(srtt: 0.03)]
        #expect(scheduler.pick(s, want: 1420) == 1)
    }

    @Test("none to pick from: nil")
    func empty() {
        #expect(scheduler.pick([Sub](), want: 1420) == nil)
        #expect(scheduler.pick([Sub(srtt: 0.02, usable: false)], want: 1420) == nil)
    }

    @Test("no window room: the next lowest; room means a segment, or what is wanted if less")
    func room() {
        let full = [Sub(srtt: 0.02, pipe: 14200), Sub(srtt: 0.03)]
        #expect(scheduler.pick(full, want: 1420) == 1)
        let short = [Sub(srtt: 0.02, pipe: 14200 - 500), Sub(srtt: 0.03)]
        #expect(scheduler.pick(short, want: 1420) == 1)
        #expect(scheduler.pick(short, want: 500) == 0)
        #expect(scheduler.pick(short, want: 501) == 1)
        let none = [Sub(srtt: 0.02, pipe: 14200), Sub(srtt: 0.03, cwnd: 1000)]
        #expect(scheduler.pick(none, want: 1420) == nil)
    }

    @Test("unusable subflows are skipped, and do not count as the best RTT")
    func unusable() {
        let s = [Sub(srtt: 0.001, usable: false), Sub(srtt: 0.05)]
        #expect(scheduler.pick(s, want: 1420) == 1)
    }

    @Test("a backup subflow only when no regular one is usable")
    func backup() {
        let both = [Sub(srtt: 0.01, backup: true), Sub(srtt: 0.05)]
        #expect(scheduler.pick(both, want: 1420) == 1)
        let regularGone = [Sub(srtt: 0.01, backup: true), Sub(srtt: 0.005, usable: false)]
        #expect(scheduler.pick(regularGone, want: 1420) == 0)
        // A usable regular subflow without room keeps the backup idle.
        let regularFull = [Sub(srtt: 0.01, backup: true), Sub(srtt: 0.05, pipe: 14200)]
        #expect(scheduler.pick(regularFull, want: 1420) == nil)
        // Among backups, the lowest RTT.
        let backups = [Sub(srtt: 0.04, backup: true), Sub(srtt: 0.02, backup: true)]
        #expect(scheduler.pick(backups, want: 1420) == 1)
    }

    @Test("never a subflow more than slowPathFactor times and 10 ms slower than the best, even when the best has no room")
    func notMuchSlower() {
        let slow = [Sub(srtt: 0.02, pipe: 14200), Sub(srtt: 0.061)]
        #expect(scheduler.pick(slow, want: 1420) == nil)
        let within = [Sub(srtt: 0.02, pipe: 14200), Sub(srtt: 0.055)]
        #expect(scheduler.pick(within, want: 1420) == 1) // under 3x
        let close = [Sub(srtt: 0.002, pipe: 14200), Sub(srtt: 0.011)]
        #expect(scheduler.pick(close, want: 1420) == 1) // 5.5x, but 9 ms behind
        let wider = LowestRTTScheduler(slowPathFactor: 4)
        #expect(wider.pick(slow, want: 1420) == 1)
    }

    @Test("a subflow with no RTT sample counts with its timeout, and is never ruled out as slow")
    func noSample() {
        let fresh = [Sub(srtt: 0.02, pipe: 14200), Sub(srtt: 0, rto: 1.0)]
        #expect(scheduler.pick(fresh, want: 1420) == 1)
        let sampled = [Sub(srtt: 0, rto: 1.0), Sub(srtt: 0.5)]
        #expect(scheduler.pick(sampled, want: 1420) == 1)
        // Its timeout is the best "RTT" the others are measured against.
        let guessBest = [Sub(srtt: 0, rto: 0.2, pipe: 14200), Sub(srtt: 0.7)]
        #expect(scheduler.pick(guessBest, want: 1420) == nil)
    }

    @Test("ties: the first in order")
    func ties() {
        let s = [Sub(srtt: 0.05), Sub(srtt: 0.03), Sub(srtt: 0.03)]
        #expect(scheduler.pick(s, want: 1420) == 1)
        let guesses = [Sub(srtt: 0, rto: 1), Sub(srtt: 0, rto: 1)]
        #expect(scheduler.pick(guesses, want: 1420) == 0)
    }

    @Test("the index is the collection's own (a slice keeps its base's indices)")
    func sliceIndex() {
        let s = [Sub(srtt: 0.01), Sub(srtt: 0.05), Sub(srtt: 0.03)]
        #expect(scheduler.pick(s[1...], want: 1420) == 2)
    }
}

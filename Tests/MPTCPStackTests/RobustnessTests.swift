import MPTCPStack
import Testing

// Issue 13: time arithmetic never traps, whatever the configuration gives
// it.

@Suite struct TimeArithmeticTests {
    @Test func instantFromSecondsSaturates() {
        #expect(Instant.seconds(1.5).nanoseconds == 1_500_000_000)
        #expect(Instant.seconds(-1).nanoseconds == 0)
        #expect(Instant.seconds(.nan).nanoseconds == 0)
        #expect(Instant.seconds(-.infinity).nanoseconds == 0)
        #expect(Instant.seconds(.infinity).nanoseconds == .max)
        #expect(Instant.seconds(1e300).nanoseconds == .max)
        #expect(Instant.seconds(18_446_744_073.709_553).nanoseconds == .max)
    }

    @Test func addingADurationSaturates() {
        let t = Instant(nanoseconds: 5_000_000_000)
        #expect((t + .milliseconds(1500)).nanoseconds == 6_500_000_000)
        #expect((t + .milliseconds(-1500)).nanoseconds == 3_500_000_000)
        #expect((t + .seconds(-1)).nanoseconds == 4_000_000_000)
        #expect((t + .seconds(-10)).nanoseconds == 0)
        #expect((t + .nanoseconds(-1)).nanoseconds == 4_999_999_999)
        #expect((t + .seconds(Int64.max)).nanoseconds == .max)
        #expect((t + .seconds(Int64.min)).nanoseconds == 0)
        #expect((Instant(nanoseconds: .max - 1) + .seconds(1)).nanoseconds == .max)
        #expect((t + .zero) == t)
    }
}

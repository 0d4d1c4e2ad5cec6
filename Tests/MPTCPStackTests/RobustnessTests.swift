import MPTCPStack
import TestSupport
import Testing

// Issue 13: time arithmetic never traps, whatever the configuration gives
// it, and the multipath state dump comes in bounded parts.

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

@Suite struct StateDumpTests {
    /// 100 multipath connections (SYNs from the LAN, each taking a slot):
    /// the dump read 10 slots at a time holds every connection once, and
    /// equals the whole dump.
    @Test func theMultipathStateComesInBoundedParts() {
        var config = EngineConfig()
        config.uplinks = [UplinkConfig(addresses: [IPAddress("198.51.100.1")!]), UplinkConfig(addresses: [IPAddress("198.51.100.2")!])]
        let h = EngineHarness(config: config)
        for k in 0 ..< 100 {
            var c = TestConn(client: Endpoint("192.168.1.10", UInt16(40_000 + k)))
            _ = h.lan(c.syn())
        }
        let whole = h.engine.multipathState
        #expect(whole.split(separator: "\n").count == 100)
        var parts: [String] = []
        var cursor: Int? = 0
        var passes = 0
        while let from = cursor, passes < 1000 {
            var part = ""
            cursor = h.engine.multipathState(from: from, slots: 10, into: &part)
            #expect(part.split(separator: "\n").count <= 10)
            parts.append(part)
            passes += 1
        }
        #expect(passes == 10)
        #expect(parts.joined() == whole)
        for k in 0 ..< 100 {
            #expect(whole.split(separator: "\n").filter { $0.hasPrefix("192.168.1.10:\(40_000 + k) -> ") }.count == 1, "connection \(k)")
        }
        // Out-of-range cursors and sizes end the dump, never trap.
        var rest = ""
        #expect(h.engine.multipathState(from: 1_000_000, slots: 10, into: &rest) == nil)
        #expect(h.engine.multipathState(from: -5, slots: 0, into: &rest) == 1)
        #expect(h.engine.multipathState(from: 95, slots: .max, into: &rest) == nil)
    }
}

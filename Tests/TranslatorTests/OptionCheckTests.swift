import MPTCPStack
import Testing
@testable import Translator

// Issue 13, item 1: the command line's checks (no value traps, each bad one
// a one-line reason naming its option).

@Suite struct OptionCheckTests {
    let time = 0.001 ... OptionChecks.maxSeconds

    @Test func secondsOutsideTheRangeAreRefusedNamingTheOption() throws {
        for v in [-1, 0, .nan, .infinity, -.infinity, 1e300, 2_592_000.5, -0.0, .leastNonzeroMagnitude] as [Double] {
            let e = try #require(OptionChecks.seconds(v, "--idle-timeout", time), "\(v) accepted")
            #expect(e.hasPrefix("--idle-timeout "))
            #expect(!e.contains("\n"))
        }
        for v in [0.001, 1, 60, 7200, 2_592_000] as [Double] {
            #expect(OptionChecks.seconds(v, "--time-wait", time) == nil, "\(v) refused")
        }
        #expect(OptionChecks.seconds(-1, "--time-wait", time) == "--time-wait -1.0: seconds, 0.001 to 2592000 (30 days)")
    }

    @Test func integersOutsideTheRangeAreRefused() {
        #expect(OptionChecks.integer(-1, "--max-connections", 1 ... 1_048_576) == "--max-connections -1: 1 to 1048576")
        #expect(OptionChecks.integer(Int.min, "--max-connections", 1 ... 1_048_576) != nil)
        #expect(OptionChecks.integer(Int.max, "--send-buffer", 65_536 ... 1 << 30, "bytes") != nil)
        #expect(OptionChecks.integer(65_000, "--mss-clamp", 0 ... 1024, "bytes") == "--mss-clamp 65000: 0 to 1024 bytes")
        #expect(OptionChecks.integer(1024, "--mss-clamp", 0 ... 1024, "bytes") == nil)
        #expect(OptionChecks.integer(0, "--add-addr-accepted", 0 ... 8) == nil)
    }

    @Test func joinPortsNeedTwoUnprivilegedPortsOutsideTheEphemeralRange() throws {
        #expect(OptionChecks.joinPorts(61_000 ... 61_999) == nil)
        #expect(OptionChecks.joinPorts(61_000 ... 61_001) == nil)
        #expect(OptionChecks.joinPorts(61_000 ... 61_000) == "--join-ports 61000-61000: at least 2 ports")
        #expect(OptionChecks.joinPorts(1 ... 65_535) == "--join-ports 1-65535: ports from 1024 up")
        #expect(OptionChecks.joinPorts(1023 ... 2000) != nil)
        let linux = try #require(OptionChecks.parseEphemeralPorts("32768\t60999\n"))
        #expect(linux == 32_768 ... 60_999)
        #expect(OptionChecks.joinPorts(61_000 ... 61_999, outside: linux) == nil)
        #expect(OptionChecks.joinPorts(1024 ... 32_767, outside: linux) == nil)
        for r in [40_000 ... 40_999, 60_999 ... 61_999, 1024 ... 65_535, 32_000 ... 32_768] as [ClosedRange<UInt16>] {
            let e = try #require(OptionChecks.joinPorts(r, outside: linux))
            #expect(e.hasPrefix("--join-ports \(r.lowerBound)-\(r.upperBound) overlaps the ephemeral ports 32768-60999"))
        }
        for bad in ["", "32768", "60999 32768", "a b", "1 2 3", "70000 80000"] {
            #expect(OptionChecks.parseEphemeralPorts(bad) == nil, "'\(bad)'")
        }
    }

    @Test func prefixLengthsByFamily() throws {
        let v4 = try #require(IPAddress("10.0.0.0")), v6 = try #require(IPAddress("fd00::"))
        #expect(OptionChecks.prefixLength(32, of: v4, "--lan") == nil)
        #expect(OptionChecks.prefixLength(33, of: v4, "--lan") == "--lan 10.0.0.0/33: prefix length 0 to 32")
        #expect(OptionChecks.prefixLength(-1, of: v4, "--lan") != nil)
        #expect(OptionChecks.prefixLength(128, of: v6, "--lan") == nil)
        #expect(OptionChecks.prefixLength(129, of: v6, "--lan") != nil)
    }

    // Issue 15: --queues N, one engine thread each.
    @Test func queuesArePowersOfTwoUpTo8WithTwoJoinPortsEach() {
        for n in [1, 2, 4, 8] { #expect(OptionChecks.queues(n, first: 0, joinPorts: 61_000 ... 61_999) == nil) }
        for n in [0, -1, 3, 5, 16, Int.max, Int.min] {
            #expect(OptionChecks.queues(n, first: 0, joinPorts: 61_000 ... 61_999) == "--queues \(n): 1, 2, 4 or 8")
        }
        #expect(OptionChecks.queues(2, first: 65_535, joinPorts: 61_000 ... 61_999) == "--queues 2 from --queue 65535: queue numbers end at 65535")
        #expect(OptionChecks.queues(8, first: 65_528, joinPorts: 61_000 ... 61_999) == nil)
        #expect(OptionChecks.queues(4, first: 0, joinPorts: 61_000 ... 61_007) == nil)
        #expect(OptionChecks.queues(4, first: 0, joinPorts: 61_000 ... 61_006)
            == "--queues 4: --join-ports 61000-61006 needs at least 8 ports (2 per thread)")
    }

    @Test func joinPortSlicesCoverTheRangeOnceWithTwoPortsOrMoreEach() {
        for r in [61_000 ... 61_999, 61_000 ... 61_007, 1024 ... 65_535, 5000 ... 5016] as [ClosedRange<UInt16>] {
            for n in QueueSteering.allowed where r.count >= 2 * n {
                let slices = (0 ..< n).map { QueueSteering.joinPorts(r, slice: $0, of: n) }
                #expect(slices.first?.lowerBound == r.lowerBound && slices.last?.upperBound == r.upperBound)
                for k in 0 ..< n {
                    #expect(slices[k].count >= 2)
                    if k > 0 { #expect(Int(slices[k].lowerBound) == Int(slices[k - 1].upperBound) + 1) }
                }
            }
        }
        #expect(QueueSteering.joinPorts(61_000 ... 61_999, slice: 1, of: 2) == 61_500 ... 61_999)
        #expect(QueueSteering.joinPorts(61_000 ... 61_999, slice: 0, of: 1) == 61_000 ... 61_999)
    }

    @Test func hostsAreSteeredByTheLowBitsOfTheLANAddress() {
        #expect(QueueSteering.hostMatch(v6: false, slice: 1, of: 2, lanSide: true) == ["-s", "0.0.0.1/0.0.0.1"])
        #expect(QueueSteering.hostMatch(v6: false, slice: 5, of: 8, lanSide: false) == ["-d", "0.0.0.5/0.0.0.7"])
        #expect(QueueSteering.hostMatch(v6: true, slice: 3, of: 4, lanSide: true) == ["-s", "::3/::3"])
    }
}

import MPTCPStack
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// End-to-end runs through the engine on a simulated network (SimNetwork):
// a plain TCP client, the gateway, an MPTCP v1 server. Each run is a pure
// function of its scenario (seed included): a failure prints the scenario
// and a trace, and `SimScenario(seed:)` with the same settings reproduces it.

/// Records an issue with the full report when a run is not clean; with
/// SIM_VERBOSE set, prints every run's figures.
func expectClean(_ o: SimOutcome, sourceLocation: SourceLocation = #_sourceLocation) {
    if getenv("SIM_VERBOSE") != nil {
        print("\(o.scenario.summary): ok \(o.ok) after \(o.finishedAfter.map { "\($0)" } ?? "-"), \(o.events) events\n\(o.details)")
        if !o.ok { print(o.trace.joined(separator: "\n")) }
    }
    let clean = o.ok
    #expect(clean, Comment(rawValue: o.report(traceLines: 60)), sourceLocation: sourceLocation)
}

/// The seeds of a many-seed test: SIM_SEEDS ("a-b" or "a,b,c") when set, else 0 ..< n.
func seeds(_ n: Int) -> [UInt64] {
    guard let e = getenv("SIM_SEEDS") else { return (0 ..< UInt64(n)).map { $0 } }
    let text = String(cString: e)
    if let dash = text.firstIndex(of: "-"), let a = UInt64(text[..<dash]), let b = UInt64(text[text.index(after: dash)...]) {
        return Array(a ... b)
    }
    return text.split(separator: ",").compactMap { UInt64($0) }
}

/// Runs `scenario(seed, rng)` for every seed of `seeds(n)` (rng seeded from
/// the seed and `salt`): clean runs pass silently, the first three failures
/// are reported in full, and the count of failures is one expectation.
@discardableResult
func sweep(_ n: Int, salt: UInt64, sourceLocation: SourceLocation = #_sourceLocation,
           _ scenario: (UInt64, inout SplitMix64) -> SimScenario) -> [SimOutcome] {
    var failures = 0
    var outcomes: [SimOutcome] = []
    let list = seeds(n)
    for seed in list {
        var r = SplitMix64(seed: seed ^ salt)
        let o = simulate(scenario(seed, &r))
        outcomes.append(o)
        if getenv("SIM_VERBOSE") != nil { expectClean(o, sourceLocation: sourceLocation) }
        if let path = getenv("SIM_OUTCOMES") { appendOutcome(String(cString: path), salt: salt, seed: seed, o) }
        if !o.ok {
            failures += 1
            if failures <= 3 { expectClean(o, sourceLocation: sourceLocation) }
            print("SIM seed \(seed) failed: \(o.headline)")
        }
    }
    #expect(failures == 0, "\(failures) of \(list.count) seeds failed (the first three are reported above)",
            sourceLocation: sourceLocation)
    return outcomes
}

/// One line per seed (`SIM_OUTCOMES=FILE`): what a change that must not
/// alter behaviour must leave identical, compared with `diff` before and after.
func appendOutcome(_ path: String, salt: UInt64, seed: UInt64, _ o: SimOutcome) {
    let s = o.engineStats
    let line = "salt \(salt) seed \(seed): ok=\(o.ok) after=\(o.finishedAfter.map { "\($0)" } ?? "-") events=\(o.events) "
        + "up=\(o.uploadVerified) down=\(o.downloadVerified) uplinks=\(o.uplinkBytes) joins=\(o.joins) "
        + "client_rtx=\(o.clientRetransmits) server_dl_rtx=\(o.serverDataLevelRetransmits) "
        + "packets=\(s.packets) originated=\(s.originated)\n"
    guard let f = fopen(path, "a") else { return }
    fputs(line, f)
    fclose(f)
}

@Suite("SimTests")
struct SimTests {
    @Test("the model's building blocks: stream pattern at any offset, reassembly, scheduler order")
    func buildingBlocks() {
        let st = SimStream(seed: 42, count: 1000)
        let all = st.bytes(0 ..< 1000)
        for (a, b) in [(0, 0), (0, 1), (3, 11), (8, 16), (7, 9), (13, 1000), (999, 1000)] {
            #expect(st.bytes(a ..< b) == Array(all[a ..< b]), "\(a)..<\(b)")
            #expect(st.firstMismatch(Array(all[a ..< b]), at: a) == nil)
        }
        var bad = Array(all[100 ..< 200]); bad[57] ^= 1
        #expect(st.firstMismatch(bad, at: 100) == 157)
        #expect(st.firstMismatch([0], at: 1000) == 1000)

        var r = SimReassembly()
        #expect(r.insert(Array(all[10 ..< 20]), at: 10).isEmpty)
        #expect(r.insert(Array(all[30 ..< 40]), at: 30).isEmpty)
        #expect(r.insert(Array(all[0 ..< 12]), at: 0) == Array(all[0 ..< 20]))
        #expect(r.insert(Array(all[15 ..< 35]), at: 15) == Array(all[20 ..< 40]))
        #expect(r.next == 40 && r.pendingBytes == 0)

        let sched = SimScheduler(start: .seconds(1))
        var order: [Int] = []
        sched.schedule(at: .seconds(3)) { order.append(3) }
        sched.schedule(at: .seconds(2)) { order.append(1) }
        sched.schedule(at: .seconds(2)) { order.append(2) }
        sched.run(until: .seconds(10))
        #expect(order == [1, 2, 3] && sched.now == .seconds(10))
    }

    @Test("one uplink, no loss: 1 MB up and 1 MB down intact, clean close, engine table drains after time-wait")
    func oneUplinkClean() {
        var s = SimScenario(seed: 1)
        s.upload = 1 << 20
        s.download = 1 << 20
        s.uplinks = [SimUplink(up: LinkProfile(rate: 5_000_000, delay: .milliseconds(15)),
                               down: LinkProfile(rate: 12_500_000, delay: .milliseconds(15)))]
        s.deadline = .seconds(30)
        let o = simulate(s)
        expectClean(o)
        #expect(o.toGatewayStack == 0)
        // 1 MB at 5 MB/s up: well under the deadline (no stall, no long timeout).
        if let t = o.finishedAfter { #expect(t < .seconds(5), "finished after \(t)\n\(o.report)") }
    }

    @Test("one uplink, 1% loss and reordering both ways, 500 seeds (sizes, IPv4/IPv6, delayed ACKs, DATA_FIN forms vary)")
    func oneUplinkLossy() {
        sweep(500, salt: 0x5EED) { seed, r in
            var s = SimScenario(seed: seed)
            s.upload = 64 * 1024 + Int(r.next() % (96 * 1024))
            s.download = 64 * 1024 + Int(r.next() % (96 * 1024))
            s.varyEndpoints(&r)
            let lossy = LinkProfile(rate: 2_500_000, delay: .milliseconds(5 + Int64(r.next() % 20)), loss: 0.01,
                                    reorder: 0.01, reorderDelay: .milliseconds(2 + Int64(r.next() % 6)))
            s.uplinks = [SimUplink(lossy)]
            s.lan = LinkProfile(rate: 125_000_000, delay: .microseconds(100), loss: 0.01, reorder: 0.01,
                                reorderDelay: .microseconds(300))
            s.deadline = .seconds(90)
            return s
        }
    }

    @Test("two uplinks with different rates and delays: streams intact, a join made, both uplinks used")
    func twoUplinks() {
        for seed in seeds(20) {
            var s = SimScenario(seed: seed)
            s.upload = 512 * 1024
            s.download = 512 * 1024
            // Short queues: congestion bounds each subflow's window, so one
            // path cannot absorb the whole transfer.
            s.uplinks = [SimUplink(LinkProfile(rate: 2_000_000, delay: .milliseconds(10), queueLimit: 32 * 1024)),
                         SimUplink(LinkProfile(rate: 1_000_000, delay: .milliseconds(40), queueLimit: 32 * 1024))]
            s.deadline = .seconds(60)
            let o = simulate(s)
            expectClean(o)
            #expect(o.joins >= 1, "seed \(seed): no MP_JOIN subflow was established")
            // Both uplinks carry a real share of the traffic.
            let total = o.uplinkBytes.reduce(0, +)
            #expect(o.uplinkBytes.allSatisfy { $0 * 10 > total }, "seed \(seed): bytes per uplink \(o.uplinkBytes)")
            if !o.ok { break }
        }
    }

    @Test("two uplinks, uplink 0 cut for 3 s mid-transfer then restored: streams intact")
    func uplinkCut() {
        for seed in seeds(50) {
            var s = SimScenario(seed: seed)
            s.upload = 512 * 1024
            s.download = 512 * 1024
            s.uplinks = [SimUplink(LinkProfile(rate: 2_000_000, delay: .milliseconds(10)), cuts: [(.milliseconds(300), .milliseconds(3300))]),
                         SimUplink(LinkProfile(rate: 1_000_000, delay: .milliseconds(30)))]
            s.deadline = .seconds(90)
            let o = simulate(s)
            expectClean(o)
            #expect(o.joins >= 1, "seed \(seed): no MP_JOIN subflow was established")
            if !o.ok { break }
        }
    }
}

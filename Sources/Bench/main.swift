import ArgumentParser
import CAllocCounter
import Glibc
import MPTCPStack
import Workloads

/// The benchmark harness. So far it measures the engine alone; the testbed
/// figures (throughput, setup, failover, cost, memory against the split
/// proxy and kernel MPTCP) are the benchmark issue's and not produced yet.
@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "Bench",
        abstract: "Benchmarks for nfq-mptcp.",
        subcommands: [EngineBench.self, NotYet.self],
        defaultSubcommand: EngineBench.self
    )
}

struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Engine alone (no I/O): nanoseconds and heap allocations per translated segment."
    )

    @Option(help: "Rounds of 4 segments (client data, peer DATA_ACK, peer data, client ACK).")
    var rounds = 50_000

    @Option(help: "Payload bytes per data segment (1448 wire-sized; larger ones are treated as GSO).")
    var segmentSize = 1448

    @Flag(help: "A short run (smoke test).")
    var quick = false

    @Flag(help: "A download through two uplinks instead (rounds of peer data on each subflow and a client ACK).")
    var twoUplinks = false

    func run() throws {
        let n = quick ? 2_000 : rounds
        if twoUplinks {
            // Two of every three segments are peer data (rewritten); the third is the client's ACK.
            try measure(MultipathDownloadWorkload(rounds: n, segmentSize: segmentSize), n, what: "two-uplink download") { $0 * 2 / 3 }
        } else {
            try measure(EngineWorkload(rounds: n, segmentSize: segmentSize), n, what: "one uplink, both directions") { $0 }
        }
    }

    private func measure(_ w: some TranslationWorkload, _ n: Int, what: String, rewritesExpected: (Int) -> Int) throws {
        let warm = min(n / 10, 1000)
        w.run(0 ..< warm)
        if let t = getenv("NFQ_ALLOC_TRACE") { nfq_alloc_trace(Int32(atoi(t))) }
        let a0 = nfq_alloc_count()
        var t0 = timespec(), t1 = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t0)
        let r = w.run(warm ..< n)
        clock_gettime(CLOCK_MONOTONIC, &t1)
        let allocs = nfq_alloc_count() - a0
        let ns = Double(t1.tv_sec - t0.tv_sec) * 1e9 + Double(t1.tv_nsec - t0.tv_nsec)
        let perSeg = ns / Double(r.segments)
        print("engine (\(what)): \(r.segments) segments (\(segmentSize)-byte payloads), \(r.rewrites) rewritten")
        print(String(format: "engine: %.1f ns/segment, %.3f heap allocations/segment (%lu in total)",
                     perSeg, Double(allocs) / Double(r.segments), allocs))
        if r.rewrites != rewritesExpected(r.segments) { throw ValidationError("not every data segment was translated: the workload is broken") }
    }
}

struct NotYet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "testbed",
        abstract: "Testbed figures against the split proxy and kernel MPTCP (not implemented yet)."
    )
    func run() throws {
        print("Bench testbed: not implemented yet; no figures were produced.")
        throw ExitCode(2)
    }
}

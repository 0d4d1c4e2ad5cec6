import ArgumentParser
import CAllocCounter
import Glibc
import MPTCPStack
import Workloads

/// The benchmark harness: the engine alone (`engine`), the testbed figures
/// against plain TCP, kernel MPTCP and the split proxy (`all`, one
/// subcommand per figure, `report`), and the bare NFQUEUE loop the `pps`
/// figure measures the daemon against (`nfq-accept`), and the seeded live
/// fuzz of the engine (`fuzz`).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "Bench",
        abstract: "Benchmarks for nfq-mptcp.",
        subcommands: [EngineBench.self, AllFigures.self, AccuracyFigure.self, ThroughputFigure.self, IperfFigure.self, FailoverFigure.self,
                      SetupFigure.self, MemoryFigure.self, PpsFigure.self, ReportCommand.self, NFQAccept.self, FuzzCommand.self],
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
        let m = try EngineMeasurement.run(twoUplinks: twoUplinks, rounds: n, segmentSize: segmentSize)
        print("engine (\(m.what)): \(m.segments) segments (\(segmentSize)-byte payloads), \(m.rewrites) rewritten")
        print(String(format: "engine: %.1f ns/segment, %.3f heap allocations/segment (%lu in total)",
                     m.nsPerSegment, m.allocsPerSegment, m.allocs))
        if !m.allTranslated { throw ValidationError("not every data segment was translated: the workload is broken") }
    }
}

/// One timed run of an engine workload (shared by `engine` and the `engine`
/// figure of `all`).
struct EngineMeasurement {
    var what: String
    var segments: Int
    var rewrites: Int
    var allocs: UInt
    var nsPerSegment: Double
    var allTranslated: Bool
    var allocsPerSegment: Double { Double(allocs) / Double(segments) }

    static func run(twoUplinks: Bool, rounds n: Int, segmentSize: Int) throws -> EngineMeasurement {
        if twoUplinks {
            // Two of every three segments are peer data (rewritten); the third is the client's ACK.
            return measure(MultipathDownloadWorkload(rounds: n, segmentSize: segmentSize), n, what: "two-uplink download") { $0 * 2 / 3 }
        } else {
            return measure(EngineWorkload(rounds: n, segmentSize: segmentSize), n, what: "one uplink, both directions") { $0 }
        }
    }

    private static func measure(_ w: some TranslationWorkload, _ n: Int, what: String, rewritesExpected: (Int) -> Int) -> EngineMeasurement {
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
        return EngineMeasurement(what: what, segments: r.segments, rewrites: r.rewrites, allocs: UInt(allocs),
                                 nsPerSegment: ns / Double(r.segments), allTranslated: r.rewrites == rewritesExpected(r.segments))
    }
}

Bench.main()

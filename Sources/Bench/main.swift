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

    @Option(help: "Engines at once, each with its own workload on its own thread (as --queues N runs them); 1 to 64. Above 1, one engine alone is measured first, in the same run.")
    var threads = 1

    func run() throws {
        let n = quick ? 2_000 : rounds
        guard (1 ... 64).contains(threads) else { throw ValidationError("--threads \(threads): 1 to 64") }
        if threads > 1 {
            let one = try ThreadedEngineMeasurement.run(threads: 1, twoUplinks: twoUplinks, rounds: n, segmentSize: segmentSize)
            let many = try ThreadedEngineMeasurement.run(threads: threads, twoUplinks: twoUplinks, rounds: n, segmentSize: segmentSize)
            for m in [one, many] {
                print(String(format: "engine x%d thread(s): %.2f M segments/s in all, %.1f ns/segment per thread, %.3f heap allocations/segment",
                             m.threads, m.segmentsPerSecond / 1e6, m.nsPerSegmentPerThread, m.allocsPerSegment))
            }
            print(String(format: "engine: %d threads give %.2fx one thread's segments per second (%ld cores online)",
                         threads, many.segmentsPerSecond / one.segmentsPerSecond, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
            return
        }
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

/// Engines run at once, each with its own workload on its own thread,
/// started together: the segments all of them handle per second of wall
/// time (the scaling `--queues N` can give, without the kernel's part).
struct ThreadedEngineMeasurement {
    var threads: Int
    var segments: Int
    var seconds: Double
    var allocs: UInt
    var segmentsPerSecond: Double { Double(segments) / seconds }
    var nsPerSegmentPerThread: Double { seconds * 1e9 * Double(threads) / Double(segments) }
    var allocsPerSegment: Double { Double(allocs) / Double(segments) }

    /// One thread's part: its workload, its rounds, what it handled.
    final class Part {
        let workload: any TranslationWorkload
        let rounds: Range<Int>
        var result = (segments: 0, rewrites: 0)
        var thread = pthread_t()
        init(_ w: any TranslationWorkload, _ r: Range<Int>) { workload = w; rounds = r }
    }

    static func run(threads: Int, twoUplinks: Bool, rounds n: Int, segmentSize: Int) throws -> ThreadedEngineMeasurement {
        let warm = min(n / 10, 1000)
        let parts: [Part] = (0 ..< threads).map { _ in
            let w: any TranslationWorkload = twoUplinks ? MultipathDownloadWorkload(rounds: n, segmentSize: segmentSize)
                : EngineWorkload(rounds: n, segmentSize: segmentSize)
            w.run(0 ..< warm)
            return Part(w, warm ..< n)
        }
        let a0 = nfq_alloc_count()
        var t0 = timespec(), t1 = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t0)
        for p in parts {
            let r = pthread_create(&p.thread, nil, { arg in
                let p = Unmanaged<Part>.fromOpaque(arg!).takeUnretainedValue()
                p.result = p.workload.run(p.rounds)
                return nil
            }, Unmanaged.passUnretained(p).toOpaque())
            guard r == 0 else { throw ValidationError("pthread_create failed") }
        }
        for p in parts { pthread_join(p.thread, nil) }
        clock_gettime(CLOCK_MONOTONIC, &t1)
        let allocs = nfq_alloc_count() - a0
        let ns = Double(t1.tv_sec - t0.tv_sec) * 1e9 + Double(t1.tv_nsec - t0.tv_nsec)
        let segments = parts.reduce(0) { $0 + $1.result.segments }
        guard parts.allSatisfy({ $0.result.segments > 0 }) else { throw ValidationError("a thread handled no segment: the workload is broken") }
        return ThreadedEngineMeasurement(threads: threads, segments: segments, seconds: ns / 1e9, allocs: UInt(allocs))
    }
}

Bench.main()

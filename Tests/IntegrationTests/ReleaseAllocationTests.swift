import Foundation
import Testing

/// Heap allocations per packet in the build that ships (release), from
/// `Bench engine`: steady-state translation with one uplink (both
/// directions) and a download through two uplinks (peer data on both
/// subflows, copied into the download buffer; the client's ACKs). The debug
/// build's unspecialized generic iterators allocate where the release build
/// does not, so the two-uplink path is measured here; the one-uplink path is
/// also held to zero in the debug build (TranslatorTests.AllocationTests).
@Suite struct ReleaseAllocationTests {
    static func bench(_ args: [String]) throws -> String {
        let bin = repositoryRoot.appendingPathComponent(".build/release/Bench").path
        #expect(FileManager.default.isExecutableFile(atPath: bin), "\(bin) not built (scripts/test.sh builds it)")
        let (status, text) = try runCapturingOutput(bin, ["engine", "--rounds", "20000"] + args)
        #expect(status == 0, "Bench exited \(status): \(text)")
        return text
    }

    @Test(arguments: [[], ["--two-uplinks"]])
    func noHeapAllocationPerSegment(_ args: [String]) throws {
        let text = try Self.bench(args)
        #expect(text.contains("0.000 heap allocations/segment (0 in total)"), "\(text)")
    }

    /// Issue 15 (`--queues N`): engines on two threads at once each handle
    /// their own workload, without heap allocations; the ratio to one
    /// thread is printed (a figure, not asserted: the machine may have one
    /// core, or be busy).
    @Test(arguments: [[], ["--two-uplinks"]])
    func enginesOnSeveralThreads(_ args: [String]) throws {
        let text = try Self.bench(["--threads", "2"] + args)
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("engine x") }
        #expect(lines.count == 2 && lines[1].hasPrefix("engine x2 thread(s): "), "\(text)")
        #expect(lines.allSatisfy { $0.hasSuffix(", 0.000 heap allocations/segment") }, "\(text)")
        #expect(text.contains("engine: 2 threads give "), "\(text)")
        print(text)
    }
}

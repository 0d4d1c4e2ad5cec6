import Foundation
import Testing

/// Issue 13: 10^7 packets, genuine and mutated, into live connections through
/// the release build's engine (`Bench fuzz`: one uplink and two, both roles;
/// the invariants in Sources/Workloads/LiveFuzz.swift), with a fixed seed.
/// About 2 minutes here. In NetnsTests (serialized): it keeps the CPU busy,
/// and must not run beside the testbeds that measure throughput.
/// Nothing is tolerated: a connection left with every subflow failed and
/// nothing rejoining fails it like a wrong byte.
extension NetnsTests {
    static let fuzzPackets = 10_000_000

    @Test(.timeLimit(.minutes(15)))
    func liveFuzzTenMillionPackets() throws {
        let bin = repositoryRoot.appendingPathComponent(".build/release/Bench").path
        #expect(FileManager.default.isExecutableFile(atPath: bin), "\(bin) not built (scripts/test.sh builds it)")
        let (status, text) = try runCapturingOutput(bin, ["fuzz", "--packets", "\(Self.fuzzPackets)", "--seed", "13"])
        #expect(status == 0, "Bench fuzz exited \(status)")
        #expect(text.contains("fuzz: \(Self.fuzzPackets) packets in "), "the packet count is not in the output")
        #expect(text.contains(": 0 invariant failures"))
        #expect(!text.contains("FAIL"))
        for plane in ["one-uplink", "two-uplink"] { #expect(text.contains("fuzz \(plane): seed 13, \(Self.fuzzPackets / 2) packets")) }
    }
}

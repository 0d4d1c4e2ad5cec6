import Foundation
import Testing

/// The benchmark harness end to end (issue 6): `Bench all --quick` builds
/// every testbed, runs every design once with short durations and writes the
/// quick report and the charts. In NetnsTests (serialized): it must not run
/// at the same time as the other testbeds, which measure throughput.
extension NetnsTests {
    static let figures = ["engine", "accuracy", "tput_shaped", "tput_unshaped", "tput_iperf", "tput_gbit", "cost", "failover", "setup", "memory", "pps"]
    static let testbedDesigns = ["plain1", "plain2", "kernel", "proxy", "nfq1", "nfq2"]

    @Test(.timeLimit(.minutes(20)))
    func benchmarkHarnessQuickRun() throws {
        let bin = repositoryRoot.appendingPathComponent(".build/release/Bench").path
        #expect(FileManager.default.isExecutableFile(atPath: bin), "\(bin) not built (scripts/test.sh builds it)")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("nfq-bench-smoke-\(getpid())")
        try? FileManager.default.removeItem(at: out)
        var problems: [String] = []
        func check(_ ok: Bool, _ what: @autoclosure () -> String) {
            if !ok { problems.append(what()) }
        }

        let started = Date()
        let (status, _) = try runCapturingOutput(bin, ["all", "--quick", "--out", out.path])
        print("Bench all --quick: exit \(status) after \(Int(Date().timeIntervalSince(started))) s")
        check(status == 0, "Bench all --quick exited \(status) (logs in \(out.path))")

        // samples.csv: numeric samples for every figure, and for each design
        // where the figure has the testbed's designs; no failed repetition.
        let csv = (try? String(contentsOf: out.appendingPathComponent("samples.csv"), encoding: .utf8)) ?? ""
        let rows = csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            .filter { $0.count == 6 }
        check(!rows.isEmpty, "samples.csv is missing or empty")
        func numeric(_ r: [String]) -> Bool { r[3] != "error" && Double(r[4]).map(\.isFinite) == true }
        for fig in Self.figures {
            let f = rows.filter { $0[0] == fig }
            check(f.contains(where: numeric), "no numeric sample for figure \(fig)")
            let present = Set(f.map { $0[1] }).intersection(Self.testbedDesigns)
            guard !present.isEmpty else { continue }
            var required = ["kernel", "proxy", "nfq1", "nfq2"].map { [$0] }
            required.append(["plain1", "plain2"]) // plain TCP: either uplink
            for alternatives in required {
                check(f.contains { alternatives.contains($0[1]) && numeric($0) },
                      "figure \(fig): no numeric sample for \(alternatives.joined(separator: " or "))")
            }
        }
        for r in rows where r[3] == "error" { check(false, "error sample: \(r.joined(separator: ","))") }

        // The quick report: one table per figure.
        let report = (try? String(contentsOf: out.appendingPathComponent("BENCHMARKS-quick.md"), encoding: .utf8)) ?? ""
        check(!report.isEmpty, "BENCHMARKS-quick.md is missing")
        let lines = report.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for fig in Self.figures {
            guard let h = lines.firstIndex(where: { $0.hasPrefix("## ") && $0.hasSuffix("(`\(fig)`)") }) else {
                check(false, "the report has no section for \(fig)"); continue
            }
            let section = lines[(h + 1)...].prefix { !$0.hasPrefix("## ") }
            check(section.contains { $0.hasPrefix("| design |") } && section.contains { $0.hasPrefix("|---") },
                  "the report's \(fig) section has no table")
        }

        // The charts.
        for png in ["throughput.png", "setup.png", "failover.png"] {
            let d = (try? Data(contentsOf: out.appendingPathComponent(png))) ?? Data()
            check(d.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "\(png) is missing or not a PNG")
        }

        for p in problems { Issue.record(Comment(rawValue: p)) }
        if problems.isEmpty { try? FileManager.default.removeItem(at: out) } else { print("bench output kept: \(out.path)") }
    }
}

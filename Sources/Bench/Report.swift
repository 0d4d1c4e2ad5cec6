import Foundation
import Glibc

// MARK: - The machine

enum Machine {
    /// Runs a command, its stdout trimmed (nil when it fails).
    static func output(_ argv: [String], cwd: URL? = nil) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        if let cwd { p.currentDirectoryURL = cwd }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let d = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        return String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func dpkgVersion(_ pkg: String) -> String {
        output(["dpkg-query", "-W", "-f=${Version}", pkg]).flatMap { $0.isEmpty ? nil : $0 } ?? "not installed"
    }

    /// Facts about this machine and the source tree, in report order.
    static func collect(root: URL) -> [(String, String)] {
        var m: [(String, String)] = []
        m.append(("date", ISO8601DateFormatter().string(from: Date())))
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        m.append(("kernel", release))
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last!.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let cpus = cpuinfo.split(separator: "\n").filter { $0.hasPrefix("processor") }.count
        m.append(("cpu", model))
        m.append(("cores", "\(cpus) logical CPU(s)"))
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        if let l = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
           let kb = Double(l.split(separator: " ").dropFirst().first ?? "") {
            m.append(("memory", String(format: "%.1f GiB", kb / 1_048_576)))
        }
        m.append(("debian", ((try? String(contentsOfFile: "/etc/debian_version", encoding: .utf8)) ?? "unknown")
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        m.append(("swift", output(["swift", "--version"])?.split(separator: "\n").first.map(String.init) ?? "unknown"))
        m.append(("shadowsocks-libev", dpkgVersion("shadowsocks-libev")))
        m.append(("iproute2", dpkgVersion("iproute2")))
        m.append(("mptcpd", dpkgVersion("mptcpd")))
        m.append(("iptables", dpkgVersion("iptables")))
        m.append(("gnuplot", output(["gnuplot", "--version"]) ?? "not installed"))
        let git = ["git", "-c", "safe.directory=*", "-C", root.path]
        let commit = output(git + ["rev-parse", "--short", "HEAD"]) ?? "unknown"
        let dirty = output(git + ["status", "--porcelain", "--untracked-files=no"]).map { !$0.isEmpty }
        m.append(("commit", commit))
        m.append(("tree", dirty.map { $0 ? "dirty (uncommitted changes to tracked files)" : "clean" } ?? "unknown"))
        return m
    }
}

// MARK: - Summaries

/// median (min–max) of the numeric values, counts of the others.
struct Summary {
    var numbers: [Double] = []
    var words: [(String, Int)] = []
    var n: Int { numbers.count + words.reduce(0) { $0 + $1.1 } }

    init(_ values: [String]) {
        for v in values {
            if let d = Double(v), d.isFinite { numbers.append(d); continue }
            if let i = words.firstIndex(where: { $0.0 == v }) { words[i].1 += 1 } else { words.append((v, 1)) }
        }
        numbers.sort()
    }

    init(numbers: [Double]) { self.numbers = numbers.sorted() }

    var median: Double? {
        guard !numbers.isEmpty else { return nil }
        let c = numbers.count
        return c % 2 == 1 ? numbers[c / 2] : (numbers[c / 2 - 1] + numbers[c / 2]) / 2
    }
    var min: Double? { numbers.first }
    var max: Double? { numbers.last }

    /// `median (min–max)`, the three with the same decimals (from the largest magnitude).
    func cell(_ f: ((Double, Int) -> String)? = nil) -> String {
        var parts: [String] = []
        if let med = median, let lo = min, let hi = max {
            let d = decimals(Swift.max(Swift.abs(lo), Swift.abs(hi)))
            let f: (Double) -> String = { x in f?(x, d) ?? String(format: "%.\(d)f", x) }
            parts.append(lo == hi ? f(med) : "\(f(med)) (\(f(lo))–\(f(hi)))")
        }
        for (w, k) in words { parts.append("\(w) ×\(k)") }
        return parts.isEmpty ? "—" : parts.joined(separator: "; ")
    }
}

/// Decimals that give about three significant digits for magnitude `a`.
func decimals(_ a: Double) -> Int {
    if a == 0 || a >= 100 { return 0 }
    if a >= 10 { return 1 }
    if a >= 1 { return 2 }
    return Swift.min(6, 2 - Int(floor(log10(a))))
}

/// Ratios: always two decimals.
func fmtRatio(_ x: Double, _: Int) -> String { String(format: "%.2f", x) }

// MARK: - Names

let designOrder = ["plain1", "plain2", "kernel", "proxy", "nfq1", "nfq2", "link1", "link2", "link1-200mbit",
                   "one-uplink", "two-uplinks",
                   "forward-gso", "forward-nogso", "nfq-accept-gso", "nfq-accept-nogso", "nfq-mptcp-gso", "nfq-mptcp-nogso"]

let designNames: [String: String] = [
    "plain1": "plain TCP, uplink 1",
    "plain2": "plain TCP, uplink 2",
    "kernel": "kernel MPTCP end to end",
    "proxy": "split proxy (shadowsocks-libev + MPTCP)",
    "nfq1": "nfq-mptcp on A, kernel MPTCP server",
    "nfq2": "nfq-mptcp on A and B (federation)",
    "link1": "uplink 1",
    "link2": "uplink 2",
    "link1-200mbit": "uplink 1 at 200 Mbit/s",
    "one-uplink": "one uplink, both directions",
    "two-uplinks": "two-uplink download",
    "forward-gso": "G forwards (client GSO/TSO on)",
    "forward-nogso": "G forwards (client GSO/TSO off)",
    "nfq-accept-gso": "bare NFQUEUE accept loop (GSO on)",
    "nfq-accept-nogso": "bare NFQUEUE accept loop (GSO off)",
    "nfq-mptcp-gso": "nfq-mptcp, one uplink (GSO on)",
    "nfq-mptcp-nogso": "nfq-mptcp, one uplink (GSO off)",
]

/// Short labels for the charts' x axis.
let designShort: [String: String] = [
    "plain1": "plain 1", "plain2": "plain 2", "kernel": "kernel MPTCP", "proxy": "split proxy",
    "nfq1": "nfq-mptcp (A)", "nfq2": "nfq-mptcp (A+B)",
]

let figureOrder = ["engine", "accuracy", "tput_shaped", "tput_unshaped", "tput_iperf", "tput_gbit", "cost", "failover", "setup", "memory", "pps"]

let figureTitles: [String: String] = [
    "engine": "Engine alone (in-process)",
    "accuracy": "Testbed accuracy",
    "tput_shaped": "Throughput, shaped uplinks",
    "tput_unshaped": "Throughput, unshaped uplinks (CPU-bound)",
    "tput_iperf": "Throughput, unshaped uplinks, iperf3 (the designs, not the load generator)",
    "tput_gbit": "Throughput, both uplinks shaped to 1 Gbit/s, no added delay, iperf3",
    "cost": "CPU cost",
    "failover": "Failover: uplink 1 cut during a transfer",
    "setup": "Connection setup and request latency",
    "memory": "Gateway memory",
    "pps": "Packets per second: the NFQUEUE ceiling",
]

let figureHowTo: [String: String] = [
    "engine": """
        The translation engine alone, in one process, no I/O: the same prepared packets fed to it again and again \
        (`Bench engine`). `ns_per_segment` is wall-clock time per translated segment (lower is better); \
        `allocs_per_segment` heap allocations per segment (the suite holds it at 0).
        """,
    "accuracy": """
        The emulated links measured against their configuration, with no design running (A → B over each uplink): \
        `rtt_configured_ms` (twice the configured one-way delay) against ping's idle `rtt_min/avg/max_ms` and its \
        `rtt_loaded_*` during an upload; `rate_configured_mbit` (tbf) against plain TCP goodput each way; \
        `rate_ratio` = measured ÷ configured, where about 0.95 is exact (TCP/IP headers are ~4.4 % of a full \
        frame); `linkemu_cpu_pct` the link emulator's CPU during the upload (`link1-200mbit`: it keeping up at a \
        higher rate). The other tables are only as good as this one.
        """,
    "tput_shaped": """
        Goodput of a bulk transfer C → D (`up_mbit`) and D → C (`down_mbit`) over the shaped uplinks, Mbit/s of \
        sha256-verified payload; `*_uplink2_share` the share of the data that crossed uplink 2 (at A). Derived \
        columns, computed per repetition (the same repetition number of each design, measured minutes apart on the \
        same testbed) and then summarised the same way: `÷ (plain1+plain2)` is the aggregation (1.00 = the two \
        uplinks' plain TCP rates added up), `÷ proxy` the ratio to the split proxy (above 1 = faster).
        """,
    "tput_unshaped": """
        The same transfers with no rate limit and no delay: the CPU is the bottleneck (every namespace shares the \
        machine's cores, so this ranks the designs' per-byte cost more than it gives a rate). Derived columns as above.
        """,
    "tput_iperf": """
        One TCP flow of iperf3 C → D (`up_gbit`) and D → C (`down_gbit`, `-R`), 5 s each, unshaped: the Python \
        transfer above tops out near 2.4 Gbit/s itself, iperf3 does not (integrity stays with the sha256 \
        transfers). `cpu_s_per_gb_gw`: CPU seconds of the gateway programs per GB, both directions together; \
        `syscalls_per_gb_gw` their system calls per GB (every thread, counted by `perf stat` on \
        `raw_syscalls:sys_enter`). `÷ plain1`: ratio to plain forwarding over uplink 1 in the same repetition, `÷ proxy` to the split proxy.
        """,
    "tput_gbit": """
        The same iperf3 transfers with both uplinks shaped to 1 Gbit/s by tbf (burst 256 KB, 10 ms of queue) and \
        no added delay: aggregation at a rate where the gateway's CPU matters. `*_uplink2_share` the share of \
        the data that crossed uplink 2 (at A). `÷ (plain1+plain2)`: the aggregation (1.00 = both uplinks' plain \
        TCP rates added up), within each repetition.
        """,
    "cost": """
        CPU seconds per GB moved in the unshaped transfers (lower is better): `cpu_s_per_gb_gw` the gateway \
        programs only (nfq-mptcp, ss-redir, ss-server; 0 where a design runs none — the kernel's forwarding and \
        MPTCP run in softirq and show only in `_all`), `cpu_s_per_gb_all` every busy CPU second of the machine \
        (endpoints and kernel included, and whatever else ran meanwhile); `_up`/`_down` per direction. `÷ proxy`: \
        ratio to the split proxy in the same repetition (below 1 = cheaper).
        """,
    "failover": """
        An upload during which uplink 1 is cut beyond A (L1 drops everything) and later restored. `intact` 1 = the \
        transfer completed with sha256 equal; `stall_s` the longest stretch at under a tenth of the surviving \
        link's rate; `recovery_s` from the cut until throughput reaches 0.8 × the surviving link \
        (`surviving_link_mbit`, plain TCP over uplink 2 alone; `never` if it does not); `during_cut_mbit` and \
        `after_restore_mbit` the averages while cut and after the restore (uplink 1 used again); `mean_mbit` the \
        whole transfer. The chart shows the receiver's throughput per 100 ms.
        """,
    "setup": """
        From C to D over the shaped uplinks: `connect_ms` until connect() returned, `new_get_ms` a new connection \
        and one HTTP GET until the response is complete, `persistent_get_ms` a GET on a kept-alive connection \
        (medians of several per repetition; lower is better). The truth test: what the client is told for a \
        closed port (`closed_port`: `refused` is the truth) and for a host that does not exist \
        (`unreachable_host`: `unreachable` is the truth; `false-success-*` means the client was told it connected), \
        and how long until it knew (`*_ms`). With the proxy, connect() completes at ss-redir on A, before anything \
        reaches D, so its `connect_ms` is not comparable (and a ratio to it is large). `÷ proxy`: ratio to the \
        split proxy in the same repetition.
        """,
    "memory": """
        N idle connections held through the gateways (each opened end to end, one small request answered, then \
        idle): `rss_kib_N` resident memory of the gateway programs (0 where a design runs none), `sockets_N` and \
        `sockmem_kib_N` the TCP and MPTCP sockets in A and B and their memory (queues and slab objects), \
        `conntrack_N` conntrack entries in A and B, `opened_N` the connections D's server holds (it should be N).
        """,
    "pps": """
        One uplink (C — G — S, no shaping) and an upload: `forward` is G routing alone, `nfq-accept` the iptables \
        rules nfq-mptcp installs with a loop that accepts every queued packet unchanged (`Bench nfq-accept`: the \
        ceiling of any NFQUEUE program), `nfq-mptcp` the daemon translating. `-gso`: the client's GSO/TSO on (super-\
        segments of up to 64 KB are queued), `-nogso`: off (wire-sized packets, the per-packet cost). `mbit`: \
        the upload's rate; `pps`: packets per second that hit the NFQUEUE rules, both directions (data from the \
        client, ACKs from the server; for `forward`: the packets G received on both interfaces); `pps_lan`: the \
        same from the LAN side only; `cpu_s_per_gb`: CPU seconds the gateway process used per GB uploaded (none for \
        `forward`: the kernel's forwarding is not a process); `queue_drops`: packets the queue dropped.
        """,
]

/// Which derived columns a figure gets.
enum Derived { case aggregation, vsProxy, vsPlain1 }
let derivedColumns: [String: [Derived]] = [
    "tput_shaped": [.aggregation, .vsProxy],
    "tput_unshaped": [.aggregation, .vsProxy],
    "tput_iperf": [.vsPlain1, .vsProxy],
    "tput_gbit": [.aggregation, .vsProxy],
    "setup": [.vsProxy],
    "cost": [.vsProxy],
]

/// The metrics (name, unit) of a figure that get its derived columns: rates
/// for throughput (not the uplink shares), times for setup, the totals for cost.
func takesDerived(_ fig: String, _ metric: String, _ unit: String, among all: [String]) -> Bool {
    switch fig {
    case "tput_shaped", "tput_unshaped", "tput_gbit": return unit.lowercased().contains("bit")
    case "tput_iperf": return true
    case "setup": return unit == "ms"
    case "cost":
        let totals = all.filter { !$0.hasSuffix("_up") && !$0.hasSuffix("_down") }
        return totals.isEmpty || totals.contains(metric)
    default: return true
    }
}

func ordered(_ items: [String], by order: [String]) -> [String] {
    var seen = Set<String>()
    let uniq = items.filter { seen.insert($0).inserted }
    return uniq.sorted { a, b in
        let ia = order.firstIndex(of: a) ?? Int.max, ib = order.firstIndex(of: b) ?? Int.max
        if ia != ib { return ia < ib }
        return uniq.firstIndex(of: a)! < uniq.firstIndex(of: b)!
    }
}

/// `to` relative to directory `from` (both absolute).
func relativePath(from dir: URL, to file: URL) -> String {
    let a = dir.standardizedFileURL.pathComponents, b = file.standardizedFileURL.pathComponents
    var i = 0
    while i < a.count && i < b.count && a[i] == b[i] { i += 1 }
    return (Array(repeating: "..", count: a.count - i) + b[i...]).joined(separator: "/")
}

// MARK: - The report

struct Report {
    let options: RunOptions
    let paths: Paths
    let store: DataStore

    var quick: Bool {
        options.quick || (try? String(contentsOf: paths.file("mode"), encoding: .utf8))?.hasPrefix("quick") == true
    }

    var reportURL: URL {
        if let r = options.report {
            return URL(fileURLWithPath: r, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath + "/")).standardizedFileURL
        }
        return quick ? paths.file("BENCHMARKS-quick.md") : paths.root.appendingPathComponent("BENCHMARKS.md")
    }

    /// Writes the charts and the markdown; returns the report's location.
    func write() throws -> URL {
        let samples = store.samples()
        let url = reportURL
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        var charts = Charts(paths: paths, samples: samples)
        var images = charts.draw()
        // A full run's report in the repository: the charts and the samples
        // (every one, and the failover series) go to docs/bench/ next to it.
        var dataLink: String?
        if !quick && url.path.hasPrefix(paths.root.path + "/") {
            let docs = paths.root.appendingPathComponent("docs/bench")
            try FileManager.default.createDirectory(at: docs, withIntermediateDirectories: true)
            func copy(_ src: URL) throws -> URL {
                let dst = docs.appendingPathComponent(src.lastPathComponent)
                try? FileManager.default.removeItem(at: dst)
                try FileManager.default.copyItem(at: src, to: dst)
                return dst
            }
            for (k, src) in images { images[k] = try copy(src) }
            for f in ["samples.csv", "failover-series.csv", "info.tsv"] where FileManager.default.fileExists(atPath: paths.file(f).path) {
                let dst = try copy(paths.file(f))
                if f == "samples.csv" { dataLink = relativePath(from: url.deletingLastPathComponent(), to: dst) }
            }
        }
        let text = markdown(samples: samples, images: images.mapValues { relativePath(from: url.deletingLastPathComponent(), to: $0) },
                            chartNotes: charts.notes, dataLink: dataLink)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// `dataLink`: the committed copy of samples.csv (a full run's), relative to the report.
    func markdown(samples: [Sample], images: [String: String], chartNotes: [String], dataLink: String? = nil) -> String {
        var md: [String] = []
        let machine: [(String, String)] = {
            let rows = store.tsv("machine.tsv").filter { $0.count >= 2 }.map { ($0[0], $0[1...].joined(separator: "\t")) }
            return rows.isEmpty ? Machine.collect(root: paths.root) : rows
        }()
        md.append("# nfq-mptcp benchmarks" + (quick ? " (quick smoke run: 1 repetition, short durations — not for citing)" : ""))
        md.append("")
        let date = machine.first { $0.0 == "date" }?.1 ?? ISO8601DateFormatter().string(from: Date())
        md.append("Measured \(date); report written \(ISO8601DateFormatter().string(from: Date())).")
        md.append("")
        let commands = store.readLines("commands.txt").map { l -> String in
            let f = l.split(separator: "\t", maxSplits: 2).map(String.init)
            switch f.count {
            case 3: return "    \(f[2])    # \(f[0]), commit \(f[1])" // "+": uncommitted changes to tracked files
            case 2: return "    \(f[1])    # \(f[0])"
            default: return "    \(l)"
            }
        }
        md.append(commands.count > 1 ? "Produced by these commands (from the repository root):" : "Produced by (from the repository root):")
        md.append("")
        md += commands.isEmpty ? ["    (unknown: DIR/commands.txt is missing)"] : commands
        md.append("")
        if let dataLink {
            let dir = dataLink.hasSuffix("/samples.csv") ? String(dataLink.dropLast("/samples.csv".count)) : dataLink
            md.append("Every sample: [`\(dataLink)`](\(dataLink)), with the failover series and the drivers' notes beside it in `\(dir)/`.")
        }
        md.append("Data: `samples.csv` (figure, design, rep, metric, value, unit), `info.tsv`, the drivers' logs and the "
            + "charts' gnuplot scripts are in the output directory (`\(displayPath(paths.out))`).")
        md.append("")

        md.append("## Machine")
        md.append("")
        md.append("| | |")
        md.append("|---|---|")
        for (k, v) in machine where k != "date" { md.append("| \(k) | \(escape(v)) |") }
        md.append("")

        md.append("## Testbed")
        md.append("")
        md.append("C — A — two uplinks (link routers L1, L2: rate by tbf, one-way delay and loss by the project's linkemu "
            + "over NFQUEUE) — B — D, in network namespaces on this one machine. As the drivers reported it:")
        md.append("")
        let infos = store.tsv("info.tsv").filter { $0.count >= 2 }
        var seenInfo: [String: [String]] = [:]
        var infoOrder: [String] = []
        for r in infos {
            let line = ([r[1]] + (r.count > 2 ? [r[2...].joined(separator: "\t")] : [])).joined(separator: " ")
            if seenInfo[line] == nil { infoOrder.append(line); seenInfo[line] = [] }
            if !seenInfo[line]!.contains(r[0]) { seenInfo[line]!.append(r[0]) }
        }
        func infoItem(_ l: String) -> String {
            let key = l.prefix(while: { $0 != " " })
            return "- **\(key)**\(escapeHTMLish(String(l.dropFirst(key.count)))) _(\(seenInfo[l]!.joined(separator: ", ")))_"
        }
        let isTestbed: (String) -> Bool = { l in
            let key = l.prefix(while: { $0 != " " }).lowercased()
            return key.contains("testbed") || key.contains("offloads")
        }
        let testbedInfo = infoOrder.filter(isTestbed)
        let otherInfo = infoOrder.filter { !isTestbed($0) }
        if testbedInfo.isEmpty { md.append("(no testbed INFO lines)") }
        for l in testbedInfo { md.append(infoItem(l)) }
        md.append("")
        if !otherInfo.isEmpty {
            md.append("The drivers' other notes (methods, per-repetition details) are at the end of this report.")
            md.append("")
        }

        // Runs and failures.
        let status = store.tsv("status.tsv").filter { $0.count >= 3 }
        let fails = store.tsv("fails.tsv").filter { $0.count >= 2 }
        let errors = samples.filter { $0.metric == "error" }
        md.append("## Runs")
        md.append("")
        md.append("| driver | exit | seconds | FAIL lines |")
        md.append("|---|---|---|---|")
        for s in status {
            md.append("| \(s[0]) | \(s[1] == "0" ? "0" : "**\(s[1])**") | \(s[2]) | \(fails.filter { $0[0] == s[0] }.count) |")
        }
        md.append("")
        let badDrivers = status.filter { $0[1] != "0" }.map { $0[0] }
        if fails.isEmpty && badDrivers.isEmpty && errors.isEmpty {
            md.append("Every driver exited 0; no FAIL lines, no failed repetitions.")
        } else {
            if !badDrivers.isEmpty {
                md.append("**Drivers that failed** (exit status not 0: their testbed could not be built or they stopped): "
                    + badDrivers.map { "`\($0)` (log: `\($0).log`)" }.joined(separator: ", ") + ".")
                md.append("")
            }
            if !errors.isEmpty {
                md.append("Failed repetitions (`error` samples): "
                    + errors.map { "\($0.figure)/\($0.design)/rep \($0.rep)" }.joined(separator: ", ") + ".")
                md.append("")
            }
            if !fails.isEmpty {
                md.append("FAIL lines:")
                md.append("")
                for f in fails { md.append("- `\(f[0])`: \(escapeInline(f[1...].joined(separator: "\t")))") }
            }
        }
        md.append("")
        if !chartNotes.isEmpty {
            for n in chartNotes { md.append("_Chart: \(n)_") ; md.append("") }
        }

        // One table per figure.
        let figures = ordered(samples.map(\.figure), by: figureOrder)
        for fig in figures {
            md += table(fig, samples.filter { $0.figure == fig })
            if fig == "tput_unshaped" || (fig == "tput_shaped" && !figures.contains("tput_unshaped")), let i = images["throughput"] {
                md.append("![Throughput per design](\(i))")
                md.append("")
            }
            if fig == "setup", let i = images["setup"] { md.append("![Setup latency per design](\(i))"); md.append("") }
            if fig == "failover", let i = images["failover"] { md.append("![Throughput per 100 ms around the cut](\(i))"); md.append("") }
        }
        if figures.isEmpty { md.append("No samples."); md.append("") }
        if !otherInfo.isEmpty {
            md.append("## Notes from the drivers (INFO lines)")
            md.append("")
            md.append("<details><summary>\(otherInfo.count) lines</summary>")
            md.append("")
            for l in otherInfo { md.append(infoItem(l)) }
            md.append("")
            md.append("</details>")
            md.append("")
        }
        return md.joined(separator: "\n")
    }

    func displayPath(_ u: URL) -> String {
        u.path.hasPrefix(paths.root.path + "/") ? String(u.path.dropFirst(paths.root.path.count + 1)) : u.path
    }

    func table(_ fig: String, _ rows: [Sample]) -> [String] {
        var md: [String] = []
        md.append("## \(figureTitles[fig] ?? fig) (`\(fig)`)")
        md.append("")
        let metrics = ordered(rows.map(\.metric).filter { $0 != "error" }, by: [])
        let units = Dictionary(rows.map { ($0.metric, $0.unit) }, uniquingKeysWith: { a, _ in a })
        let designs = ordered(rows.map(\.design), by: designOrder)
        let hasErrors = rows.contains { $0.metric == "error" }
        let derived = derivedColumns[fig] ?? []
        // Metrics with numbers (ratios only make sense for them).
        let numeric = metrics.filter { m in rows.contains { $0.metric == m && $0.number != nil } }
            .filter { takesDerived(fig, $0, units[$0] ?? "", among: metrics) }

        var how = figureHowTo[fig] ?? "Measurements of the `\(fig)` figure."
        how += " Each cell: median (min–max) over the repetitions; words are outcomes counted (`refused ×5`)."
        md.append("**How to read.** " + how)
        md.append("")

        var header = ["design"]
        for m in metrics {
            header.append("\(m) (\(units[m] ?? ""))")
        }
        for m in numeric {
            if derived.contains(.aggregation) { header.append("\(m) ÷ (plain1+plain2)") }
            if derived.contains(.vsPlain1) { header.append("\(m) ÷ plain1") }
            if derived.contains(.vsProxy) { header.append("\(m) ÷ proxy") }
        }
        if hasErrors { header.append("failed reps") }
        md.append("| " + header.joined(separator: " | ") + " |")
        md.append("|" + header.map { _ in "---" }.joined(separator: "|") + "|")

        /// The value of (design, rep, metric): the median of its numbers.
        func value(_ d: String, _ rep: Int, _ m: String) -> Double? {
            Summary(numbers: rows.filter { $0.design == d && $0.rep == rep && $0.metric == m }.compactMap(\.number)).median
        }
        var ns = Set<Int>()
        var cells: [[(String, Int)]] = []
        for d in designs {
            var row: [(String, Int)] = [(designNames[d].map { "\($0) (`\(d)`)" } ?? "`\(d)`", -1)]
            for m in metrics {
                let s = Summary(rows.filter { $0.design == d && $0.metric == m }.map(\.value))
                row.append((s.cell(), s.n))
                if s.n > 0 { ns.insert(s.n) }
            }
            let reps = Set(rows.filter { $0.design == d }.map(\.rep)).sorted()
            for m in numeric {
                if derived.contains(.aggregation) {
                    let r = reps.compactMap { rep -> Double? in
                        guard let v = value(d, rep, m), let a = value("plain1", rep, m), let b = value("plain2", rep, m), a + b > 0 else { return nil }
                        return v / (a + b)
                    }
                    let s = Summary(numbers: r)
                    row.append((s.cell(fmtRatio), s.n))
                    if s.n > 0 { ns.insert(s.n) }
                }
                if derived.contains(.vsPlain1) {
                    let r = reps.compactMap { rep -> Double? in
                        guard let v = value(d, rep, m), let p = value("plain1", rep, m), p > 0 else { return nil }
                        return v / p
                    }
                    let s = Summary(numbers: r)
                    row.append((s.cell(fmtRatio), s.n))
                    if s.n > 0 { ns.insert(s.n) }
                }
                if derived.contains(.vsProxy) {
                    if d == "proxy" { row.append(("1 (reference)", -1)); continue }
                    let r = reps.compactMap { rep -> Double? in
                        guard let v = value(d, rep, m), let p = value("proxy", rep, m), p != 0 else { return nil }
                        return v / p
                    }
                    let s = Summary(numbers: r)
                    row.append((s.cell(fmtRatio), s.n))
                    if s.n > 0 { ns.insert(s.n) }
                }
            }
            if hasErrors {
                let e = rows.filter { $0.design == d && $0.metric == "error" }.count
                row.append((e == 0 ? "0" : "**\(e)**", -1))
            }
            cells.append(row)
        }
        let uniform = ns.count <= 1
        for row in cells {
            md.append("| " + row.map { c in
                let t = escape(c.0)
                return (!uniform && c.1 > 0) ? "\(t), n=\(c.1)" : t
            }.joined(separator: " | ") + " |")
        }
        md.append("")
        if uniform, let n = ns.first {
            md.append("n = \(n) per cell (\(n == 1 ? "one repetition: no spread" : "repetitions")).")
        } else if !uniform {
            md.append("n (repetitions with a value) differs between cells: given in each.")
        }
        md.append("")
        return md
    }

    func escape(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
    /// Inside <details>, a stray `<` would start an HTML tag.
    func escapeHTMLish(_ s: String) -> String { s.replacingOccurrences(of: "<", with: "&lt;") }
    func escapeInline(_ s: String) -> String { escape(s).replacingOccurrences(of: "`", with: "'") }
}

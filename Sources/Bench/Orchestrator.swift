import ArgumentParser
import Dispatch
import Foundation
import Glibc

/// Options shared by every figure subcommand, `all` and `report`.
struct RunOptions: ParsableArguments {
    @Flag(help: "A short smoke run: BENCH_QUICK=1, 1 repetition, short durations; the report goes to DIR/BENCHMARKS-quick.md.")
    var quick = false

    @Option(help: "Repetitions per design (BENCH_REPS).")
    var reps = 5

    @Option(help: ArgumentHelp("Designs to run, comma separated (BENCH_DESIGNS; default: every design of each driver).",
                               valueName: "a,b,…"))
    var designs: String?

    @Option(help: ArgumentHelp("Output directory (default: bench-out/ at the repository root).", valueName: "DIR"))
    var out: String?

    @Option(help: ArgumentHelp("""
        Markdown report to write (default: BENCHMARKS.md at the repository root for a full run, \
        DIR/BENCHMARKS-quick.md for --quick).
        """, valueName: "PATH"))
    var report: String?

    func validate() throws {
        if reps < 1 { throw ValidationError("--reps must be at least 1") }
    }

    var effectiveReps: Int { quick ? 1 : reps }

    var designList: [String] {
        (designs ?? "").split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
    }
}

/// Where things are: the repository, the output directory, the binaries.
struct Paths {
    let root: URL
    let out: URL
    /// The directory of the running Bench executable (nfq-mptcp and linkemu are expected next to it).
    let binDir: URL
    let benchExecutable: URL

    init(out: String?) throws {
        let exe = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]).standardizedFileURL
        benchExecutable = exe
        binDir = exe.deletingLastPathComponent()
        guard let r = Paths.findRoot(from: [binDir, URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]) else {
            throw BenchError("cannot find the repository root (a directory with Package.swift and netns/lib.sh) "
                + "above \(binDir.path) or the current directory")
        }
        root = r
        if let out {
            self.out = URL(fileURLWithPath: out, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath + "/"))
                .standardizedFileURL
        } else {
            self.out = root.appendingPathComponent("bench-out")
        }
    }

    static func findRoot(from starts: [URL]) -> URL? {
        let fm = FileManager.default
        for s in starts {
            var d = s.standardizedFileURL
            while true {
                if fm.fileExists(atPath: d.appendingPathComponent("Package.swift").path),
                   fm.fileExists(atPath: d.appendingPathComponent("netns/lib.sh").path) {
                    return d
                }
                let up = d.deletingLastPathComponent()
                if up.path == d.path { break }
                d = up
            }
        }
        return nil
    }

    func file(_ name: String) -> URL { out.appendingPathComponent(name) }
    func driver(_ name: String) -> URL { root.appendingPathComponent("bench/figure-\(name).sh") }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Writes a line to stderr (progress).
func progress(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}

// MARK: - Data files in DIR

/// One SAMPLE line.
struct Sample: Equatable {
    var figure: String
    var design: String
    var rep: Int
    var metric: String
    var value: String
    var unit: String

    var number: Double? {
        guard let d = Double(value), d.isFinite else { return nil }
        return d
    }

    var csv: String { [figure, design, String(rep), metric, value, unit].map(csvField).joined(separator: ",") }
}

func csvField(_ s: String) -> String {
    if s.contains(",") || s.contains("\"") || s.contains("\n") {
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
    return s
}

/// Splits one CSV line (quoted fields with "" escapes).
func csvSplit(_ line: String) -> [String] {
    var fields: [String] = []
    var cur = ""
    var quoted = false
    let it = Array(line)
    var i = 0
    while i < it.count {
        let c = it[i]
        if quoted {
            if c == "\"" {
                if i + 1 < it.count && it[i + 1] == "\"" { cur.append("\""); i += 1 } else { quoted = false }
            } else { cur.append(c) }
        } else if c == "\"" {
            quoted = true
        } else if c == "," {
            fields.append(cur); cur = ""
        } else { cur.append(c) }
        i += 1
    }
    fields.append(cur)
    return fields
}

let samplesHeader = "figure,design,rep,metric,value,unit"

/// The result files: samples.csv, info.tsv (driver, key, value),
/// fails.tsv (driver, line), status.tsv (driver, exit status, seconds, date).
struct DataStore {
    let paths: Paths

    func readLines(_ name: String) -> [String] {
        guard let s = try? String(contentsOf: paths.file(name), encoding: .utf8) else { return [] }
        return s.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    func write(_ name: String, _ lines: [String]) throws {
        let text = lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
        try text.write(to: paths.file(name), atomically: true, encoding: .utf8)
    }

    func samples() -> [Sample] {
        var out: [Sample] = []
        for (i, l) in readLines("samples.csv").enumerated() {
            if i == 0 && l == samplesHeader { continue }
            let f = csvSplit(l)
            guard f.count == 6, let rep = Int(f[2]) else { continue }
            out.append(Sample(figure: f[0], design: f[1], rep: rep, metric: f[3], value: f[4], unit: f[5]))
        }
        return out
    }

    /// Replaces the rows of `figures` with `new`.
    func replaceSamples(figures: Set<String>, with new: [Sample]) throws {
        let kept = samples().filter { !figures.contains($0.figure) }
        try write("samples.csv", [samplesHeader] + (kept + new).map(\.csv))
    }

    /// Rows of a TSV whose first column is the driver.
    func tsv(_ name: String) -> [[String]] {
        readLines(name).map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    func replaceTSV(_ name: String, driver: String, with rows: [[String]]) throws {
        let kept = tsv(name).filter { $0.first != driver }
        try write(name, (kept + rows.map { [driver] + $0 }).map { $0.joined(separator: "\t") })
    }
}

// MARK: - Running drivers

/// What one driver run produced.
struct DriverResult {
    var name: String
    var status: Int32
    var seconds: Double
    var samples: [Sample] = []
    var infos: [(String, String)] = []
    var fails: [String] = []
}

/// A signal (SIGINT/SIGTERM) the orchestrator got while a driver ran.
final class Interruption: @unchecked Sendable {
    private let lock = NSLock()
    private var _signal: Int32 = 0
    private var _child: pid_t = 0
    var signal: Int32 { lock.lock(); defer { lock.unlock() }; return _signal }
    func set(_ s: Int32) -> pid_t { lock.lock(); defer { lock.unlock() }; if _signal == 0 { _signal = s }; return _child }
    func setChild(_ p: pid_t) { lock.lock(); _child = p; lock.unlock() }
    static let shared = Interruption()
    private var sources: [DispatchSourceSignal] = []

    /// SIGTERM is passed on to the running driver (its trap removes the
    /// namespaces); SIGINT too when the driver is not in our process group
    /// (otherwise the terminal already sent it there).
    func install() {
        for s in [SIGINT, SIGTERM] {
            Glibc.signal(s, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: s, queue: .global())
            src.setEventHandler { [self] in
                let child = set(s)
                progress("Bench: signal \(s): stopping after the running driver")
                if child > 0 && (s == SIGTERM || getpgid(child) != getpgrp()) { kill(child, SIGTERM) }
            }
            src.resume()
            sources.append(src)
        }
    }
}

struct Orchestrator {
    let options: RunOptions
    let paths: Paths
    let store: DataStore
    /// The driver names `all` runs, in order: the shaped figures first, the
    /// CPU-bound ones (unshaped throughput and cost, pps, then the engine
    /// alone) last. (The cost figure comes from the throughput driver.)
    var allDrivers: [String] { ["accuracy", "failover", "setup", "memory", "throughput", "iperf", "pps"] }

    init(_ options: RunOptions) throws {
        self.options = options
        paths = try Paths(out: options.out)
        store = DataStore(paths: paths)
    }

    /// Files in DIR a driver appends to, removed before it runs.
    let seriesFiles = ["failover": ["failover-series.csv"]]

    /// The figures (SAMPLE's first field) a driver is known to produce, so
    /// that a re-run replaces them even when it produced none this time.
    func knownFigures(_ driver: String) -> Set<String> {
        switch driver {
        case "throughput":
            var s: Set<String> = ["throughput", "tput_shaped", "tput_unshaped"]
            if !FileManager.default.fileExists(atPath: paths.driver("cost").path) { s.insert("cost") }
            return s
        case "iperf": return ["tput_iperf", "tput_gbit"]
        default: return [driver]
        }
    }

    /// `fresh`: a run of every figure (`all`): the command list starts over.
    func prepare(fresh: Bool) throws {
        try FileManager.default.createDirectory(at: paths.out, withIntermediateDirectories: true)
        for b in ["nfq-mptcp", "linkemu"] where !FileManager.default.isExecutableFile(atPath: paths.binDir.appendingPathComponent(b).path) {
            throw BenchError("\(paths.binDir.appendingPathComponent(b).path) is not built: swift build -c release --product \(b)")
        }
        // The run's context for the report: the machine, the command, the mode.
        let machine = Machine.collect(root: paths.root)
        try machine.map { "\($0.0)\t\($0.1)" }.joined(separator: "\n").appending("\n")
            .write(to: paths.file("machine.tsv"), atomically: true, encoding: .utf8)
        try (options.quick ? "quick\n" : "full\n").write(to: paths.file("mode"), atomically: true, encoding: .utf8)
        // Each command with the commit it ran at (figures of one report may
        // come from several runs: `report` lists them all).
        let commit = machine.first { $0.0 == "commit" }?.1 ?? "unknown"
        let tree = machine.first { $0.0 == "tree" }?.1 == "clean" ? "" : "+"
        var cmds = fresh ? [] : store.readLines("commands.txt")
        cmds.append("\(ISO8601DateFormatter().string(from: Date()))\t\(commit)\(tree)\t\(commandLine())")
        try store.write("commands.txt", cmds)
    }

    /// The command as typed, the executable relative to the repository root when inside it.
    func commandLine() -> String {
        var exe = CommandLine.arguments[0]
        let abs = URL(fileURLWithPath: exe, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath + "/"))
            .standardizedFileURL.path
        if abs.hasPrefix(paths.root.path + "/") { exe = String(abs.dropFirst(paths.root.path.count + 1)) }
        return ([exe] + CommandLine.arguments.dropFirst()).map(shellQuote).joined(separator: " ")
    }

    /// Runs `drivers` (and the engine figure first when `engine`), then the report.
    func run(drivers: [String], engine: Bool) throws {
        try prepare(fresh: engine)
        Interruption.shared.install()
        let t0 = Date()
        var failed: [String] = []
        for d in drivers {
            if Interruption.shared.signal != 0 { break }
            let r = try runDriver(d)
            try record(r)
            if r.status != 0 { failed.append("\(d) (exit \(r.status), log: \(paths.file("\(d).log").path))") }
        }
        if engine && Interruption.shared.signal == 0 {
            let r = try runEngineFigure()
            try record(r)
        }
        let report = try Report(options: options, paths: paths, store: store).write()
        progress("Bench: report \(report.path) (\(Int(Date().timeIntervalSince(t0))) s in all)")
        if Interruption.shared.signal != 0 {
            throw ExitCode(128 + Interruption.shared.signal)
        }
        if !failed.isEmpty {
            progress("Bench: FAILED driver(s): " + failed.joined(separator: "; "))
            throw ExitCode.failure
        }
    }

    func record(_ r: DriverResult) throws {
        try store.replaceSamples(figures: knownFigures(r.name).union(r.samples.map(\.figure)), with: r.samples)
        try store.replaceTSV("info.tsv", driver: r.name, with: r.infos.map { [$0.0, $0.1] })
        try store.replaceTSV("fails.tsv", driver: r.name, with: r.fails.map { [$0] })
        try store.replaceTSV("status.tsv", driver: r.name, with: [[String(r.status), String(format: "%.0f", r.seconds),
                                                                     ISO8601DateFormatter().string(from: Date())]])
    }

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["BENCH_OUT"] = paths.out.path
        env["BENCH_REPS"] = String(options.effectiveReps)
        env["BENCH_QUICK"] = options.quick ? "1" : "0"
        env["BENCH_DESIGNS"] = options.designList.joined(separator: " ")
        env["NFQ_MPTCP"] = paths.binDir.appendingPathComponent("nfq-mptcp").path
        env["LINKEMU"] = paths.binDir.appendingPathComponent("linkemu").path
        env["BENCH_BIN"] = paths.benchExecutable.path
        return env
    }

    /// The in-process engine figure: both workloads, BENCH_REPS times.
    func runEngineFigure() throws -> DriverResult {
        let t0 = Date()
        var r = DriverResult(name: "engine", status: 0, seconds: 0)
        let rounds = options.quick ? 2_000 : 50_000
        progress("== engine: in-process, \(options.effectiveReps) repetition(s) of \(rounds) rounds")
        for rep in 1 ... options.effectiveReps {
            for (design, two) in [("one-uplink", false), ("two-uplinks", true)] {
                let m = try EngineMeasurement.run(twoUplinks: two, rounds: rounds, segmentSize: 1448)
                if !m.allTranslated {
                    r.samples.append(Sample(figure: "engine", design: design, rep: rep, metric: "error", value: "1", unit: "1"))
                    r.fails.append("FAIL - engine \(design): not every data segment was translated")
                    continue
                }
                r.samples.append(Sample(figure: "engine", design: design, rep: rep, metric: "ns_per_segment",
                                        value: String(format: "%.1f", m.nsPerSegment), unit: "ns"))
                r.samples.append(Sample(figure: "engine", design: design, rep: rep, metric: "allocs_per_segment",
                                        value: String(format: "%.3f", m.allocsPerSegment), unit: "1"))
                progress("[engine] SAMPLE engine \(design) \(rep) ns_per_segment \(String(format: "%.1f", m.nsPerSegment)) ns")
            }
        }
        r.infos.append(("engine", "\(rounds) rounds, 1448-byte payloads, release build, in-process"))
        r.seconds = Date().timeIntervalSince(t0)
        return r
    }

    /// Runs `bash bench/figure-NAME.sh` from the root; its output goes to
    /// DIR/NAME.log, its stdout is parsed.
    func runDriver(_ name: String) throws -> DriverResult {
        let t0 = Date()
        let script = paths.driver(name)
        let logURL = paths.file("\(name).log")
        var result = DriverResult(name: name, status: 0, seconds: 0)
        guard FileManager.default.fileExists(atPath: script.path) else {
            progress("== \(name): \(script.path) does not exist")
            result.status = 127
            result.fails.append("FAIL - \(name): bench/figure-\(name).sh does not exist")
            return result
        }
        // Series a driver appends to belong to this run only (as its rows in samples.csv).
        for f in seriesFiles[name] ?? [] { try? FileManager.default.removeItem(at: paths.file(f)) }
        let logFD = open(logURL.path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o644)
        guard logFD >= 0 else { throw BenchError("cannot write \(logURL.path): \(String(cString: strerror(errno)))") }
        defer { close(logFD) }
        func log(_ s: String) { _ = s.withCString { Glibc.write(logFD, $0, strlen($0)) } }
        let env = environment
        log("# bash bench/figure-\(name).sh  (BENCH_OUT=\(env["BENCH_OUT"]!) BENCH_REPS=\(env["BENCH_REPS"]!) "
            + "BENCH_QUICK=\(env["BENCH_QUICK"]!) BENCH_DESIGNS='\(env["BENCH_DESIGNS"]!)')  started \(Date())\n")
        progress("== \(name): bash bench/figure-\(name).sh (log: \(logURL.path))")

        // Spawned directly (not Foundation's Process, which on Linux sees the
        // exit only when every process the driver left behind has exited too).
        var pfds: [Int32] = [0, 0]
        guard pipe(&pfds) == 0 else { throw BenchError("pipe: \(String(cString: strerror(errno)))") }
        for f in pfds { _ = fcntl(f, F_SETFD, FD_CLOEXEC) }
        let pid: pid_t
        do {
            pid = try spawn(["/bin/bash", "-c", "cd \"$1\" && exec /bin/bash \"$2\"", "figure-\(name)", paths.root.path, script.path],
                            environment: env, stdout: pfds[1], stderr: logFD)
        } catch {
            close(pfds[0]); close(pfds[1])
            throw error
        }
        close(pfds[1])
        let fd = pfds[0]
        defer { close(fd) }
        Interruption.shared.setChild(pid)

        var pending = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        func handle(_ line: String) {
            log(line + "\n")
            parse(line, into: &result)
        }
        // Until EOF, or until the driver has exited and its output is
        // drained (a process it left behind may hold the pipe open).
        var status: Int32?
        func reap(_ flags: Int32) {
            var st: Int32 = 0
            var r: pid_t
            repeat { r = waitpid(pid, &st, flags) } while r < 0 && errno == EINTR
            if r == pid { status = (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f) }
            else if r < 0 { status = 255 }
        }
        var heldOpen = false
        var exitedAt: Date?
        while true {
            if status == nil { reap(WNOHANG); if status != nil { exitedAt = Date() } }
            // After the exit: what is left, for at most 2 s.
            if let e = exitedAt, Date().timeIntervalSince(e) > 2 { heldOpen = true; break }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, status == nil ? 200 : 0)
            if r < 0 && errno != EINTR { break }
            if r <= 0 {
                if status != nil { heldOpen = true; break }
                continue
            }
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending.append(contentsOf: buf[0 ..< n])
            while let nl = pending.firstIndex(of: 10) {
                handle(String(decoding: pending[0 ..< nl], as: UTF8.self))
                pending.removeSubrange(0 ... nl)
            }
        }
        if !pending.isEmpty { handle(String(decoding: pending, as: UTF8.self)) }
        if status == nil { reap(0) }
        Interruption.shared.setChild(0)
        if heldOpen { log("# note: the driver exited while a process it started still held its output open\n") }
        result.status = status ?? 255
        result.seconds = Date().timeIntervalSince(t0)
        log("# exit \(result.status) after \(Int(result.seconds)) s\n")
        let errors = result.samples.filter { $0.metric == "error" }.count
        progress("== \(name): exit \(result.status) after \(Int(result.seconds)) s: \(result.samples.count) samples, "
            + "\(errors) error sample(s), \(result.fails.count) FAIL line(s)")
        return result
    }

    /// SAMPLE and INFO lines are kept; FAIL and ok lines reported.
    func parse(_ raw: String, into r: inout DriverResult) {
        let line = raw.trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
        if line.hasPrefix("SAMPLE ") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if f.count == 7, let rep = Int(f[3]) {
                r.samples.append(Sample(figure: f[1], design: f[2], rep: rep, metric: f[4], value: f[5], unit: f[6]))
                progress("[\(r.name)] \(line)")
            } else {
                r.fails.append("FAIL - malformed SAMPLE line from the driver: \(line)")
                progress("[\(r.name)] malformed: \(line)")
            }
        } else if line.hasPrefix("INFO ") {
            let rest = line.dropFirst(5).drop(while: { $0 == " " })
            let key = rest.prefix(while: { $0 != " " })
            let value = rest.dropFirst(key.count).drop(while: { $0 == " " })
            r.infos.append((String(key), String(value)))
            progress("[\(r.name)] \(line)")
        } else if line.hasPrefix("FAIL") {
            r.fails.append(line)
            progress("[\(r.name)] \(line)")
        } else if line.hasPrefix("ok ") || line.hasPrefix("ok\t") {
            progress("[\(r.name)] \(line)")
        }
    }
}

/// posix_spawn with a clean signal state (empty mask; INT, TERM, HUP, QUIT,
/// PIPE, CHLD at their defaults: we ignore INT and TERM ourselves), stdin
/// from /dev/null.
func spawn(_ argv: [String], environment: [String: String], stdout: Int32, stderr: Int32) throws -> pid_t {
    var fa = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    defer { posix_spawn_file_actions_destroy(&fa) }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&fa, stdout, 1)
    posix_spawn_file_actions_adddup2(&fa, stderr, 2)
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var mask = sigset_t()
    sigemptyset(&mask)
    posix_spawnattr_setsigmask(&attr, &mask)
    var def = sigset_t()
    sigemptyset(&def)
    for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&def, s) }
    posix_spawnattr_setsigdefault(&attr, &def)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let cargv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    let cenv: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for p in cargv + cenv { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &fa, &attr, cargv, cenv)
    guard rc == 0 else { throw BenchError("cannot run \(argv[0]): \(String(cString: strerror(rc)))") }
    return pid
}

func shellQuote(_ s: String) -> String {
    if !s.isEmpty && s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }) { return s }
    return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

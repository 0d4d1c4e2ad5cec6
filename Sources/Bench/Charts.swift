import Foundation
import Glibc

// The benchmark report's charts, drawn with gnuplot.

struct Charts {
    let paths: Paths
    let samples: [Sample]
    private(set) var notes: [String] = []

    init(paths: Paths, samples: [Sample]) {
        self.paths = paths
        self.samples = samples
    }

    func label(_ d: String) -> String { "\"" + (designShort[d] ?? d) + "\"" }

    /// A histogram data file: per design, (median, min, max) of each metric.
    func histogramData(_ rows: [Sample], metrics: [String], designs: [String]) -> String {
        var lines = ["# design " + metrics.map { "\($0)_median \($0)_min \($0)_max" }.joined(separator: " ")]
        for d in designs {
            var l = [label(d)]
            for m in metrics {
                let s = Summary(numbers: rows.filter { $0.design == d && $0.metric == m }.compactMap(\.number))
                if let med = s.median, let lo = s.min, let hi = s.max {
                    l += [String(med), String(lo), String(hi)]
                } else { l += ["NaN", "NaN", "NaN"] }
            }
            lines.append(l.joined(separator: " "))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func histogramPlot(file: String, metrics: [String]) -> String {
        metrics.enumerated().map { i, m in
            let c = 2 + 3 * i
            return (i == 0 ? "'\(file)'" : "''") + " using \(c):\(c + 1):\(c + 2)" + (i == 0 ? ":xtic(1)" : "")
                + " title '\(m)' noenhanced"
        }.joined(separator: ", ")
    }

    static let histogramStyle = """
        set datafile missing 'NaN'
        set style data histogram
        set style histogram errorbars gap 1.5 lw 1
        set style fill solid 0.75 border -1
        set boxwidth 0.9
        set yrange [0:*]
        set grid ytics
        set xtics scale 0 rotate by -20 font ',9'
        set key outside top center horizontal
        """

    /// Numeric metrics of `rows` whose unit matches.
    func metrics(_ rows: [Sample], unit: (String) -> Bool) -> [String] {
        ordered(rows.filter { $0.metric != "error" && $0.number != nil && unit($0.unit.lowercased()) }.map(\.metric), by: [])
    }

    /// Draws what the data allows; returns the PNGs by name.
    mutating func draw() -> [String: URL] {
        var out: [String: URL] = [:]
        // Throughput: shaped and unshaped panels.
        var panels: [(String, String, [String], [String])] = [] // (file, title, metrics, designs)
        for (fig, title) in [("tput_shaped", "shaped uplinks"), ("tput_unshaped", "unshaped (CPU-bound)")] {
            let rows = samples.filter { $0.figure == fig }
            let ms = metrics(rows, unit: { $0.contains("bit") })
            guard !ms.isEmpty else { continue }
            let designs = ordered(rows.map(\.design), by: designOrder)
            let file = "throughput-\(fig == "tput_shaped" ? "shaped" : "unshaped").dat"
            try? histogramData(rows, metrics: ms, designs: designs).write(to: paths.file(file), atomically: true, encoding: .utf8)
            let unit = rows.first { ms.contains($0.metric) }?.unit ?? "Mbit/s"
            panels.append((file, "Throughput, \(title) (\(unit)): median, min–max", ms, designs))
        }
        if !panels.isEmpty {
            var gp = ["set terminal pngcairo size \(panels.count * 700),500 font 'sans,10'", "set output 'throughput.png'",
                      Self.histogramStyle, "set ylabel 'Mbit/s'"]
            if panels.count > 1 { gp.append("set multiplot layout 1,\(panels.count)") }
            for p in panels {
                gp.append("set title \"\(p.1)\"")
                gp.append("plot " + histogramPlot(file: p.0, metrics: p.2))
            }
            if panels.count > 1 { gp.append("unset multiplot") }
            if let u = run(gp, "throughput") { out["throughput"] = u }
        } else { notes.append("no throughput samples: throughput.png not drawn") }

        // Setup: the ms metrics.
        let setup = samples.filter { $0.figure == "setup" }
        // Connect, new connection + GET, persistent GET (the truth probes' times left out) when the driver gave them.
        let allMs = metrics(setup, unit: { $0 == "ms" })
        let main = ["connect_ms", "new_get_ms", "persistent_get_ms"].filter { allMs.contains($0) }
        let sms = main.isEmpty ? allMs : main
        if !sms.isEmpty {
            let designs = ordered(setup.map(\.design), by: designOrder)
            try? histogramData(setup, metrics: sms, designs: designs).write(to: paths.file("setup.dat"), atomically: true, encoding: .utf8)
            let gp = ["set terminal pngcairo size 900,500 font 'sans,10'", "set output 'setup.png'", Self.histogramStyle,
                      "set ylabel 'ms'", "set title \"Connection setup and requests (ms): median, min–max\"",
                      "plot " + histogramPlot(file: "setup.dat", metrics: sms)]
            if let u = run(gp, "setup") { out["setup"] = u }
        } else { notes.append("no setup samples in ms: setup.png not drawn") }

        // Failover: the 100 ms series.
        if let text = try? String(contentsOf: paths.file("failover-series.csv"), encoding: .utf8) {
            var series: [String: [Int: [Double]]] = [:]
            for (i, l) in text.split(separator: "\n").enumerated() {
                let f = csvSplit(String(l))
                if i == 0 && f.first == "design" { continue }
                guard f.count >= 4, let t = Double(f[2]), let v = Double(f[3]), v.isFinite else { continue }
                series[f[0], default: [:]][Int((t * 10).rounded()), default: []].append(v)
            }
            let designs = ordered(Array(series.keys), by: designOrder)
            if !designs.isEmpty {
                var dat: [String] = []
                for d in designs {
                    dat.append("# \(d)")
                    for k in series[d]!.keys.sorted() {
                        dat.append(String(format: "%.1f %@", Double(k) / 10, String(Summary(numbers: series[d]![k]!).median!)))
                    }
                    dat.append(""); dat.append("")
                }
                try? dat.joined(separator: "\n").write(to: paths.file("failover-series.dat"), atomically: true, encoding: .utf8)
                var gp = ["set terminal pngcairo size 1000,500 font 'sans,10'", "set output 'failover.png'",
                          "set title \"Throughput per 100 ms around the cut of uplink 1 (median over repetitions)\"",
                          "set xlabel 's'", "set ylabel 'Mbit/s'", "set yrange [0:*]", "set grid", "set key outside right"]
                for (k, v) in cutMarks() { gp.append("set arrow from \(v), graph 0 to \(v), graph 1 nohead dt 2 lc rgb '#888888'"); gp.append("set label '\(k)' at \(v), graph 0.97 offset 0.5,0 font ',9'") }
                gp.append("plot " + designs.enumerated().map { i, d in
                    "'failover-series.dat' index \(i) using 1:2 with lines lw 1.5 title '\(designShort[d] ?? d)'"
                }.joined(separator: ", "))
                if let u = run(gp, "failover") { out["failover"] = u }
            } else { notes.append("failover-series.csv has no rows: failover.png not drawn") }
        } else { notes.append("no failover-series.csv: failover.png not drawn") }
        return out
    }

    /// The cut and restore times, when the failover driver gave them (INFO keys with `cut`/`restore` and a number of seconds).
    func cutMarks() -> [(String, Double)] {
        var marks: [(String, Double)] = []
        for r in DataStore(paths: paths).tsv("info.tsv") where r.count >= 3 && r[0] == "failover" {
            let text = r[1...].joined(separator: " ")
            for word in ["cut", "restore"] {
                guard marks.first(where: { $0.0 == word }) == nil else { continue }
                // e.g. "cut_at_s 5", "failover cut 5 restore 15", "cut=5s"
                let toks = text.replacingOccurrences(of: "=", with: " ").split(separator: " ").map(String.init)
                // (the first number within five words after it: "cut (L1 drops everything) at 4 s")
                search: for (i, t) in toks.enumerated() where t.lowercased().hasPrefix(word) {
                    for u in toks[(i + 1)...].prefix(5) {
                        if let v = Double(u.trimmingCharacters(in: CharacterSet(charactersIn: "s,;()"))) {
                            marks.append((word, v)); break search
                        }
                    }
                }
            }
        }
        return marks
    }

    /// Writes NAME.gp to DIR and runs gnuplot there.
    mutating func run(_ lines: [String], _ name: String) -> URL? {
        let gp = paths.file("\(name).gp")
        let png = paths.file("\(name).png")
        try? FileManager.default.removeItem(at: png)
        do { try (lines.joined(separator: "\n") + "\n").write(to: gp, atomically: true, encoding: .utf8) } catch {
            notes.append("\(name).gp: \(error)"); return nil
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["gnuplot", gp.lastPathComponent]
        p.currentDirectoryURL = paths.out
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch { notes.append("gnuplot could not run (apt-get install gnuplot-nox): \(error)"); return nil }
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0, FileManager.default.fileExists(atPath: png.path) else {
            notes.append("gnuplot failed on \(name).gp (exit \(p.terminationStatus)): \(e.trimmingCharacters(in: .whitespacesAndNewlines).prefix(300))")
            return nil
        }
        return png
    }
}

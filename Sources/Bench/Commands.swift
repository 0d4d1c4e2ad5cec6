// The subcommands that run figures (`all`, one per driver) and the report;
// the work is the Orchestrator's (Orchestrator.swift) and the Report's.

import ArgumentParser
import Foundation

struct AllFigures: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all",
        abstract: "Every figure (accuracy, failover, setup, memory, throughput and cost, iperf, pps, engine), then the report.")
    @OptionGroup var options: RunOptions
    func run() throws {
        let o = try Orchestrator(options)
        try o.run(drivers: o.allDrivers, engine: true)
    }
}

/// A subcommand that runs one driver, bench/figure-NAME.sh, then the report.
protocol FigureCommand: ParsableCommand {
    static var figure: String { get }
    var options: RunOptions { get }
}

extension FigureCommand {
    func run() throws { try Orchestrator(options).run(drivers: [Self.figure], engine: false) }
}

struct AccuracyFigure: FigureCommand {
    static let figure = "accuracy"
    static let configuration = CommandConfiguration(commandName: figure,
        abstract: "The testbed against its configuration (bench/figure-accuracy.sh), then the report.")
    @OptionGroup var options: RunOptions
}

struct ThroughputFigure: FigureCommand {
    static let figure = "throughput"
    static let configuration = CommandConfiguration(commandName: figure,
        abstract: "Throughput, shaped and unshaped, and the cost (bench/figure-throughput.sh), then the report.")
    @OptionGroup var options: RunOptions
}

struct IperfFigure: FigureCommand {
    static let figure = "iperf"
    static let configuration = CommandConfiguration(commandName: figure,
        abstract: "Throughput with iperf3, unshaped (and gateway CPU) and at 1 Gbit/s per uplink (bench/figure-iperf.sh), then the report.")
    @OptionGroup var options: RunOptions
}

struct FailoverFigure: FigureCommand {
    static let figure = "failover"
    static let configuration = CommandConfiguration(commandName: figure,
        abstract: "An uplink cut during a transfer (bench/figure-failover.sh), then the report.")
    @OptionGroup var options: RunOptions
}

struct SetupFigure: FigureCommand {
    static let figure = "setup"
    static let configuration = CommandConfiguration(commandName: figure,
        abstract: "Connection setup and request latency (bench/figure-setup.sh), then the report.")
    @OptionGroup var options: RunOptions
}

struct MemoryFigure: FigureCommand {
    static let figure = "memory"
    static let configuration = CommandConfiguration(commandName: figure,
        abstract: "Gateway memory per connection (bench/figure-memory.sh), then the report.")
    @OptionGroup var options: RunOptions
}

struct PpsFigure: FigureCommand {
    static let figure = "pps"
    static let configuration = CommandConfiguration(commandName: figure,
        abstract: "Packets per second: forwarding, the bare NFQUEUE loop, the daemon (bench/figure-pps.sh), then the report.")
    @OptionGroup var options: RunOptions
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Writes the markdown report and the charts from DIR/samples.csv and DIR/info.tsv.")
    @OptionGroup var options: RunOptions
    func run() throws {
        let paths = try Paths(out: options.out)
        guard FileManager.default.fileExists(atPath: paths.file("samples.csv").path) else {
            throw BenchError("\(paths.file("samples.csv").path) does not exist: run a figure first")
        }
        let url = try Report(options: options, paths: paths, store: DataStore(paths: paths)).write()
        progress("Bench: report \(url.path)")
    }
}

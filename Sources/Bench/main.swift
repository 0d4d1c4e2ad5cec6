import ArgumentParser

/// The benchmark harness (filled in by the benchmark issue). For now it only
/// parses its arguments and says plainly that no figure is produced yet.
@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "Bench",
        abstract: "Benchmarks nfq-mptcp against plain TCP, kernel MPTCP and the split proxy (not implemented yet)."
    )

    @Argument(help: "Which figure to produce: all, throughput, setup, failover, cost, memory, engine.")
    var figure: String = "all"

    @Flag(help: "A short run (smoke test).")
    var quick = false

    func validate() throws {
        let known = ["all", "throughput", "setup", "failover", "cost", "memory", "engine"]
        guard known.contains(figure) else { throw ValidationError("unknown figure '\(figure)'; one of \(known.joined(separator: ", "))") }
    }

    func run() throws {
        print("Bench: '\(figure)' is not implemented yet; no figures were produced.")
        throw ExitCode(2)
    }
}

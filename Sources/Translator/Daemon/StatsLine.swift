import MPTCPStack

/// The engine's counters as `name=value` pairs for the daemon's stats line:
/// the engine's own table (`EngineStats.counters`), in its order, then the
/// per-reason drops as one field. Not on the data path: once per stats line.
public enum StatsLine {
    /// Every counter of `s`, in the table's order. `dropped` is one field,
    /// `dropped=REASON=N,REASON=N,…`.
    public static func fields(_ s: EngineStats) -> [(name: String, value: String)] {
        var out = EngineStats.counters.map { (name: $0.name, value: "\(s[keyPath: $0.value])") }
        out.append(("dropped", DropReason.allCases.map { "\($0)=\(s.dropped($0))" }.joined(separator: ",")))
        return out
    }
}

import MPTCPStack

/// The engine's counters as `name=value` pairs for the daemon's stats line.
///
/// Every stored property of `EngineStats` is logged, found by reflection: a
/// counter added to the struct appears without being listed anywhere (one
/// list, the struct itself, so none is forgotten). Its name is the
/// property's in snake_case (`tableFull` -> `table_full`, `responderSYNs`
/// -> `responder_syns`), or the short name it has always had in the logs
/// (tests and scripts grep them). Not on the data path: once per stats line.
public enum StatsLine {
    /// Log names older than this list, kept.
    static let establishedNames: [String: String] = [
        "translatedToPeer": "to_peer", "translatedToLAN": "to_lan", "passedFallback": "fallback_pkts",
        "connectionsOpened": "opened", "connectionsMPTCP": "mptcp", "connectionsFallback": "fallback",
        "connectionsClosed": "closed", "connectionsReset": "reset", "connectionsExpired": "expired",
        "dataSegmentsSent": "data_segments", "deadSubflowsDetected": "dead_subflows",
        "addAddrWithoutTimestamps": "add_addr_without_ts",
    ]

    /// Every counter of `s`, in declaration order. `dropped` is one field,
    /// `dropped=REASON=N,REASON=N,…`.
    public static func fields(_ s: EngineStats) -> [(name: String, value: String)] {
        Mirror(reflecting: s).children.compactMap { child -> (name: String, value: String)? in
            guard let label = child.label else { return nil }
            if label == "dropped" {
                return ("dropped", DropReason.allCases.map { "\($0)=\(s.dropped($0))" }.joined(separator: ","))
            }
            return (establishedNames[label] ?? snakeCase(label), "\(child.value)")
        }
    }

    /// `addAddrSent` -> `add_addr_sent`, `notTCP` -> `not_tcp`: an
    /// underscore before each capital that follows a small letter or digit.
    static func snakeCase(_ name: String) -> String {
        var out = ""
        var previousIsLowerOrDigit = false
        for ch in name {
            if ch.isUppercase && previousIsLowerOrDigit { out.append("_") }
            out += ch.lowercased()
            previousIsLowerOrDigit = ch.isLowercase || ch.isNumber
        }
        return out
    }
}

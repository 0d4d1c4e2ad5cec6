import Logging
import MPTCPStack
import Testing
@testable import Translator

// Issue 13, item 4: every engine counter on the stats line, the names
// scripts grep kept; the queue's counters.

/// A queue that never has a packet (the daemon's counters only).
private final class IdleQueue: PacketQueue {
    var fileDescriptor: Int32 { -1 }
    func receive(_ body: (QueuedPacket) -> Void) throws -> Int { 0 }
    func accept(_ id: UInt32, mark: UInt32?) throws {}
    func drop(_ id: UInt32) throws {}
    func accept(_ id: UInt32, mark: UInt32?, header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) throws {}
    var counters: [(name: String, value: UInt64)] { [("queue_enobufs", 3)] }
}

@Suite struct StatsLineTests {
    @Test func everyEngineCounterIsOnTheStatsLineOnce() throws {
        var s = EngineStats()
        s.tableFull = 7
        s.notTCP = 5
        let fields = StatsLine.fields(s)
        let labels = Mirror(reflecting: s).children.compactMap(\.label)
        #expect(fields.count == labels.count)
        #expect(Set(fields.map(\.name)).count == fields.count, "a name used twice")
        let byName = Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(byName["table_full"] == "7")
        #expect(byName["not_tcp"] == "5")
        #expect(byName["dropped"] == DropReason.allCases.map { "\($0)=0" }.joined(separator: ","))
        // The names tests and scripts grep, as they were.
        for name in ["packets", "to_peer", "to_lan", "untracked", "fallback_pkts", "opened", "mptcp", "fallback", "closed",
                     "reset", "expired", "malformed", "no_option_room", "sack_dropped", "originated", "subflows_opened",
                     "subflows_failed", "joins_sent", "joins_rejected", "data_segments", "retransmits", "fast_retransmits",
                     "rto_expiries", "reinjected_bytes", "buffered_bytes", "data_level_retransmits", "dead_subflows",
                     "client_out_of_order", "spurious_recoveries", "held_for_client_window", "lan_retransmits",
                     "download_not_kept", "add_addr_received", "add_addr_rejected", "remove_addr_received",
                     "remove_addr_sent", "subflows_link_down", "icmp_unreachable", "subflows_unreachable",
                     "responder_syns", "passed_native", "joins_accepted", "joins_refused", "add_addr_sent",
                     "add_addr_without_ts", "add_addr_unsent", "table_full", "syn_data_passed",
                     // Never logged before issue 13.
                     "dss_checksum_failed", "fastclose_received", "fastclose_sent", "subflows_released",
                     "opportunistic_reinjections"] {
            #expect(byName[name] != nil, "\(name) missing")
        }
    }

    /// The engine's table names every stored counter once, by the right key
    /// path, under the name the logs have always used for it (the property's
    /// name in snake_case, or an older short name).
    @Test func theCounterTableCoversEveryCounterUnderItsLogName() {
        let table = EngineStats.counters
        var s = EngineStats()
        for (i, c) in table.enumerated() { s[keyPath: c.value] = UInt64(i + 1) }
        var labelOf: [UInt64: String] = [:]
        var stored = 0
        for child in Mirror(reflecting: s).children {
            guard let label = child.label, let v = child.value as? UInt64 else { continue }
            stored += 1
            #expect(v != 0, "\(label) is not in EngineStats.counters")
            labelOf[v] = label
        }
        #expect(stored == table.count)
        let established = ["translatedToPeer": "to_peer", "translatedToLAN": "to_lan", "passedFallback": "fallback_pkts",
                           "connectionsOpened": "opened", "connectionsMPTCP": "mptcp", "connectionsFallback": "fallback",
                           "connectionsClosed": "closed", "connectionsReset": "reset", "connectionsExpired": "expired",
                           "dataSegmentsSent": "data_segments", "deadSubflowsDetected": "dead_subflows",
                           "addAddrWithoutTimestamps": "add_addr_without_ts"]
        for (i, c) in table.enumerated() {
            guard let label = labelOf[UInt64(i + 1)] else {
                Issue.record("\(c.name): its key path is another counter's"); continue
            }
            #expect(c.name == established[label] ?? Self.snakeCase(label), "\(label) logged as \(c.name)")
            #expect(!c.help.isEmpty && c.help.hasSuffix("."), "\(c.name): help text")
        }
        #expect(Set(table.map(\.name)).count == table.count, "a name used twice")
    }

    /// `addAddrSent` -> `add_addr_sent`, `notTCP` -> `not_tcp`.
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

    @Test func theDaemonAddsItsOwnAndTheQueuesCounters() throws {
        let engine = Engine(config: EngineConfig(), random: SeededRandom(seed: 1))
        let d = Daemon(engine: engine, queue: IdleQueue(), interfaces: try InterfaceMap(lan: [], uplinks: []), sender: nil,
                       logger: Logger(label: "test"))
        let names = d.statsFields().map(\.name)
        #expect(Set(names).count == names.count, "a name used twice")
        for name in ["conns_open", "unknown_iface", "verdict_errors", "truncated", "raw_send_errors", "outbox_overflow",
                     "queue_enobufs", "table_full", "responder_syns"] {
            #expect(names.contains(name), "\(name) missing")
        }
    }

    @Test func kernelQueueCounters() {
        let text = """
            1000  19419  8192 2 65531     0     0     8203  1
            20311  19631     0 2 65531  3812    17     8202  1

            """
        #expect(NFQueue.parseKernelCounters(text, queue: 20311).map { [$0.dropped, $0.userDropped] } == [3812, 17])
        #expect(NFQueue.parseKernelCounters(text, queue: 1000).map { [$0.dropped, $0.userDropped] } == [0, 0])
        #expect(NFQueue.parseKernelCounters(text, queue: 5) == nil)
        #expect(NFQueue.parseKernelCounters("garbage\n1 2", queue: 1) == nil)
    }
}

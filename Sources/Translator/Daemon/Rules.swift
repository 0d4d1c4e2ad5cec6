import Foundation
import Logging

/// The iptables rules the daemon needs, installed at start and removed on
/// exit when asked (`--install-rules`). Queued in raw PREROUTING (before
/// routing, so a rewritten packet is routed afresh) and exempt from
/// conntrack (rewritten sequence numbers would make conntrack mark the
/// flow INVALID; see DATAPATH.md).
public final class Rules {
    public struct Rule: CustomStringConvertible {
        public var tool: String
        public var spec: [String]
        public var description: String { ([tool, "-t", "raw", "-A"] + spec).joined(separator: " ") }
    }

    public let rules: [Rule]
    private var installed: [Rule] = []
    private let logger: Logger

    /// Rules for each interface (LAN and uplinks), IPv4 and IPv6.
    public init(queue: UInt16, interfaces: [String], logger: Logger) {
        var r: [Rule] = []
        for tool in ["iptables", "ip6tables"] {
            for i in interfaces {
                let match = ["PREROUTING", "-i", i, "-p", "tcp", "-m", "addrtype", "!", "--dst-type", "LOCAL"]
                r.append(Rule(tool: tool, spec: match + ["-j", "CT", "--notrack"]))
                r.append(Rule(tool: tool, spec: match + ["-j", "NFQUEUE", "--queue-num", String(queue), "--queue-bypass"]))
            }
        }
        rules = r
        self.logger = logger
    }

    public func install() throws {
        for r in rules {
            try Self.run([r.tool, "-w", "-t", "raw", "-A"] + r.spec)
            installed.append(r)
            logger.debug("installed: \(r)")
        }
    }

    /// Removes what `install` added (also after a partial install).
    public func remove() {
        for r in installed.reversed() {
            do { try Self.run([r.tool, "-w", "-t", "raw", "-D"] + r.spec) } catch {
                logger.warning("could not remove rule \(r): \(error)")
            }
        }
        installed.removeAll()
    }

    static func run(_ argv: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch { throw QueueError(message: "\(argv[0]): \(error)") }
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw QueueError(message: "\(argv.joined(separator: " ")) failed: \(String(decoding: e, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}

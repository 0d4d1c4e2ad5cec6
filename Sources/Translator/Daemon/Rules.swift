import Foundation
import Logging
import MPTCPStack

/// What the daemon changes in the system, installed at start and removed on
/// exit when asked (`--install-rules`):
///
/// - iptables: packets queued in raw PREROUTING (before routing, so a
///   rewritten packet is routed afresh) and exempt from conntrack (rewritten
///   sequence numbers would make conntrack mark the flow INVALID; see
///   DATAPATH.md).
/// - with two or more uplinks (multipath), also: the subflows the gateway
///   opens itself (uplink address, join ports) queued WITHOUT --queue-bypass
///   so the gateway's own stack never sees them (it would answer RST), even
///   when the daemon is not running; ICMP destination-unreachable errors
///   (fragmentation-needed among them) and ICMPv6 destination-unreachable
///   and packet-too-big errors arriving on the uplinks queued (read, then
///   passed); the join ports reserved from the local
///   stack; accept_local and loose rp_filter; and source-specific routing per
///   uplink (`ip rule from ADDR lookup 1000+k`, the table holding the main
///   table's routes through that uplink and a default route through it).
///
/// Everything installed is undone in reverse order, also after a partial
/// install; sysctls get their previous values back.
public final class Rules {
    public enum Action {
        /// A command and the one that undoes it.
        case command([String], undo: [String])
        /// Writes `/proc/sys/<path>` with `value(old)` (nil: leave it);
        /// the old value is written back on removal.
        case sysctl(path: String, note: String, value: (String) -> String?)
    }

    public struct Step: CustomStringConvertible {
        public var action: Action
        public var description: String {
            switch action {
            case let .command(argv, _): return argv.joined(separator: " ")
            case let .sysctl(path, note, _):
                return "sysctl " + path.replacingOccurrences(of: "/", with: ".") + (note.isEmpty ? "" : " (\(note))")
            }
        }
    }

    /// A multipath uplink: its device and addresses (its routing table
    /// follows from its index).
    public typealias Uplink = RawSender.Uplink

    /// First routing table number (uplink k uses `tableBase + k`).
    public static let tableBase = 1000

    public private(set) var steps: [Step] = []
    private var undo: [() -> Void] = []
    private let logger: Logger

    /// The iptables rules for each interface (LAN and uplinks), IPv4 and
    /// IPv6; with `multipath` uplinks (two or more), the rest listed above.
    /// Reads the main routing table now (to copy the uplinks' routes).
    public init(queue: UInt16, interfaces: [String], lan: [String] = [], multipath: [Uplink] = [],
                joinPorts: ClosedRange<UInt16> = 61_000 ... 61_999, logger: Logger) {
        self.logger = logger
        func ipt(_ tool: String, _ spec: [String]) {
            steps.append(Step(action: .command([tool, "-w", "-t", "raw", "-A"] + spec, undo: [tool, "-w", "-t", "raw", "-D"] + spec)))
        }
        for tool in ["iptables", "ip6tables"] {
            for i in interfaces {
                let match = ["PREROUTING", "-i", i, "-p", "tcp", "-m", "addrtype", "!", "--dst-type", "LOCAL"]
                ipt(tool, match + ["-j", "CT", "--notrack"])
                ipt(tool, match + ["-j", "NFQUEUE", "--queue-num", String(queue), "--queue-bypass"])
            }
        }
        guard multipath.count > 1 else { return }

        // The gateway's own subflows: queued, never bypassed.
        let ports = "\(joinPorts.lowerBound):\(joinPorts.upperBound)"
        var families: Set<Int> = []
        for u in multipath {
            for a in u.addresses {
                let tool = a.isV4 ? "iptables" : "ip6tables"
                families.insert(a.isV4 ? 4 : 6)
                let match = ["PREROUTING", "-d", a.description, "-p", "tcp", "--dport", ports]
                ipt(tool, match + ["-j", "CT", "--notrack"])
                ipt(tool, match + ["-j", "NFQUEUE", "--queue-num", String(queue)])
            }
        }
        // Destination-unreachable and packet-too-big errors arriving on the
        // uplinks: the engine reads them (a subflow's path is broken, or
        // carries smaller packets: IPv4's fragmentation-needed is a
        // destination-unreachable code) and lets them pass.
        for u in multipath {
            ipt("iptables", ["PREROUTING", "-i", u.device, "-p", "icmp", "--icmp-type", "destination-unreachable",
                             "-j", "NFQUEUE", "--queue-num", String(queue), "--queue-bypass"])
            for type in ["destination-unreachable", "packet-too-big"] {
                ipt("ip6tables", ["PREROUTING", "-i", u.device, "-p", "ipv6-icmp", "--icmpv6-type", type,
                                  "-j", "NFQUEUE", "--queue-num", String(queue), "--queue-bypass"])
            }
        }
        // What the translator sends itself (data on every subflow now) is
        // not tracked either.
        for f in families.sorted() {
            ipt(f == 4 ? "iptables" : "ip6tables", ["OUTPUT", "-m", "mark", "--mark", String(format: "0x%x", RawSender.mark),
                                                   "-j", "CT", "--notrack"])
        }

        // Sysctls.
        let range = "\(joinPorts.lowerBound)-\(joinPorts.upperBound)"
        steps.append(Step(action: .sysctl(path: "net/ipv4/ip_local_reserved_ports", note: "+\(range)") { old in
            let cur = old.trimmingCharacters(in: .whitespacesAndNewlines)
            if cur.split(separator: ",").contains(where: { $0 == range }) { return nil }
            return cur.isEmpty ? range : cur + "," + range
        }))
        for i in ["all"] + lan {
            steps.append(Step(action: .sysctl(path: "net/ipv4/conf/\(i)/accept_local", note: "1") { old in
                old.trimmingCharacters(in: .whitespacesAndNewlines) == "1" ? nil : "1"
            }))
        }
        var seen: Set<String> = []
        for i in ["all"] + lan + multipath.map(\.device) where seen.insert(i).inserted {
            steps.append(Step(action: .sysctl(path: "net/ipv4/conf/\(i)/rp_filter", note: "2 if 1") { old in
                old.trimmingCharacters(in: .whitespacesAndNewlines) == "1" ? "2" : nil
            }))
        }

        // Source-specific routing.
        for (k, u) in multipath.enumerated() {
            let table = String(Self.tableBase + k)
            for a in u.addresses {
                let fam = a.isV4 ? "-4" : "-6"
                let routes = Self.mainRoutes(family: fam, device: u.device)
                var haveDefault = false
                var nexthop: String?
                for r in routes {
                    if r.first == "default" { haveDefault = true }
                    if nexthop == nil, let v = r.firstIndex(of: "via"), v + 1 < r.count { nexthop = r[v + 1] }
                    let spec = r + ["dev", u.device, "table", table]
                    let add = ["ip", fam, "route", "add"] + spec
                    if !steps.contains(where: { if case let .command(c, _) = $0.action { return c == add } else { return false } }) {
                        steps.append(Step(action: .command(add, undo: ["ip", fam, "route", "del"] + spec)))
                    }
                }
                if !haveDefault {
                    var spec = ["default"]
                    if let nexthop { spec += ["via", nexthop] } else {
                        logger.notice("""
                            uplink \(u.device) has no default route and no gateway in the main table: its table \(table) \
                            gets 'default dev \(u.device)' (right for point-to-point links; on Ethernet, give the uplink \
                            a route via its router)
                            """)
                    }
                    spec += ["dev", u.device, "table", table]
                    let add = ["ip", fam, "route", "add"] + spec
                    if !steps.contains(where: { if case let .command(c, _) = $0.action { return c == add } else { return false } }) {
                        steps.append(Step(action: .command(add, undo: ["ip", fam, "route", "del"] + spec)))
                    }
                }
                let rule = ["from", a.description, "lookup", table]
                steps.append(Step(action: .command(["ip", fam, "rule", "add"] + rule, undo: ["ip", fam, "rule", "del"] + rule)))
            }
        }
    }

    /// The main table's routes through `device`, as `ip route add` arguments
    /// (without `dev`); flags that cannot be set are left out, multipath
    /// routes are skipped.
    static func mainRoutes(family: String, device: String) -> [[String]] {
        guard let out = try? run(["ip", family, "route", "show", "table", "main", "dev", device], output: true) else { return [] }
        let unsettable: Set<String> = ["linkdown", "dead", "offload", "trap", "rt_offload", "rt_trap", "rt_offload_failed",
                                       "notify", "pervasive", "unresolved"]
        var routes: [[String]] = []
        for line in out.split(separator: "\n") {
            if line.first == " " || line.first == "\t" { continue } // nexthop lines of a multipath route
            var t = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if t.isEmpty || t.contains("nexthop") { continue }
            if ["broadcast", "local", "anycast", "multicast"].contains(t[0]) { continue }
            t.removeAll { unsettable.contains($0) }
            if let e = t.firstIndex(of: "expires"), e + 1 < t.count { t.removeSubrange(e ... e + 1) }
            routes.append(t)
        }
        return routes
    }

    /// Every step, one per line (for the debug log).
    public var listing: String { steps.map(\.description).joined(separator: "\n") }

    public func install() throws {
        for s in steps {
            switch s.action {
            case let .command(argv, undoArgv):
                try Self.run(argv)
                undo.append { [logger] in
                    do { try Self.run(undoArgv) } catch { logger.warning("could not undo '\(s)': \(error)") }
                }
                logger.debug("installed: \(s)")
            case let .sysctl(path, _, value):
                let file = "/proc/sys/" + path
                let old: String
                do { old = try String(contentsOfFile: file, encoding: .utf8) } catch {
                    throw QueueError(message: "reading \(file): \(error.localizedDescription)")
                }
                guard let new = value(old) else {
                    logger.debug("unchanged: \(s) (is \(old.trimmingCharacters(in: .whitespacesAndNewlines)))")
                    continue
                }
                try Self.write(file, new)
                let restore = old.trimmingCharacters(in: .whitespacesAndNewlines)
                undo.append { [logger] in
                    do { try Self.write(file, restore) } catch { logger.warning("could not restore \(file) to '\(restore)': \(error)") }
                }
                logger.debug("set: \(s) = \(new) (was \(restore))")
            }
        }
    }

    /// Undoes what `install` did (also after a partial install).
    public func remove() {
        for u in undo.reversed() { u() }
        undo.removeAll()
    }

    static func write(_ file: String, _ value: String) throws {
        let fd = open(file, O_WRONLY | O_TRUNC)
        guard fd >= 0 else { throw QueueError("opening \(file)") }
        defer { close(fd) }
        let s = value + "\n"
        let n = s.withCString { Glibc.write(fd, $0, strlen($0)) }
        guard n >= 0 else { throw QueueError("writing '\(value)' to \(file)") }
    }

    @discardableResult
    static func run(_ argv: [String], output: Bool = false) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        let err = Pipe()
        let out = Pipe()
        p.standardError = err
        p.standardOutput = output ? out : FileHandle.nullDevice
        do { try p.run() } catch { throw QueueError(message: "\(argv[0]): \(error)") }
        let o = output ? out.fileHandleForReading.readDataToEndOfFile() : Data()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw QueueError(message: "\(argv.joined(separator: " ")) failed: \(String(decoding: e, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return String(decoding: o, as: UTF8.self)
    }
}

extension IPAddress {
    var isV4: Bool { if case .v4 = self { return true } else { return false } }
}

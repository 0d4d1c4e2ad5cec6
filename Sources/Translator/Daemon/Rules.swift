import Foundation
import Logging
import MPTCPStack

/// What the daemon changes in the system, installed at start and removed on
/// exit when asked (`--install-rules`):
///
/// - iptables: packets queued in raw PREROUTING (before routing, so a
///   rewritten packet is routed afresh) and exempt from conntrack (rewritten
///   sequence numbers would make conntrack mark the flow INVALID; see
///   docs/datapath.md).
/// - with two or more uplinks (multipath), also: the subflows the gateway
///   opens itself (uplink address, join ports) queued WITHOUT --queue-bypass
///   so the gateway's own stack never sees them (it would answer RST), even
///   when the daemon is not running; ICMP destination-unreachable errors
///   (fragmentation-needed among them) and ICMPv6 destination-unreachable
///   and packet-too-big errors arriving on the uplinks queued (read, then
///   passed); the join ports reserved from the local
///   stack; accept_local and loose rp_filter; and source-specific routing per
///   uplink (`ip rule from ADDR lookup 1000+k`, the table holding the main
///   table's routes through that uplink and a default route through it: the
///   one the kernel uses for that address out of that device, or none when
///   that is the operator's own policy routing; see the init).
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
    /// The mark bit the daemon sets on every packet it lets through from the
    /// queue (kept beside the packet's other mark bits).
    public static let seenMark: UInt32 = 0x4000_0000
    /// Mark bits that route a packet by uplink k's table (`ip rule fwmark
    /// uplinkRouteMark(k)/uplinkRouteMask lookup 1000+k`, ahead of the
    /// source rules): a packet the engine carried onto a subflow leaves by
    /// that subflow's uplink, as the raw sockets bound to it send, even when
    /// the subflow's address is another uplink's (a peer may reach that
    /// address over this uplink's link).
    public static let uplinkRouteMask: UInt32 = 0x1f00_0000
    public static func uplinkRouteMark(_ k: Int) -> UInt32 { 0x1000_0000 | UInt32(k & 0xf) << 24 }

    public private(set) var steps: [Step] = []
    /// Uplinks the daemon cannot route, one line each: an uplink that is not
    /// point-to-point with no route from (one of) its addresses. Those
    /// addresses' rule and default route are not in `steps`; the daemon
    /// refuses to install with any problem.
    public private(set) var problems: [String] = []
    private var undo: [() -> Void] = []
    private let logger: Logger

    /// The iptables rules for each interface (LAN and uplinks), IPv4 and
    /// IPv6; with `multipath` uplinks (two or more), the rest listed above.
    /// Reads the main routing table now (to copy the uplinks' routes).
    /// With `queues` > 1, queues `queue` to `queue + queues - 1`, one
    /// engine thread each, packets steered as `QueueSteering` says.
    public init(queue: UInt16, queues: Int = 1, interfaces: [String], lan: [String] = [], multipath: [Uplink] = [],
                joinPorts: ClosedRange<UInt16> = 61_000 ... 61_999, logger: Logger) {
        self.logger = logger
        func ipt(_ tool: String, _ spec: [String]) {
            steps.append(Step(action: .command([tool, "-w", "-t", "raw", "-A"] + spec, undo: [tool, "-w", "-t", "raw", "-D"] + spec)))
        }
        for tool in ["iptables", "ip6tables"] {
            for i in interfaces {
                let match = ["PREROUTING", "-i", i, "-p", "tcp", "-m", "addrtype", "!", "--dst-type", "LOCAL"]
                ipt(tool, match + ["-j", "CT", "--notrack"])
                if queues == 1 {
                    ipt(tool, match + ["-j", "NFQUEUE", "--queue-num", String(queue), "--queue-bypass"])
                } else {
                    for k in 0 ..< queues {
                        ipt(tool, match + QueueSteering.hostMatch(v6: tool == "ip6tables", slice: k, of: queues, lanSide: lan.contains(i))
                            + ["-j", "NFQUEUE", "--queue-num", String(Int(queue) + k), "--queue-bypass"])
                    }
                }
            }
            // MPTCP from an uplink that the daemon did not see (it is not
            // running: the queue was bypassed; or it fell behind with
            // --fail-open) is dropped, not passed on: untranslated it could
            // put the peer's resent data at the wrong place in the LAN host's
            // stream. The daemon marks everything it lets through.
            for i in interfaces where !lan.contains(i) {
                let spec = ["PREROUTING", "-i", i, "-p", "tcp", "--tcp-option", "30", "-m", "addrtype", "!", "--dst-type", "LOCAL",
                            "-m", "mark", "!", "--mark", String(format: "0x%x/0x%x", Self.seenMark, Self.seenMark), "-j", "DROP"]
                steps.append(Step(action: .command([tool, "-w", "-t", "mangle", "-A"] + spec, undo: [tool, "-w", "-t", "mangle", "-D"] + spec)))
            }
        }
        guard multipath.count > 1 else { return }

        // The gateway's own subflows: queued, never bypassed (each thread's
        // slice of the join ports to its queue).
        var families: Set<Int> = []
        for u in multipath {
            for a in u.addresses {
                let tool = a.isV4 ? "iptables" : "ip6tables"
                families.insert(a.isV4 ? 4 : 6)
                for k in 0 ..< queues {
                    let slice = QueueSteering.joinPorts(joinPorts, slice: k, of: queues)
                    let match = ["PREROUTING", "-d", a.description, "-p", "tcp", "--dport", "\(slice.lowerBound):\(slice.upperBound)"]
                    ipt(tool, match + ["-j", "CT", "--notrack"])
                    ipt(tool, match + ["-j", "NFQUEUE", "--queue-num", String(Int(queue) + k)])
                }
            }
        }
        let icmpQueue = queues == 1 ? ["--queue-num", String(queue)] : ["--queue-balance", "\(queue):\(Int(queue) + queues - 1)"]
        // Destination-unreachable and packet-too-big errors arriving on the
        // uplinks: the engine reads them (a subflow's path is broken, or
        // carries smaller packets: IPv4's fragmentation-needed is a
        // destination-unreachable code) and lets them pass.
        for u in multipath {
            ipt("iptables", ["PREROUTING", "-i", u.device, "-p", "icmp", "--icmp-type", "destination-unreachable",
                             "-j", "NFQUEUE"] + icmpQueue + ["--queue-bypass"])
            for type in ["destination-unreachable", "packet-too-big"] {
                ipt("ip6tables", ["PREROUTING", "-i", u.device, "-p", "ipv6-icmp", "--icmpv6-type", type,
                                  "-j", "NFQUEUE"] + icmpQueue + ["--queue-bypass"])
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

        // Source-specific routing. The default route of table 1000+k is the
        // one the kernel uses now for a packet from the uplink's address out
        // of its device (asked before anything of ours is installed). When
        // that is a table of the operator's own (multi-WAN policy routing:
        // `ip rule from A table N`), table 1000+k gets no default route at
        // all: a lookup that misses it goes on to the operator's rules, which
        // keep working as they were set up (and as they change).
        for (k, u) in multipath.enumerated() {
            let table = String(Self.tableBase + k)
            var unroutable: [IPAddress] = []
            for a in u.addresses {
                let fam = a.isV4 ? "-4" : "-6"
                let routes = Self.mainRoutes(family: fam, device: u.device)
                let kernel = Self.kernelRoute(family: fam, from: a, device: u.device)
                let policy = kernel.flatMap { r in r.device == u.device ? r.table.flatMap { Self.isOperators($0) ? $0 : nil } : nil }
                var haveDefault = false
                var nexthop = kernel?.device == u.device ? kernel?.gateway : nil
                for r in routes {
                    if r.first == "default" {
                        if policy != nil { continue } // the operator's table decides
                        haveDefault = true
                    }
                    if nexthop == nil, let v = r.firstIndex(of: "via"), v + 1 < r.count {
                        nexthop = ["inet", "inet6"].contains(r[v + 1]) && v + 2 < r.count ? Array(r[v + 1 ... v + 2]) : [r[v + 1]]
                    }
                    let spec = r + ["dev", u.device, "table", table]
                    let add = ["ip", fam, "route", "add"] + spec
                    if !steps.contains(where: { if case let .command(c, _) = $0.action { return c == add } else { return false } }) {
                        steps.append(Step(action: .command(add, undo: ["ip", fam, "route", "del"] + spec)))
                    }
                }
                if let policy {
                    logger.info("""
                        uplink \(u.device): \(a) leaves by the operator's table \(policy)\(kernel?.gateway.map { " (via " + $0.joined(separator: " ") + ")" } ?? ""); \
                        table \(table) gets no default route, lookups that miss it go on to that table
                        """)
                } else if !haveDefault {
                    var spec = ["default"]
                    if let nexthop {
                        spec += ["via"] + nexthop
                    } else if Self.isPointToPoint(u.device) {
                        logger.info("uplink \(u.device): point-to-point, no gateway: table \(table) gets 'default dev \(u.device)'")
                    } else {
                        unroutable.append(a)
                        continue
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
            if !unroutable.isEmpty {
                problems.append("""
                    uplink \(u.device): no route from \(unroutable.map(\.description).joined(separator: " or ")) out of \(u.device), \
                    which is not point-to-point (give it a default route via its router, e.g. in a policy table: \
                    ip rule add from ADDR table N; ip route add default via ROUTER dev \(u.device) table N)
                    """)
            }
        }
        // A packet the engine carried onto a subflow (a verdict) is marked
        // for the subflow's uplink and routed by its table, ahead of the
        // source rules (added last: the kernel puts a rule without a
        // preference before the ones it has).
        for (k, u) in multipath.enumerated() {
            for fam in Set(u.addresses.map { $0.isV4 ? "-4" : "-6" }).sorted() {
                let rule = ["fwmark", String(format: "0x%x/0x%x", Self.uplinkRouteMark(k), Self.uplinkRouteMask),
                            "lookup", String(Self.tableBase + k)]
                steps.append(Step(action: .command(["ip", fam, "rule", "add"] + rule, undo: ["ip", fam, "rule", "del"] + rule)))
            }
        }
    }

    /// The route the kernel picks for a packet from `source` out of
    /// `device` to a global destination, as `ip route get` shows it: its
    /// gateway (nil: on-link; with a family when it is given, `inet6 ADDR`),
    /// device and table (nil: main). Nil when there is none.
    struct KernelRoute: Equatable {
        var gateway: [String]?
        var device: String?
        var table: String?
    }

    /// Asks the kernel (`ip route get DST from SOURCE oif DEVICE`, nothing is
    /// sent); DST stands for any global destination. With a source given,
    /// IPv6 may answer a route through another device (the uplink's own
    /// sockets, bound to the device, would not take it): the callers check
    /// the device.
    static func kernelRoute(family: String, from source: IPAddress, device: String) -> KernelRoute? {
        let dst = family == "-4" ? "8.8.8.8" : "2001:4860:4860::8888"
        guard let out = try? run(["ip", family, "route", "get", dst, "from", source.description, "oif", device], output: true) else { return nil }
        return parseRouteGet(out)
    }

    /// The first line of `ip route get`'s answer, e.g. `8.8.8.8 from
    /// 10.41.3.1 via 10.41.3.2 dev g2 table 102 uid 0`.
    static func parseRouteGet(_ out: String) -> KernelRoute? {
        guard let line = out.split(separator: "\n").first else { return nil }
        let t = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard t.first.map({ !["unreachable", "blackhole", "prohibit", "throw"].contains($0) }) ?? false else { return nil }
        var r = KernelRoute()
        var i = 0
        while i + 1 < t.count {
            switch t[i] {
            case "via":
                if ["inet", "inet6"].contains(t[i + 1]), i + 2 < t.count { r.gateway = [t[i + 1], t[i + 2]]; i += 1 } else { r.gateway = [t[i + 1]] }
                i += 1
            case "dev": r.device = t[i + 1]; i += 1
            case "table": r.table = t[i + 1]; i += 1
            default: break
            }
            i += 1
        }
        return r
    }

    /// A table the operator set up (not main, and not one of the daemon's
    /// own, left by a run that was killed).
    static func isOperators(_ table: String) -> Bool {
        if ["main", "local", "unspec", "254", "255", "0"].contains(table) { return false }
        if let n = Int(table), n >= tableBase, n < tableBase + 8 { return false }
        return true
    }

    /// A device without link-layer address resolution (PPP, WireGuard, tun,
    /// raw-IP modems: IFF_POINTOPOINT or IFF_NOARP), where a route without a
    /// gateway is right.
    static func isPointToPoint(_ device: String) -> Bool {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return false }
        defer { freeifaddrs(list) }
        var p = list
        while let ifa = p {
            defer { p = ifa.pointee.ifa_next }
            guard let n = ifa.pointee.ifa_name, String(cString: n) == device else { continue }
            return ifa.pointee.ifa_flags & (0x10 | 0x80) != 0 // IFF_POINTOPOINT | IFF_NOARP
        }
        return false
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
                // Left by an earlier instance (a `kill -9` leaves everything
                // in place): taken over as it is, and removed at our exit,
                // so that a restart needs no hands and leaves no window in
                // which packets pass untranslated.
                if try Self.add(argv) {
                    logger.debug("installed: \(s)")
                } else {
                    logger.debug("already there (left by an earlier instance): \(s)")
                }
                undo.append { [logger] in
                    do { try Self.run(undoArgv) } catch { logger.warning("could not undo '\(s)': \(error)") }
                }
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

    /// Runs `argv`, which adds something; false when it was there already:
    /// an identical iptables rule (`-C` first), identical ip rules (the
    /// kernel takes duplicates: they are deleted, then ours added where a
    /// fresh start puts it), or a route to the same destination in the
    /// same table (replaced with ours).
    static func add(_ argv: [String]) throws -> Bool {
        if let tool = argv.first, tool == "iptables" || tool == "ip6tables", let i = argv.firstIndex(of: "-A") {
            var check = argv
            check[i] = "-C"
            if (try? run(check)) != nil { return false }
            try run(argv)
            return true
        }
        if argv.first == "ip", let i = argv.firstIndex(of: "add"), i >= 2, argv[i - 1] == "rule" {
            var del = argv
            del[i] = "del"
            var existed = false
            for _ in 0 ..< 64 {
                guard (try? run(del)) != nil else { break }
                existed = true
            }
            try run(argv)
            return !existed
        }
        do {
            try run(argv)
            return true
        } catch {
            guard argv.first == "ip", let i = argv.firstIndex(of: "add"), i >= 2,
                  argv[i - 1] == "route" || argv[i - 1] == "rule", "\(error)".contains("File exists") else { throw error }
            if argv[i - 1] == "route" {
                var replace = argv
                replace[i] = "replace"
                try run(replace)
            }
            return false
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

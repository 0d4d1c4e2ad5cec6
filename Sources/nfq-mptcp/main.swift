import ArgumentParser
import Glibc
import Logging
import MPTCPStack
import Translator

@main
struct NfqMptcp: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nfq-mptcp",
        abstract: "Packet-level TCP <-> MPTCP v1 translator for Linux gateways (NFQUEUE).",
        subcommands: [Run.self, Inspect.self, Replay.self],
        defaultSubcommand: Run.self
    )
}

/// A failure at run time (not a usage error): printed as "Error: …" without the usage text.
struct RuntimeError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Throws the one-line reason a check gave, if any.
func require(_ problem: String?) throws {
    if let problem { throw ValidationError(problem) }
}

/// Engine settings shared by the daemon and replay. Every value is checked
/// against its range (given in its help) before anything is installed.
struct EngineOptions: ParsableArguments {
    static let timeRange = 0.001 ... OptionChecks.maxSeconds

    @Option(help: "Bytes taken off the MSS the server announces to LAN clients (room for DSS); 0 to 1024.")
    var mssClamp: UInt16 = 28

    @Flag(help: "Ask MPTCP peers for DSS checksums (MP_CAPABLE flag A).")
    var checksums = false

    @Option(help: "Seconds a closed connection is remembered; 0.001 to 2592000 (30 days).")
    var timeWait: Double = 60

    @Option(help: "Seconds of silence after which a connection is forgotten; 0.001 to 2592000 (30 days).")
    var idleTimeout: Double = 7200

    @Option(help: "Most connections tracked at once (more pass untranslated); 1 to 1048576.")
    var maxConnections = 65_536

    @Option(help: "Most half-open connections (SYN seen, handshake not complete); beyond it the oldest is forgotten and goes on as plain TCP; 16 to 1048576.")
    var maxHalfOpen = EngineConfig().maxHalfOpen

    @Option(help: "Seconds a half-open connection is remembered without a packet; 1 to 600.")
    var handshakeTimeout: Double = 30

    @Option(help: ArgumentHelp("""
        Source ports of the subflows the gateway opens itself (multipath; the top one is announced to peers):         at least 2, from 1024 up, and with two or more uplinks outside net.ipv4.ip_local_port_range.
        """, valueName: "LO-HI"))
    var joinPorts: PortRange = PortRange(EngineConfig().joinPorts)

    @Option(help: ArgumentHelp("Bytes of client data a multipath connection holds until the peer acknowledges them (and of peer data until the client does); 65536 to 1073741824.",
                               valueName: "BYTES"))
    var sendBuffer = EngineConfig().sendBuffer

    @Option(help: "Most subflows per multipath connection (the initial one included); 1 to 8.")
    var maxSubflows = EngineConfig().maxSubflows

    @Option(help: "Addresses the peer announces (ADD_ADDR) that a multipath connection joins from every uplink (0: echo only); 0 to 8.")
    var addAddrAccepted = EngineConfig().addAddrAccepted

    func validate() throws {
        try require(OptionChecks.integer(Int(mssClamp), "--mss-clamp", 0 ... 1024, "bytes"))
        try require(OptionChecks.seconds(timeWait, "--time-wait", Self.timeRange))
        try require(OptionChecks.seconds(idleTimeout, "--idle-timeout", Self.timeRange))
        try require(OptionChecks.integer(maxConnections, "--max-connections", 1 ... 1_048_576))
        try require(OptionChecks.integer(maxHalfOpen, "--max-half-open", 16 ... 1_048_576))
        try require(OptionChecks.seconds(handshakeTimeout, "--handshake-timeout", 1 ... 600))
        try require(OptionChecks.joinPorts(joinPorts.range))
        try require(OptionChecks.integer(sendBuffer, "--send-buffer", 65_536 ... 1 << 30, "bytes"))
        try require(OptionChecks.integer(maxSubflows, "--max-subflows", 1 ... 8))
        try require(OptionChecks.integer(addAddrAccepted, "--add-addr-accepted", 0 ... 8))
    }

    /// The engine's configuration (the values checked by `validate`).
    var config: EngineConfig {
        var c = EngineConfig()
        c.mssClamp = mssClamp
        c.requestChecksums = checksums
        c.timeWait = .milliseconds(Int64((timeWait * 1000).rounded()))
        c.idleTimeout = .milliseconds(Int64((idleTimeout * 1000).rounded()))
        c.maxConnections = maxConnections
        c.maxHalfOpen = maxHalfOpen
        c.handshakeTimeout = .milliseconds(Int64((handshakeTimeout * 1000).rounded()))
        c.joinPorts = joinPorts.range
        c.sendBuffer = sendBuffer
        c.maxSubflows = maxSubflows
        c.addAddrAccepted = addAddrAccepted
        return c
    }
}

/// `LO-HI` (ports, LO <= HI, LO > 0).
struct PortRange: ExpressibleByArgument {
    var range: ClosedRange<UInt16>
    init(_ r: ClosedRange<UInt16>) { range = r }
    init?(argument: String) {
        let parts = argument.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let lo = UInt16(parts[0]), let hi = UInt16(parts[1]), lo > 0, lo <= hi else { return nil }
        range = lo ... hi
    }
    var defaultValueDescription: String { "\(range.lowerBound)-\(range.upperBound)" }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the translator on an NFQUEUE (the default command).",
        discussion: """
        Packets queued from the LAN interfaces and uplinks (iptables raw PREROUTING, -j NFQUEUE) are \
        translated: plain TCP from the LAN becomes MPTCP v1 towards MPTCP-capable servers; servers that \
        answer plain TCP get plain TCP. With --install-rules the daemon adds the iptables rules it needs \
        and removes them when it exits (SIGINT, SIGTERM). SIGUSR1 logs the counters.
        """
    )

    @Option(help: "NFQUEUE number.")
    var queue: UInt16 = 0

    @Option(help: "LAN interface (plain TCP hosts). Repeatable.")
    var lan: [String] = []

    @Option(help: ArgumentHelp("""
        Uplink interface (towards MPTCP peers). Repeatable; the order gives the uplink numbers. With two or more, \
        connections use every uplink (MP_JOIN subflows from each uplink's address); ':backup' marks one used only \
        when the others fail.
        """, valueName: "IFACE[:backup]"))
    var uplink: [String] = []

    @Flag(help: "Install the iptables rules at start and remove them at exit.")
    var installRules = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Log the counters every this many seconds (0: only at exit and on SIGUSR1); 0, or 0.1 to 86400.")
    var statsInterval: Double = 0

    @Flag(help: """
        While the queue is full (the daemon stalled or overloaded), let packets pass untranslated instead of dropping         them: new connections keep working as plain TCP, but a translated connection whose packets pass is broken         (the other side gets them untranslated) and is reset.
        """)
    var failOpen = false

    @Option(help: "Record every queued packet and its output to this pcap (for `replay`).")
    var record: String?

    @Option(help: "Seed the key generator (tests and recordings only: keys become predictable).")
    var seed: UInt64?

    @Option(help: ArgumentHelp("""
        Directory for the connection journal, with which the next start resets at both ends the connections \
        a killed instance left; '' for none.
        """, valueName: "DIR"))
    var stateDir: String = "/run/nfq-mptcp"

    @OptionGroup var engine: EngineOptions

    func validate() throws {
        if lan.isEmpty { throw ValidationError("give at least one --lan interface") }
        if uplink.isEmpty { throw ValidationError("give at least one --uplink interface") }
        for u in uplink where UplinkSpec(argument: u) == nil {
            throw ValidationError("bad --uplink '\(u)' (want IFACE or IFACE:backup)")
        }
        let names = uplinkSpecs.map(\.name)
        if Set(names).count != uplink.count { throw ValidationError("an --uplink is given twice") }
        if uplink.count > 8 { throw ValidationError("at most 8 uplinks") }
        if Set(lan).count != lan.count { throw ValidationError("a --lan is given twice") }
        if let both = lan.first(where: names.contains) {
            throw ValidationError("'\(both)' is given as both --lan and --uplink (a LAN interface cannot be an uplink)")
        }
        guard let _ = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown log level '\(logLevel)'") }
        if statsInterval != 0 { try require(OptionChecks.seconds(statsInterval, "--stats-interval", 0.1 ... 86_400)) }
        // Join ports are used (and reserved from the gateway's own stack)
        // with two or more uplinks.
        if uplink.count > 1, let ephemeral = OptionChecks.ephemeralPorts() {
            try require(OptionChecks.joinPorts(engine.joinPorts.range, outside: ephemeral))
        }
    }

    var uplinkSpecs: [UplinkSpec] { uplink.compactMap { UplinkSpec(argument: $0) } }

    func run() throws {
        // Before any thread exists (iptables runs through Foundation's Process).
        Daemon<NFQueue, SystemRandomNumberGenerator>.blockSignals()
        var logger = Logger(label: "nfq-mptcp")
        logger.logLevel = Logger.Level(rawValue: logLevel)!
        guard geteuid() == 0 else { throw RuntimeError("nfq-mptcp needs root (or CAP_NET_ADMIN) for NFQUEUE") }
        let specs = uplinkSpecs
        let names = specs.map(\.name)
        let ifaces: InterfaceMap
        do { ifaces = try InterfaceMap(lan: lan, uplinks: names) } catch { throw RuntimeError("\(error)") }
        var config = engine.config
        // The uplinks' own addresses, now (the sources of the subflows the
        // gateway opens; needed only with two or more uplinks), and their
        // MTUs (segment sizes; changes are followed on rtnetlink).
        for s in specs {
            let a = InterfaceAddresses.global(of: s.name)
            let mtu = InterfaceMTU.of(s.name) ?? 1500
            if specs.count > 1 && a.isEmpty {
                throw RuntimeError("uplink '\(s.name)' has no global IPv4 or IPv6 address (see: ip addr show \(s.name))")
            }
            config.uplinks.append(UplinkConfig(addresses: a, backup: s.backup, mtu: mtu))
            logger.info("uplink \(config.uplinks.count - 1): \(s.name)\(s.backup ? " (backup)" : ""), MTU \(mtu)",
                        metadata: ["addresses": "\(a.map(\.description).joined(separator: ","))"])
        }
        let multipath = config.multipath
        let rules = Rules(queue: queue, interfaces: lan + names, lan: lan,
                          multipath: multipath ? zip(specs, config.uplinks).map { Rules.Uplink(device: $0.name, addresses: $1.addresses) } : [],
                          joinPorts: config.joinPorts, logger: logger)
        logger.debug("rules\(installRules ? "" : " (not installed: no --install-rules)"):\n\(rules.listing)")
        // An uplink with no route from its address: refused before anything is installed.
        if installRules, !rules.problems.isEmpty { throw RuntimeError(rules.problems.joined(separator: "; ")) }
        for p in rules.problems { logger.warning("\(p)") }
        if installRules {
            do { try rules.install() } catch {
                rules.remove()
                throw RuntimeError("installing rules: \(error)")
            }
        }
        defer { if installRules { rules.remove() } }
        let q: NFQueue
        do { q = try NFQueue(number: queue, failOpen: failOpen) } catch { throw RuntimeError("\(error)") }
        logger.info("queue \(queue) bound\(failOpen ? " (fail-open)" : "")", metadata: ["lan": "\(lan)", "uplinks": "\(uplink)"])
        // Multipath: what leaves by uplink k leaves through uplink k.
        let sender: RawSender
        do {
            sender = try RawSender(uplinks: multipath ? zip(specs, config.uplinks).map {
                RawSender.Uplink(device: $0.name, addresses: $1.addresses)
            } : [])
        } catch { throw RuntimeError("\(error)") }
        if let seed {
            try serve(Engine(config: config, random: SeededRandom(seed: seed)), q, ifaces, sender, logger)
        } else {
            try serve(Engine(config: config, random: SystemRandomNumberGenerator()), q, ifaces, sender, logger)
        }
    }

    func serve<R: RandomNumberGenerator>(_ e: Engine<R>, _ q: NFQueue, _ i: InterfaceMap, _ sender: RawSender, _ logger: Logger) throws {
        let d = Daemon(engine: e, queue: q, interfaces: i, sender: sender, logger: logger)
        if let record { d.recorder = try Recorder(path: record) }
        if !stateDir.isEmpty {
            // Connections an earlier instance left (killed): reset at both ends.
            let now = MonotonicClock.now()
            var taken = 0
            let j = try Journal(path: Journal.defaultPath(directory: stateDir, queue: queue),
                                slots: engine.maxConnections + 64) { if e.recover(record: $0, now: now) { taken += 1 } }
            if taken > 0 { logger.notice("resetting at both ends \(taken) connection(s) an earlier instance left (\(j.path))") }
            d.journal = j
        }
        // Link state (multipath: failover) and MTU changes (every uplink).
        d.links = e.config.multipath ? try LinkMonitor() : try? LinkMonitor()
        try d.run(statsEvery: statsInterval > 0 ? .milliseconds(Int64((statsInterval * 1000).rounded())) : nil)
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Feed a capture through the engine offline and write what it emits.",
        discussion: """
        Input: a capture made with `run --record` (it knows each packet's side), or any capture with \
        --lan prefixes saying which sources are LAN hosts. Output: Linux cooked v2 pcap with inputs \
        (packet type 0) and outputs (packet type 4). Deterministic for a given seed.
        """
    )

    @Option(name: .customLong("in"), help: "Input capture.")
    var input: String

    @Option(name: .customLong("out"), help: "Output capture.")
    var output: String

    @Option(help: "Seed of the key generator.")
    var seed: UInt64 = 1

    @Option(help: "LAN prefix (CIDR) for captures without side information. Repeatable.")
    var lan: [String] = []

    @OptionGroup var engine: EngineOptions

    func validate() throws { _ = try prefixes() }

    func prefixes() throws -> [(IPAddress, Int)] {
        var prefixes: [(IPAddress, Int)] = []
        for p in lan {
            let parts = p.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let a = IPAddress(String(parts[0])), let l = Int(parts[1]) else {
                throw ValidationError("--lan '\(p)': want ADDR/LEN")
            }
            try require(OptionChecks.prefixLength(l, of: a, "--lan"))
            prefixes.append((a, l))
        }
        return prefixes
    }

    func run() throws {
        let prefixes = try prefixes()
        let e = Engine(config: engine.config, random: SeededRandom(seed: seed))
        let r = try Replayer.run(input: input, output: output, engine: e, rule: .init(lanPrefixes: prefixes))
        print("replayed \(r.inputs) packets: \(r.outputs) out, \(r.drops) dropped; connections \(r.stats.connectionsOpened) "
            + "(mptcp \(r.stats.connectionsMPTCP), fallback \(r.stats.connectionsFallback))")
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode every TCP and MPTCP option of a capture file, one line per packet.",
        discussion: """
        Reads pcap or pcapng (Ethernet, Linux cooked v1/v2, raw IP, loopback). For MPTCP it shows every \
        field of every subtype, derives tokens and IDSNs from keys seen on the wire, and verifies MP_JOIN \
        and ADD_ADDR HMACs, MP_FASTCLOSE keys and DSS checksums when the connection's keys were captured. \
        Malformed options are shown with the reason and never stop the run.
        """
    )

    @Argument(help: "The capture file to decode.")
    var file: String

    @Flag(help: "One JSON object per packet (JSON Lines) instead of text.")
    var json = false

    @Flag(help: "Omit the summary line at the end (text mode).")
    var noSummary = false

    func run() throws {
        do {
            try InspectRunner.run(path: file, options: .init(json: json, summary: !noSummary)) { line in
                print(line)
            }
        } catch let e as PcapError {
            throw RuntimeError(e.description)
        }
    }
}

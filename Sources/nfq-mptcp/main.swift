import ArgumentParser
import Glibc
import Logging
import Tools
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
    static let defaults = EngineSettings()

    @Option(help: "Bytes taken off the MSS the server announces to LAN clients (room for DSS); 0 to 1024.")
    var mssClamp: UInt16 = defaults.mssClamp

    @Flag(help: "Ask MPTCP peers for DSS checksums (MP_CAPABLE flag A).")
    var checksums = false

    @Option(help: "Seconds a closed connection is remembered; 0.001 to 2592000 (30 days).")
    var timeWait: Double = defaults.timeWait

    @Option(help: "Seconds of silence after which a connection is forgotten; 0.001 to 2592000 (30 days).")
    var idleTimeout: Double = defaults.idleTimeout

    @Option(help: "Most connections tracked at once (more pass untranslated); 1 to 1048576.")
    var maxConnections = defaults.maxConnections

    @Option(help: "Most half-open connections (SYN seen, handshake not complete); beyond it the oldest is forgotten and goes on as plain TCP; 16 to 1048576.")
    var maxHalfOpen = defaults.maxHalfOpen

    @Option(help: "Seconds a half-open connection is remembered without a packet; 1 to 600.")
    var handshakeTimeout: Double = defaults.handshakeTimeout

    @Option(help: ArgumentHelp("""
        Source ports of the subflows the gateway opens itself (multipath; the top one is announced to peers): \
        at least 2, from 1024 up, and with two or more uplinks outside net.ipv4.ip_local_port_range.
        """, valueName: "LO-HI"))
    var joinPorts: PortRange = PortRange(defaults.joinPorts)

    @Option(help: ArgumentHelp("Bytes of client data a multipath connection holds until the peer acknowledges them (and of peer data until the client does); 65536 to 1073741824.",
                               valueName: "BYTES"))
    var sendBuffer = defaults.sendBuffer

    @Option(help: "Most subflows per multipath connection (the initial one included); 1 to 8.")
    var maxSubflows = defaults.maxSubflows

    @Option(help: "Addresses the peer announces (ADD_ADDR) that a multipath connection joins from every uplink (0: echo only); 0 to 8.")
    var addAddrAccepted = defaults.addAddrAccepted

    func validate() throws { try require(settings.problem) }

    /// The settings for the shell (checked by `validate`).
    var settings: EngineSettings {
        var s = EngineSettings()
        s.mssClamp = mssClamp
        s.checksums = checksums
        s.timeWait = timeWait
        s.idleTimeout = idleTimeout
        s.maxConnections = maxConnections
        s.maxHalfOpen = maxHalfOpen
        s.handshakeTimeout = handshakeTimeout
        s.joinPorts = joinPorts.range
        s.sendBuffer = sendBuffer
        s.maxSubflows = maxSubflows
        s.addAddrAccepted = addAddrAccepted
        return s
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

    @Option(help: "NFQUEUE number (the first, with --queues).")
    var queue: UInt16 = 0

    @Option(help: ArgumentHelp("""
        Queues from --queue on, one engine thread each: 1, 2, 4 or 8. A connection is owned by the thread its LAN \
        host's address picks (its low bits), its own joins by a slice of --join-ports per thread.
        """, valueName: "N"))
    var queues = 1

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
        While the queue is full (the daemon stalled or overloaded), let packets pass untranslated instead of dropping \
        them: new connections keep working as plain TCP, but a translated connection whose packets pass is broken \
        (the other side gets them untranslated) and is reset.
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
        try require(OptionChecks.queues(queues, first: queue, joinPorts: engine.joinPorts.range))
        if queues > 1 && record != nil { throw ValidationError("--record: with --queues 1 only") }
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
        DaemonLauncher.blockSignals()
        var logger = Logger(label: "nfq-mptcp")
        logger.logLevel = Logger.Level(rawValue: logLevel)!
        guard geteuid() == 0 else { throw RuntimeError("nfq-mptcp needs root (or CAP_NET_ADMIN) for NFQUEUE") }
        var s = DaemonSetup()
        s.queue = queue
        s.queues = queues
        s.lan = lan
        s.uplinks = uplinkSpecs
        s.installRules = installRules
        s.failOpen = failOpen
        s.statsInterval = statsInterval
        s.record = record
        s.seed = seed
        s.stateDir = stateDir
        s.engine = engine.settings
        do { try DaemonLauncher.run(s, logger: logger) } catch let e as StartError { throw RuntimeError(e.description) }
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

    func validate() throws {
        do { _ = try ReplayLauncher.prefixes(lan) } catch { throw ValidationError(error.description) }
    }

    func run() throws {
        print(try ReplayLauncher.run(input: input, output: output, seed: seed, lan: lan, engine: engine.settings))
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

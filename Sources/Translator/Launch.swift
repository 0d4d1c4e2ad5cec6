import CLinux
import Glibc
import Logging
import MPTCPStack
import Tools

/// The engine's settings as an operator gives them (times in seconds), with
/// today's defaults. The shell turns them into the engine's configuration;
/// the command line sees only this type.
public struct EngineSettings: Sendable {
    public var mssClamp: UInt16
    public var checksums: Bool
    public var timeWait: Double
    public var idleTimeout: Double
    public var maxConnections: Int
    public var maxHalfOpen: Int
    public var handshakeTimeout: Double
    public var joinPorts: ClosedRange<UInt16>
    public var sendBuffer: Int
    public var maxSubflows: Int
    public var addAddrAccepted: Int

    /// The engine's defaults.
    public init() {
        let d = EngineConfig()
        mssClamp = d.mssClamp
        checksums = d.requestChecksums
        timeWait = Self.seconds(d.timeWait)
        idleTimeout = Self.seconds(d.idleTimeout)
        maxConnections = d.maxConnections
        maxHalfOpen = d.maxHalfOpen
        handshakeTimeout = Self.seconds(d.handshakeTimeout)
        joinPorts = d.joinPorts
        sendBuffer = d.sendBuffer
        maxSubflows = d.maxSubflows
        addAddrAccepted = d.addAddrAccepted
    }

    /// The first value out of its range, as a one-line reason naming the
    /// option; nil when every value is good.
    public var problem: String? {
        let time = 0.001 ... OptionChecks.maxSeconds
        return OptionChecks.integer(Int(mssClamp), "--mss-clamp", 0 ... 1024, "bytes")
            ?? OptionChecks.seconds(timeWait, "--time-wait", time)
            ?? OptionChecks.seconds(idleTimeout, "--idle-timeout", time)
            ?? OptionChecks.integer(maxConnections, "--max-connections", 1 ... 1_048_576)
            ?? OptionChecks.integer(maxHalfOpen, "--max-half-open", 16 ... 1_048_576)
            ?? OptionChecks.seconds(handshakeTimeout, "--handshake-timeout", 1 ... 600)
            ?? OptionChecks.joinPorts(joinPorts)
            ?? OptionChecks.integer(sendBuffer, "--send-buffer", 65_536 ... 1 << 30, "bytes")
            ?? OptionChecks.integer(maxSubflows, "--max-subflows", 1 ... 8)
            ?? OptionChecks.integer(addAddrAccepted, "--add-addr-accepted", 0 ... 8)
    }

    /// The engine's configuration (values checked by `problem` first).
    var config: EngineConfig {
        var c = EngineConfig()
        c.mssClamp = mssClamp
        c.requestChecksums = checksums
        c.timeWait = Self.duration(timeWait)
        c.idleTimeout = Self.duration(idleTimeout)
        c.maxConnections = maxConnections
        c.maxHalfOpen = maxHalfOpen
        c.handshakeTimeout = Self.duration(handshakeTimeout)
        c.joinPorts = joinPorts
        c.sendBuffer = sendBuffer
        c.maxSubflows = maxSubflows
        c.addAddrAccepted = addAddrAccepted
        return c
    }

    static func duration(_ s: Double) -> Duration { .milliseconds(Int64((s * 1000).rounded())) }
    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// A failure at start-up (not a usage error), with a one-line reason.
public struct StartError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// What `run` needs to start the daemon.
public struct DaemonSetup {
    public var queue: UInt16 = 0
    /// Queues (and engine threads) from `queue` on (`QueueSteering`).
    public var queues = 1
    public var lan: [String] = []
    public var uplinks: [UplinkSpec] = []
    public var installRules = false
    public var failOpen = false
    public var statsInterval: Double = 0
    public var record: String?
    public var seed: UInt64?
    public var stateDir = "/run/nfq-mptcp"
    public var engine = EngineSettings()
    public init() {}
}

/// Starts the daemon: the uplinks' addresses and MTUs, the rules, the queue,
/// the raw sender, the journal of an earlier instance; then the event loop
/// until SIGINT or SIGTERM. Protocol work is the engine's.
public enum DaemonLauncher {
    /// Blocks the signals the daemon handles; call before any thread exists
    /// (iptables runs through Foundation's Process).
    public static func blockSignals() { Daemon<NFQueue, SystemRandomNumberGenerator>.blockSignals() }

    public static func run(_ s: DaemonSetup, logger: Logger) throws {
        // Buffers of 32 KB and more (the connections' rings, the larger
        // segment queues) are mapped each on its own and unmapped when
        // freed: what an idle connection gives back (`compactions`) leaves
        // the resident memory at once. (By default glibc raises this
        // threshold after the first such free, and later rings come from
        // the heap, whose freed pages stay until trimmed.)
        _ = malloc_map_from(32 * 1024)
        let names = s.uplinks.map(\.name)
        let ifaces: InterfaceMap
        do { ifaces = try InterfaceMap(lan: s.lan, uplinks: names) } catch { throw StartError("\(error)") }
        var config = s.engine.config
        // Packets are read in batches (NFQueue.daemonBatch): the ACKs they
        // make due leave once per batch.
        config.tuning.batchAcks = NFQueue.daemonBatch > 1
        // The uplinks' own addresses, now (the sources of the subflows the
        // gateway opens; needed only with two or more uplinks), and their
        // MTUs (segment sizes; changes are followed on rtnetlink).
        for u in s.uplinks {
            let a = InterfaceAddresses.global(of: u.name)
            let mtu = InterfaceMTU.of(u.name) ?? 1500
            if s.uplinks.count > 1 && a.isEmpty {
                throw StartError("uplink '\(u.name)' has no global IPv4 or IPv6 address (see: ip addr show \(u.name))")
            }
            config.uplinks.append(UplinkConfig(addresses: a, backup: u.backup, mtu: mtu))
            logger.info("uplink \(config.uplinks.count - 1): \(u.name)\(u.backup ? " (backup)" : ""), MTU \(mtu)",
                        metadata: ["addresses": "\(a.map(\.description).joined(separator: ","))"])
        }
        let multipath = config.multipath
        if let problem = OptionChecks.queues(s.queues, first: s.queue, joinPorts: config.joinPorts) { throw StartError(problem) }
        if s.queues > 1 && s.record != nil { throw StartError("--record: with --queues 1 only") }
        let rules = Rules(queue: s.queue, queues: s.queues, interfaces: s.lan + names, lan: s.lan,
                          multipath: multipath ? zip(s.uplinks, config.uplinks).map { Rules.Uplink(device: $0.name, addresses: $1.addresses) } : [],
                          joinPorts: config.joinPorts, logger: logger)
        logger.debug("rules\(s.installRules ? "" : " (not installed: no --install-rules)"):\n\(rules.listing)")
        // An uplink with no route from its address: refused before anything is installed.
        if s.installRules, !rules.problems.isEmpty { throw StartError(rules.problems.joined(separator: "; ")) }
        for p in rules.problems { logger.warning("\(p)") }
        // The queues first: a queue another instance holds is refused before
        // any rule is touched (rules already there are taken over, and
        // removed at exit: a live instance's must not be).
        var queues: [NFQueue] = []
        for k in 0 ..< s.queues {
            do { queues.append(try NFQueue(number: s.queue + UInt16(k), failOpen: s.failOpen, batch: NFQueue.daemonBatch)) } catch {
                throw StartError("\(error)")
            }
        }
        if s.installRules {
            do { try rules.install() } catch {
                rules.remove()
                throw StartError("installing rules: \(error)")
            }
        }
        defer { if s.installRules { rules.remove() } }
        for q in queues {
            logger.info("queue \(q.queueNumber) bound\(s.failOpen ? " (fail-open)" : "")",
                        metadata: ["lan": "\(s.lan)", "uplinks": "\(s.uplinks.map(\.description))"])
        }
        // Each thread: its queue, its engine (its slice of the join ports),
        // its raw sockets, its journal. Multipath: what leaves by uplink k
        // leaves through uplink k.
        var threads: [(loop: () throws -> Void, control: Control?)] = []
        for (k, q) in queues.enumerated() {
            let sender: RawSender
            do {
                sender = try RawSender(uplinks: multipath ? zip(s.uplinks, config.uplinks).map {
                    RawSender.Uplink(device: $0.name, addresses: $1.addresses)
                } : [])
            } catch { throw StartError("\(error)") }
            var c = config
            c.joinPorts = QueueSteering.joinPorts(config.joinPorts, slice: k, of: s.queues)
            var l = logger
            if s.queues > 1 { l[metadataKey: "queue"] = "\(q.queueNumber)" }
            let control = s.queues > 1 ? try Control() : nil
            if let seed = s.seed {
                threads.append((try prepare(Engine(config: c, random: SeededRandom(seed: seed &+ UInt64(k))), s, q, ifaces, sender, l,
                                            control: control), control))
            } else {
                threads.append((try prepare(Engine(config: c, random: SystemRandomNumberGenerator()), s, q, ifaces, sender, l,
                                            control: control), control))
            }
        }
        if threads.count == 1 {
            try threads[0].loop()
        } else {
            try runThreads(threads, logger: logger)
        }
    }

    /// Thread `e`'s daemon, ready: its recorder, the journal of an
    /// earlier instance on its queue (connections reset at both ends), its
    /// link monitor. Returns its event loop (orders from `control` when
    /// there are several threads, else the signals).
    static func prepare<R: RandomNumberGenerator>(_ e: Engine<R>, _ s: DaemonSetup, _ q: NFQueue, _ i: InterfaceMap,
                                                  _ sender: RawSender, _ logger: Logger, control: Control?) throws -> () throws -> Void {
        let d = Daemon(engine: e, queue: q, interfaces: i, sender: sender, logger: logger)
        if let record = s.record { d.recorder = try Recorder(path: record) }
        if !s.stateDir.isEmpty {
            // Connections an earlier instance left (killed): reset at both ends.
            let now = MonotonicClock.now()
            var taken = 0
            let j = try Journal(path: Journal.defaultPath(directory: s.stateDir, queue: q.queueNumber),
                                slots: s.engine.maxConnections + 64) { if e.recover(record: $0, now: now) { taken += 1 } }
            if taken > 0 { logger.notice("resetting at both ends \(taken) connection(s) an earlier instance left (\(j.path))") }
            d.journal = j
        }
        // Link state (multipath: failover) and MTU changes (every uplink).
        d.links = e.config.multipath ? try LinkMonitor() : try? LinkMonitor()
        let every = s.statsInterval > 0 ? EngineSettings.duration(s.statsInterval) : nil
        guard let control else { return { try d.run(statsEvery: every) } }
        return { try d.run(statsEvery: every, control: control.readEnd) }
    }

    /// One thread per queue; this one reads the signals and passes them
    /// on (`Control`), and stops them all when one ends (an error).
    static func runThreads(_ loops: [(loop: () throws -> Void, control: Control?)], logger: Logger) throws {
        var mask = Daemon<NFQueue, SystemRandomNumberGenerator>.signalMask
        let sfd = signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC))
        guard sfd >= 0 else { throw QueueError("signalfd") }
        defer { close(sfd) }
        let ended = try Control()
        var workers: [EngineThread] = []
        for (loop, control) in loops {
            guard let control else { continue }
            let w = EngineThread(loop, control: control, ended: ended)
            guard w.start() else {
                for w in workers { w.control.send(Control.stop); w.join() }
                throw QueueError("pthread_create")
            }
            workers.append(w)
        }
        var fds = [pollfd(fd: sfd, events: Int16(POLLIN), revents: 0), pollfd(fd: ended.readEnd, events: Int16(POLLIN), revents: 0)]
        loop: while true {
            let r = poll(&fds, 2, -1)
            if r < 0 && errno != EINTR { break }
            if fds[1].revents != 0 { break } // a thread ended
            if fds[0].revents != 0 {
                var si = signalfd_siginfo()
                while read(sfd, &si, MemoryLayout<signalfd_siginfo>.size) > 0 {
                    if si.ssi_signo == UInt32(SIGUSR1) {
                        for w in workers { w.control.send(Control.stats) }
                    } else {
                        logger.info("signal \(si.ssi_signo): stopping \(workers.count) threads")
                        break loop
                    }
                }
            }
        }
        for w in workers { w.control.send(Control.stop) }
        for w in workers { w.join() }
        if let e = workers.compactMap(\.error).first { throw e }
    }
}

/// An engine thread of `--queues N`: its event loop, and the error it
/// ended with. It tells `ended` when it ends.
final class EngineThread {
    let body: () throws -> Void
    let control: Control
    let ended: Control
    var error: (any Error)?
    private var thread = pthread_t()

    init(_ body: @escaping () throws -> Void, control: Control, ended: Control) {
        self.body = body
        self.control = control
        self.ended = ended
    }

    func start() -> Bool {
        let me = Unmanaged.passRetained(self).toOpaque()
        let r = pthread_create(&thread, nil, { arg in
            let w = Unmanaged<EngineThread>.fromOpaque(arg!).takeRetainedValue()
            do { try w.body() } catch { w.error = error }
            w.ended.send(Control.stop)
            return nil
        }, me)
        if r != 0 { Unmanaged<EngineThread>.fromOpaque(me).release() }
        return r == 0
    }

    func join() { pthread_join(thread, nil) }
}

/// `replay`: a capture through the engine offline.
public enum ReplayLauncher {
    /// "ADDR/LEN" prefixes; throws a one-line reason for a bad one.
    public static func prefixes(_ texts: [String]) throws(StartError) -> [(IPAddress, Int)] {
        var prefixes: [(IPAddress, Int)] = []
        for p in texts {
            let parts = p.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let a = IPAddress(String(parts[0])), let l = Int(parts[1]) else {
                throw StartError("--lan '\(p)': want ADDR/LEN")
            }
            if let problem = OptionChecks.prefixLength(l, of: a, "--lan") { throw StartError(problem) }
            prefixes.append((a, l))
        }
        return prefixes
    }

    /// Replays `input` into `output`; returns the one-line summary.
    public static func run(input: String, output: String, seed: UInt64, lan: [String], engine: EngineSettings) throws -> String {
        let e = Engine(config: engine.config, random: SeededRandom(seed: seed))
        let r = try Replayer.run(input: input, output: output, engine: e, rule: .init(lanPrefixes: try prefixes(lan)))
        return "replayed \(r.inputs) packets: \(r.outputs) out, \(r.drops) dropped; connections \(r.stats.connectionsOpened) "
            + "(mptcp \(r.stats.connectionsMPTCP), fallback \(r.stats.connectionsFallback))"
    }
}

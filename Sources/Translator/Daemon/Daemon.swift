import CLinux
import Glibc
import Logging
import MPTCPStack
import Tools

/// Monotonic clock for the engine.
public enum MonotonicClock {
    public static func now() -> Instant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Instant(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }
}

/// Which side each input interface is on.
public struct InterfaceMap {
    public var sides: [UInt32: Side] = [:]
    public var names: [UInt32: String] = [:]

    /// Resolves interface names; throws for one that does not exist.
    public init(lan: [String], uplinks: [String]) throws {
        for n in lan { let i = try Self.index(n); sides[i] = .lan; names[i] = n }
        for (k, n) in uplinks.enumerated() { let i = try Self.index(n); sides[i] = .uplink(UInt8(k)); names[i] = n }
    }

    public static func index(_ name: String) throws -> UInt32 {
        let i = if_nametoindex(name)
        guard i != 0 else { throw QueueError(message: "unknown interface '\(name)' (see: ip link)") }
        return i
    }
}

/// The daemon's event loop: queue in, engine, verdicts out; timers; signals.
public final class Daemon<Q: PacketQueue, RNG: RandomNumberGenerator> {
    public let engine: Engine<RNG>
    public let queue: Q
    public let interfaces: InterfaceMap
    public var logger: Logger
    public private(set) var unknownInterface: UInt64 = 0
    public private(set) var verdictErrors: UInt64 = 0
    /// Packets larger than the queue's copy range (passed unchanged).
    public private(set) var truncatedPackets: UInt64 = 0
    /// Writes every input and output packet when set (`--record`).
    public var recorder: Recorder?
    /// Keeps the engine's recovery records for the next instance (`--state-dir`).
    public var journal: Journal? {
        didSet { engine.journaling = journal != nil }
    }

    public let sender: RawSender?
    /// Link state of the uplinks (multipath): changes go to the engine.
    public var links: LinkMonitor?
    private var uplinkUp: [UInt8: Bool] = [:]
    /// The uplinks' interface names (by uplink index) and the MTUs last
    /// passed to the engine (from its configuration on).
    private let uplinkNames: [String]
    private var uplinkMTU: [Int]
    /// Packets held in the queue (`Verdict.hold`): queue id and mark by slot.
    private var heldIDs: [UInt32]
    private var heldMarks: [UInt32]

    public init(engine: Engine<RNG>, queue: Q, interfaces: InterfaceMap, sender: RawSender?, logger: Logger) {
        self.engine = engine
        self.sender = sender
        self.queue = queue
        self.interfaces = interfaces
        self.logger = logger
        var names = Array(repeating: "", count: engine.config.uplinks.count)
        for (index, side) in interfaces.sides {
            if case let .uplink(u) = side, Int(u) < names.count { names[Int(u)] = interfaces.names[index] ?? "" }
        }
        uplinkNames = names
        uplinkMTU = engine.config.uplinks.map(\.mtu)
        heldIDs = Array(repeating: 0, count: engine.config.tuning.maxHeld)
        heldMarks = Array(repeating: 0, count: engine.config.tuning.maxHeld)
    }

    /// The mark for a packet let through: its own with `Rules.seenMark` set
    /// (the rule that drops unseen MPTCP packets from the uplinks lets it
    /// pass); nil when it has the bit already (no attribute needed).
    @inline(__always)
    func seen(_ p: QueuedPacket) -> UInt32? {
        p.mark & Rules.seenMark != 0 ? nil : p.mark | Rules.seenMark
    }

    /// The mark of a packet that leaves rewritten towards `side`: seen, and
    /// towards an uplink (multipath) routed by that uplink's table, the way
    /// the raw sockets bound to it send (Rules.uplinkRouteMark).
    @inline(__always)
    func mark(_ mark: UInt32, towards side: Side) -> UInt32 {
        guard engine.config.multipath, case let .uplink(k) = side else { return mark | Rules.seenMark }
        return (mark & ~Rules.uplinkRouteMask) | Rules.seenMark | Rules.uplinkRouteMark(Int(k))
    }

    /// Handles one queued packet: every packet gets a verdict.
    @inline(__always)
    func process(_ p: QueuedPacket, now: Instant) {
        guard let side = interfaces.sides[p.inputInterface] else {
            unknownInterface &+= 1
            do { try queue.accept(p.id, mark: seen(p)) } catch { verdictErrors &+= 1 }
            return
        }
        if p.truncated {
            // Only part of it reached us: it cannot be rewritten. Counted; the
            // LAN's GRO/GSO size should be capped (README).
            truncatedPackets &+= 1
            do { try queue.accept(p.id, mark: seen(p)) } catch { verdictErrors &+= 1 }
            return
        }
        // Held packets released since the last packet (by a timer, a link
        // event) get their verdicts first: their slots may be taken again now.
        if engine.releases.count > 0 { flushReleases(now: now) }
        let v = engine.handle(packet: p.payload, side: side, gso: p.gso, now: now)
        if let r = recorder { record(r, p, side, v, now) }
        do {
            switch v {
            case .accept: try queue.accept(p.id, mark: seen(p))
            case .drop: try queue.drop(p.id)
            case let .rewrite(hl, off):
                try queue.accept(p.id, mark: seen(p), header: UnsafeRawBufferPointer(rebasing: engine.headerBuffer[0 ..< hl]),
                                 payload: UnsafeRawBufferPointer(rebasing: p.payload[off...]))
            case let .carry(hl):
                try queue.accept(p.id, mark: mark(p.mark, towards: engine.carriedTowards), header: UnsafeRawBufferPointer(rebasing: engine.headerBuffer[0 ..< hl]),
                                 payload: engine.carriedPayload)
                // Its payload is a send buffer's, valid until the next event.
                if !engine.carriedPayload.isEmpty { flushVerdicts() }
            case let .hold(slot):
                // Kept in the queue: its verdict comes with its release.
                heldIDs[slot] = p.id
                heldMarks[slot] = p.mark
            }
        } catch {
            verdictErrors &+= 1
            if verdictErrors < 10 { logger.warning("verdict failed: \(error)") }
        }
        flushOutbox(now: now)
    }

    /// Sends what the engine originated. A packet too big for its
    /// interface (EMSGSIZE) goes back to the engine, which sends its data
    /// again in smaller segments: those are added to the outbox and sent
    /// in the same pass.
    func flushOutbox(now: Instant) {
        // Held packets first: they carry older data than the outbox's.
        flushReleases(now: now)
        // Verdicts given so far leave before what follows them.
        if engine.outbox.count > 0 { flushVerdicts() }
        var i = 0
        while i < engine.outbox.count {
            // Runs of packets through one socket: one system call each.
            if let sender, engine.outbox.count - i > 1 {
                let base = i
                let n = sender.sendMany(count: engine.outbox.count - i) { engine.outbox.packet(base + $0) }
                if let r = recorder {
                    for j in base ..< base + n {
                        let (bytes, side) = engine.outbox.packet(j)
                        r.write(side: side, output: true, at: now, bytes)
                    }
                }
                i += n
                if i == engine.outbox.count { break }
            }
            let (bytes, side) = engine.outbox.packet(i)
            let outcome = sender?.send(bytes, side: side) ?? .sent
            if outcome == .tooBig {
                var mtu: Int?
                if case let .uplink(u) = side { mtu = uplinkMTUChanged(Int(u), now: now) }
                engine.sendFailed(packet: bytes, side: side, mtu: mtu, now: now)
            } else {
                recorder?.write(side: side, output: true, at: now, bytes)
            }
            i += 1
        }
        engine.outbox.removeAll()
        // (A failed send above may have released more.)
        flushReleases(now: now)
        if engine.journalPending, let j = journal { engine.drainJournal { j.write($0, $1) } }
    }

    /// The ACKs the batch made due (`EngineTuning.batchAcks`), after its
    /// verdicts.
    func endOfBatch(now: Instant) {
        while engine.hasBatchedAcks {
            engine.endOfBatch(now: now)
            flushOutbox(now: now)
        }
    }

    /// Sends the verdicts the queue deferred (`NFQueue.batch`).
    func flushVerdicts() {
        let failed = queue.flush()
        if failed > 0 {
            verdictErrors &+= UInt64(failed)
            if verdictErrors < 10 { logger.warning("\(failed) verdict(s) failed: \(String(cString: strerror(errno)))") }
        }
    }

    /// Gives the held packets the engine released their verdicts (sent at
    /// once: their payloads are send buffers', valid until the next event).
    func flushReleases(now: Instant) {
        guard engine.releases.count > 0 else { return }
        defer { flushVerdicts() }
        for i in 0 ..< engine.releases.count {
            let (slot, packet) = engine.releases.release(i)
            do {
                if let packet {
                    try queue.accept(heldIDs[slot], mark: mark(heldMarks[slot], towards: packet.towards), header: packet.header,
                                     payload: packet.payload)
                    recorder?.write(side: packet.towards, output: true, gso: packet.gso, at: now, packet.header, packet.payload)
                } else {
                    try queue.drop(heldIDs[slot])
                }
            } catch {
                verdictErrors &+= 1
                if verdictErrors < 10 { logger.warning("verdict of a held packet failed: \(error)") }
            }
        }
        engine.releases.removeAll()
    }

    /// Uplink `u`'s interface MTU now; a change is passed to the engine.
    /// (Read on a failed send only, and from link messages.)
    private func uplinkMTUChanged(_ u: Int, now: Instant, to known: Int? = nil) -> Int? {
        guard u < uplinkNames.count, let mtu = known ?? InterfaceMTU.of(uplinkNames[u]) else { return nil }
        if mtu != uplinkMTU[u] {
            logger.info("uplink \(u) (\(uplinkNames[u])) MTU \(uplinkMTU[u]) -> \(mtu)")
            uplinkMTU[u] = mtu
            engine.uplink(u, mtu: mtu, now: now)
        }
        return mtu
    }

    private func record(_ r: Recorder, _ p: QueuedPacket, _ side: Side, _ v: Verdict, _ now: Instant) {
        r.write(side: side, output: false, gso: p.gso, at: now, p.payload)
        switch v {
        case .accept: r.write(side: side, output: true, gso: p.gso, at: now, p.payload)
        case .drop: break
        case let .rewrite(hl, off):
            r.write(side: side, output: true, gso: p.gso, at: now, UnsafeRawBufferPointer(rebasing: engine.headerBuffer[0 ..< hl]),
                    UnsafeRawBufferPointer(rebasing: p.payload[off...]))
        case .hold:
            break // (written when released)
        case let .carry(hl):
            r.write(side: side, output: true, gso: p.gso, at: now, UnsafeRawBufferPointer(rebasing: engine.headerBuffer[0 ..< hl]),
                    engine.carriedPayload)
        }
    }

    /// Runs until SIGINT or SIGTERM. `statsEvery` logs counters periodically.
    /// Blocks the daemon's signals in this thread and every thread created
    /// after it; call first thing in main, before any thread exists, so they
    /// are only ever read from the signalfd.
    public static func blockSignals() {
        var mask = signalMask
        pthread_sigmask(SIG_BLOCK, &mask, nil)
    }

    static var signalMask: sigset_t {
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, SIGINT)
        sigaddset(&mask, SIGTERM)
        sigaddset(&mask, SIGUSR1)
        return mask
    }

    /// SIGUSR1's dump of the multipath state, under way: the table slot it
    /// goes on from. One part per loop pass, so that a dump of a full table
    /// (megabytes of log) never holds up the packets.
    private var dumpCursor: Int?
    /// Table slots per part of the dump (each a connection: a line, and a
    /// line per subflow).
    static var dumpSlotsPerPass: Int { 64 }

    /// Writes the next part of the multipath dump, if one is under way.
    func continueDump() {
        guard let cursor = dumpCursor else { return }
        var part = ""
        dumpCursor = engine.multipathState(from: cursor, slots: Self.dumpSlotsPerPass, into: &part)
        if !part.isEmpty { logger.info("multipath state (from slot \(cursor)):\n\(part)") }
    }

    /// A thread of several (`--queues`) takes its orders from `control`,
    /// a pipe the main thread writes to (`Control`), instead of signals.
    public func run(statsEvery: Duration? = nil, control: Int32 = -1) throws {
        let sfd: Int32
        if control >= 0 {
            sfd = control
        } else {
            Self.blockSignals()
            var mask = Self.signalMask
            sfd = signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC))
            guard sfd >= 0 else { throw QueueError("signalfd") }
        }
        defer { if control < 0 { close(sfd) } }
        var fds = [pollfd(fd: queue.fileDescriptor, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: sfd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: links?.fileDescriptor ?? -1, events: Int16(POLLIN), revents: 0)]
        var nextStats = statsEvery.map { MonotonicClock.now() + $0 }
        logger.info("running", metadata: ["queue_fd": "\(queue.fileDescriptor)"])
        loop: while true {
            // Sleep until the engine's next timer (rounded up to the next
            // millisecond, so it has passed when poll returns: no busy loop),
            // at most a second.
            // A dump under way goes on at once.
            var timeout: Int32 = dumpCursor == nil ? 1000 : 0
            if let d = engine.nextDeadline, timeout > 0 {
                let now0 = MonotonicClock.now()
                let ns = d.nanoseconds > now0.nanoseconds ? d.nanoseconds - now0.nanoseconds : 0
                timeout = Int32(min(ns / 1_000_000 + (ns % 1_000_000 == 0 ? 0 : 1), 1000))
            }
            flushVerdicts()
            let r = poll(&fds, 3, timeout)
            if r < 0 && errno != EINTR { throw QueueError("poll") }
            if fds[1].revents != 0 && control >= 0 {
                var order: UInt8 = 0
                var stop = false
                while true {
                    let n = read(sfd, &order, 1)
                    if n == 0 { stop = true } // (the main thread is gone)
                    guard n == 1 else { break }
                    if order == Control.stats {
                        logStats()
                        dumpCursor = 0
                    } else if order == Control.stop {
                        stop = true
                    }
                }
                if stop { logger.info("stopping"); break loop }
            } else if fds[1].revents != 0 {
                var si = signalfd_siginfo()
                while read(sfd, &si, MemoryLayout<signalfd_siginfo>.size) > 0 {
                    if si.ssi_signo == UInt32(SIGUSR1) {
                        // The counters now; the state of each connection in
                        // parts, one per pass (a dump under way starts over).
                        logStats()
                        dumpCursor = 0
                    } else {
                        logger.info("signal \(si.ssi_signo): stopping")
                        break loop
                    }
                }
            }
            if fds[2].revents != 0 { readLinks(now: MonotonicClock.now()) }
            if fds[0].revents != 0 {
                // Drain what is ready, bounded so signals get a turn; timers
                // that come due meanwhile run between reads.
                for _ in 0 ..< 256 {
                    let now = MonotonicClock.now()
                    let n = try queue.receive { p in process(p, now: now) }
                    if n == 0 { break }
                    endOfBatch(now: now)
                    if let d = engine.nextDeadline, d <= now { runTimers(now: now) }
                }
                flushVerdicts()
            }
            let now = MonotonicClock.now()
            runTimers(now: now)
            noteOnce()
            continueDump()
            if let ns = nextStats, let every = statsEvery, ns <= now {
                logStats()
                nextStats = now + every
            }
        }
        logStats()
        recorder?.close()
        if let j = journal {
            if j.live == 0 {
                j.remove()
            } else {
                logger.notice("\(j.live) translated connection(s) left open: the next start resets them at both ends (\(j.path))")
            }
        }
    }

    /// Conditions an operator should hear of, logged the first time the
    /// engine counts them (the counters say how often).
    private var noted: (addAddrNoTS: Bool, addAddrUnsent: Bool, tableFull: Bool) = (false, false, false)
    private func noteOnce() {
        let s = engine.stats
        if s.addAddrWithoutTimestamps > 0 && !noted.addAddrNoTS {
            noted.addAddrNoTS = true
            logger.notice("an uplink address is announced on a pure ACK without timestamps (IPv6 ADD_ADDR with port does not fit beside them); a peer that drops such segments will not join it (counter add_addr_without_ts)")
        }
        if s.addAddrUnsent > 0 && !noted.addAddrUnsent {
            noted.addAddrUnsent = true
            logger.warning("an uplink address could not be announced: no ADD_ADDR form fits (counter add_addr_unsent)")
        }
        if s.tableFull > 0 && !noted.tableFull {
            noted.tableFull = true
            logger.warning("connection table full (--max-connections): new connections pass untranslated (counter table_full)")
        }
    }

    /// Link changes of the uplinks: logged, and passed to the engine.
    func readLinks(now: Instant) {
        links?.read { index, up, mtu in
            guard case let .uplink(u)? = interfaces.sides[index] else { return }
            if let mtu, Int(u) < uplinkMTU.count, mtu != uplinkMTU[Int(u)] {
                _ = uplinkMTUChanged(Int(u), now: now, to: mtu)
                flushOutbox(now: now)
            }
            guard uplinkUp[u] != up else { return }
            let first = uplinkUp[u] == nil
            uplinkUp[u] = up
            if first && up { return } // the state at start
            logger.info("uplink \(u) (\(interfaces.names[index] ?? "?")) \(up ? "up" : "down")")
            engine.uplink(Int(u), isUp: up, now: now)
            flushOutbox(now: now)
        }
    }

    /// Runs the engine's timers that are due (retransmissions, joins,
    /// expiry) and sends what they originated.
    func runTimers(now: Instant) {
        // A pass stops when the engine's outbox is nearly full; what is still
        // due runs once it is sent (bounded: the queue is served meanwhile).
        var passes = 0
        repeat {
            engine.handleTimeout(now: now)
            flushOutbox(now: now)
            passes += 1
        } while passes < 64 && engine.nextDeadline.map({ $0 <= now }) == true
        trimIfCompacted(now: now)
    }

    /// When idle connections gave their buffers back (`compactions`), the
    /// allocator's freed pages go back to the system too, at most once a
    /// second: the rings are mapped each on its own and unmapped when freed
    /// (DaemonLauncher), the smaller pieces sit in the heap until trimmed.
    private var trimmedAt = (compactions: UInt64(0), at: Instant(nanoseconds: 0))
    func trimIfCompacted(now: Instant) {
        let c = engine.stats.compactions
        guard c != trimmedAt.compactions, trimmedAt.at + .seconds(1) <= now else { return }
        trimmedAt = (c, now)
        _ = malloc_give_back()
    }

    /// The stats line's fields: the daemon's own counters, the queue's and
    /// every engine counter (`StatsLine`).
    public func statsFields() -> [(name: String, value: String)] {
        var f: [(name: String, value: String)] = [
            ("conns_open", "\(engine.connectionCount)"),
            ("unknown_iface", "\(unknownInterface)"), ("verdict_errors", "\(verdictErrors)"),
            ("truncated", "\(truncatedPackets)"), ("raw_send_errors", "\(sender?.errors ?? 0)"),
            ("raw_send_calls", "\(sender?.sendCalls ?? 0)"), ("raw_sent", "\(sender?.packetsSent ?? 0)"),
            ("outbox_overflow", "\(engine.outbox.overflow)"), ("journal_skipped", "\(journal?.skipped ?? 0)"),
            ("heap_in_use", "\(malloc_bytes_in_use())"), ("heap_free", "\(malloc_bytes_free())"),
        ]
        for c in queue.counters { f.append((c.name, "\(c.value)")) }
        return f + StatsLine.fields(engine.stats)
    }

    public func logStats() {
        // A name given twice keeps its first value (never a trap).
        let metadata = Logger.Metadata(statsFields().map { ($0.name, Logger.MetadataValue.string($0.value)) },
                                       uniquingKeysWith: { first, _ in first })
        logger.info("stats", metadata: metadata)
        if let sender, sender.lastErrno != 0, sender.errors > 0 {
            logger.info("last raw send error: \(String(cString: strerror(sender.lastErrno)))")
        }
    }
}

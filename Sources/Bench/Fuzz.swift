import ArgumentParser
import Glibc
import MPTCPStack
import Workloads

/// `Bench fuzz`: the seeded live fuzz of the engine (issue 13), timed.
struct FuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuzz",
        abstract: "Mutated packets into live connections through one engine, both roles, one and two uplinks; exits 1 on any invariant failure.",
        discussion: """
            The run is a function of --seed: a failure names its plane and packet, and \
            `Bench fuzz --plane PLANE --seed SEED --packets N` with the number it gives replays it \
            (--trace-from logs packets one by one). A trap prints the same before the backtrace.
            """
    )

    @Option(help: "Packets fed to the engine, genuine and mutated (split evenly between the planes with --plane both).")
    var packets = 1_000_000

    @Option(help: "The seed.")
    var seed: UInt64 = 1

    @Option(help: "Connections open at once in each plane.")
    var connections = 8

    @Option(help: "one-uplink, two-uplink or both.")
    var plane = "both"

    @Option(help: "Log the packets from this index on, one by one (with what the engine made of them).")
    var traceFrom: Int?

    @Option(help: "How many packets --trace-from logs.")
    var traceCount = 40

    @Option(help: "Log every packet of this connection (its number in a failure message).")
    var traceConnection: Int?

    @Option(help: ArgumentHelp("Count violations of this invariant as a known engine issue instead of failing (repeatable): "
                               + LiveFuzz.KnownIssue.allCases.map(\.rawValue).joined(separator: ", ") + "."))
    var tolerate: [String] = []

    func validate() throws {
        guard plane == "both" || LiveFuzz.Plane(rawValue: plane) != nil else {
            throw ValidationError("--plane: one-uplink, two-uplink or both")
        }
        guard packets > 0 else { throw ValidationError("--packets: at least 1") }
        guard (1 ... 10_000).contains(connections) else { throw ValidationError("--connections: 1 to 10000") }
        for t in tolerate where LiveFuzz.KnownIssue(rawValue: t) == nil {
            throw ValidationError("--tolerate: one of " + LiveFuzz.KnownIssue.allCases.map(\.rawValue).joined(separator: ", "))
        }
    }

    func run() throws {
        let planes = plane == "both" ? LiveFuzz.Plane.allCases : [LiveFuzz.Plane(rawValue: plane)!]
        installTrapReporter()
        var total = 0, failures = 0
        var seconds = 0.0
        for (i, p) in planes.enumerated() {
            let n = packets / planes.count + (i < packets % planes.count ? 1 : 0)
            let f = LiveFuzz(plane: p, seed: seed, connections: connections)
            f.progress = trapIndex
            setTrapText(plane: p.rawValue, seed: seed)
            if let t = traceFrom { f.trace = t ..< t + traceCount }
            f.traceConnection = traceConnection
            f.tolerated = Set(tolerate.compactMap(LiveFuzz.KnownIssue.init(rawValue:)))
            var t0 = timespec(), t1 = timespec()
            clock_gettime(CLOCK_MONOTONIC, &t0)
            let r = f.run(packets: n)
            clock_gettime(CLOCK_MONOTONIC, &t1)
            let s = Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) / 1e9
            print(Self.describe(r, seconds: s))
            total += r.packets
            failures += r.failures.count
            seconds += s
        }
        print("fuzz: \(total) packets in \(String(format: "%.1f", seconds)) s (\(Int(Double(total) / max(seconds, 1e-9))) packets/s), seed \(seed): \(failures) invariant failures")
        if failures > 0 { throw ExitCode(1) }
    }

    static func describe(_ r: LiveFuzzReport, seconds: Double) -> String {
        func list(_ names: [String], _ counts: [Int]) -> String {
            zip(names, counts).filter { $0.1 > 0 }.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
        }
        let e = r.engine
        var lines: [String] = []
        lines.append("fuzz \(r.plane): seed \(r.seed), \(r.packets) packets (\(r.mutated) mutated, \(r.genuine) genuine) in "
            + String(format: "%.1f s: %.0f packets/s; %.0f s simulated", seconds, Double(r.packets) / max(seconds, 1e-9), r.simulatedSeconds))
        lines.append("  verdicts: accept \(r.accepts), rewrite \(r.rewrites), drop: "
            + list(DropReason.allCases.map(\.description), r.drops))
        lines.append("  originated: \(r.outboxPackets) packets; timer passes \(r.timerPasses)")
        lines.append("  connections: \(r.connections) (\(r.responderConnections) responder): "
            + list(LiveFuzzReport.outcomeNames, r.outcomes) + "; tracked at the end \(r.tracked)")
        lines.append("  checked: \(r.outputsChecked) packets out; payload bytes at their place: \(r.bytesCheckedDown) towards the LAN "
            + "(\(r.segmentsCheckedDown) segments), \(r.bytesCheckedUp) towards the peer (\(r.segmentsCheckedUp) segments); "
            + "\(r.unmappedUpload) unmapped towards the peer, \(r.bytesBeforeStart) before a stream's start; "
            + "\(r.dataLevelResends) data-level resends by the peer")
        lines.append("  mutations: " + list(LiveFuzzReport.mutationNames, r.mutations))
        lines.append("  resets, by the last mutation before them: " + list(["none"] + LiveFuzzReport.mutationNames, r.resetsAfter))
        lines.append("  engine: dropped invalid \(e.dropped(.invalid)) (out of window \(e.outOfWindow), RST challenged \(e.rstChallenged), "
            + "RST ignored \(e.rstIgnored), MP_FASTCLOSE rejected \(e.fastcloseRejected), DATA_ACK invalid \(e.dataAckInvalid), "
            + "data out of window \(e.dataOutOfWindow)), challenge ACKs \(e.challengeAcks), bad MPTCP \(e.dropped(.badMPTCP)), "
            + "unmapped \(e.dropped(.unmapped)), DSS checksum failed \(e.dssChecksumFailed)")
        lines.append("  engine: reset at both ends \(e.abortedBoth), unknown MPTCP \(e.unknownMPTCP) (resets \(e.unknownResets), "
            + "limited \(e.unknownResetsLimited)), fallbacks \(e.connectionsFallback), connections reset \(e.connectionsReset), "
            + "closed \(e.connectionsClosed), expired \(e.connectionsExpired), half-open expired \(e.halfOpenExpired), "
            + "MP_FASTCLOSE received \(e.fastcloseReceived) sent \(e.fastcloseSent), malformed \(e.malformed), not TCP \(e.notTCP), untracked \(e.untracked)")
        if r.plane == LiveFuzz.Plane.twoUplinks.rawValue {
            lines.append("  engine: subflows opened \(e.subflowsOpened) failed \(e.subflowsFailed), joins sent \(e.joinsSent) rejected \(e.joinsRejected), "
                + "peer joins accepted \(e.joinsAccepted) refused \(e.joinsRefused), REMOVE_ADDR probes \(e.removeAddrProbes) applied "
                + "\(e.removeAddrApplied) ignored \(e.removeAddrIgnored), ADD_ADDR received \(e.addAddrReceived) rejected \(e.addAddrRejected), "
                + "RTOs \(e.rtoExpiries), data-level retransmits \(e.dataLevelRetransmits), LAN retransmits \(e.lanRetransmits), "
                + "dead subflows \(e.deadSubflowsDetected)")
        }
        for (k, n) in r.knownIssues.sorted(by: { $0.key < $1.key }) {
            lines.append("  known engine issue \(k) (tolerated): \(n) times; the first: \(r.firstKnownIssue[k].map { "\($0)" } ?? "")")
        }
        lines.append("  invariant failures: \(r.failures.count)")
        for f in r.failures { lines.append("  FAIL \(f)") }
        return lines.joined(separator: "\n")
    }
}

// MARK: - Reporting a trap

// A trap (a Swift runtime check failing) ends the process; before the
// runtime's own handler prints its backtrace, the packet index and how to
// replay it are written (async-signal-safe: a fixed buffer and write(2)).

nonisolated(unsafe) let trapIndex: UnsafeMutablePointer<Int> = {
    let p = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    p.initialize(to: 0)
    return p
}()
nonisolated(unsafe) let trapText = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
nonisolated(unsafe) var trapTextLength = 0
nonisolated(unsafe) let savedActions = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)

func setTrapText(plane: String, seed: UInt64) {
    let s = Array("fuzz: TRAP; replay with: Bench fuzz --plane \(plane) --seed \(seed) --packets ".utf8).prefix(230)
    for (i, b) in s.enumerated() { trapText[i] = b }
    trapTextLength = s.count
}

func installTrapReporter() {
    for sig in [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGABRT] {
        var sa = sigaction()
        sa.__sigaction_handler.sa_handler = { sig in
            var n = trapIndex.pointee
            var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                         UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &digits) { d in
                var k = d.count - 1
                d[k] = 10 // newline
                repeat { k -= 1; d[k] = UInt8(48 + n % 10); n /= 10 } while n > 0 && k > 0
                _ = write(2, trapText, trapTextLength)
                _ = write(2, d.baseAddress! + k, d.count - k)
            }
            // Back to the previous handler; returning re-runs the trapping
            // instruction (or abort() raises again), which it then handles.
            _ = sigaction(sig, savedActions + Int(sig), nil)
        }
        sigemptyset(&sa.sa_mask)
        sa.sa_flags = 0
        _ = sigaction(sig, &sa, savedActions + Int(sig))
    }
}

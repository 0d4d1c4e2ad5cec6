import MPTCPStack

// The simulated network: a plain TCP client on a LAN link, the gateway
// running the engine, N uplink links, and an MPTCP v1 server beyond them.
//
//   client ==LAN== gateway(Engine) ==uplink 0== server
//                                  ==uplink 1== server ...
//
// Routing mimics the real gateway: what the engine lets through (or
// rewrites) from the LAN leaves by the uplink whose address is the packet's
// source, else by uplink 0 (the initial subflow keeps the client's
// address); what it originates leaves by the side it names; what it lets
// through from an uplink goes to the LAN. The server answers on the link
// that leads to the destination address (uplink k's address -> link k, the
// client's address -> link 0).

/// The gateway: the engine between the LAN link and the uplinks, with its
/// timer driven by `nextDeadline`.
package final class SimGateway {
    package let engine: Engine<SplitMix64>
    private let scheduler: SimScheduler
    private let log: SimLog
    private let uplinkAddresses: [[IPAddress]]
    private var timer: SimTimer!
    package var toLAN: ([UInt8]) -> Void = { _ in }
    package var toUplink: (Int, [UInt8]) -> Void = { _, _ in }
    /// Verdicts by kind ("accept", "rewrite", "drop(reason)").
    package private(set) var verdicts: [String: Int] = [:]
    /// Packets from an uplink addressed to the gateway itself that the
    /// engine let through (the gateway's own stack would get them).
    package private(set) var toGatewayStack = 0

    package init(config: EngineConfig, seed: UInt64, scheduler: SimScheduler, log: SimLog) {
        engine = Engine(config: config, random: SplitMix64(seed: seed))
        self.scheduler = scheduler
        self.log = log
        uplinkAddresses = config.uplinks.map(\.addresses)
        timer = SimTimer(scheduler) { [unowned self] in
            engine.handleTimeout(now: scheduler.now)
            drainOutbox()
            rearm()
        }
    }

    /// The uplink a packet from the LAN side leaves by: the one whose address is its source, else 0.
    private func uplink(forSource bytes: [UInt8]) -> Int {
        guard let a = simAddresses(bytes) else { return 0 }
        return uplinkAddresses.firstIndex { $0.contains(a.source.address) } ?? 0
    }

    /// The last verdict carried a subflow segment: it leaves by the uplink
    /// the engine says (as its raw socket would have sent it; the kernel
    /// routes it by its addresses the same way).
    private var carried = false

    private func handle(_ p: [UInt8], _ side: Side) -> [UInt8]? {
        carried = false
        let v = p.withUnsafeBytes { engine.handle(packet: $0, side: side, gso: false, now: scheduler.now) }
        switch v {
        case .accept:
            verdicts["accept", default: 0] += 1
            return p
        case .drop(let r):
            verdicts["drop(\(r))", default: 0] += 1
            log.note("gateway", "dropped (\(r)) from \(side)")
            return nil
        case let .rewrite(h, o):
            verdicts["rewrite", default: 0] += 1
            guard h > 0, o <= p.count else { log.violation("gateway", "rewrite(\(h), \(o)) of \(p.count) bytes"); return nil }
            return Array(UnsafeRawBufferPointer(rebasing: engine.headerBuffer[0 ..< h])) + p[o...]
        case let .carry(h):
            verdicts["carry", default: 0] += 1
            carried = true
            return Array(UnsafeRawBufferPointer(rebasing: engine.headerBuffer[0 ..< h])) + Array(engine.carriedPayload)
        case .hold:
            verdicts["hold", default: 0] += 1
            return nil
        }
    }

    package func fromLAN(_ p: [UInt8]) {
        if let out = handle(p, .lan) {
            log.note("gateway", "-> uplink: " + (SimSegment(out)?.summary ?? "?"))
            if carried, case let .uplink(u) = engine.carriedTowards { toUplink(Int(u), out) } else { toUplink(uplink(forSource: out), out) }
        }
        drainOutbox()
        rearm()
    }

    package func fromUplink(_ k: Int, _ p: [UInt8]) {
        if let out = handle(p, .uplink(UInt8(k))) {
            if let a = simAddresses(out), uplinkAddresses.contains(where: { $0.contains(a.destination.address) }) {
                toGatewayStack += 1
                log.note("gateway", "to the gateway's own stack: " + (SimSegment(out)?.summary ?? "?"))
            } else {
                log.note("gateway", "-> LAN: " + (SimSegment(out)?.summary ?? "?"))
                toLAN(out)
            }
        }
        drainOutbox()
        rearm()
    }

    private func drainOutbox() {
        for i in 0 ..< engine.outbox.count {
            let (b, side) = engine.outbox.packet(i)
            let bytes = Array(b)
            log.note("gateway", "originated -> \(side): " + (SimSegment(bytes)?.summary ?? "?"))
            switch side {
            case .lan: toLAN(bytes)
            case .uplink(let k): toUplink(Int(k), bytes)
            }
        }
        engine.outbox.removeAll()
        for i in 0 ..< engine.releases.count {
            guard let p = engine.releases.release(i).packet, case let .uplink(k) = p.towards else { continue }
            let bytes = Array(p.header) + Array(p.payload)
            log.note("gateway", "released -> uplink \(k): " + (SimSegment(bytes)?.summary ?? "?"))
            toUplink(Int(k), bytes)
        }
        engine.releases.removeAll()
    }

    private func rearm() { timer.set(engine.nextDeadline) }
}

/// One uplink of a scenario.
package struct SimUplink: Sendable {
    /// Gateway -> server, and server -> gateway.
    package var up: LinkProfile
    package var down: LinkProfile
    /// Intervals (from the start of the run) during which the link is cut.
    package var cuts: [(from: Duration, to: Duration)] = []
    package var backup = false

    package init(up: LinkProfile, down: LinkProfile, cuts: [(from: Duration, to: Duration)] = [], backup: Bool = false) {
        self.up = up; self.down = down; self.cuts = cuts; self.backup = backup
    }

    package init(_ both: LinkProfile, cuts: [(from: Duration, to: Duration)] = []) { self.init(up: both, down: both, cuts: cuts) }
}

/// Everything that defines a run; the same scenario gives the same run.
package struct SimScenario: Sendable {
    package var seed: UInt64
    package var upload = 64 * 1024
    package var download = 64 * 1024
    package var ipv6 = false
    package var lan = LinkProfile(rate: 125_000_000, delay: .microseconds(100))
    /// The LAN towards the client, when it differs from `lan` (client to gateway).
    package var lanToClient: LinkProfile?
    package var uplinks: [SimUplink] = [SimUplink(LinkProfile(rate: 2_500_000, delay: .milliseconds(10)))]
    package var delayedAck = false
    package var dataFinWithData = false
    /// The transfer must be complete by then (simulated time).
    package var deadline: Duration = .seconds(120)
    package var tracing = false
    /// Federation: beyond the uplinks a second engine (responder role,
    /// uplink k = link k) and a plain TCP server behind it, instead of the
    /// MPTCP server model.
    package var federation = false

    package init(seed: UInt64) { self.seed = seed }

    /// For seed sweeps: IPv6 one time in four, delayed ACKs and the
    /// DATA_FIN's form (with the last data or alone) half the time each.
    package mutating func varyEndpoints(_ r: inout SplitMix64) {
        ipv6 = r.next() % 4 == 0
        delayedAck = r.next() % 2 == 0
        dataFinWithData = r.next() % 2 == 0
    }

    /// Endpoints and addresses.
    package var client: Endpoint {
        let port = UInt16(32_768 + seed % 28_000)
        return Endpoint(address: IPAddress(ipv6 ? "fd00:1::10" : "192.168.1.10")!, port: port)
    }
    package var server: Endpoint { Endpoint(address: IPAddress(ipv6 ? "2001:db8:5::5" : "203.0.113.5")!, port: 443) }
    package func uplinkAddress(_ k: Int) -> IPAddress { IPAddress(ipv6 ? "2001:db8:100::\(k + 1)" : "198.51.100.\(k + 1)")! }
    /// The far gateway's uplink addresses (federation).
    package func farUplinkAddress(_ k: Int) -> IPAddress { IPAddress(ipv6 ? "2001:db8:200::\(k + 1)" : "192.0.2.\(k + 1)")! }

    package var summary: String {
        "seed \(seed): \(ipv6 ? "IPv6" : "IPv4"), upload \(upload) B, download \(download) B, \(uplinks.count) uplink(s)"
            + (delayedAck ? ", delayed ACKs" : "") + (dataFinWithData ? ", DATA_FIN with data" : ", DATA_FIN alone")
            + (federation ? ", federation (a second engine and a plain server)" : "")
    }
}

/// What a run produced.
package struct SimOutcome: Sendable {
    package var scenario: SimScenario
    package var completed = false
    package var finishedAfter: Duration?
    package var uploadVerified = 0
    package var downloadVerified = 0
    package var violations: [String] = []
    package var oversize = 0
    package var toGatewayStack = 0
    package var connectionsAfterTimeWait = -1
    package var serverSubflowsClosed = false
    package var joins = 0
    /// The engine's counters at the end.
    package var engineStats = EngineStats()
    /// The client's retransmitted segments.
    package var clientRetransmits = 0
    /// The model server's data-level retransmissions (its DATA_ACK stalled).
    package var serverDataLevelRetransmits = 0
    /// Bytes each uplink delivered, both directions together.
    package var uplinkBytes: [Int] = []
    package var events = 0
    package var details = ""
    package var trace: [String] = []

    /// Every requirement of a clean run.
    package var ok: Bool {
        completed && violations.isEmpty && uploadVerified == scenario.upload && downloadVerified == scenario.download
            && oversize == 0 && connectionsAfterTimeWait == 0 && serverSubflowsClosed
    }

    /// The first thing that went wrong, in one line.
    package var headline: String {
        if let v = violations.first { return v }
        if !completed { return "stalled: not complete by \(scenario.deadline) (upload \(uploadVerified)/\(scenario.upload), download \(downloadVerified)/\(scenario.download))" }
        if oversize > 0 { return "\(oversize) oversize packets" }
        if connectionsAfterTimeWait != 0 { return "engine still tracks \(connectionsAfterTimeWait) connection(s) after time-wait" }
        if !serverSubflowsClosed { return "server subflows not closed" }
        return "ok"
    }

    /// What went wrong, with the scenario to reproduce it and the end of the trace.
    package func report(traceLines: Int) -> String {
        var r = "SIM FAILURE — reproduce with \(scenario.summary)\n"
        r += "completed \(completed) after \(finishedAfter.map { "\($0)" } ?? "-") (deadline \(scenario.deadline)); "
        r += "upload \(uploadVerified)/\(scenario.upload), download \(downloadVerified)/\(scenario.download); "
        r += "oversize \(oversize); engine connections after time-wait \(connectionsAfterTimeWait); "
        r += "server subflows closed \(serverSubflowsClosed); joins \(joins)\n"
        r += violations.map { "  violation: " + $0 }.joined(separator: "\n")
        r += "\n" + details
        if !trace.isEmpty && traceLines > 0 {
            r += "\n--- trace (last \(min(traceLines, trace.count)) events; SIM_VERBOSE=1 prints it all) ---\n"
                + trace.suffix(traceLines).joined(separator: "\n")
        }
        return r
    }
}

/// The whole network of one scenario, wired and ready to run.
package final class SimNetwork {
    package let scenario: SimScenario
    package let scheduler: SimScheduler
    package let log: SimLog
    package let lan: SimLink
    package let uplinks: [SimLink]
    package let client: SimTCPClient
    package let gateway: SimGateway
    /// The MPTCP server model, or (federation) the far gateway, its LAN and
    /// the plain TCP server behind it.
    package let server: SimMPTCPPeer?
    package let farGateway: SimGateway?
    package let farLAN: SimLink?
    package let farHost: SimTCPClient?
    package let start = Instant.seconds(1000)

    package init(_ s: SimScenario) {
        scenario = s
        scheduler = SimScheduler(start: start)
        log = SimLog(scheduler: scheduler, tracing: s.tracing)
        // Independent generators per purpose, all from the seed.
        var seeds = SplitMix64(seed: s.seed)
        lan = SimLink(name: "lan", scheduler: scheduler, seed: seeds.next(), aToB: s.lan, bToA: s.lanToClient ?? s.lan)
        var links: [SimLink] = []
        for (k, u) in s.uplinks.enumerated() {
            let l = SimLink(name: "uplink\(k)", scheduler: scheduler, seed: seeds.next(), aToB: u.up, bToA: u.down)
            let t0 = start
            l.cuts = u.cuts.map { (t0 + $0.from, t0 + $0.to) }
            links.append(l)
        }
        uplinks = links

        var config = EngineConfig()
        config.uplinks = s.uplinks.indices.map { UplinkConfig(addresses: [s.uplinkAddress($0)], backup: s.uplinks[$0].backup) }
        gateway = SimGateway(config: config, seed: seeds.next(), scheduler: scheduler, log: log)

        let up = SimStream(seed: seeds.next(), count: s.upload)
        let down = SimStream(seed: seeds.next(), count: s.download)
        var cc = SimTCPClient.Config(local: s.client, remote: s.server, upload: up, download: down,
                                     isn: UInt32(truncatingIfNeeded: seeds.next()))
        cc.delayedAck = s.delayedAck
        client = SimTCPClient(config: cc, scheduler: scheduler, log: log)
        var sc = SimMPTCPPeer.Config(local: s.server, key: seeds.next(), seed: seeds.next(), upload: up, download: down)
        sc.dataFinWithData = s.dataFinWithData
        if s.federation {
            server = nil
            var fc = EngineConfig()
            fc.uplinks = s.uplinks.indices.map { UplinkConfig(addresses: [s.farUplinkAddress($0)]) }
            farGateway = SimGateway(config: fc, seed: seeds.next(), scheduler: scheduler, log: log)
            farLAN = SimLink(name: "far-lan", scheduler: scheduler, seed: seeds.next(), aToB: s.lan, bToA: s.lan)
            var hc = SimTCPClient.Config(local: s.server, remote: s.client, upload: down, download: up,
                                         isn: UInt32(truncatingIfNeeded: seeds.next()))
            hc.passive = true
            hc.name = "server"
            hc.delayedAck = s.delayedAck
            farHost = SimTCPClient(config: hc, scheduler: scheduler, log: log)
        } else {
            server = SimMPTCPPeer(config: sc, scheduler: scheduler, log: log)
            farGateway = nil; farLAN = nil; farHost = nil
        }

        // Wiring.
        let clientAddress = s.client.address
        let uplinkAddresses = s.uplinks.indices.map { s.uplinkAddress($0) }
        client.transmit = { [unowned self] p in
            log.note("client", "> " + (SimSegment(p)?.summary ?? "?"))
            lan.send(p, .aToB) { [unowned self] in gateway.fromLAN($0) }
        }
        gateway.toLAN = { [unowned self] p in lan.send(p, .bToA) { [unowned self] in client.receive($0) } }
        if let far = farGateway, let farLAN, let farHost {
            gateway.toUplink = { [unowned self] k, p in
                guard k < uplinks.count else { log.violation("gateway", "packet for uplink \(k) of \(uplinks.count)"); return }
                uplinks[k].send(p, .aToB) { far.fromUplink(k, $0) }
            }
            far.toUplink = { [unowned self] k, p in
                guard k < uplinks.count else { log.violation("far gateway", "packet for uplink \(k) of \(uplinks.count)"); return }
                uplinks[k].send(p, .bToA) { [unowned self] in gateway.fromUplink(k, $0) }
            }
            far.toLAN = { p in farLAN.send(p, .aToB) { farHost.receive($0) } }
            farHost.transmit = { [unowned self] p in
                log.note("server", "> " + (SimSegment(p)?.summary ?? "?"))
                farLAN.send(p, .bToA) { far.fromLAN($0) }
            }
            return
        }
        let server = server!
        gateway.toUplink = { [unowned self] k, p in
            guard k < uplinks.count else { log.violation("gateway", "packet for uplink \(k) of \(uplinks.count)"); return }
            uplinks[k].send(p, .aToB) { server.receive($0) }
        }
        server.transmit = { [unowned self] p in
            log.note("server", "> " + (SimSegment(p)?.summary ?? "?"))
            guard let d = simAddresses(p)?.destination.address else { return }
            let k = d == clientAddress ? 0 : uplinkAddresses.firstIndex(of: d)
            guard let k else { log.violation("server", "no route to \(d)"); return }
            uplinks[k].send(p, .bToA) { [unowned self] in gateway.fromUplink(k, $0) }
        }
    }

    /// Runs the transfer to its end (or the deadline), then the time-wait.
    package func run() -> SimOutcome {
        var o = SimOutcome(scenario: scenario)
        farHost?.listen()
        client.connect()
        o.completed = scheduler.run(until: start + scenario.deadline) { client.done && (server?.done ?? farHost!.done) }
        if o.completed { o.finishedAfter = scheduler.now.since(start) }
        let st = gateway.engine.stats
        let engineState = gateway.engine.multipathState.isEmpty ? "" : gateway.engine.multipathState
            + "  stats: rto \(st.rtoExpiries) fastRetransmits \(st.fastRetransmits) retransmits \(st.retransmits) reinjected \(st.reinjectedBytes) "
            + "dataLevelRetransmits \(st.dataLevelRetransmits) subflowsFailed \(st.subflowsFailed) released \(st.subflowsReleased) joins \(st.joinsSent)\n"
        // Let the closing handshakes and the engine's time-wait run out.
        scheduler.run(until: scheduler.now + gateway.engine.config.timeWait + .seconds(70))
        o.uploadVerified = server?.uploadVerified ?? farHost!.downloadVerified
        o.downloadVerified = client.downloadVerified
        o.violations = log.violations
        o.oversize = ([lan] + uplinks + (farLAN.map { [$0] } ?? [])).reduce(0) { $0 + $1.counters(.aToB).oversize + $1.counters(.bToA).oversize }
        o.toGatewayStack = gateway.toGatewayStack
        o.connectionsAfterTimeWait = gateway.engine.connectionCount + (farGateway?.engine.connectionCount ?? 0)
        // (Federation: the far engine's subflows are closed when it forgets the connection.)
        o.serverSubflowsClosed = server?.subflowsClosed ?? (farGateway!.engine.connectionCount == 0)
        o.joins = server?.joinsAccepted ?? Int(farGateway!.engine.stats.joinsAccepted)
        o.engineStats = gateway.engine.stats
        o.clientRetransmits = client.sender.retransmittedSegments
        o.serverDataLevelRetransmits = server?.dataLevelRetransmits ?? 0
        o.uplinkBytes = uplinks.map { $0.counters(.aToB).deliveredBytes + $0.counters(.bToA).deliveredBytes }
        o.events = scheduler.eventsRun
        var d = "client: finAcked \(client.finAcked) finReceived \(client.finReceived) uploadAcked \(client.uploadAcked) \(client.senderStats)\n"
        if let server {
            d += "server: done \(server.done) dataFinReceived \(server.dataFinReceived) dataFinAcked \(server.dataFinAcked) \(server.subflowStats)\n"
        }
        if let farHost, let farGateway {
            d += "server (plain, behind the far gateway): done \(farHost.done) finAcked \(farHost.finAcked) finReceived \(farHost.finReceived) \(farHost.senderStats)\n"
            d += "far gateway: \(farGateway.verdicts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))\n"
            if !farGateway.engine.multipathState.isEmpty { d += "far engine:\n" + farGateway.engine.multipathState }
        }
        d += "gateway: \(gateway.verdicts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")), to own stack \(gateway.toGatewayStack)\n"
        for l in [lan] + uplinks + (farLAN.map { [$0] } ?? []) {
            d += "\(l.name) a->b: \(l.counters(.aToB))\n\(l.name) b->a: \(l.counters(.bToA))\n"
        }
        if !engineState.isEmpty { d += "engine at the end of the transfer:\n" + engineState }
        o.details = d
        o.trace = log.trace
        return o
    }
}

/// Runs a scenario; on failure runs it again with tracing, for the report.
package func simulate(_ s: SimScenario) -> SimOutcome {
    let o = SimNetwork(s).run()
    if o.ok || s.tracing { return o }
    var t = s
    t.tracing = true
    return SimNetwork(t).run()
}

import MPTCPStack
import Testing

// Send/expect harness for the Engine: packets are built from values
// (TCPPacket + fixLengthsAndChecksums + emitted()), fed to the engine with an
// explicit clock and a seeded generator, and whatever comes out (the verdict's
// packet and the outbox) is decoded and checked against the invariants every
// output must satisfy.

// MARK: - Building packets

extension Endpoint {
    /// "192.0.2.1" or "2001:db8::1" and a port (traps on bad text: a test bug).
    package init(_ text: String, _ port: UInt16) {
        self.init(address: IPAddress(text)!, port: port)
    }
}

/// One IPv4 or IPv6 packet carrying TCP, lengths and checksums filled in.
package func makeTCPPacket(from src: Endpoint, to dst: Endpoint, seq: UInt32, ack: UInt32, flags: UInt8,
                   window: UInt16 = 502, options: [TCPOption] = [], payload: [UInt8] = [],
                   ipv4Options: [UInt8] = [], ipv6ExtensionHeaders: [UInt8] = [],
                   identification: UInt16 = 0x1234) -> [UInt8] {
    var opts = TCPOptionList()
    for o in options { precondition(opts.append(o)) }
    let tcp = TCPHeader(sourcePort: src.port, destinationPort: dst.port, seq: TCPSeq(seq), ack: TCPSeq(ack),
                        flags: flags, window: window, options: opts)
    let ip: TCPPacket.IPHeader
    switch (src.address, dst.address) {
    case let (.v4(s), .v4(d)):
        ip = .v4(IPv4Header(totalLength: 0, identification: identification, source: s, destination: d,
                            options: InlineBytes40(ipv4Options)!))
    case let (.v6(s), .v6(d)):
        // With extension headers, the first one's Next Header must lead to TCP.
        ip = .v6(IPv6Header(payloadLength: 0, nextHeader: ipv6ExtensionHeaders.isEmpty ? IPProtocol.tcp : 60,
                            source: s, destination: d))
    default:
        preconditionFailure("mixed address families")
    }
    var p = TCPPacket(ipHeader: ip, extensionHeaders: ipv6ExtensionHeaders, tcpHeader: tcp, payload: payload)
    p.fixLengthsAndChecksums()
    return try! p.emitted()
}

/// IPv6 destination options header (8 bytes: PadN) whose Next Header is TCP.
package let destinationOptionsToTCP: [UInt8] = [IPProtocol.tcp, 0, 1, 4, 0, 0, 0, 0]

/// Deterministic payload bytes (8 per generator step: cheap even in debug builds).
package func randomBytes(_ n: Int, _ rng: inout SplitMix64) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: n) { buf, count in
        var i = 0
        while i < n {
            var w = rng.next()
            for _ in 0 ..< min(8, n - i) {
                buf[i] = UInt8(truncatingIfNeeded: w)
                w >>= 8
                i += 1
            }
        }
        count = n
    }
}

// MARK: - Decoding what comes out

/// A packet the engine let through or originated, decoded.
package struct Decoded {
    package let bytes: [UInt8]
    package let packet: TCPPacket

    package init?(_ bytes: [UInt8]) {
        guard let p = parsePacket(bytes).value else { return nil }
        self.bytes = bytes
        packet = p
    }

    package var tcp: TCPHeader { packet.tcpHeader }
    package var seq: UInt32 { tcp.seq.rawValue }
    package var ack: UInt32 { tcp.ack.rawValue }
    package var flags: UInt8 { tcp.flags }
    package var window: UInt16 { tcp.window }
    package var payload: [UInt8] { packet.payload }
    package var options: [TCPOption] { tcp.options.array }
    package var mptcp: [MPTCPOption] { options.compactMap { if case .mptcp(let m) = $0 { return m } else { return nil } } }
    package var mpCapable: MPCapable? { mptcp.lazy.compactMap { if case .mpCapable(let x) = $0 { return x } else { return nil } }.first }
    package var dss: DSS? { mptcp.lazy.compactMap { if case .dss(let x) = $0 { return x } else { return nil } }.first }
    package var mss: UInt16? { options.lazy.compactMap { if case .maxSegmentSize(let x) = $0 { return x } else { return nil } }.first }
    /// The TCP option area's length in bytes.
    package var optionLength: Int { tcp.encodedLength - 20 }

    package var source: Endpoint {
        switch packet.ipHeader {
        case .v4(let h): return Endpoint(address: .v4(h.source), port: tcp.sourcePort)
        case .v6(let h): return Endpoint(address: .v6(h.source), port: tcp.sourcePort)
        }
    }

    package var destination: Endpoint {
        switch packet.ipHeader {
        case .v4(let h): return Endpoint(address: .v4(h.destination), port: tcp.destinationPort)
        case .v6(let h): return Endpoint(address: .v6(h.destination), port: tcp.destinationPort)
        }
    }
}

/// What one event produced.
package struct EngineEvent {
    package let input: [UInt8]
    package let verdict: Verdict
    /// The packet that leaves: the input (accept), the rewritten packet
    /// (rewrite), nothing (drop).
    package let output: [UInt8]?
    /// Packets the engine originated during the event, with their side.
    package let outbox: [(bytes: [UInt8], side: Side)]
    /// The side a `.carry` verdict's packet goes to.
    package var carriedTowards = Side.lan

    /// Held packets released during the event: what each became (nil:
    /// dropped), and its side.
    package var released: [(bytes: [UInt8]?, side: Side)] = []

    /// What went out towards each side: a carried packet (the oldest data,
    /// first), released held packets, then the outbox.
    package var sent: [(bytes: [UInt8], side: Side)] {
        let rel = released.compactMap { r in r.bytes.map { ($0, r.side) } }
        if case .carry = verdict, let o = output { return [(o, carriedTowards)] + rel + outbox }
        return rel + outbox
    }

    package var decoded: Decoded? { output.flatMap(Decoded.init) }

    package var isRewrite: Bool { if case .rewrite = verdict { return true } else { return false } }
    package var isCarry: Bool { if case .carry = verdict { return true } else { return false } }

    /// The rewritten packet, decoded; records an issue unless the verdict is `.rewrite`.
    package func rewritten(sourceLocation: SourceLocation = #_sourceLocation) throws -> Decoded {
        guard case .rewrite = verdict else {
            Issue.record("expected .rewrite, got \(verdict)", sourceLocation: sourceLocation)
            throw HarnessError.unexpectedVerdict
        }
        return try #require(decoded, sourceLocation: sourceLocation)
    }
}

package enum HarnessError: Error { case unexpectedVerdict }

// MARK: - Invariants

/// How much of an output packet to check.
package enum OutputCheck {
    /// Everything: parses, IP lengths, IPv4 header checksum, TCP checksum,
    /// option area <= 40 bytes, every option decodes.
    case full
    /// For outputs of fuzzed inputs: as `.full`, but the input's own
    /// malformed (yet well-delimited) options and trailing bytes may pass.
    case structural
    /// Nothing (garbage accepted unchanged).
    case none
}

/// The invariants of a packet leaving the translator. `gsoPartial`: a GSO
/// super-segment, whose TCP checksum field must hold the folded pseudo-header
/// sum for the kernel to complete.
package func checkOutputInvariants(_ bytes: [UInt8], gsoPartial: Bool, check: OutputCheck = .full,
                           sourceLocation: SourceLocation = #_sourceLocation) {
    guard check != .none else { return }
    bytes.withUnsafeBytes { raw in
        let v: TCPPacketView
        do { v = try TCPPacketView(raw) } catch {
            Issue.record("output does not parse as TCP/IP: \(error); \(hex(Array(bytes.prefix(80))))", sourceLocation: sourceLocation)
            return
        }
        switch v.family {
        case .v4:
            guard let ip = try? IPv4PacketView(raw) else { Issue.record("IPv4 view", sourceLocation: sourceLocation); return }
            #expect(ip.headerChecksumValid, "IPv4 header checksum", sourceLocation: sourceLocation)
            if check == .full { #expect(Int(ip.totalLength) == raw.count, "IPv4 total length", sourceLocation: sourceLocation) }
        case .v6:
            guard let ip = try? IPv6PacketView(raw) else { Issue.record("IPv6 view", sourceLocation: sourceLocation); return }
            if check == .full { #expect(40 + Int(ip.payloadLength) == raw.count, "IPv6 payload length", sourceLocation: sourceLocation) }
        }
        if gsoPartial {
            let pseudo = TCPChecksum.pseudoHeader(source: v.source, destination: v.destination, length: v.tcp.bytes.count)
            #expect(v.tcp.checksum == pseudo.folded, "GSO: pseudo-header sum in the checksum field", sourceLocation: sourceLocation)
        } else {
            #expect(v.tcpChecksumValid, "TCP checksum", sourceLocation: sourceLocation)
        }
        #expect(v.tcp.headerLength >= 20 && v.tcp.headerLength - 20 <= 40, "option area", sourceLocation: sourceLocation)
        for e in TCPOptionIterator(v.tcp.optionArea) {
            #expect(e.fault == nil, "option structure fault \(String(describing: e.fault))", sourceLocation: sourceLocation)
            if check == .full, e.fault == nil, case .malformed(let why, _) = e.option {
                Issue.record("option kind \(e.kind) does not decode: \(why)", sourceLocation: sourceLocation)
            }
        }
    }
}

/// True when the bytes parse as TCP/IP and the TCP checksum verifies.
package func tcpChecksumOK(_ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { raw in (try? TCPPacketView(raw))?.tcpChecksumValid ?? false }
}

// MARK: - The harness

/// One engine, its clock, and the event loop a daemon would run.
package final class EngineHarness {
    /// After the default 60 s time-wait, a closed connection is gone from the table.
    package func expectForgottenAfterTimeWait(sourceLocation: SourceLocation = #_sourceLocation) {
        advance(.seconds(60))
        runTimers()
        #expect(engine.connectionCount == 0, sourceLocation: sourceLocation)
    }

    package let engine: Engine<SplitMix64>
    package private(set) var now: Instant
    /// Events handled so far.
    package private(set) var events = 0

    package init(seed: UInt64 = 1, config: EngineConfig = EngineConfig(), start: Instant = .seconds(1000)) {
        engine = Engine(config: config, random: SplitMix64(seed: seed))
        now = start
    }

    /// The n-th key the engine's generator yields (the engine draws one per
    /// new connection, barring token collisions).
    package static func key(seed: UInt64, index: Int = 0) -> UInt64 {
        var r = SplitMix64(seed: seed)
        var k: UInt64 = 0
        for _ in 0 ... index { k = r.next() }
        return k
    }

    package func advance(_ d: Duration) { now = now + d }
    package func advance(to t: Instant) { precondition(t >= now); now = t }

    /// Runs the engine's timers at the current time.
    package func runTimers() { engine.handleTimeout(now: now) }

    /// The held packets released since the last call: what each became
    /// (nil: dropped) and its side; the list is cleared.
    package func takeReleases() -> [(bytes: [UInt8]?, side: Side)] {
        var r: [(bytes: [UInt8]?, side: Side)] = []
        for i in 0 ..< engine.releases.count {
            if let p = engine.releases.release(i).packet {
                let out = Array(p.header) + Array(p.payload)
                checkOutputInvariants(out, gsoPartial: p.gso)
                r.append((out, p.towards))
            } else {
                r.append((nil, .lan))
            }
        }
        engine.releases.removeAll()
        return r
    }

    /// Feeds one packet. Rewritten outputs and originated packets are always
    /// checked against the invariants; an accepted input is checked with
    /// `acceptedCheck` (a well-formed input must pass through well-formed).
    @discardableResult
    package func send(_ p: [UInt8], _ side: Side, gso: Bool = false, acceptedCheck: OutputCheck = .full,
              rewriteCheck: OutputCheck = .full, sourceLocation: SourceLocation = #_sourceLocation) -> EngineEvent {
        events += 1
        let verdict = p.withUnsafeBytes { engine.handle(packet: $0, side: side, gso: gso, now: now) }
        var output: [UInt8]?
        switch verdict {
        case .accept:
            output = p
            // A passed-through GSO input keeps its (complete) checksum.
            checkOutputInvariants(p, gsoPartial: false, check: acceptedCheck, sourceLocation: sourceLocation)
        case .drop:
            output = nil
        case let .rewrite(hl, off):
            #expect(hl > 0 && off <= p.count, "rewrite(\(hl), \(off)) of \(p.count) bytes", sourceLocation: sourceLocation)
            let out = Array(UnsafeRawBufferPointer(rebasing: engine.headerBuffer[0 ..< hl])) + p[min(off, p.count)...]
            output = out
            checkOutputInvariants(out, gsoPartial: gso, check: rewriteCheck, sourceLocation: sourceLocation)
            // The 4-tuple never changes (multipath moves a joined subflow's
            // segments onto the client's connection).
            if !engine.config.multipath, let a = Decoded(p), let b = Decoded(out) {
                #expect(a.source == b.source && a.destination == b.destination, "4-tuple changed", sourceLocation: sourceLocation)
            }
        case let .carry(hl):
            #expect(hl > 0 && engine.config.multipath, "carry(\(hl))", sourceLocation: sourceLocation)
            let out = Array(UnsafeRawBufferPointer(rebasing: engine.headerBuffer[0 ..< hl])) + Array(engine.carriedPayload)
            output = out
            checkOutputInvariants(out, gsoPartial: gso, check: rewriteCheck, sourceLocation: sourceLocation)
        case .hold:
            #expect(engine.config.multipath, "hold", sourceLocation: sourceLocation)
            output = nil
        }
        var outbox: [(bytes: [UInt8], side: Side)] = []
        for i in 0 ..< engine.outbox.count {
            let (b, s) = engine.outbox.packet(i)
            outbox.append((Array(b), s))
            checkOutputInvariants(Array(b), gsoPartial: false, sourceLocation: sourceLocation)
        }
        engine.outbox.removeAll()
        let released = takeReleases()
        var event = EngineEvent(input: p, verdict: verdict, output: output, outbox: outbox)
        event.released = released
        if case .carry = verdict { event.carriedTowards = engine.carriedTowards }
        return event
    }

    @discardableResult
    package func lan(_ p: [UInt8], gso: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) -> EngineEvent {
        send(p, .lan, gso: gso, sourceLocation: sourceLocation)
    }

    @discardableResult
    package func peer(_ p: [UInt8], gso: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) -> EngineEvent {
        send(p, .uplink(0), gso: gso, sourceLocation: sourceLocation)
    }
}

// MARK: - A scripted connection

/// Both ends of one connection as the test plays them: the plain TCP client
/// on the LAN and the MPTCP v1 peer. Sequence numbers passed to the builders
/// are relative to the sender's ISN (`seq`) and to the receiver's (`ack`);
/// timestamps advance by one per packet built.
package struct TestConn {
    package var client: Endpoint
    package var server: Endpoint
    package var clientISN: UInt32
    package var serverISN: UInt32
    package var peerKey: UInt64
    package var timestamps = true
    package var clientTS: UInt32 = 100_000
    package var peerTS: UInt32 = 700_000
    package var window: UInt16 = 502

    package init(client: Endpoint = Endpoint("192.168.1.10", 40_001), server: Endpoint = Endpoint("203.0.113.5", 443),
         clientISN: UInt32 = 0x1000_0000, serverISN: UInt32 = 0x7000_0000, peerKey: UInt64 = 0xA78A_B8B1_3030_D837) {
        self.client = client; self.server = server
        self.clientISN = clientISN; self.serverISN = serverISN; self.peerKey = peerKey
    }

    package var remoteIDSN: UInt64 { MPTCPCrypto.idsn(key: peerKey) }
    /// Absolute client / server sequence numbers from relative ones.
    package func cs(_ rel: UInt32) -> UInt32 { clientISN &+ rel }
    package func ss(_ rel: UInt32) -> UInt32 { serverISN &+ rel }

    package var isV6: Bool { if case .v6 = client.address { return true } else { return false } }
    /// The MSS the test ends announce.
    package var mss: UInt16 { isV6 ? 1440 : 1460 }

    /// What a client packet's options start with (after the handshake).
    package var clientTSOptions: [TCPOption] { timestamps ? [.noOperation, .noOperation, .timestamps(value: clientTS, echoReply: peerTS)] : [] }
    package var peerTSOptions: [TCPOption] { timestamps ? [.noOperation, .noOperation, .timestamps(value: peerTS, echoReply: clientTS)] : [] }

    /// Linux's SYN options.
    package var synOptions: [TCPOption] {
        [.maxSegmentSize(mss), .sackPermitted] + (timestamps ? [.timestamps(value: clientTS, echoReply: 0)] : [.noOperation, .noOperation])
            + [.noOperation, .windowScale(7)]
    }

    package var synAckOptions: [TCPOption] {
        [.maxSegmentSize(mss), .sackPermitted] + (timestamps ? [.timestamps(value: peerTS, echoReply: clientTS)] : [.noOperation, .noOperation])
            + [.noOperation, .windowScale(7)]
    }

    package mutating func syn(options: [TCPOption]? = nil, payload: [UInt8] = []) -> [UInt8] {
        clientTS &+= 1
        return makeTCPPacket(from: client, to: server, seq: clientISN, ack: 0, flags: TCPFlags.syn,
                             window: 64_240, options: options ?? synOptions, payload: payload)
    }

    package mutating func synAck(mpCapable: MPCapable?) -> [UInt8] {
        peerTS &+= 1
        return makeTCPPacket(from: server, to: client, seq: serverISN, ack: clientISN &+ 1, flags: TCPFlags.syn | TCPFlags.ack,
                             window: 65_160, options: synAckOptions + (mpCapable.map { [.mptcp(.mpCapable($0))] } ?? []))
    }

    /// The SYN/ACK of an MPTCP v1 peer (Linux: flag H only).
    package mutating func synAck() -> [UInt8] { synAck(mpCapable: MPCapable(version: 1, flags: MPCapable.flagHMACSHA256, senderKey: peerKey)) }

    /// A client segment; seq relative to the client ISN, ack to the server's.
    package mutating func fromClient(seq: UInt32, ack: UInt32, flags: UInt8 = TCPFlags.ack, options: [TCPOption] = [],
                             payload: [UInt8] = []) -> [UInt8] {
        clientTS &+= 1
        return makeTCPPacket(from: client, to: server, seq: cs(seq), ack: ss(ack), flags: flags, window: window,
                             options: clientTSOptions + options, payload: payload)
    }

    /// A peer segment with the given MPTCP options; seq relative to the
    /// server ISN, ack to the client's.
    package mutating func fromPeer(seq: UInt32, ack: UInt32, flags: UInt8 = TCPFlags.ack, mptcp: [MPTCPOption] = [],
                           payload: [UInt8] = []) -> [UInt8] {
        peerTS &+= 1
        return makeTCPPacket(from: server, to: client, seq: ss(seq), ack: cs(ack), flags: flags, window: window,
                             options: peerTSOptions + mptcp.map { .mptcp($0) }, payload: payload)
    }
}

extension EngineHarness {
    /// SYN, SYN/ACK and third ACK, each checked briefly; returns the key the
    /// engine chose for the connection (read off the third ACK).
    package func handshake(_ c: inout TestConn, sourceLocation: SourceLocation = #_sourceLocation) throws -> UInt64 {
        let syn = try lan(c.syn(), sourceLocation: sourceLocation).rewritten(sourceLocation: sourceLocation)
        #expect(syn.mpCapable == MPCapable(version: 1, flags: MPCapable.flagHMACSHA256), sourceLocation: sourceLocation)
        let sa = try peer(c.synAck(), sourceLocation: sourceLocation).rewritten(sourceLocation: sourceLocation)
        #expect(sa.mptcp.isEmpty, sourceLocation: sourceLocation)
        let third = try lan(c.fromClient(seq: 1, ack: 1), sourceLocation: sourceLocation).rewritten(sourceLocation: sourceLocation)
        let mpc = try #require(third.mpCapable, sourceLocation: sourceLocation)
        #expect(mpc.receiverKey == c.peerKey, sourceLocation: sourceLocation)
        return try #require(mpc.senderKey, sourceLocation: sourceLocation)
    }
}

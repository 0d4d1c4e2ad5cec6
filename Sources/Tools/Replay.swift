import MPTCPStack

/// Records the daemon's inputs and outputs to a pcap (Linux cooked v2), so a
/// run can be replayed offline: the interface-index field carries the side
/// (1 = LAN, 100 + k = uplink k) and the packet type says input (0, "to us")
/// or output (4, "outgoing").
public final class Recorder {
    private let writer: PcapWriter
    private var header = [UInt8](repeating: 0, count: 20)

    public static func sideCode(_ s: Side) -> UInt32 {
        switch s { case .lan: return 1; case .uplink(let k): return 100 + UInt32(k) }
    }

    public static func side(ofCode c: UInt32) -> Side? {
        if c == 1 { return .lan }
        if c >= 100 && c < 100 + 256 { return .uplink(UInt8(c - 100)) }
        return nil
    }

    public init(path: String) throws {
        writer = try PcapWriter(path: path, linkType: .linuxSLL2, snaplen: 262_144)
    }

    /// Writes `parts` concatenated as one frame.
    public func write(side: Side, output: Bool, gso: Bool = false, at t: Instant, _ a: UnsafeRawBufferPointer,
                      _ b: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        let first = a.count > 0 ? a[0] >> 4 : 4
        let proto: UInt16 = first == 6 ? 0x86dd : 0x0800
        let code = Self.sideCode(side)
        header[0] = UInt8(proto >> 8); header[1] = UInt8(proto & 0xff)
        header[4] = UInt8(code >> 24); header[5] = UInt8((code >> 16) & 0xff)
        header[6] = UInt8((code >> 8) & 0xff); header[7] = UInt8(code & 0xff)
        header[8] = 0xff; header[9] = 0xfe // ARPHRD_NONE
        header[10] = output ? 4 : 0
        header[3] = gso ? 1 : 0 // reserved field: marks a GSO super-segment
        var frame = header
        frame.append(contentsOf: a)
        frame.append(contentsOf: b)
        frame.withUnsafeBytes {
            writer.write($0, seconds: Int(t.nanoseconds / 1_000_000_000), microseconds: Int(t.nanoseconds % 1_000_000_000 / 1000))
        }
    }

    public func close() { writer.close() }
}

/// Feeds a capture through the engine offline and writes what it emits.
public enum Replayer {
    public struct Result {
        public var inputs = 0
        public var outputs = 0
        public var drops = 0
        public var stats = EngineStats()
    }

    /// Where an input frame came from: the recorder's side code (cooked v2
    /// captures made with `--record`), else the LAN prefixes given.
    public struct SideRule {
        public var lanPrefixes: [(IPAddress, Int)]
        public init(lanPrefixes: [(IPAddress, Int)]) { self.lanPrefixes = lanPrefixes }

        public func isLAN(_ a: IPAddress) -> Bool {
            lanPrefixes.contains { p, len in Self.matches(a, p, len) }
        }

        static func matches(_ a: IPAddress, _ p: IPAddress, _ len: Int) -> Bool {
            switch (a, p) {
            case let (.v4(x), .v4(y)):
                let mask: UInt32 = len == 0 ? 0 : ~UInt32(0) << UInt32(32 - len)
                return x.rawValue & mask == y.rawValue & mask
            case let (.v6(x), .v6(y)):
                let mh: UInt64 = len == 0 ? 0 : (len >= 64 ? ~0 : ~UInt64(0) << UInt64(64 - len))
                let ml: UInt64 = len <= 64 ? 0 : (len >= 128 ? ~0 : ~UInt64(0) << UInt64(128 - len))
                return x.high & mh == y.high & mh && x.low & ml == y.low & ml
            default: return false
            }
        }
    }

    public static func run<RNG: RandomNumberGenerator>(input: String, output: String, engine: Engine<RNG>,
                                                       rule: SideRule) throws -> Result {
        let reader = try PcapReader(path: input)
        guard let lt = reader.linkType else { throw PcapError("\(input): unsupported link type \(reader.linkTypeRaw)") }
        let rec = try Recorder(path: output)
        defer { rec.close() }
        var r = Result()
        while let f = try reader.next() {
            let now = Instant(nanoseconds: UInt64(f.seconds) * 1_000_000_000 + UInt64(f.microseconds) * 1000)
            var side: Side?
            var gso = false
            if lt == .linuxSLL2 && f.data.count >= 20 {
                gso = f.data[3] & 1 != 0
                if f.data[10] != 0 { continue } // an output of the recorded run
                let code = UInt32(f.data[4]) << 24 | UInt32(f.data[5]) << 16 | UInt32(f.data[6]) << 8 | UInt32(f.data[7])
                side = Recorder.side(ofCode: code)
            }
            guard let ip = try? lt.ipPayload(f.data) else { continue }
            if side == nil, let v = try? TCPPacketView(ip) {
                side = rule.isLAN(v.source) ? .lan : .uplink(0)
                gso = ip.count > 1500
            }
            guard let side else { continue }
            r.inputs += 1
            rec.write(side: side, output: false, gso: gso, at: now, ip)
            switch engine.handle(packet: ip, side: side, gso: gso, now: now) {
            case .accept:
                r.outputs += 1
                rec.write(side: side, output: true, gso: gso, at: now, ip)
            case .drop:
                r.drops += 1
            case let .rewrite(hl, off):
                r.outputs += 1
                rec.write(side: side, output: true, gso: gso, at: now, UnsafeRawBufferPointer(rebasing: engine.headerBuffer[0 ..< hl]),
                          UnsafeRawBufferPointer(rebasing: ip[off...]))
            case let .carry(hl):
                r.outputs += 1
                rec.write(side: side, output: true, gso: gso, at: now, UnsafeRawBufferPointer(rebasing: engine.headerBuffer[0 ..< hl]),
                          engine.carriedPayload)
            case .hold:
                r.drops += 1 // for now: its release is an output
            }
            Self.writeReleases(engine, rec, at: now, &r)
            // As the daemon does: timer passes until nothing is due (a pass
            // stops when the outbox is nearly full).
            var passes = 0
            repeat {
                engine.handleTimeout(now: now)
                for i in 0 ..< engine.outbox.count {
                    let (bytes, s) = engine.outbox.packet(i)
                    r.outputs += 1
                    rec.write(side: s, output: true, at: now, bytes)
                }
                engine.outbox.removeAll()
                Self.writeReleases(engine, rec, at: now, &r)
                passes += 1
            } while passes < 64 && engine.nextDeadline.map({ $0 <= now }) == true
        }
        r.stats = engine.stats
        return r
    }

    /// Held packets the last event released: each that leaves is an output.
    static func writeReleases<RNG: RandomNumberGenerator>(_ engine: Engine<RNG>, _ rec: Recorder, at now: Instant, _ r: inout Result) {
        for i in 0 ..< engine.releases.count {
            if let p = engine.releases.release(i).packet {
                r.outputs += 1
                rec.write(side: p.towards, output: true, gso: p.gso, at: now, p.header, p.payload)
            }
        }
        engine.releases.removeAll()
    }
}

import MPTCPStack

// Packets, byte streams and bookkeeping for the live fuzz (LiveFuzz.swift):
// everything here is deterministic and independent of the engine.

// MARK: - Randomness

extension SeededRandom {
    /// A value in `0 ..< n` (n > 0).
    @inline(__always) mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    /// True with probability `percent` / 100.
    @inline(__always) mutating func percent(_ p: Int) -> Bool { below(100) < p }
    /// True with probability 1 / n.
    @inline(__always) mutating func oneIn(_ n: Int) -> Bool { below(n) == 0 }
    mutating func u32() -> UInt32 { UInt32(truncatingIfNeeded: next()) }
    mutating func u16() -> UInt16 { UInt16(truncatingIfNeeded: next()) }
    mutating func u8() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
    /// A small signed offset: mostly within ±(limit), never 0.
    mutating func smallOffset(_ limit: Int) -> Int {
        let m = 1 + below(limit)
        return next() & 1 == 0 ? m : -m
    }
}

// MARK: - Byte streams

/// A connection's byte stream in one direction: byte `offset` is a fixed
/// function of the stream's key and the offset, so any byte seen anywhere
/// can be checked at its place without storing the stream.
struct FuzzStream {
    let key: UInt64

    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always) func word(_ w: Int) -> UInt64 { Self.mix(key ^ UInt64(bitPattern: Int64(w)) &* 0xD6E8_FEB8_6659_FD93) }

    @inline(__always) func byte(_ offset: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: word(offset >> 3) >> (UInt64(offset & 7) * 8))
    }

    func bytes(_ offset: Int, _ n: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: n) { buf, count in
            var i = 0
            while i < n {
                let o = offset &+ i
                var w = word(o >> 3) >> (UInt64(o & 7) * 8)
                var k = o & 7
                while k < 8 && i < n { buf[i] = UInt8(truncatingIfNeeded: w); w >>= 8; k += 1; i += 1 }
            }
            count = n
        }
    }

    /// The index of the first byte of `b` that differs from the stream at
    /// `offset` (bytes at negative offsets are not compared), or nil.
    func firstMismatch(_ b: UnsafeRawBufferPointer, at offset: Int) -> Int? {
        var i = offset < 0 ? (offset < -b.count ? b.count : -offset) : 0
        while i < b.count {
            let o = offset &+ i
            var w = word(o >> 3) >> (UInt64(o & 7) * 8)
            var k = o & 7
            while k < 8 && i < b.count {
                if b[i] != UInt8(truncatingIfNeeded: w) { return i }
                w >>= 8; k += 1; i += 1
            }
        }
        return nil
    }
}

// MARK: - Received ranges

/// Disjoint half-open ranges of stream offsets received, in order (at most
/// 64; beyond that the highest is forgotten, as a receiver with a bounded
/// out-of-order queue would).
struct Ranges {
    private(set) var r: [(lo: Int, hi: Int)] = []

    mutating func insert(_ lo: Int, _ hi: Int) {
        guard lo < hi else { return }
        var lo = lo, hi = hi
        var i = 0
        var out: [(lo: Int, hi: Int)] = []
        out.reserveCapacity(r.count + 1)
        var placed = false
        while i < r.count {
            let x = r[i]
            if x.hi < lo { out.append(x) } else if hi < x.lo {
                if !placed { out.append((lo, hi)); placed = true }
                out.append(x)
            } else { lo = min(lo, x.lo); hi = max(hi, x.hi) }
            i += 1
        }
        if !placed { out.append((lo, hi)) }
        if out.count > 64 { out.removeLast(out.count - 64) }
        r = out
    }

    /// The end of the run that starts at `start` (start itself if none).
    func end(from start: Int) -> Int {
        var e = start
        for x in r where x.lo <= e && x.hi > e { e = x.hi }
        return e
    }

    /// Ranges beyond `from` (for SACK blocks), most recent first is not
    /// tracked: lowest first.
    func above(_ from: Int, max n: Int) -> [(lo: Int, hi: Int)] {
        Array(r.lazy.filter { $0.lo > from }.prefix(n))
    }
}

// MARK: - Segments as fields

/// A TCP/IP packet as editable fields (no IP options, no IPv6 extension
/// headers): what the models build and the mutations edit.
struct Seg {
    var src: Endpoint
    var dst: Endpoint
    var seq: UInt32
    var ack: UInt32
    var flags: UInt8
    var window: UInt16
    /// The raw option area (padded with NOPs to a multiple of 4 when built).
    var options: [UInt8]
    var payload: [UInt8]

    init(src: Endpoint, dst: Endpoint, seq: UInt32, ack: UInt32, flags: UInt8, window: UInt16,
         options: [UInt8] = [], payload: [UInt8] = []) {
        self.src = src; self.dst = dst; self.seq = seq; self.ack = ack; self.flags = flags
        self.window = window; self.options = options; self.payload = payload
    }

    init?(parsing bytes: [UInt8]) {
        guard let s: Seg = bytes.withUnsafeBytes({ raw in
            guard let v = try? TCPPacketView(raw) else { return nil }
            let t = v.tcp
            return Seg(src: Endpoint(address: v.source, port: t.sourcePort), dst: Endpoint(address: v.destination, port: t.destinationPort),
                       seq: t.seq.rawValue, ack: t.ack.rawValue, flags: t.flags, window: t.window,
                       options: Array(t.optionArea), payload: Array(t.payload))
        }) else { return nil }
        self = s
    }

    /// The packet, lengths and checksums filled in (nil: mixed families).
    func build() -> [UInt8] {
        var opts = options
        if opts.count > 40 { opts.removeLast(opts.count - 40) }
        while opts.count & 3 != 0 { opts.append(TCPOptionKind.noOperation) }
        let tcpLen = 20 + opts.count + payload.count
        let v6: Bool
        switch (src.address, dst.address) {
        case (.v4, .v4): v6 = false
        case (.v6, .v6): v6 = true
        default: return []
        }
        let ipLen = v6 ? 40 : 20
        var out = [UInt8](repeating: 0, count: ipLen + tcpLen)
        out.withUnsafeMutableBytes { buf in
            var w = ByteWriter(buf)
            switch (src.address, dst.address) {
            case let (.v4(s), .v4(d)):
                w.u8(0x45); w.u8(0); w.u16(UInt16(truncatingIfNeeded: 20 + tcpLen)); w.u16(0x1234); w.u16(0x4000)
                w.u8(64); w.u8(IPProtocol.tcp); w.u16(0); w.u32(s.rawValue); w.u32(d.rawValue)
                var c = InternetChecksum()
                c.add(bytes: UnsafeRawBufferPointer(rebasing: buf[0 ..< 20]))
                let sum = c.checksum
                buf[10] = UInt8(sum >> 8); buf[11] = UInt8(sum & 0xff)
            case let (.v6(s), .v6(d)):
                w.u32(6 << 28); w.u16(UInt16(truncatingIfNeeded: tcpLen)); w.u8(IPProtocol.tcp); w.u8(64)
                w.u64(s.high); w.u64(s.low); w.u64(d.high); w.u64(d.low)
            default: break
            }
            w.u16(src.port); w.u16(dst.port); w.u32(seq); w.u32(ack)
            w.u8(UInt8((20 + opts.count) / 4) << 4); w.u8(flags); w.u16(window); w.u16(0); w.u16(0)
            opts.withUnsafeBytes { w.bytes($0) }
            payload.withUnsafeBytes { w.bytes($0) }
            let sum = TCPChecksum.compute(source: src.address, destination: dst.address,
                                          segment: UnsafeRawBufferPointer(rebasing: buf[ipLen ..< ipLen + tcpLen]))
            buf[ipLen + 16] = UInt8(sum >> 8); buf[ipLen + 17] = UInt8(sum & 0xff)
        }
        return out
    }
}

/// Option areas as bytes.
struct OptionBytes {
    var b: [UInt8] = []

    mutating func nop() { b.append(TCPOptionKind.noOperation) }
    mutating func add(_ o: TCPOption) {
        withUnsafeTemporaryAllocation(byteCount: 40, alignment: 8) { buf in
            var w = ByteWriter(buf)
            guard o.encodedLength <= 40 else { return }
            o.write(into: &w)
            b.append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[0 ..< w.offset]))
        }
    }
    mutating func add(_ m: MPTCPOption) { add(.mptcp(m)) }
    /// NOP, NOP, timestamps (Linux's layout on established segments).
    mutating func timestamps(_ value: UInt32, _ echo: UInt32) { nop(); nop(); add(.timestamps(value: value, echoReply: echo)) }
    /// SYN options as Linux sends them.
    mutating func synOptions(mss: UInt16, ts: UInt32, echo: UInt32, wscale: UInt8) {
        add(.maxSegmentSize(mss)); add(.sackPermitted); add(.timestamps(value: ts, echoReply: echo)); nop(); add(.windowScale(wscale))
    }
    /// A SACK option (NOP NOP first) with as many blocks as fit in `room`.
    mutating func sack(_ blocks: [(UInt32, UInt32)], room: Int) {
        let n = min(blocks.count, (room - 4) / 8)
        guard n > 0 else { return }
        var s = SACKBlocks()
        for i in 0 ..< n { _ = s.append(SACKBlock(left: TCPSeq(blocks[i].0), right: TCPSeq(blocks[i].1))) }
        nop(); nop(); add(.sack(s))
    }
}

/// Raw option elements of an area (each the exact bytes of one option;
/// a structurally broken tail is one element).
func optionElements(_ area: [UInt8]) -> [[UInt8]] {
    area.withUnsafeBytes { raw in TCPOptionIterator(raw).map { Array($0.bytes) } }
}

/// Recomputes the IPv4 header checksum and the TCP checksum of a packet
/// that parses (after raw mutations); packets that do not parse are left.
func fixChecksums(_ p: inout [UInt8]) {
    p.withUnsafeMutableBytes { buf in
        let raw = UnsafeRawBufferPointer(buf)
        guard let v = try? TCPPacketView(raw) else {
            // Still fix an IPv4 header checksum when the header is whole.
            if buf.count >= 20, buf[0] >> 4 == 4 {
                let ihl = Int(buf[0] & 0x0f) * 4
                if ihl >= 20 && ihl <= buf.count {
                    buf[10] = 0; buf[11] = 0
                    var c = InternetChecksum()
                    c.add(bytes: UnsafeRawBufferPointer(rebasing: buf[0 ..< ihl]))
                    let s = c.checksum
                    buf[10] = UInt8(s >> 8); buf[11] = UInt8(s & 0xff)
                }
            }
            return
        }
        if v.family == .v4 {
            let ihl = v.tcpOffset
            buf[10] = 0; buf[11] = 0
            var c = InternetChecksum()
            c.add(bytes: UnsafeRawBufferPointer(rebasing: buf[0 ..< ihl]))
            let s = c.checksum
            buf[10] = UInt8(s >> 8); buf[11] = UInt8(s & 0xff)
        }
        let at = v.tcpOffset + 16
        let sum = TCPChecksum.compute(source: v.source, destination: v.destination, segment: v.tcp.bytes, checksumFieldIsZero: false)
        buf[at] = UInt8(sum >> 8); buf[at + 1] = UInt8(sum & 0xff)
    }
}

/// A 4-tuple as the gateway's side sees it: `local` is the LAN host (or
/// the gateway's uplink address on a joined subflow), `remote` the peer.
struct FlowID: Hashable {
    var local: Endpoint
    var remote: Endpoint
}

extension UnsafeRawBufferPointer {
    @inline(__always) func be16(_ o: Int) -> UInt16 { UInt16(self[o]) << 8 | UInt16(self[o + 1]) }
    @inline(__always) func be32(_ o: Int) -> UInt32 { UInt32(be16(o)) << 16 | UInt32(be16(o + 2)) }
}

/// Relative distance `a - b` of two 32-bit sequence numbers, signed.
@inline(__always) func seqDiff(_ a: UInt32, _ b: UInt32) -> Int { Int(Int32(bitPattern: a &- b)) }

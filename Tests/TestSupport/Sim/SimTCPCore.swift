import MPTCPStack
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// TCP machinery shared by the simulation's hosts (the plain TCP client and
// every subflow of the MPTCP server): decoding a received packet, the byte
// streams both ends send and check, a reassembly buffer, and the sending
// side of TCP (NewReno congestion control, RFC 6298 retransmission timer).

// MARK: - Packets

/// A received packet, decoded once into what the hosts look at.
package struct SimSegment {
    package var source: Endpoint
    package var destination: Endpoint
    package var seq: TCPSeq
    package var ack: TCPSeq
    package var flags: UInt8
    package var window: UInt16
    package var payload: [UInt8]
    package var mss: UInt16?
    package var windowScale: UInt8?
    package var sackPermitted = false
    package var timestamp: (value: UInt32, echo: UInt32)?
    package var mptcp: [MPTCPOption] = []
    /// Why the packet is unacceptable (bad checksum, undecodable option), if it is.
    package var defect: String?

    package init?(_ bytes: [UInt8]) {
        let parsed: (SimSegment?) = bytes.withUnsafeBytes { raw -> SimSegment? in
            guard let v = try? TCPPacketView(raw) else { return nil }
            return SimSegment(v)
        }
        guard let p = parsed else { return nil }
        self = p
    }

    private init(_ v: TCPPacketView) {
        source = Endpoint(address: v.source, port: v.tcp.sourcePort)
        destination = Endpoint(address: v.destination, port: v.tcp.destinationPort)
        seq = v.tcp.seq; ack = v.tcp.ack; flags = v.tcp.flags; window = v.tcp.window
        payload = Array(v.tcp.payload)
        if !v.tcpChecksumValid { defect = "bad TCP checksum" }
        for e in v.tcp.options {
            switch e.option {
            case .maxSegmentSize(let m): mss = m
            case .windowScale(let s): windowScale = s
            case .sackPermitted: sackPermitted = true
            case .timestamps(let val, let echo): timestamp = (val, echo)
            case .mptcp(let m): mptcp.append(m)
            case .malformed(let why, _): defect = "malformed option kind \(e.kind): \(why)"
            default: break
            }
        }
    }

    package func has(_ f: UInt8) -> Bool { flags & f != 0 }

    package var mpCapable: MPCapable? {
        for m in mptcp { if case .mpCapable(let x) = m { return x } }
        return nil
    }

    package var mpJoin: MPJoin? {
        for m in mptcp { if case .mpJoin(let x) = m { return x } }
        return nil
    }

    package var dss: DSS? {
        for m in mptcp { if case .dss(let x) = m { return x } }
        return nil
    }

    /// One line for traces: "10.0.0.1:40000 > 203.0.113.5:443 S. seq ack win len [opts]".
    package var summary: String {
        "\(source) > \(destination) \(TCPFlags.string(flags)) seq \(seq) ack \(ack) win \(window) len \(payload.count)"
            + (mptcp.isEmpty ? "" : " \(mptcp)")
    }
}

/// A complete IPv4/IPv6 + TCP packet (lengths and checksums set), written
/// straight into bytes (the value types of `makeTCPPacket` are the same
/// wire format, but slower in debug builds, and the simulation builds many).
package func simPacket(from src: Endpoint, to dst: Endpoint, seq: TCPSeq, ack: TCPSeq, flags: UInt8, window: UInt16,
               options: [TCPOption], payload: [UInt8] = []) -> [UInt8] {
    let optLen = simOptionBytes(options)
    let tcpLen = 20 + optLen + payload.count
    let ipLen: Int
    switch src.address { case .v4: ipLen = 20; case .v6: ipLen = 40 }
    return [UInt8](unsafeUninitializedCapacity: ipLen + tcpLen) { out, count in
        let buf = UnsafeMutableRawBufferPointer(out)
        var w = ByteWriter(buf)
        switch (src.address, dst.address) {
        case let (.v4(s), .v4(d)):
            w.u8(0x45); w.u8(0); w.u16(UInt16(ipLen + tcpLen)); w.u16(0); w.u16(0x4000)
            w.u8(64); w.u8(IPProtocol.tcp); w.u16(0); w.u32(s.rawValue); w.u32(d.rawValue)
            var c = InternetChecksum()
            c.add(bytes: UnsafeRawBufferPointer(rebasing: buf[0 ..< 20]))
            buf.storeBytes(of: c.checksum.bigEndian, toByteOffset: 10, as: UInt16.self)
        case let (.v6(s), .v6(d)):
            w.u32(6 << 28); w.u16(UInt16(tcpLen)); w.u8(IPProtocol.tcp); w.u8(64)
            w.u64(s.high); w.u64(s.low); w.u64(d.high); w.u64(d.low)
        default:
            preconditionFailure("mixed address families")
        }
        w.u16(src.port); w.u16(dst.port); w.u32(seq.rawValue); w.u32(ack.rawValue)
        w.u8(UInt8((20 + optLen) / 4) << 4); w.u8(flags); w.u16(window); w.u16(0); w.u16(0)
        let optStart = w.offset
        for o in options { o.write(into: &w) }
        while w.offset < optStart + optLen { w.u8(0) }
        payload.withUnsafeBytes { w.bytes($0) }
        let tcp = UnsafeRawBufferPointer(rebasing: buf[ipLen ..< ipLen + tcpLen])
        let sum = TCPChecksum.compute(source: src.address, destination: dst.address, segment: tcp)
        buf.storeBytes(of: sum.bigEndian, toByteOffset: ipLen + 16, as: UInt16.self)
        count = ipLen + tcpLen
    }
}

/// Source and destination of a TCP/IP packet, without decoding the rest.
package func simAddresses(_ bytes: [UInt8]) -> (source: Endpoint, destination: Endpoint)? {
    bytes.withUnsafeBytes { raw in
        guard let v = try? TCPPacketView(raw) else { return nil }
        return (Endpoint(address: v.source, port: v.tcp.sourcePort), Endpoint(address: v.destination, port: v.tcp.destinationPort))
    }
}

/// Bytes of TCP options as they will be padded on the wire.
package func simOptionBytes(_ options: [TCPOption]) -> Int {
    (options.reduce(0) { $0 + $1.encodedLength } + 3) & ~3
}

// MARK: - Streams

/// The bytes one end sends: a deterministic pseudo-random pattern of
/// `count` bytes from `seed`, recomputable at any offset, so the receiver
/// checks every byte without a copy of the stream.
package struct SimStream: Sendable {
    package let seed: UInt64
    package let count: Int

    /// (The memberwise initializer, spelled out: an implicit one is internal.)
    package init(seed: UInt64, count: Int) {
        self.seed = seed
        self.count = count
    }

    private func word(_ k: Int) -> UInt64 {
        var z = seed &+ UInt64(k) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The bytes at offsets `r` (whole words at a time: the hosts make and
    /// check every byte of every segment, in debug builds too).
    package func bytes(_ r: Range<Int>) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: r.count) { buf, n in
            n = r.count
            guard r.count > 0 else { return }
            let raw = UnsafeMutableRawBufferPointer(buf)
            let firstWord = r.lowerBound >> 3, lastWord = (r.upperBound - 1) >> 3
            var out = 0
            for k in firstWord ... lastWord {
                let w = word(k).littleEndian
                let lo = k == firstWord ? r.lowerBound & 7 : 0
                let hi = k == lastWord ? ((r.upperBound - 1) & 7) + 1 : 8
                if lo == 0 && hi == 8 {
                    raw.storeBytes(of: w, toByteOffset: out, as: UInt64.self)
                } else {
                    withUnsafeBytes(of: w) { wb in
                        raw.baseAddress!.advanced(by: out).copyMemory(from: wb.baseAddress!.advanced(by: lo), byteCount: hi - lo)
                    }
                }
                out += hi - lo
            }
        }
    }

    /// The offset of the first byte of `b` (placed at `offset`) that differs
    /// from the stream, or that lies beyond its end; nil when all match.
    package func firstMismatch(_ b: [UInt8], at offset: Int) -> Int? {
        if offset + b.count > count { return max(offset, count) }
        if b.isEmpty { return nil }
        let expected = bytes(offset ..< offset + b.count)
        let same = expected.withUnsafeBytes { e in b.withUnsafeBytes { g in memcmp(e.baseAddress!, g.baseAddress!, b.count) == 0 } }
        if same { return nil }
        for i in 0 ..< b.count where b[i] != expected[i] { return offset + i }
        return nil
    }
}

/// Reassembles a byte stream from pieces at offsets: returns the bytes that
/// became contiguous with each piece, keeps the rest until the gap fills.
package struct SimReassembly {
    /// The offset of the next byte expected in order.
    package private(set) var next: Int
    /// Out-of-order pieces (start offset, bytes), unsorted.
    private var pending: [(start: Int, bytes: [UInt8])] = []

    package init(next: Int = 0) { self.next = next }

    package var pendingBytes: Int { pending.reduce(0) { $0 + $1.bytes.count } }
    /// The highest offset held, in order or not.
    package var highest: Int { pending.reduce(next) { max($0, $1.start + $1.bytes.count) } }

    /// Adds `bytes` at `start`; returns the newly in-order bytes (from the
    /// old `next` on).
    package mutating func insert(_ bytes: [UInt8], at start: Int) -> [UInt8] {
        let end = start + bytes.count
        guard end > next, !bytes.isEmpty else { return [] }
        if start > next {
            if !pending.contains(where: { $0.start <= start && $0.start + $0.bytes.count >= end }) {
                pending.append((start, bytes))
            }
            return []
        }
        var out = Array(bytes[(next - start)...])
        next = end
        var progress = true
        while progress {
            progress = false
            var i = 0
            while i < pending.count {
                let p = pending[i]
                let pEnd = p.start + p.bytes.count
                if pEnd <= next {
                    pending.swapAt(i, pending.count - 1); pending.removeLast()
                } else if p.start <= next {
                    out += p.bytes[(next - p.start)...]
                    next = pEnd
                    pending.swapAt(i, pending.count - 1); pending.removeLast()
                    progress = true
                } else {
                    i += 1
                }
            }
        }
        return out
    }

    /// Skips the stream forward to `offset` (a FIN's place, say).
    package mutating func advance(to offset: Int) { if offset > next { next = offset } }
}

// MARK: - The sending side of TCP

/// One TCP sender's state: the sequence space as offsets from the ISN (the
/// SYN is offset 0), NewReno congestion control (RFC 5681, RFC 6582) and the
/// retransmission timer (RFC 6298, Karn's rule, exponential backoff, Linux's
/// 200 ms floor). The host decides what lies at each offset and sends it;
/// this struct decides how much, and when to go back.
package struct SimSender {
    package static let minRTO: UInt64 = 200_000_000
    package static let maxRTO: UInt64 = 60_000_000_000
    package static let initialRTO: UInt64 = 1_000_000_000

    package var mss = 536
    /// Oldest unacknowledged offset.
    package private(set) var una = 0
    /// Next offset to send (moves back to `una` on a timeout: go-back-N).
    package private(set) var nxt = 0
    /// One past the highest offset ever sent.
    package private(set) var max = 0
    /// The peer's receive window in bytes (scaled), from the latest ACK.
    package var peerWindow = 65_535
    package private(set) var cwnd = 10 * 536
    package private(set) var ssthresh = Int.max / 4
    package private(set) var dupAcks = 0
    package private(set) var inRecovery = false
    private var recover = 0
    private var srtt: Double? // nanoseconds
    private var rttvar: Double = 0
    private var rto = SimSender.initialRTO
    /// Timeouts since the last ACK that advanced `una` (doubles the RTO).
    package private(set) var backoff = 0
    /// The segment being timed for an RTT sample: its end and send time.
    private var timed: (end: Int, at: Instant)?
    /// When the retransmission timer fires; nil when nothing is outstanding.
    package private(set) var timerDeadline: Instant?
    /// Counters.
    package private(set) var retransmittedSegments = 0
    package private(set) var timeouts = 0
    package private(set) var fastRetransmits = 0

    /// The retransmission timeout now in force (backed off).
    package var currentRTO: UInt64 { Swift.min(rto << UInt64(Swift.min(backoff, 16)), Self.maxRTO) }
    package var smoothedRTT: Double? { srtt }
    /// Bytes the window lets the sender put beyond `nxt` now.
    package var room: Int { una + Swift.min(cwnd, peerWindow) - nxt }
    package var outstanding: Bool { max > una }

    /// The handshake is done: the peer's MSS is known; initial window 10 segments.
    package mutating func established(mss: Int) {
        self.mss = mss
        cwnd = 10 * mss
    }

    /// The host sent offsets [from, to) (new or again).
    package mutating func sent(_ from: Int, _ to: Int, now: Instant) {
        if from < max {
            retransmittedSegments += 1
            if let t = timed, from < t.end { timed = nil } // Karn: no sample from a retransmitted range
        } else if timed == nil {
            timed = (to, now)
        }
        nxt = Swift.max(nxt, to)
        max = Swift.max(max, to)
        if timerDeadline == nil { timerDeadline = now + .simNanoseconds(currentRTO) }
    }

    package enum AckOutcome: Equatable {
        /// Older than `una`, or a non-duplicate ACK of `una`.
        case nothingNew
        case duplicate
        case advanced(Int)
        /// Acknowledges offsets never sent (a protocol violation).
        case beyondSent
    }

    /// Processes an acknowledgment of offset `ack`. `retransmitUna` says the
    /// host must send the segment at `una` again now (fast retransmit, or a
    /// NewReno partial ACK).
    package mutating func onAck(_ ack: Int, window: Int, pureAck: Bool, now: Instant) -> (AckOutcome, retransmitUna: Bool) {
        if ack > max { return (.beyondSent, false) }
        if ack < una { return (.nothingNew, false) }
        if ack == una {
            let duplicate = pureAck && window == peerWindow && max > una
            peerWindow = window
            guard duplicate else { return (.nothingNew, false) }
            dupAcks += 1
            if inRecovery {
                cwnd += mss
            } else if dupAcks == 3 && una >= recover {
                ssthresh = Swift.max((max - una) / 2, 2 * mss)
                recover = max
                cwnd = ssthresh + 3 * mss
                inRecovery = true
                fastRetransmits += 1
                return (.duplicate, true)
            }
            return (.duplicate, false)
        }
        let acked = ack - una
        una = ack
        if nxt < una { nxt = una }
        peerWindow = window
        dupAcks = 0
        backoff = 0
        if let t = timed, ack >= t.end {
            sample(now.since(t.at))
            timed = nil
        }
        var retransmit = false
        if inRecovery {
            if ack >= recover {
                inRecovery = false
                cwnd = Swift.min(ssthresh, (max - una) + mss)
            } else {
                cwnd = Swift.max(cwnd - acked + mss, mss)
                retransmit = true
            }
        } else if cwnd < ssthresh {
            cwnd += Swift.min(acked, mss)
        } else {
            cwnd += Swift.max(1, mss * mss / cwnd)
        }
        timerDeadline = una >= max ? nil : now + .simNanoseconds(currentRTO)
        return (.advanced(acked), retransmit)
    }

    private mutating func sample(_ d: Duration) {
        let r = Double(d.simNanoseconds)
        if let s = srtt {
            rttvar = 0.75 * rttvar + 0.25 * abs(s - r)
            srtt = 0.875 * s + 0.125 * r
        } else {
            srtt = r
            rttvar = r / 2
        }
        rto = Swift.min(Swift.max(UInt64(srtt! + Swift.max(4 * rttvar, 1e6)), Self.minRTO), Self.maxRTO)
    }

    /// The retransmission timer fired: collapse the window, back off, and go
    /// back to `una` (the host then sends from `nxt` again).
    package mutating func onTimeout(now: Instant) {
        timeouts += 1
        ssthresh = Swift.max((max - una) / 2, 2 * mss)
        cwnd = mss
        inRecovery = false
        dupAcks = 0
        recover = max
        nxt = una
        timed = nil
        backoff += 1
        timerDeadline = max > una ? now + .simNanoseconds(currentRTO) : nil
    }

    /// Arms the timer for a zero-window probe (nothing outstanding).
    package mutating func armPersist(now: Instant) {
        if timerDeadline == nil { timerDeadline = now + .simNanoseconds(currentRTO) }
    }
}

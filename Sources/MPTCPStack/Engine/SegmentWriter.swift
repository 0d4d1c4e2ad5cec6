// Writes the new IP and TCP headers of a rewritten segment. The payload is
// never copied: the caller sends header bytes followed by the original
// payload (a verdict carries both).

/// The MPTCP options to add to one segment (at most two on a data path).
struct AddedOptions {
    var first: MPTCPOption?
    var second: MPTCPOption?
    var length: Int { (first?.encodedLength ?? 0) + (second?.encodedLength ?? 0) }
}

/// What to do with the original options when copying them.
struct OptionPolicy {
    /// Drop kind-30 options (towards the LAN host).
    var dropMPTCP = true
    /// Rewrite the MSS option's value to at most this (SYN/ACK towards the LAN).
    var mssLimit: UInt16?
    /// Subtract this from the MSS value.
    var mssClamp: UInt16 = 0
    /// Leave SACK blocks out (their sequence numbers mean nothing on the
    /// other side: the one-uplink plane once the peer's subflow and data
    /// sequence numbers differ) ...
    var dropSACK = false
    /// ... and put these in their place (a whole SACK option, translated).
    var sackOverride: UnsafeRawBufferPointer?
}

struct SegmentWriter {
    /// The largest packet a verdict can carry: the netlink attribute length
    /// is 16 bits and includes its 4-byte header (docs/datapath.md: copy range).
    static let maxPacketLength = 65_531

    /// Scratch for the option area (40 bytes used at most).
    let options: UnsafeMutableRawBufferPointer

    /// Builds the option area: the original options (NOP alignment kept,
    /// MPTCP and SACK taken out per policy), then `added`, then as many SACK
    /// blocks as still fit, padded with NOPs to a 4-byte boundary.
    /// Returns nil when `added` cannot fit.
    func buildOptions(original area: UnsafeRawBufferPointer, policy: OptionPolicy, added: AddedOptions,
                      stats: inout EngineStats) -> Int? {
        var w = ByteWriter(options)
        var pendingNops = 0
        var sack: UnsafeRawBufferPointer?
        let need = added.length
        for e in TCPOptionIterator(area) {
            if e.fault != nil { break }
            let kind = e.kind
            if kind == TCPOptionKind.endOfList { break }
            if kind == TCPOptionKind.noOperation { pendingNops += 1; continue }
            var keep = true
            if kind == TCPOptionKind.mptcp && policy.dropMPTCP { keep = false }
            if kind == TCPOptionKind.sack { sack = e.bytes; keep = false }
            if keep && w.offset + pendingNops + e.bytes.count + need > 40 {
                // Only an option we can live without is dropped for room;
                // timestamps are never dropped (RFC 7323 §3.2).
                if kind != TCPOptionKind.timestamps && kind != TCPOptionKind.maxSegmentSize && kind != TCPOptionKind.windowScale {
                    keep = false
                    stats.noOptionRoom &+= 1
                }
            }
            if keep {
                guard w.offset + pendingNops + e.bytes.count <= 40 else { return nil }
                for _ in 0 ..< pendingNops { w.u8(TCPOptionKind.noOperation) }
                if kind == TCPOptionKind.maxSegmentSize && e.bytes.count == 4 {
                    w.mssOption(Self.clampedMSS(e.bytes.u16(2), policy: policy))
                } else {
                    w.bytes(e.bytes)
                }
            }
            pendingNops = 0
        }
        guard w.offset + need <= 40 else { return nil }
        if let a = added.first { a.write(into: &w) }
        if let a = added.second { a.write(into: &w) }
        if let sack = policy.sackOverride ?? (policy.dropSACK ? nil : sack) {
            // NOP, NOP, kind, length, then whole blocks while they fit.
            let blocks = (sack.count - 2) / 8
            let pad = (4 - (w.offset & 3)) & 3
            let room = 40 - w.offset - pad - 2
            let fit = min(blocks, max(0, room / 8))
            if fit > 0 {
                for _ in 0 ..< pad { w.u8(TCPOptionKind.noOperation) }
                w.u8(TCPOptionKind.sack); w.u8(UInt8(2 + 8 * fit))
                w.bytes(sack.slice(2, 8 * fit))
            }
            if fit < blocks { stats.sackDropped &+= 1 }
        }
        w.padOptions()
        return w.offset
    }

    /// The MSS value written in place of `mss` under `policy`: less the
    /// clamp (never below 536 that way), at most the limit.
    static func clampedMSS(_ mss: UInt16, policy: OptionPolicy) -> UInt16 {
        var m = Int(mss) > Int(policy.mssClamp) + 536 ? mss - policy.mssClamp : min(mss, 536)
        if let lim = policy.mssLimit { m = min(m, lim) }
        return m
    }

    /// Writes IP header (copied from the original, lengths and IPv4 checksum
    /// fixed), TCP header with the given fields and `optionLength` bytes of
    /// `options`, and the TCP checksum (over the original payload) unless the
    /// packet is a GSO super-segment, whose checksums the kernel writes.
    /// Returns the header length, or nil when the result exceeds `maxPacketLength`.
    static func writeHeaders(into out: UnsafeMutableRawBufferPointer, original v: TCPPacketView,
                             seq: TCPSeq, ack: TCPSeq, flags: UInt8, window: UInt16,
                             options: UnsafeRawBufferPointer, computeChecksum: Bool,
                             payloadIncluded: Bool = true) -> Int? {
        let ipLen = v.tcpOffset
        let tcpLen = 20 + options.count
        let payload = payloadIncluded ? v.tcp.payload : UnsafeRawBufferPointer(start: nil, count: 0)
        let total = ipLen + tcpLen + payload.count
        guard ipLen + tcpLen <= out.count else { return nil }
        var w = ByteWriter(out)
        w.bytes(v.ip.slice(0, ipLen))
        switch v.family {
        case .v4:
            guard total <= maxPacketLength else { return nil }
            out.put16(UInt16(total), at: 2)
            out.put16(0, at: 10)
            var c = InternetChecksum()
            c.add(bytes: UnsafeRawBufferPointer(rebasing: out[0 ..< ipLen]))
            out.put16(c.checksum, at: 10)
        case .v6:
            guard total <= maxPacketLength else { return nil }
            out.put16(UInt16(total - 40), at: 4)
        }
        let t = v.tcp
        w.u16(t.sourcePort); w.u16(t.destinationPort)
        w.u32(seq.rawValue); w.u32(ack.rawValue)
        w.u8(UInt8(tcpLen / 4) << 4 | t.reservedBits)
        w.u8(flags); w.u16(window)
        let csumAt = w.offset
        w.u16(0); w.u16(t.urgentPointer)
        w.bytes(options)
        if computeChecksum {
            var c = TCPChecksum.pseudoHeader(source: v.source, destination: v.destination, length: tcpLen + payload.count)
            c.add(bytes: UnsafeRawBufferPointer(rebasing: out[ipLen ..< ipLen + tcpLen]))
            c.add(bytes: payload)
            out.put16(c.checksum, at: csumAt)
        } else {
            // The kernel completes it when it segments (docs/datapath.md).
            let c = TCPChecksum.pseudoHeader(source: v.source, destination: v.destination, length: tcpLen + payload.count)
            out.put16(c.folded, at: csumAt)
        }
        return ipLen + tcpLen
    }
}

extension SegmentWriter {
    /// Writes new IP and TCP headers for `v`'s payload (or `payload`, which
    /// then goes in its place) between other endpoints (a segment moved from
    /// a joined subflow onto the client's connection, or client data carried
    /// onto a subflow): a fresh IP header (TOS/traffic class, TTL/hop limit and
    /// IPv4 identification kept; IP options and IPv6 extension headers left
    /// out), then TCP with `options`. The TCP checksum is computed unless the
    /// packet is a GSO super-segment (then seeded as the kernel expects).
    /// Returns the header length, or nil when the result is too big.
    static func writeMoved(into out: UnsafeMutableRawBufferPointer, original v: TCPPacketView,
                           source: Endpoint, destination: Endpoint,
                           seq: TCPSeq, ack: TCPSeq, flags: UInt8, window: UInt16,
                           options: UnsafeRawBufferPointer, computeChecksum: Bool,
                           payload carried: UnsafeRawBufferPointer? = nil) -> Int? {
        let payload = carried ?? v.tcp.payload
        let tcpLen = 20 + options.count
        var w = ByteWriter(out)
        switch (source.address, destination.address) {
        case let (.v4(s), .v4(d)):
            let total = 20 + tcpLen + payload.count
            guard total <= maxPacketLength else { return nil }
            let tos = v.family == .v4 ? v.ip.u8(1) : 0
            let id = v.family == .v4 ? v.ip.u16(4) : 0
            let ttl = v.family == .v4 ? v.ip.u8(8) : 64
            w.u8(0x45); w.u8(tos); w.u16(UInt16(total)); w.u16(id); w.u16(0x4000)
            w.u8(ttl); w.u8(IPProtocol.tcp); w.u16(0); w.u32(s.rawValue); w.u32(d.rawValue)
            var c = InternetChecksum()
            c.add(bytes: UnsafeRawBufferPointer(rebasing: out[0 ..< 20]))
            out.put16(c.checksum, at: 10)
        case let (.v6(s), .v6(d)):
            guard 40 + tcpLen + payload.count <= maxPacketLength else { return nil }
            let first = v.family == .v6 ? v.ip.u32(0) : UInt32(6) << 28
            let hop = v.family == .v6 ? v.ip.u8(7) : 64
            w.u32(first); w.u16(UInt16(tcpLen + payload.count)); w.u8(IPProtocol.tcp); w.u8(hop)
            w.u64(s.high); w.u64(s.low); w.u64(d.high); w.u64(d.low)
        default:
            return nil
        }
        let tcpAt = w.offset
        w.u16(source.port); w.u16(destination.port)
        w.u32(seq.rawValue); w.u32(ack.rawValue)
        w.u8(UInt8(tcpLen / 4) << 4); w.u8(flags); w.u16(window)
        w.u16(0); w.u16(0)
        w.bytes(options)
        var c = TCPChecksum.pseudoHeader(source: source.address, destination: destination.address, length: tcpLen + payload.count)
        if computeChecksum {
            c.add(bytes: UnsafeRawBufferPointer(rebasing: out[tcpAt ..< tcpAt + tcpLen]))
            c.add(bytes: payload)
            out.put16(c.checksum, at: tcpAt + 16)
        } else {
            out.put16(c.folded, at: tcpAt + 16)
        }
        return tcpAt + tcpLen
    }
}

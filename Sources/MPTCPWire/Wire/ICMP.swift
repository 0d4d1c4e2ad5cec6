// ICMP and ICMPv6 "destination unreachable" and "packet too big" errors
// about a TCP segment.

/// A destination-unreachable error (ICMP type 3, RFC 792; ICMPv6 type 1,
/// RFC 4443) or an ICMPv6 packet-too-big (type 2, RFC 4443 §3.2) and the
/// TCP segment it quotes: the quoted IP header and at least the first 8
/// bytes of the segment (ports and sequence number).
public struct ICMPUnreachableView {
    /// Who sent the error (a router on the path, or the destination).
    public let reporter: IPAddress
    public let code: UInt8
    /// The segment was too big for a link on the path: ICMP type 3 code 4
    /// "fragmentation needed and DF set" with the next hop's MTU (RFC 1191
    /// §4; 0 from a router older than it), or ICMPv6 packet-too-big with
    /// the link's MTU. nil for any other unreachable.
    public let mtu: Int?
    /// The quoted packet's length as its IP header states it (the packet
    /// that was too big), when the quote shows it.
    public let quotedLength: Int
    /// The quoted segment's addresses, ports and sequence number: it was
    /// sent by `source`.
    public let source: Endpoint
    public let destination: Endpoint
    public let seq: TCPSeq

    /// `.notTCP` for any other packet (ICMP of another type, or quoting
    /// something other than TCP); `.truncated` when the quote is too short.
    public init(_ raw: UnsafeRawBufferPointer) throws(WireError) {
        guard raw.count >= 1 else { throw .truncated }
        let quoted: UnsafeRawBufferPointer
        let from: IPAddress, to: IPAddress
        switch raw.u8(0) >> 4 {
        case 4:
            let v = try IPv4PacketView(raw)
            guard v.proto == IPProtocol.icmp, v.fragmentOffset == 0 else { throw .notTCP }
            let icmp = v.payload
            guard icmp.count >= 8 else { throw .truncated }
            guard icmp.u8(0) == 3 else { throw .notTCP }
            reporter = .v4(v.source)
            code = icmp.u8(1)
            mtu = code == 4 ? Int(icmp.u16(6)) : nil
            let q = try IPv4PacketView(icmp.slice(8, icmp.count - 8), allowTruncated: true)
            guard q.proto == IPProtocol.tcp, q.fragmentOffset == 0 else { throw .notTCP }
            quotedLength = Int(q.totalLength)
            quoted = q.payload
            from = .v4(q.source)
            to = .v4(q.destination)
        case 6:
            let v = try IPv6PacketView(raw)
            guard v.upperLayerProtocol == IPProtocol.icmpv6, !v.isNonFirstFragment else { throw .notTCP }
            let icmp = v.upperLayer
            guard icmp.count >= 8 else { throw .truncated }
            guard icmp.u8(0) == 1 || icmp.u8(0) == 2 else { throw .notTCP }
            reporter = .v6(v.source)
            code = icmp.u8(1)
            mtu = icmp.u8(0) == 2 ? Int(min(icmp.u32(4), 0xffff)) : nil
            let q = try IPv6PacketView(icmp.slice(8, icmp.count - 8), allowTruncated: true)
            guard q.upperLayerProtocol == IPProtocol.tcp, !q.isNonFirstFragment else { throw .notTCP }
            quotedLength = 40 + Int(q.payloadLength)
            quoted = q.upperLayer
            from = .v6(q.source)
            to = .v6(q.destination)
        default:
            throw .badVersion
        }
        guard quoted.count >= 8 else { throw .truncated }
        source = Endpoint(address: from, port: quoted.u16(0))
        destination = Endpoint(address: to, port: quoted.u16(2))
        seq = TCPSeq(quoted.u32(4))
    }
}

@testable import MPTCPStack
import TestSupport
import Testing

@Suite("ICMP")
struct ICMPTests {
    /// An ICMPv6 (or ICMP) error of `type` quoting the first `quote` bytes of `offending`.
    private func error(_ type: UInt8, code: UInt8 = 0, quoting offending: [UInt8], quote: Int, v6: Bool) -> [UInt8] {
        let body = [type, code, 0, 0, 0, 0, 0, 0] + Array(offending.prefix(quote))
        if v6 {
            var ip: [UInt8] = [0x60, 0, 0, 0, UInt8(body.count >> 8), UInt8(body.count & 0xff), IPProtocol.icmpv6, 64]
            ip += [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1] // the router, 2001:db8::1
            ip += Array(offending[8 ..< 24]) // to the offending segment's sender
            return ip + body
        }
        let total = 20 + body.count
        return [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0, 0, 64, IPProtocol.icmp, 0, 0, 192, 0, 2, 1]
            + Array(offending[12 ..< 16]) + body
    }

    @Test("destination unreachable, ICMP and ICMPv6: the quoted segment's endpoints and sequence number; other types and short quotes are typed errors")
    func parse() throws {
        for (client, server) in [(Endpoint("198.51.100.7", 61_001), Endpoint("203.0.113.5", 443)),
                                 (Endpoint("2001:db8:1::7", 61_001), Endpoint("2001:db8:2::5", 443))] {
            let v6 = if case .v6 = client.address { true } else { false }
            let seg = makeTCPPacket(from: client, to: server, seq: 0xDEAD_BEEF, ack: 1, flags: TCPFlags.ack, payload: [1, 2, 3])
            let ipLen = v6 ? 40 : 20
            let e = try error(v6 ? 1 : 3, code: 1, quoting: seg, quote: ipLen + 8, v6: v6).withUnsafeBytes { try ICMPUnreachableView($0) }
            #expect(e.source == client && e.destination == server && e.seq == TCPSeq(0xDEAD_BEEF) && e.code == 1)
            // Echo request / time exceeded: not an unreachable.
            #expect(throws: WireError.notTCP) {
                try error(v6 ? 128 : 8, quoting: seg, quote: ipLen + 8, v6: v6).withUnsafeBytes { _ = try ICMPUnreachableView($0) }
            }
            // Fewer than 8 bytes of the segment quoted.
            #expect(throws: WireError.truncated) {
                try error(v6 ? 1 : 3, quoting: seg, quote: ipLen + 4, v6: v6).withUnsafeBytes { _ = try ICMPUnreachableView($0) }
            }
            // A TCP segment is not an ICMP error.
            #expect(throws: WireError.notTCP) { try seg.withUnsafeBytes { _ = try ICMPUnreachableView($0) } }
        }
    }

    @Test("fragmentation needed (ICMP 3/4) and packet too big (ICMPv6 2): the MTU the error gives and the quoted packet's length; any other unreachable has no MTU")
    func tooBig() throws {
        for (client, server) in [(Endpoint("198.51.100.7", 61_001), Endpoint("203.0.113.5", 443)),
                                 (Endpoint("2001:db8:1::7", 61_001), Endpoint("2001:db8:2::5", 443))] {
            let v6 = if case .v6 = client.address { true } else { false }
            let seg = makeTCPPacket(from: client, to: server, seq: 0xDEAD_BEEF, ack: 1, flags: TCPFlags.ack,
                                    payload: Array(repeating: 7, count: 1400))
            let ipLen = v6 ? 40 : 20
            var err = error(v6 ? 2 : 3, code: v6 ? 0 : 4, quoting: seg, quote: ipLen + 8, v6: v6)
            let at = ipLen + (v6 ? 4 : 6) // the MTU field: 32 bits in ICMPv6, the low 16 of the word in ICMP
            if v6 { err[at + 2] = 0x05; err[at + 3] = 0x00 } else { err[at] = 0x05; err[at + 1] = 0x00 }
            let e = try err.withUnsafeBytes { try ICMPUnreachableView($0) }
            #expect(e.mtu == 1280 && e.quotedLength == seg.count)
            #expect(e.source == client && e.destination == server && e.seq == TCPSeq(0xDEAD_BEEF))
            let other = try error(v6 ? 1 : 3, code: 1, quoting: seg, quote: ipLen + 8, v6: v6).withUnsafeBytes { try ICMPUnreachableView($0) }
            #expect(other.mtu == nil)
        }
    }
}

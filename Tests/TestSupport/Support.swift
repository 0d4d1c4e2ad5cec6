import MPTCPStack
import Testing

/// One test vector: bytes plus where they came from.
package struct Vector: Sendable, CustomTestStringConvertible {
    package let name: String
    package let source: String
    package let bytes: [UInt8]

    package init(name: String, source: String, hex: String) {
        self.name = name
        self.source = source
        self.bytes = hexBytes(hex)
    }

    package var testDescription: String { "\(name) (\(source))" }
}

/// Parses hex text, ignoring whitespace. Traps on anything else (a test bug).
package func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var pending: UInt8?
    for c in s.unicodeScalars {
        if c == " " || c == "\n" || c == "\t" { continue }
        guard let v = UInt8(String(c), radix: 16) else { fatalError("bad hex character \(c) in test vector") }
        if let p = pending { out.append(p << 4 | v); pending = nil } else { pending = v }
    }
    precondition(pending == nil, "odd number of hex digits in test vector")
    return out
}

package func hex(_ b: [UInt8]) -> String {
    b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

/// Runs a typed-throwing parse over `bytes` and captures the result.
package func attempt<T>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(WireError) -> T) -> Result<T, WireError> {
    bytes.withUnsafeBytes { raw in
        do throws(WireError) { return .success(try body(raw)) } catch { return .failure(error) }
    }
}

package func parsePacket(_ bytes: [UInt8]) -> Result<TCPPacket, WireError> {
    attempt(bytes) { raw throws(WireError) in try TCPPacket(parsing: raw) }
}

package func parseOption(_ bytes: [UInt8]) -> Result<TCPOption, WireError> {
    attempt(bytes) { raw throws(WireError) in try TCPOption(parsing: raw) }
}

package func parseMPTCP(_ bytes: [UInt8]) -> Result<MPTCPOption, WireError> {
    attempt(bytes) { raw throws(WireError) in try MPTCPOption(parsing: raw) }
}

extension Result {
    package var value: Success? { if case .success(let v) = self { return v } else { return nil } }
    package var error: Failure? { if case .failure(let e) = self { return e } else { return nil } }
}

/// The bytes `write(into:)` produces for an option; also checks that exactly
/// `encodedLength` bytes were written.
package func emit(_ o: TCPOption) -> [UInt8] {
    var out = [UInt8](repeating: 0xEE, count: o.encodedLength)
    let written = out.withUnsafeMutableBytes { buf in
        var w = ByteWriter(buf)
        o.write(into: &w)
        return w.offset
    }
    precondition(written == o.encodedLength, "write(into:) wrote \(written) bytes, encodedLength \(o.encodedLength)")
    return out
}

package func emit(_ m: MPTCPOption) -> [UInt8] { emit(.mptcp(m)) }

package func emit(_ list: TCPOptionList) -> [UInt8] {
    var out = [UInt8](repeating: 0xEE, count: list.encodedLength)
    out.withUnsafeMutableBytes { buf in
        var w = ByteWriter(buf)
        list.write(into: &w)
        precondition(w.offset == list.encodedLength)
    }
    return out
}

/// The TCP segment (header + payload) of an IP packet, without Swift's view types.
package func tcpSegment(of ip: [UInt8]) -> ArraySlice<UInt8> {
    if ip[0] >> 4 == 4 { return ip[Int(ip[0] & 0x0f) * 4 ..< ip.count] }
    return ip[40 ..< ip.count]
}

/// The TCP option area of an IP packet (no extension headers in our vectors).
package func optionArea(of ip: [UInt8]) -> [UInt8] {
    let seg = tcpSegment(of: ip)
    let hl = Int(seg[seg.startIndex + 12] >> 4) * 4
    return Array(seg[seg.startIndex + 20 ..< seg.startIndex + hl])
}

/// The MPTCP options of a packet, in order.
package func mptcpOptions(_ ip: [UInt8]) -> [MPTCPOption] {
    guard let p = parsePacket(ip).value else { return [] }
    return p.tcpHeader.options.array.compactMap { if case .mptcp(let m) = $0 { return m } else { return nil } }
}

/// The engine's own seeded generator (SplitMix64): the tests draw the same sequence.
package typealias SplitMix64 = SeededRandom

/// Keys from the capture notes (pcaps/reference-shared/*.md).
package enum Keys {
    package struct Pair: Sendable {
        package let capture: String
        package let clientKey: UInt64, clientToken: UInt32, clientIDSN: UInt64
        package let serverKey: UInt64, serverToken: UInt32, serverIDSN: UInt64
    }
    package static let a = Pair(capture: "a",
                        clientKey: 0x220c_a80f_410b_f5cb, clientToken: 0x5068_b813, clientIDSN: 0xe7c1_930a_d795_77ee,
                        serverKey: 0xa78a_b8b1_3030_d837, serverToken: 0x3a6b_4c5e, serverIDSN: 0xf6b8_2d01_6889_56a6)
    package static let b = Pair(capture: "b",
                        clientKey: 0x626c_eb32_0231_e0ff, clientToken: 0xe349_1328, clientIDSN: 0x00b2_4946_f6a5_57e2,
                        serverKey: 0xf04c_e840_07d7_e35c, serverToken: 0x0e56_8f1e, serverIDSN: 0x4023_7fde_1bea_0117)
    package static let e = Pair(capture: "e",
                        clientKey: 0xfddc_f56e_7fac_67fc, clientToken: 0xaaf7_d029, clientIDSN: 0xcb4c_22bb_18a4_2961,
                        serverKey: 0x1476_bdfc_4ba8_88f5, serverToken: 0x02d7_1733, serverIDSN: 0x70cd_3e74_8fb7_e07b)
    package static let g = Pair(capture: "g",
                        clientKey: 0xa36e_66c5_8dfe_71e2, clientToken: 0x30c0_a812, clientIDSN: 0x8afc_d578_0809_69c1,
                        serverKey: 0xd808_ddf3_1b4d_8e25, serverToken: 0x7057_ef46, serverIDSN: 0x0c3b_41fd_fa50_e96c)
    package static let all = [a, b, e, g]
}

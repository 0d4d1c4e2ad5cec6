/// An IPv4 address as a host-order integer.
public struct IPv4Address: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(_ raw: UInt32) { rawValue = raw }
    // == as synthesized, @inlinable for the engine's per-packet flow lookup.
    @inlinable public static func == (a: IPv4Address, b: IPv4Address) -> Bool { a.rawValue == b.rawValue }
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad text; nil when it is not exactly four decimal octets.
    public init?(_ text: String) {
        var parts: [UInt32] = []
        for p in text.split(separator: ".", omittingEmptySubsequences: false) {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ ("0" ... "9").contains($0) }),
                  let v = UInt32(p), v <= 255 else { return nil }
            parts.append(v)
        }
        guard parts.count == 4 else { return nil }
        rawValue = parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3]
    }

    public var description: String {
        "\(rawValue >> 24).\((rawValue >> 16) & 0xff).\((rawValue >> 8) & 0xff).\(rawValue & 0xff)"
    }
}

/// An IPv6 address as two host-order 64-bit halves.
public struct IPv6Address: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64
    @inlinable public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }
    @inlinable public static func == (a: IPv6Address, b: IPv6Address) -> Bool { a.high == b.high && a.low == b.low }

    /// The eight 16-bit groups, most significant first.
    public var groups: [UInt16] {
        (0 ..< 8).map { i in
            let half = i < 4 ? high : low
            return UInt16(truncatingIfNeeded: half >> (UInt64(3 - i % 4) * 16))
        }
    }

    /// Parses RFC 4291 text (with `::`, no embedded IPv4); nil when malformed.
    public init?(_ text: String) {
        let halves = text.split(separator: "::", maxSplits: 1, omittingEmptySubsequences: false)
            .map(String.init)
        guard halves.count <= 2 else { return nil }
        func groups(_ s: String) -> [UInt16]? {
            if s.isEmpty { return [] }
            var out: [UInt16] = []
            for g in s.split(separator: ":", omittingEmptySubsequences: false) {
                guard !g.isEmpty, g.count <= 4, g.allSatisfy(\.isHexDigit), let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        high = all[0 ..< 4].reduce(0) { $0 << 16 | UInt64($1) }
        low = all[4 ..< 8].reduce(0) { $0 << 16 | UInt64($1) }
    }

    /// RFC 5952 text: lowercase, leading zeros dropped, longest run (≥2) of
    /// zero groups compressed to `::`.
    public var description: String {
        let g = groups
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if g[i] == 0 {
                var j = i
                while j < 8 && g[j] == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else { i += 1 }
        }
        func hex(_ r: Range<Int>) -> String { r.map { String(g[$0], radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(0 ..< 8) }
        return hex(0 ..< bestStart) + "::" + hex(bestStart + bestLen ..< 8)
    }
}

/// Either family, as carried in ADD_ADDR and used as a connection endpoint.
public enum IPAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    @inlinable
    public static func == (a: IPAddress, b: IPAddress) -> Bool {
        switch (a, b) {
        case let (.v4(x), .v4(y)): return x == y
        case let (.v6(x), .v6(y)): return x == y
        default: return false
        }
    }

    public init?(_ text: String) {
        if let a = IPv4Address(text) { self = .v4(a) } else if let a = IPv6Address(text) { self = .v6(a) } else { return nil }
    }

    public var description: String {
        switch self {
        case .v4(let a): return a.description
        case .v6(let a): return a.description
        }
    }

    /// Bytes on the wire (4 or 16).
    public var encodedLength: Int {
        switch self { case .v4: return 4; case .v6: return 16 }
    }

    @inlinable
    public func write(into w: inout ByteWriter) {
        switch self {
        case .v4(let a): w.u32(a.rawValue)
        case .v6(let a): w.u64(a.high); w.u64(a.low)
        }
    }
}

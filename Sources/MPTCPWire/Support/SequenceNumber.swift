/// A 32-bit TCP sequence number with wrapping arithmetic and RFC 793/1982
/// serial-number comparison (a < b when b - a, as signed 32-bit, is positive).
public struct TCPSeq: Equatable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(_ raw: UInt32) { rawValue = raw }

    @inlinable public static func + (a: TCPSeq, n: UInt32) -> TCPSeq { TCPSeq(a.rawValue &+ n) }
    @inlinable public static func - (a: TCPSeq, n: UInt32) -> TCPSeq { TCPSeq(a.rawValue &- n) }
    /// Signed distance b - a.
    @inlinable public static func - (b: TCPSeq, a: TCPSeq) -> Int32 { Int32(bitPattern: b.rawValue &- a.rawValue) }
    @inlinable public static func < (a: TCPSeq, b: TCPSeq) -> Bool { Int32(bitPattern: a.rawValue &- b.rawValue) < 0 }

    public var description: String { String(rawValue) }
}

/// A 64-bit MPTCP data sequence number (wrapping, serial comparison).
public struct DataSeq: Equatable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inlinable public init(_ raw: UInt64) { rawValue = raw }

    @inlinable public static func + (a: DataSeq, n: UInt64) -> DataSeq { DataSeq(a.rawValue &+ n) }
    @inlinable public static func - (b: DataSeq, a: DataSeq) -> Int64 { Int64(bitPattern: b.rawValue &- a.rawValue) }
    @inlinable public static func < (a: DataSeq, b: DataSeq) -> Bool { Int64(bitPattern: a.rawValue &- b.rawValue) < 0 }

    /// Expands a 32-bit DSN carried on the wire to the 64-bit DSN nearest to
    /// `near` (RFC 8684 §3.3.1: the upper bits are implied by the connection).
    @inlinable
    public static func expand(low32: UInt32, near: DataSeq) -> DataSeq {
        let base = near.rawValue & 0xFFFF_FFFF_0000_0000
        let candidate = base | UInt64(low32)
        let diff = Int64(bitPattern: candidate &- near.rawValue)
        if diff > Int64(Int32.max) { return DataSeq(candidate &- (1 << 32)) }
        if diff < Int64(Int32.min) { return DataSeq(candidate &+ (1 << 32)) }
        return DataSeq(candidate)
    }

    public var description: String { String(rawValue) }
}

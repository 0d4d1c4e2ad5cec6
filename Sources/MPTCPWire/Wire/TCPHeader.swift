// The TCP header (RFC 9293 §3.1): a validating view and a value type.

public enum TCPFlags {
    public static let fin: UInt8 = 0x01
    public static let syn: UInt8 = 0x02
    public static let rst: UInt8 = 0x04
    public static let psh: UInt8 = 0x08
    public static let ack: UInt8 = 0x10
    public static let urg: UInt8 = 0x20
    public static let ece: UInt8 = 0x40
    public static let cwr: UInt8 = 0x80

    /// "SA", "FPA", … in tcpdump's order of letters.
    public static func string(_ f: UInt8) -> String {
        var s = ""
        if f & syn != 0 { s += "S" }
        if f & fin != 0 { s += "F" }
        if f & rst != 0 { s += "R" }
        if f & psh != 0 { s += "P" }
        if f & ack != 0 { s += "." }
        if f & urg != 0 { s += "U" }
        if f & ece != 0 { s += "E" }
        if f & cwr != 0 { s += "W" }
        return s.isEmpty ? "none" : s
    }
}

/// A checked, non-owning view of a TCP segment (header, options, payload).
/// Lengths are validated once here; every accessor after that is safe.
public struct TCPSegmentView {
    public let bytes: UnsafeRawBufferPointer

    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= 20 else { throw .truncated }
        let off = Int(bytes.u8(12) >> 4) * 4
        guard off >= 20 else { throw .badHeaderLength }
        guard off <= bytes.count else { throw .truncated }
        self.bytes = bytes
    }

    @inlinable public var sourcePort: UInt16 { bytes.u16(0) }
    @inlinable public var destinationPort: UInt16 { bytes.u16(2) }
    @inlinable public var seq: TCPSeq { TCPSeq(bytes.u32(4)) }
    @inlinable public var ack: TCPSeq { TCPSeq(bytes.u32(8)) }
    @inlinable public var headerLength: Int { Int(bytes.u8(12) >> 4) * 4 }
    /// The low nibble of byte 12 (reserved bits and AE).
    @inlinable public var reservedBits: UInt8 { bytes.u8(12) & 0x0f }
    @inlinable public var flags: UInt8 { bytes.u8(13) }
    @inlinable public var window: UInt16 { bytes.u16(14) }
    @inlinable public var checksum: UInt16 { bytes.u16(16) }
    @inlinable public var urgentPointer: UInt16 { bytes.u16(18) }
    @inlinable @inline(__always) public var optionArea: UnsafeRawBufferPointer { bytes.slice(20, headerLength - 20) }
    @inlinable public var payload: UnsafeRawBufferPointer { bytes.slice(headerLength, bytes.count - headerLength) }
    @inlinable public var options: TCPOptionIterator { TCPOptionIterator(optionArea) }

    @inlinable public func has(_ flag: UInt8) -> Bool { flags & flag != 0 }
}

/// The options of one segment, in order, inline (a 40-byte area holds at most 40).
public struct TCPOptionList: Equatable, Sendable {
    @usableFromInline var storage: InlineArray<40, TCPOption>
    public private(set) var count: Int

    public init() {
        storage = InlineArray(repeating: .noOperation)
        count = 0
    }

    public init(parsing area: UnsafeRawBufferPointer) {
        self.init()
        for e in TCPOptionIterator(area) where count < 40 {
            storage[count] = e.option
            count += 1
        }
    }

    public subscript(i: Int) -> TCPOption { storage[i] }

    @discardableResult
    public mutating func append(_ o: TCPOption) -> Bool {
        guard count < 40 else { return false }
        storage[count] = o
        count += 1
        return true
    }

    public var encodedLength: Int {
        var n = 0
        for i in 0 ..< count { n += storage[i].encodedLength }
        return n
    }

    public func write(into w: inout ByteWriter) {
        for i in 0 ..< count { storage[i].write(into: &w) }
    }

    public var array: [TCPOption] { (0 ..< count).map { storage[$0] } }

    public static func == (a: Self, b: Self) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0 ..< a.count where a.storage[i] != b.storage[i] { return false }
        return true
    }
}

/// A TCP header as a value. `emit` is the exact inverse of `init(parsing:)`.
public struct TCPHeader: Equatable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var seq: TCPSeq
    public var ack: TCPSeq
    public var reservedBits: UInt8
    public var flags: UInt8
    public var window: UInt16
    public var checksum: UInt16
    public var urgentPointer: UInt16
    public var options: TCPOptionList

    public init(sourcePort: UInt16, destinationPort: UInt16, seq: TCPSeq, ack: TCPSeq,
                flags: UInt8, window: UInt16, checksum: UInt16 = 0, urgentPointer: UInt16 = 0,
                reservedBits: UInt8 = 0, options: TCPOptionList = TCPOptionList()) {
        self.sourcePort = sourcePort; self.destinationPort = destinationPort
        self.seq = seq; self.ack = ack; self.flags = flags; self.window = window
        self.checksum = checksum; self.urgentPointer = urgentPointer
        self.reservedBits = reservedBits; self.options = options
    }

    public init(_ v: TCPSegmentView) {
        sourcePort = v.sourcePort; destinationPort = v.destinationPort
        seq = v.seq; ack = v.ack; reservedBits = v.reservedBits; flags = v.flags
        window = v.window; checksum = v.checksum; urgentPointer = v.urgentPointer
        options = TCPOptionList(parsing: v.optionArea)
    }

    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        self.init(try TCPSegmentView(bytes))
    }

    /// Header bytes; options are padded with EOL bytes to a multiple of 4.
    public var encodedLength: Int { 20 + (options.encodedLength + 3) & ~3 }

    /// Writes the header (not the payload). Throws `.noRoom` when the options
    /// exceed 40 bytes or the buffer is short.
    public func emit(into w: inout ByteWriter) throws(WireError) {
        let optLen = options.encodedLength
        let padded = (optLen + 3) & ~3
        guard padded <= 40, w.remaining >= 20 + padded else { throw .noRoom }
        w.u16(sourcePort); w.u16(destinationPort)
        w.u32(seq.rawValue); w.u32(ack.rawValue)
        w.u8(UInt8((20 + padded) / 4) << 4 | reservedBits & 0x0f)
        w.u8(flags); w.u16(window); w.u16(checksum); w.u16(urgentPointer)
        options.write(into: &w)
        for _ in optLen ..< padded { w.u8(0) }
    }
}

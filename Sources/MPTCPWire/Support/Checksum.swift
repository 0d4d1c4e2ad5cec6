/// The Internet checksum (RFC 1071): a one's-complement sum of 16-bit words.
///
/// Words are summed in native byte order into a 64-bit accumulator and
/// swapped once at the end (RFC 1071 §2(B): the sum is byte-order
/// independent). Chunks may have any length; an odd chunk carries its
/// position into the next one.
public struct InternetChecksum: Sendable {
    @usableFromInline var sum: UInt64 = 0
    /// True when an odd number of bytes has been added so far.
    @usableFromInline var odd = false

    @inlinable public init() {}

    /// Adds a 16-bit value in network order (e.g. a pseudo-header field).
    @inlinable
    public mutating func add(_ value: UInt16) {
        // At an odd position the value straddles two words; in native order
        // its contribution is then the host value itself (see add(bytes:)).
        sum &+= odd ? UInt64(value.bigEndian.byteSwapped) : UInt64(value.bigEndian)
    }

    @inlinable
    public mutating func add(_ value: UInt32) {
        add(UInt16(truncatingIfNeeded: value >> 16))
        add(UInt16(truncatingIfNeeded: value))
    }

    @inlinable
    public mutating func add(_ value: UInt64) {
        add(UInt32(truncatingIfNeeded: value >> 32))
        add(UInt32(truncatingIfNeeded: value))
    }

    @inlinable
    public mutating func add(_ address: IPAddress) {
        switch address {
        case .v4(let a): add(a.rawValue)
        case .v6(let a): add(a.high); add(a.low)
        }
    }

    @inlinable
    public mutating func add(bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        if n == 0 { return }
        var i = 0
        var local: UInt64 = 0
        if odd {
            // This byte is the second (low-order) byte of the pending word.
            local &+= UInt64(UInt16(bytes[0]).bigEndian)
            i = 1
        }
        // Sum 32-bit native words into 64 bits (cannot overflow below 2^32 words).
        while i + 4 <= n {
            local &+= UInt64(bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            i += 4
        }
        if i + 2 <= n {
            local &+= UInt64(bytes.loadUnaligned(fromByteOffset: i, as: UInt16.self))
            i += 2
        }
        if i < n {
            // A trailing byte is the first (high-order) byte of a zero-padded word.
            local &+= UInt64((UInt16(bytes[i]) << 8).bigEndian)
        }
        sum = Self.addFolded(sum, local)
        if n & 1 == 1 { odd.toggle() }
    }

    @inlinable
    static func addFolded(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (s, o) = a.addingReportingOverflow(b)
        return o ? s &+ 1 : s
    }

    /// The folded one's-complement sum (not complemented), host order.
    @inlinable
    public var folded: UInt16 {
        var s = sum
        s = (s & 0xFFFF_FFFF) &+ (s >> 32)
        s = (s & 0xFFFF_FFFF) &+ (s >> 32)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        return UInt16(truncatingIfNeeded: s).bigEndian // native-order sum -> host value
    }

    /// The checksum to write in a header field: the complement of the sum.
    @inlinable public var checksum: UInt16 { ~folded }

    /// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for one 16-bit field change.
    @inlinable
    public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        var s = UInt32(~checksum) &+ UInt32(~old) &+ UInt32(new)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        return ~UInt16(truncatingIfNeeded: s)
    }

    /// RFC 1624 for a 32-bit field change (e.g. a sequence number).
    @inlinable
    public static func update(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        let c = update(checksum, old: UInt16(truncatingIfNeeded: old >> 16), new: UInt16(truncatingIfNeeded: new >> 16))
        return update(c, old: UInt16(truncatingIfNeeded: old), new: UInt16(truncatingIfNeeded: new))
    }
}


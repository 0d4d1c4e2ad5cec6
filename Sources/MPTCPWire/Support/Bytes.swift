// Big-endian loads and stores over raw byte views. Callers validate lengths
// once (in a view's initializer) and then use these unchecked accessors.

extension UnsafeRawBufferPointer {
    @inlinable @inline(__always)
    public func u8(_ offset: Int) -> UInt8 { self[offset] }

    @inlinable @inline(__always)
    public func u16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always)
    public func u32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable @inline(__always)
    public func u64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A sub-view `[from, from+count)`; the caller has checked the bounds.
    @inlinable @inline(__always)
    public func slice(_ from: Int, _ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[from ..< from + count])
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable @inline(__always)
    public func put8(_ value: UInt8, at offset: Int) { self[offset] = value }

    @inlinable @inline(__always)
    public func put16(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inlinable @inline(__always)
    public func put32(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    @inlinable @inline(__always)
    public func put64(_ value: UInt64, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
    }
}

/// A cursor that writes big-endian fields into a caller-provided buffer.
/// Bounds were checked by the caller against `encodedLength` before emitting.
public struct ByteWriter {
    public let buffer: UnsafeMutableRawBufferPointer
    public var offset: Int

    @inlinable
    public init(_ buffer: UnsafeMutableRawBufferPointer, offset: Int = 0) {
        self.buffer = buffer
        self.offset = offset
    }

    @inlinable public var remaining: Int { buffer.count - offset }

    @inlinable public mutating func u8(_ v: UInt8) { buffer.put8(v, at: offset); offset += 1 }
    @inlinable public mutating func u16(_ v: UInt16) { buffer.put16(v, at: offset); offset += 2 }
    @inlinable public mutating func u32(_ v: UInt32) { buffer.put32(v, at: offset); offset += 4 }
    @inlinable public mutating func u64(_ v: UInt64) { buffer.put64(v, at: offset); offset += 8 }

    @inlinable public mutating func bytes(_ src: UnsafeRawBufferPointer) {
        if src.isEmpty { return }
        UnsafeMutableRawBufferPointer(rebasing: buffer[offset ..< offset + src.count]).copyMemory(from: src)
        offset += src.count
    }
}

/// Up to 40 bytes held inline (no heap): the size of a TCP option area,
/// which bounds unknown options, padding after EOL and REMOVE_ADDR id lists.
public struct InlineBytes40: Equatable, Hashable, Sendable {
    public static let capacity = 40
    @usableFromInline var storage: InlineArray<40, UInt8>
    public private(set) var count: Int

    public init() {
        storage = InlineArray(repeating: 0)
        count = 0
    }

    /// Copies `bytes`; returns nil when there are more than 40.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count <= Self.capacity else { return nil }
        self.init()
        for i in 0 ..< bytes.count { storage[i] = bytes[i] }
        count = bytes.count
    }

    public init?(_ bytes: some Sequence<UInt8>) {
        self.init()
        for b in bytes {
            guard count < Self.capacity else { return nil }
            storage[count] = b
            count += 1
        }
    }

    public subscript(i: Int) -> UInt8 { storage[i] }

    public mutating func append(_ b: UInt8) -> Bool {
        guard count < Self.capacity else { return false }
        storage[count] = b
        count += 1
        return true
    }

    public var array: [UInt8] { (0 ..< count).map { storage[$0] } }

    func write(into w: inout ByteWriter) {
        for i in 0 ..< count { w.u8(storage[i]) }
    }

    public static func == (a: Self, b: Self) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0 ..< a.count where a.storage[i] != b.storage[i] { return false }
        return true
    }

    public func hash(into h: inout Hasher) {
        h.combine(count)
        for i in 0 ..< count { h.combine(storage[i]) }
    }
}

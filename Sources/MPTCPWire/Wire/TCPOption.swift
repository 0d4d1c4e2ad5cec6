// TCP options (RFC 9293 §3.1, RFC 7323, RFC 2018) and their iteration.

public enum TCPOptionKind {
    public static let endOfList: UInt8 = 0
    public static let noOperation: UInt8 = 1
    public static let maxSegmentSize: UInt8 = 2
    public static let windowScale: UInt8 = 3
    public static let sackPermitted: UInt8 = 4
    public static let sack: UInt8 = 5
    public static let timestamps: UInt8 = 8
    public static let mptcp: UInt8 = 30
}

public struct SACKBlock: Equatable, Hashable, Sendable {
    public var left: TCPSeq
    public var right: TCPSeq
    public init(left: TCPSeq, right: TCPSeq) { self.left = left; self.right = right }
}

/// Up to four SACK blocks (the most a 40-byte option area holds), inline.
public struct SACKBlocks: Equatable, Hashable, Sendable {
    @usableFromInline var storage: InlineArray<4, SACKBlock>
    public private(set) var count: Int

    public init() {
        storage = InlineArray(repeating: SACKBlock(left: TCPSeq(0), right: TCPSeq(0)))
        count = 0
    }

    public subscript(i: Int) -> SACKBlock {
        get { storage[i] }
        set { storage[i] = newValue }
    }

    @discardableResult
    public mutating func append(_ b: SACKBlock) -> Bool {
        guard count < 4 else { return false }
        storage[count] = b
        count += 1
        return true
    }

    public mutating func removeAll() { count = 0 }

    public static func == (a: Self, b: Self) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0 ..< a.count where a.storage[i] != b.storage[i] { return false }
        return true
    }

    public func hash(into h: inout Hasher) {
        for i in 0 ..< count { h.combine(storage[i]) }
    }
}

/// One TCP option as a value.
public enum TCPOption: Equatable, Hashable, Sendable {
    /// EOL and the bytes after it up to the end of the option area (padding).
    case endOfList(padding: InlineBytes40)
    case noOperation
    case maxSegmentSize(UInt16)
    case windowScale(UInt8)
    case sackPermitted
    case sack(SACKBlocks)
    case timestamps(value: UInt32, echoReply: UInt32)
    case mptcp(MPTCPOption)
    /// An option kind we do not decode: the whole option as is (kept, not an error).
    case unknown(kind: UInt8, bytes: InlineBytes40)
    /// An option that failed to decode, with the reason; its bytes are kept
    /// so the segment still re-emits byte for byte.
    case malformed(reason: WireError, bytes: InlineBytes40)

    public var kind: UInt8 {
        switch self {
        case .endOfList: return TCPOptionKind.endOfList
        case .noOperation: return TCPOptionKind.noOperation
        case .maxSegmentSize: return TCPOptionKind.maxSegmentSize
        case .windowScale: return TCPOptionKind.windowScale
        case .sackPermitted: return TCPOptionKind.sackPermitted
        case .sack: return TCPOptionKind.sack
        case .timestamps: return TCPOptionKind.timestamps
        case .mptcp: return TCPOptionKind.mptcp
        case .unknown(let k, _): return k
        case .malformed(_, let b): return b[0]
        }
    }

    public var encodedLength: Int {
        switch self {
        case .endOfList(let p): return 1 + p.count
        case .noOperation: return 1
        case .maxSegmentSize: return 4
        case .windowScale: return 3
        case .sackPermitted: return 2
        case .sack(let s): return 2 + 8 * s.count
        case .timestamps: return 10
        case .mptcp(let m): return m.encodedLength
        case .unknown(_, let b), .malformed(_, let b): return b.count
        }
    }

    /// Parses one option from exactly its bytes, as delimited by
    /// `TCPOptionIterator` (for EOL: EOL plus the trailing padding).
    public init(parsing b: UnsafeRawBufferPointer) throws(WireError) {
        guard b.count >= 1 else { throw .truncated }
        // No option outgrows a 40-byte option area (and InlineBytes40 holds no more).
        guard b.count <= InlineBytes40.capacity else { throw .optionOverrun }
        let kind = b.u8(0)
        switch kind {
        case TCPOptionKind.endOfList:
            self = .endOfList(padding: InlineBytes40(b.slice(1, b.count - 1))!)
            return
        case TCPOptionKind.noOperation:
            guard b.count == 1 else { throw .badOptionLength }
            self = .noOperation
            return
        default: break
        }
        guard b.count >= 2 else { throw .optionMissingLength }
        guard Int(b.u8(1)) == b.count else { throw .badOptionLength }
        switch kind {
        case TCPOptionKind.maxSegmentSize:
            guard b.count == 4 else { throw .badOptionLength }
            self = .maxSegmentSize(b.u16(2))
        case TCPOptionKind.windowScale:
            guard b.count == 3 else { throw .badOptionLength }
            self = .windowScale(b.u8(2))
        case TCPOptionKind.sackPermitted:
            guard b.count == 2 else { throw .badOptionLength }
            self = .sackPermitted
        case TCPOptionKind.sack:
            guard b.count >= 10, (b.count - 2) % 8 == 0 else { throw .badOptionLength }
            var blocks = SACKBlocks()
            var o = 2
            while o + 8 <= b.count {
                blocks.append(SACKBlock(left: TCPSeq(b.u32(o)), right: TCPSeq(b.u32(o + 4))))
                o += 8
            }
            self = .sack(blocks)
        case TCPOptionKind.timestamps:
            guard b.count == 10 else { throw .badOptionLength }
            self = .timestamps(value: b.u32(2), echoReply: b.u32(6))
        case TCPOptionKind.mptcp:
            self = .mptcp(try MPTCPOption(parsing: b))
        default:
            self = .unknown(kind: kind, bytes: InlineBytes40(b)!)
        }
    }

    public func write(into w: inout ByteWriter) {
        switch self {
        case .endOfList(let p): w.u8(0); p.write(into: &w)
        case .noOperation: w.u8(1)
        case .maxSegmentSize(let v): w.u8(2); w.u8(4); w.u16(v)
        case .windowScale(let v): w.u8(3); w.u8(3); w.u8(v)
        case .sackPermitted: w.u8(4); w.u8(2)
        case .sack(let s):
            w.u8(5); w.u8(UInt8(2 + 8 * s.count))
            for i in 0 ..< s.count { w.u32(s[i].left.rawValue); w.u32(s[i].right.rawValue) }
        case .timestamps(let v, let e): w.u8(8); w.u8(10); w.u32(v); w.u32(e)
        case .mptcp(let m): m.write(into: &w)
        case .unknown(_, let b), .malformed(_, let b): b.write(into: &w)
        }
    }
}

/// Splits a TCP option area into options without decoding them.
///
/// Each element is the exact byte range of one option. A structural fault
/// (a missing length byte, a length < 2, a length past the end) yields one
/// last element covering the rest of the area with its `fault` set, and the
/// iteration ends there, as Linux's parser stops there too.
public struct TCPOptionIterator: IteratorProtocol, Sequence {
    public struct Element {
        public var offset: Int
        public var bytes: UnsafeRawBufferPointer
        /// Non-nil when the option's extent itself could not be determined.
        public var fault: WireError?
        public var kind: UInt8 { bytes[0] }

        /// Decodes the option (the structural fault first, if any).
        public func parse() throws(WireError) -> TCPOption {
            if let f = fault { throw f }
            return try TCPOption(parsing: bytes)
        }

        /// Decodes the option, or keeps it as `.malformed` with the reason.
        public var option: TCPOption {
            do { return try parse() } catch { return .malformed(reason: error, bytes: InlineBytes40(bytes)!) }
        }
    }

    let area: UnsafeRawBufferPointer
    var offset = 0

    public init(_ area: UnsafeRawBufferPointer) { self.area = area }

    public mutating func next() -> Element? {
        let n = area.count
        guard offset < n else { return nil }
        let start = offset
        let kind = area.u8(start)
        switch kind {
        case TCPOptionKind.endOfList:
            offset = n
            return Element(offset: start, bytes: area.slice(start, n - start), fault: nil)
        case TCPOptionKind.noOperation:
            offset += 1
            return Element(offset: start, bytes: area.slice(start, 1), fault: nil)
        default:
            var fault: WireError?
            if start + 1 >= n { fault = .optionMissingLength } else {
                let len = Int(area.u8(start + 1))
                if len < 2 { fault = .optionLengthTooSmall } else if start + len > n { fault = .optionOverrun } else {
                    offset += len
                    return Element(offset: start, bytes: area.slice(start, len), fault: nil)
                }
            }
            offset = n
            return Element(offset: start, bytes: area.slice(start, n - start), fault: fault)
        }
    }
}

/// The TCP options the engine writes itself, by name: one place that knows
/// their kinds, lengths and alignment (RFC 9293, RFC 7323, RFC 2018). The
/// caller has checked the room.
extension ByteWriter {
    /// MSS (kind 2, 4 bytes).
    @inlinable public mutating func mssOption(_ mss: UInt16) {
        u8(TCPOptionKind.maxSegmentSize); u8(4); u16(mss)
    }

    /// SACK permitted (kind 4, 2 bytes), unpadded.
    @inlinable public mutating func sackPermittedOption() {
        u8(TCPOptionKind.sackPermitted); u8(2)
    }

    /// Timestamps (kind 8, 10 bytes); `aligned`: after two NOPs, as Linux
    /// sends it on segments (12 bytes).
    @inlinable public mutating func timestampsOption(value: UInt32, echo: UInt32, aligned: Bool) {
        if aligned { u8(TCPOptionKind.noOperation); u8(TCPOptionKind.noOperation) }
        u8(TCPOptionKind.timestamps); u8(10); u32(value); u32(echo)
    }

    /// Window scale (kind 3, 3 bytes) after one NOP (4 bytes).
    @inlinable public mutating func windowScaleOption(_ shift: UInt8) {
        u8(TCPOptionKind.noOperation); u8(TCPOptionKind.windowScale); u8(3); u8(shift)
    }

    /// The header of a SACK option (kind 5) for `blocks` blocks after two
    /// NOPs; the caller writes the blocks.
    @inlinable public mutating func sackOptionHeader(blocks: Int) {
        u8(TCPOptionKind.noOperation); u8(TCPOptionKind.noOperation)
        u8(TCPOptionKind.sack); u8(UInt8(2 + 8 * blocks))
    }

    /// NOPs up to the next multiple of 4 bytes (the option area's end).
    @inlinable public mutating func padOptions() {
        while offset & 3 != 0 { u8(TCPOptionKind.noOperation) }
    }
}

// IPv4 (RFC 791) and IPv6 (RFC 8200) headers: views and values.

public enum IPProtocol {
    public static let tcp: UInt8 = 6
    public static let icmp: UInt8 = 1
    public static let icmpv6: UInt8 = 58
}

/// A checked view of an IPv4 packet. The view ends at Total Length, so
/// link-layer padding (Ethernet minimum frame) is excluded.
public struct IPv4PacketView {
    public let bytes: UnsafeRawBufferPointer

    /// `allowTruncated`: accept a packet cut short by a capture's snap
    /// length (the view then ends where the bytes end).
    @inlinable
    public init(_ raw: UnsafeRawBufferPointer, allowTruncated: Bool = false) throws(WireError) {
        guard raw.count >= 20 else { throw .truncated }
        guard raw.u8(0) >> 4 == 4 else { throw .badVersion }
        let ihl = Int(raw.u8(0) & 0x0f) * 4
        guard ihl >= 20 else { throw .badHeaderLength }
        guard ihl <= raw.count else { throw .truncated }
        let total = Int(raw.u16(2))
        guard total >= ihl else { throw .badTotalLength }
        guard total <= raw.count || allowTruncated else { throw .truncated }
        bytes = raw.slice(0, min(total, raw.count))
    }

    @inlinable public var headerLength: Int { Int(bytes.u8(0) & 0x0f) * 4 }
    @inlinable public var tos: UInt8 { bytes.u8(1) }
    @inlinable public var totalLength: UInt16 { bytes.u16(2) }
    @inlinable public var identification: UInt16 { bytes.u16(4) }
    @inlinable public var flagsAndFragmentOffset: UInt16 { bytes.u16(6) }
    @inlinable public var fragmentOffset: UInt16 { bytes.u16(6) & 0x1fff }
    @inlinable public var moreFragments: Bool { bytes.u16(6) & 0x2000 != 0 }
    @inlinable public var ttl: UInt8 { bytes.u8(8) }
    @inlinable public var proto: UInt8 { bytes.u8(9) }
    @inlinable public var headerChecksum: UInt16 { bytes.u16(10) }
    @inlinable public var source: IPv4Address { IPv4Address(bytes.u32(12)) }
    @inlinable public var destination: IPv4Address { IPv4Address(bytes.u32(16)) }
    @inlinable public var payload: UnsafeRawBufferPointer { bytes.slice(headerLength, bytes.count - headerLength) }

    /// True when the header checksum verifies.
    public var headerChecksumValid: Bool {
        var c = InternetChecksum()
        c.add(bytes: bytes.slice(0, headerLength))
        return c.folded == 0xffff
    }
}

/// An IPv4 header as a value. `emit` is the exact inverse of parsing.
public struct IPv4Header: Equatable, Sendable {
    public var tos: UInt8
    public var totalLength: UInt16
    public var identification: UInt16
    public var flagsAndFragmentOffset: UInt16
    public var ttl: UInt8
    public var proto: UInt8
    public var headerChecksum: UInt16
    public var source: IPv4Address
    public var destination: IPv4Address
    public var options: InlineBytes40

    public init(tos: UInt8 = 0, totalLength: UInt16, identification: UInt16 = 0,
                flagsAndFragmentOffset: UInt16 = 0x4000, ttl: UInt8 = 64, proto: UInt8 = IPProtocol.tcp,
                headerChecksum: UInt16 = 0, source: IPv4Address, destination: IPv4Address,
                options: InlineBytes40 = InlineBytes40()) {
        self.tos = tos; self.totalLength = totalLength; self.identification = identification
        self.flagsAndFragmentOffset = flagsAndFragmentOffset; self.ttl = ttl; self.proto = proto
        self.headerChecksum = headerChecksum; self.source = source; self.destination = destination
        self.options = options
    }

    public init(_ v: IPv4PacketView) {
        tos = v.tos; totalLength = v.totalLength; identification = v.identification
        flagsAndFragmentOffset = v.flagsAndFragmentOffset; ttl = v.ttl; proto = v.proto
        headerChecksum = v.headerChecksum; source = v.source; destination = v.destination
        options = InlineBytes40(v.bytes.slice(20, v.headerLength - 20))!
    }

    public var encodedLength: Int { 20 + options.count }

    public func emit(into w: inout ByteWriter) throws(WireError) {
        guard options.count % 4 == 0, w.remaining >= encodedLength else { throw .noRoom }
        w.u8(0x40 | UInt8(encodedLength / 4)); w.u8(tos); w.u16(totalLength)
        w.u16(identification); w.u16(flagsAndFragmentOffset)
        w.u8(ttl); w.u8(proto); w.u16(headerChecksum)
        w.u32(source.rawValue); w.u32(destination.rawValue)
        options.write(into: &w)
    }

    /// The header checksum this header should carry.
    public func computedChecksum() -> UInt16 {
        var c = self
        c.headerChecksum = 0
        return withUnsafeTemporaryAllocation(byteCount: 60, alignment: 8) { buf in
            var w = ByteWriter(buf)
            try! c.emit(into: &w)
            var sum = InternetChecksum()
            sum.add(bytes: UnsafeRawBufferPointer(rebasing: buf[0 ..< w.offset]))
            return sum.checksum
        }
    }
}

/// A checked view of an IPv6 packet: the fixed header, then the extension
/// headers that can precede TCP (hop-by-hop, routing, fragment, destination
/// options) are walked to find the upper-layer header.
public struct IPv6PacketView {
    public let bytes: UnsafeRawBufferPointer
    /// Offset of the upper-layer header (40 when there are no extension headers).
    public let upperLayerOffset: Int
    /// The upper-layer protocol after the extension headers.
    public let upperLayerProtocol: UInt8
    /// True when a fragment header with a non-zero offset was seen.
    public let isNonFirstFragment: Bool

    @inlinable
    public init(_ raw: UnsafeRawBufferPointer, allowTruncated: Bool = false) throws(WireError) {
        guard raw.count >= 40 else { throw .truncated }
        guard raw.u8(0) >> 4 == 6 else { throw .badVersion }
        var total = 40 + Int(raw.u16(4))
        guard total <= raw.count || allowTruncated else { throw .truncated }
        total = min(total, raw.count)
        let b = raw.slice(0, total)
        var next = b.u8(6)
        var off = 40
        var nonFirst = false
        // Bounded walk: each header is at least 8 bytes, so at most total/8 steps.
        walk: while true {
            switch next {
            case 0, 43, 60: // hop-by-hop, routing, destination options
                guard off + 8 <= total else { throw .truncated }
                let len = (Int(b.u8(off + 1)) + 1) * 8
                guard off + len <= total else { throw .truncated }
                next = b.u8(off)
                off += len
            case 44: // fragment
                guard off + 8 <= total else { throw .truncated }
                if b.u16(off + 2) & 0xfff8 != 0 { nonFirst = true }
                next = b.u8(off)
                off += 8
            default:
                break walk
            }
        }
        bytes = b
        upperLayerOffset = off
        upperLayerProtocol = next
        isNonFirstFragment = nonFirst
    }

    @inlinable public var trafficClass: UInt8 { UInt8(truncatingIfNeeded: bytes.u32(0) >> 20) }
    @inlinable public var flowLabel: UInt32 { bytes.u32(0) & 0x000f_ffff }
    @inlinable public var payloadLength: UInt16 { bytes.u16(4) }
    @inlinable public var nextHeader: UInt8 { bytes.u8(6) }
    @inlinable public var hopLimit: UInt8 { bytes.u8(7) }
    @inlinable public var source: IPv6Address { IPv6Address(high: bytes.u64(8), low: bytes.u64(16)) }
    @inlinable public var destination: IPv6Address { IPv6Address(high: bytes.u64(24), low: bytes.u64(32)) }
    @inlinable public var extensionHeaders: UnsafeRawBufferPointer { bytes.slice(40, upperLayerOffset - 40) }
    @inlinable public var upperLayer: UnsafeRawBufferPointer { bytes.slice(upperLayerOffset, bytes.count - upperLayerOffset) }
}

/// The fixed IPv6 header as a value (extension headers are carried as bytes
/// by `IPPacket`).
public struct IPv6Header: Equatable, Sendable {
    public var trafficClass: UInt8
    public var flowLabel: UInt32
    public var payloadLength: UInt16
    public var nextHeader: UInt8
    public var hopLimit: UInt8
    public var source: IPv6Address
    public var destination: IPv6Address

    public init(trafficClass: UInt8 = 0, flowLabel: UInt32 = 0, payloadLength: UInt16,
                nextHeader: UInt8 = IPProtocol.tcp, hopLimit: UInt8 = 64,
                source: IPv6Address, destination: IPv6Address) {
        self.trafficClass = trafficClass; self.flowLabel = flowLabel; self.payloadLength = payloadLength
        self.nextHeader = nextHeader; self.hopLimit = hopLimit; self.source = source; self.destination = destination
    }

    public init(_ v: IPv6PacketView) {
        trafficClass = v.trafficClass; flowLabel = v.flowLabel; payloadLength = v.payloadLength
        nextHeader = v.nextHeader; hopLimit = v.hopLimit; source = v.source; destination = v.destination
    }

    public var encodedLength: Int { 40 }

    public func emit(into w: inout ByteWriter) throws(WireError) {
        guard w.remaining >= 40 else { throw .noRoom }
        w.u32(6 << 28 | UInt32(trafficClass) << 20 | flowLabel & 0x000f_ffff)
        w.u16(payloadLength); w.u8(nextHeader); w.u8(hopLimit)
        w.u64(source.high); w.u64(source.low); w.u64(destination.high); w.u64(destination.low)
    }
}

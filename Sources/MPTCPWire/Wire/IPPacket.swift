// A whole IP packet carrying TCP: view for the data path, value for
// inspection and round-trip tests.

/// A checked view of an IPv4 or IPv6 packet that carries a TCP segment.
public struct TCPPacketView {
    public enum Family: Sendable { case v4, v6 }
    public let family: Family
    /// The IP packet (up to its stated length).
    public let ip: UnsafeRawBufferPointer
    /// Offset of the TCP header inside `ip`.
    public let tcpOffset: Int
    public let tcp: TCPSegmentView
    public let source: IPAddress
    public let destination: IPAddress

    /// Validates IP and TCP headers. Non-TCP packets and non-first fragments
    /// are typed errors (`.notTCP`, `.fragment`).
    @inlinable
    public init(_ raw: UnsafeRawBufferPointer, allowTruncated: Bool = false) throws(WireError) {
        guard raw.count >= 1 else { throw .truncated }
        switch raw.u8(0) >> 4 {
        case 4:
            let v = try IPv4PacketView(raw, allowTruncated: allowTruncated)
            guard v.proto == IPProtocol.tcp else { throw .notTCP }
            guard v.fragmentOffset == 0 else { throw .fragment }
            family = .v4
            ip = v.bytes
            tcpOffset = v.headerLength
            tcp = try TCPSegmentView(v.payload)
            source = .v4(v.source)
            destination = .v4(v.destination)
        case 6:
            let v = try IPv6PacketView(raw, allowTruncated: allowTruncated)
            guard !v.isNonFirstFragment else { throw .fragment }
            guard v.upperLayerProtocol == IPProtocol.tcp else { throw .notTCP }
            family = .v6
            ip = v.bytes
            tcpOffset = v.upperLayerOffset
            tcp = try TCPSegmentView(v.upperLayer)
            source = .v6(v.source)
            destination = .v6(v.destination)
        default:
            throw .badVersion
        }
    }

    /// The TCP checksum this segment should carry (RFC 9293 §3.1 pseudo-header;
    /// RFC 8200 §8.1 for IPv6), computed over the segment with its checksum
    /// field taken as zero.
    public func computedTCPChecksum() -> UInt16 {
        TCPChecksum.compute(source: source, destination: destination, segment: tcp.bytes, checksumFieldIsZero: false)
    }

    /// True when the TCP checksum field verifies.
    public var tcpChecksumValid: Bool {
        var c = TCPChecksum.pseudoHeader(source: source, destination: destination, length: tcp.bytes.count)
        c.add(bytes: tcp.bytes)
        return c.folded == 0xffff
    }
}

public enum TCPChecksum {
    @inlinable
    public static func pseudoHeader(source: IPAddress, destination: IPAddress, length: Int) -> InternetChecksum {
        var c = InternetChecksum()
        c.add(source)
        c.add(destination)
        switch source {
        case .v4: c.add(UInt16(IPProtocol.tcp)); c.add(UInt16(truncatingIfNeeded: length))
        case .v6: c.add(UInt32(truncatingIfNeeded: length)); c.add(UInt32(IPProtocol.tcp))
        }
        return c
    }

    /// The checksum for `segment`. When `checksumFieldIsZero` is false the
    /// current field value is subtracted out, so the caller need not zero it.
    public static func compute(source: IPAddress, destination: IPAddress, segment: UnsafeRawBufferPointer,
                               checksumFieldIsZero: Bool = true) -> UInt16 {
        var c = pseudoHeader(source: source, destination: destination, length: segment.count)
        c.add(bytes: segment)
        var sum = UInt32(c.folded)
        if !checksumFieldIsZero && segment.count >= 18 {
            // Take the field's contribution out: one's-complement subtraction
            // is the addition of its complement.
            sum &+= UInt32(~segment.u16(16))
            sum = (sum & 0xffff) &+ (sum >> 16)
            sum = (sum & 0xffff) &+ (sum >> 16)
        }
        return ~UInt16(truncatingIfNeeded: sum)
    }
}

/// The MPTCP DSS checksum, RFC 8684 §3.3.1: the Internet checksum over a
/// pseudo-header (64-bit DSN, 32-bit relative subflow sequence number, 16-bit
/// data-level length, 16 zero bits) followed by the mapped payload.
public enum DSSChecksum {
    public static func compute(dsn: UInt64, subflowSeq: UInt32, length: UInt16, payload: UnsafeRawBufferPointer) -> UInt16 {
        var c = InternetChecksum()
        c.add(dsn); c.add(subflowSeq); c.add(length); c.add(UInt16(0))
        c.add(bytes: payload)
        return c.checksum
    }

    /// True when `checksum` (as carried) verifies for the mapping and payload.
    public static func verify(dsn: UInt64, subflowSeq: UInt32, length: UInt16, checksum: UInt16,
                              payload: UnsafeRawBufferPointer) -> Bool {
        var c = InternetChecksum()
        c.add(dsn); c.add(subflowSeq); c.add(length); c.add(checksum)
        c.add(bytes: payload)
        return c.folded == 0xffff
    }
}

/// A whole TCP/IP packet as values: IP header, IPv6 extension headers as
/// bytes, TCP header, payload. `emit` is the exact inverse of parsing.
public struct TCPPacket: Equatable, Sendable {
    public enum IPHeader: Equatable, Sendable { case v4(IPv4Header), v6(IPv6Header) }
    public var ipHeader: IPHeader
    public var extensionHeaders: [UInt8]
    public var tcpHeader: TCPHeader
    public var payload: [UInt8]

    public init(ipHeader: IPHeader, extensionHeaders: [UInt8] = [], tcpHeader: TCPHeader, payload: [UInt8]) {
        self.ipHeader = ipHeader; self.extensionHeaders = extensionHeaders
        self.tcpHeader = tcpHeader; self.payload = payload
    }

    public init(parsing raw: UnsafeRawBufferPointer) throws(WireError) {
        let v = try TCPPacketView(raw)
        switch v.family {
        case .v4:
            ipHeader = .v4(IPv4Header(try IPv4PacketView(raw)))
            extensionHeaders = []
        case .v6:
            let v6 = try IPv6PacketView(raw)
            ipHeader = .v6(IPv6Header(v6))
            extensionHeaders = Array(v6.extensionHeaders)
        }
        tcpHeader = TCPHeader(v.tcp)
        payload = Array(v.tcp.payload)
    }

    public var encodedLength: Int {
        let ipLen: Int
        switch ipHeader { case .v4(let h): ipLen = h.encodedLength; case .v6(let h): ipLen = h.encodedLength }
        return ipLen + extensionHeaders.count + tcpHeader.encodedLength + payload.count
    }

    /// Writes the packet as its fields say (lengths and checksums are not
    /// recomputed; see `fixLengthsAndChecksums`).
    public func emit(into w: inout ByteWriter) throws(WireError) {
        guard w.remaining >= encodedLength else { throw .noRoom }
        switch ipHeader {
        case .v4(let h): try h.emit(into: &w)
        case .v6(let h): try h.emit(into: &w)
        }
        extensionHeaders.withUnsafeBytes { w.bytes($0) }
        try tcpHeader.emit(into: &w)
        payload.withUnsafeBytes { w.bytes($0) }
    }

    public func emitted() throws(WireError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: encodedLength)
        let r: Result<Void, WireError> = out.withUnsafeMutableBytes { buf in
            var w = ByteWriter(buf)
            do throws(WireError) { try emit(into: &w); return .success(()) } catch { return .failure(error) }
        }
        try r.get()
        return out
    }

    /// Sets IP lengths, the IPv4 header checksum and the TCP checksum from
    /// the current contents.
    public mutating func fixLengthsAndChecksums() {
        let tcpLen = tcpHeader.encodedLength + payload.count
        switch ipHeader {
        case .v4(var h):
            h.totalLength = UInt16(truncatingIfNeeded: h.encodedLength + tcpLen)
            h.headerChecksum = h.computedChecksum()
            ipHeader = .v4(h)
        case .v6(var h):
            h.payloadLength = UInt16(truncatingIfNeeded: extensionHeaders.count + tcpLen)
            ipHeader = .v6(h)
        }
        tcpHeader.checksum = 0
        let (src, dst): (IPAddress, IPAddress)
        switch ipHeader {
        case .v4(let h): (src, dst) = (.v4(h.source), .v4(h.destination))
        case .v6(let h): (src, dst) = (.v6(h.source), .v6(h.destination))
        }
        var seg = [UInt8](repeating: 0, count: tcpLen)
        seg.withUnsafeMutableBytes { buf in
            var w = ByteWriter(buf)
            try? tcpHeader.emit(into: &w)
            payload.withUnsafeBytes { w.bytes($0) }
        }
        tcpHeader.checksum = seg.withUnsafeBytes { TCPChecksum.compute(source: src, destination: dst, segment: $0) }
    }
}

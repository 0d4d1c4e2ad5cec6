import CPcap
import MPTCPStack

/// Errors from the pcap file layer, with libpcap's own message.
public struct PcapError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Link-layer types we decode (values as returned by `pcap_datalink`).
public enum LinkType: Int32, Sendable {
    case null = 0 // BSD loopback: 4-byte address family
    case ethernet = 1
    case raw = 12 // DLT_RAW (LINKTYPE_RAW 101 in files)
    case rawAlt = 14
    case loop = 108
    case linuxSLL = 113
    case ipv4 = 228
    case ipv6 = 229
    case linuxSLL2 = 276

    /// The IP packet inside a captured frame, or a typed error.
    public func ipPayload(_ frame: UnsafeRawBufferPointer) throws(WireError) -> UnsafeRawBufferPointer {
        func slice(_ from: Int) throws(WireError) -> UnsafeRawBufferPointer {
            guard frame.count >= from else { throw .truncated }
            return UnsafeRawBufferPointer(rebasing: frame[from...])
        }
        func be16(_ o: Int) -> UInt16 { UInt16(frame[o]) << 8 | UInt16(frame[o + 1]) }
        switch self {
        case .raw, .rawAlt, .ipv4, .ipv6:
            return frame
        case .null, .loop:
            return try slice(4)
        case .ethernet:
            guard frame.count >= 14 else { throw .truncated }
            var off = 12
            var type = be16(off)
            // Skip up to two VLAN tags (802.1Q / 802.1ad).
            var tags = 0
            while (type == 0x8100 || type == 0x88a8) && tags < 2 {
                off += 4
                guard frame.count >= off + 2 else { throw .truncated }
                type = be16(off)
                tags += 1
            }
            guard type == 0x0800 || type == 0x86dd else { throw .notTCP }
            return try slice(off + 2)
        case .linuxSLL:
            guard frame.count >= 16 else { throw .truncated }
            let type = be16(14)
            guard type == 0x0800 || type == 0x86dd else { throw .notTCP }
            return try slice(16)
        case .linuxSLL2:
            guard frame.count >= 20 else { throw .truncated }
            let type = be16(0)
            guard type == 0x0800 || type == 0x86dd else { throw .notTCP }
            return try slice(20)
        }
    }
}

/// One captured frame. `data` is valid only until the next `next()` call.
public struct PcapFrame {
    public var index: Int
    public var seconds: Int
    public var microseconds: Int
    public var capturedLength: Int
    public var originalLength: Int
    public var data: UnsafeRawBufferPointer
}

/// Reads a pcap or pcapng file through libpcap.
public final class PcapReader {
    private let handle: OpaquePointer
    public let linkTypeRaw: Int32
    public let linkType: LinkType?
    private var count = 0

    public init(path: String) throws {
        var err = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let h = pcap_open_offline(path, &err) else {
            throw PcapError(String(decoding: err.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        handle = h
        linkTypeRaw = pcap_datalink(h)
        linkType = LinkType(rawValue: linkTypeRaw)
    }

    deinit { pcap_close(handle) }

    /// The next frame, nil at the end of the file.
    public func next() throws -> PcapFrame? {
        var hdr: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        let r = pcap_next_ex(handle, &hdr, &data)
        switch r {
        case 1:
            count += 1
            let h = hdr!.pointee
            return PcapFrame(index: count, seconds: Int(h.ts.tv_sec), microseconds: Int(h.ts.tv_usec),
                             capturedLength: Int(h.caplen), originalLength: Int(h.len),
                             data: UnsafeRawBufferPointer(start: data, count: Int(h.caplen)))
        case PCAP_ERROR_BREAK: return nil
        default: throw PcapError(String(cString: pcap_geterr(handle)))
        }
    }

    /// Every frame's bytes, copied (for tests and small files).
    public static func readAll(path: String) throws -> (LinkType?, [(PcapFrame, [UInt8])]) {
        let r = try PcapReader(path: path)
        var out: [(PcapFrame, [UInt8])] = []
        while let f = try r.next() { out.append((f, Array(f.data))) }
        return (r.linkType, out)
    }
}

/// Writes a classic pcap file through libpcap.
public final class PcapWriter {
    private let dead: OpaquePointer
    private let dumper: OpaquePointer

    public init(path: String, linkType: LinkType = .raw, snaplen: Int32 = 262_144) throws {
        guard let d = pcap_open_dead(linkType.rawValue, snaplen) else { throw PcapError("pcap_open_dead failed") }
        guard let du = pcap_dump_open(d, path) else {
            let msg = String(cString: pcap_geterr(d))
            pcap_close(d)
            throw PcapError("\(path): \(msg)")
        }
        dead = d
        dumper = du
    }

    public func write(_ bytes: UnsafeRawBufferPointer, seconds: Int, microseconds: Int) {
        var h = pcap_pkthdr()
        h.ts.tv_sec = seconds
        h.ts.tv_usec = microseconds
        h.caplen = UInt32(bytes.count)
        h.len = UInt32(bytes.count)
        let user = UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self)
        pcap_dump(user, &h, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
    }

    public func close() {
        pcap_dump_flush(dumper)
    }

    deinit {
        pcap_dump_close(dumper)
        pcap_close(dead)
    }
}

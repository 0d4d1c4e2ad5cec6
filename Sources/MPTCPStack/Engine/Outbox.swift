/// Packets the engine originates (not rewrites): a fixed ring of buffers
/// (each holds one MTU-sized packet), drained by the caller after each event
/// and sent through raw sockets. Nothing here allocates after init.
public struct Outbox {
    public static let slotSize = 2048
    public static let slots = 256
    let storage: UnsafeMutableRawBufferPointer
    var lengths: [Int]
    var sides: [Side]
    public private(set) var count = 0
    /// Packets that did not fit (counted, not sent).
    public private(set) var overflow: UInt64 = 0

    init() {
        storage = .allocate(byteCount: Self.slotSize * Self.slots, alignment: 8)
        // Written once now, so that its memory is resident from the start
        // (512 KB) rather than growing as busier events reach more slots.
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        lengths = Array(repeating: 0, count: Self.slots)
        sides = Array(repeating: .lan, count: Self.slots)
    }

    func deallocate() { storage.deallocate() }

    /// The next free slot, or nil when full.
    mutating func reserve() -> UnsafeMutableRawBufferPointer? {
        guard count < Self.slots else { overflow &+= 1; return nil }
        return UnsafeMutableRawBufferPointer(rebasing: storage[count * Self.slotSize ..< (count + 1) * Self.slotSize])
    }

    mutating func commit(length: Int, towards side: Side) {
        lengths[count] = length
        sides[count] = side
        count += 1
    }

    /// Packet `i` and the side it leaves by.
    public func packet(_ i: Int) -> (bytes: UnsafeRawBufferPointer, side: Side) {
        (UnsafeRawBufferPointer(rebasing: storage[i * Self.slotSize ..< i * Self.slotSize + lengths[i]]), sides[i])
    }

    public mutating func removeAll() { count = 0 }
}

extension SegmentWriter {
    /// Writes a complete IP + TCP packet the translator sends on its own (an
    /// ACK, a SYN, a RST, or data from its buffers), checksums included.
    /// Returns its length (0 if it does not fit or the families differ).
    static func writeBare(into out: UnsafeMutableRawBufferPointer, source: Endpoint, destination: Endpoint,
                          seq: TCPSeq, ack: TCPSeq, flags: UInt8, window: UInt16,
                          options: UnsafeRawBufferPointer,
                          payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) -> Int {
        guard 20 + options.count + payload.count + 40 <= out.count else { return 0 }
        let hl = writeHeader(into: out, source: source, destination: destination, seq: seq, ack: ack, flags: flags,
                             window: window, options: options, payload: payload, computeChecksum: true)
        guard hl > 0 else { return 0 }
        if !payload.isEmpty { UnsafeMutableRawBufferPointer(rebasing: out[hl ..< hl + payload.count]).copyMemory(from: payload) }
        return hl + payload.count
    }

    /// The IP and TCP headers of a segment whose payload follows them
    /// elsewhere (a held packet's new content): a fresh IP header, TCP with
    /// `options`, the TCP checksum over `payload` too when `computeChecksum`
    /// (else the pseudo-header's, which the kernel completes when it cuts a
    /// super-segment). Returns the header length (0: it does not fit).
    static func writeHeader(into out: UnsafeMutableRawBufferPointer, source: Endpoint, destination: Endpoint,
                            seq: TCPSeq, ack: TCPSeq, flags: UInt8, window: UInt16,
                            options: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, computeChecksum: Bool) -> Int {
        var w = ByteWriter(out)
        let hdr = 20 + options.count
        let tcpLen = hdr + payload.count
        guard hdr + 40 <= out.count else { return 0 }
        switch (source.address, destination.address) {
        case let (.v4(s), .v4(d)):
            guard 20 + tcpLen <= maxPacketLength else { return 0 }
            w.u8(0x45); w.u8(0); w.u16(UInt16(20 + tcpLen)); w.u16(0); w.u16(0x4000)
            w.u8(64); w.u8(IPProtocol.tcp); w.u16(0); w.u32(s.rawValue); w.u32(d.rawValue)
            var c = InternetChecksum()
            c.add(bytes: UnsafeRawBufferPointer(rebasing: out[0 ..< 20]))
            out.put16(c.checksum, at: 10)
        case let (.v6(s), .v6(d)):
            guard 40 + tcpLen <= maxPacketLength else { return 0 }
            w.u32(6 << 28); w.u16(UInt16(tcpLen)); w.u8(IPProtocol.tcp); w.u8(64)
            w.u64(s.high); w.u64(s.low); w.u64(d.high); w.u64(d.low)
        default:
            return 0
        }
        let tcpAt = w.offset
        w.u16(source.port); w.u16(destination.port)
        w.u32(seq.rawValue); w.u32(ack.rawValue)
        w.u8(UInt8(hdr / 4) << 4); w.u8(flags); w.u16(window)
        w.u16(0); w.u16(0)
        w.bytes(options)
        var c = TCPChecksum.pseudoHeader(source: source.address, destination: destination.address, length: tcpLen)
        if computeChecksum {
            c.add(bytes: UnsafeRawBufferPointer(rebasing: out[tcpAt ..< tcpAt + hdr]))
            c.add(bytes: payload)
            out.put16(c.checksum, at: tcpAt + 16)
        } else {
            out.put16(c.folded, at: tcpAt + 16)
        }
        return tcpAt + hdr
    }
}

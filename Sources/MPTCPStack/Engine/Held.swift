// Client packets held in the kernel's queue (issue 15). A client data
// segment that no subflow has room for is not dropped once its bytes are in
// the send buffer: the engine answers `.hold(slot:)` and the caller keeps the
// packet (its queue id) under that slot. When room opens (an ACK, a timer),
// the oldest held packet of the connection leaves carrying the oldest unsent
// data, as a `.carry` verdict would have: new headers, the send buffer's
// bytes, its GSO size kept. So a window-limited connection still sends its
// first transmissions a super-segment at a time by verdict, where the outbox
// would send them a wire segment per raw `sendto`. A held packet that cannot
// be used (the connection ended, its GSO size does not fit the subflow) is
// released as a drop.

/// A client packet held in the queue: its slot, whether it is a GSO
/// super-segment, and its payload length (what it may carry when it is not).
struct HeldPacket {
    var slot: Int32
    var gso: Bool
    var length: Int32
}

/// What the caller does with held packets after an event: each is given its
/// verdict (a segment: header and payload; or a drop), then `removeAll()`.
/// Fixed storage: nothing here allocates after init.
public struct Releases {
    static let headerSize = 128
    let capacity: Int
    let headers: UnsafeMutableRawBufferPointer
    var slots: [Int]
    var headerLengths: [Int]
    var payloads: [UnsafeRawBufferPointer]
    var sides: [Side]
    var gso: [Bool]
    public private(set) var count = 0

    /// Room for every packet the engine may hold (`EngineTuning.maxHeld`)
    /// and a few more: a release never finds the list full.
    init(capacity: Int) {
        self.capacity = capacity
        headers = .allocate(byteCount: capacity * Self.headerSize, alignment: 8)
        headers.initializeMemory(as: UInt8.self, repeating: 0) // resident from the start, as the outbox
        slots = Array(repeating: 0, count: capacity)
        headerLengths = Array(repeating: 0, count: capacity)
        payloads = Array(repeating: UnsafeRawBufferPointer(start: nil, count: 0), count: capacity)
        sides = Array(repeating: .lan, count: capacity)
        gso = Array(repeating: false, count: capacity)
    }

    func deallocate() { headers.deallocate() }

    var isFull: Bool { count == capacity }

    /// The next entry's header area (nil when full).
    func reserve() -> UnsafeMutableRawBufferPointer? {
        guard count < capacity else { return nil }
        return UnsafeMutableRawBufferPointer(rebasing: headers[count * Self.headerSize ..< (count + 1) * Self.headerSize])
    }

    /// Held packet `slot` leaves as the header just written (`headerLength`
    /// bytes; 0: it is dropped) followed by `payload`, towards `side`.
    mutating func commit(slot: Int32, headerLength: Int, payload: UnsafeRawBufferPointer, towards side: Side, gso isGSO: Bool = false) {
        gso[count] = isGSO
        slots[count] = Int(slot)
        headerLengths[count] = headerLength
        payloads[count] = payload
        sides[count] = side
        count += 1
    }

    /// Release `i`: the held packet's slot, and its new content (nil: drop
    /// it); `gso`: a super-segment's (the TCP checksum is the pseudo-header's,
    /// which the kernel completes), else complete.
    public func release(_ i: Int) -> (slot: Int, packet: (header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer,
                                                          towards: Side, gso: Bool)?) {
        let hl = headerLengths[i]
        guard hl > 0 else { return (slots[i], nil) }
        let at = i * Self.headerSize
        return (slots[i], (UnsafeRawBufferPointer(rebasing: headers[at ..< at + hl]), payloads[i], sides[i], gso[i]))
    }

    public mutating func removeAll() { count = 0 }
}

extension Engine {
    /// Holds the client's packet (its bytes are in the send buffer already)
    /// instead of dropping it, while the connection and the engine have
    /// slots for it. Nil: it cannot be held.
    func hold(_ mp: MPConn, gso: Bool, length: Int) -> Verdict? {
        guard config.tuning.carryByVerdict, mp.held.count < config.tuning.maxHeldPerConnection,
              let slot = freeHoldSlots.popLast() else { return nil }
        mp.held.append(HeldPacket(slot: slot, gso: gso, length: Int32(clamping: length)))
        stats.heldPackets &+= 1
        return .hold(slot: Int(slot))
    }

    /// The oldest held packet carries up to `most` bytes of unsent data at
    /// `dsn` on subflow `k`. Returns how many it carried, nil when none was
    /// held (or the release list is full).
    func releaseHeld(_ c: Connection, _ mp: MPConn, _ k: Int, dsn: UInt64, most: Int, now: Instant) -> Int? {
        while let held = mp.held.first {
            guard let out = releases.reserve() else { return nil }
            _ = mp.held.popFirst()
            let p = mp.paths[k]
            let fits: Int
            if held.gso {
                guard mp.lanSegmentMax > 0, mp.lanSegmentMax <= p.mss else { dropHeld(held); continue }
                fits = SegmentWriter.maxPacketLength - (p.local.address.isIPv6 ? 40 : 20) - 60
            } else {
                fits = min(Int(held.length), p.mss)
            }
            let payload = mp.bytes(at: dsn, max: min(most, fits, max(Int(p.cwnd) - p.pipe, p.mss)))
            let length = payload.count
            guard length > 0 else { dropHeld(held); return nil }
            let first = dataOption(c, p, k, dsn: dsn, seq: p.sndNxt, length: length, dataFin: false, payload: payload)
            let ol = pathOptions(mp, p, now: now, first: first, sack: false)
            let hl = SegmentWriter.writeHeader(into: out, source: p.local, destination: p.remote, seq: p.sndNxt, ack: p.rcvNxt,
                                               flags: TCPFlags.ack | TCPFlags.psh, window: windowToPeer(mp),
                                               options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< ol]),
                                               payload: payload, computeChecksum: !held.gso)
            guard hl > 0 else { dropHeld(held); return nil }
            releases.commit(slot: held.slot, headerLength: hl, payload: payload, towards: .uplink(p.uplink), gso: held.gso)
            releasedHoldSlots.append(held.slot)
            noteDataSent(mp, k, seq: p.sndNxt, dsn: dsn, length: length, dataFin: false, first: true,
                         segmentSize: held.gso ? mp.lanSegmentMax : p.mss, now: now)
            stats.carriedSegments &+= 1
            stats.carriedBytes &+= UInt64(length)
            return length
        }
        return nil
    }

    /// Releases a held packet as a drop (its slot free again).
    func dropHeld(_ held: HeldPacket) {
        if releases.reserve() != nil {
            releases.commit(slot: held.slot, headerLength: 0, payload: UnsafeRawBufferPointer(start: nil, count: 0), towards: .lan)
        } else {
            stats.heldLost &+= 1 // (the caller's queue drops it when it closes)
        }
        releasedHoldSlots.append(held.slot)
    }

    /// The slots released during the last event become free (called as a
    /// packet comes in: the caller has handled the releases by then).
    func recycleHoldSlots() {
        guard !releasedHoldSlots.isEmpty else { return }
        freeHoldSlots.append(contentsOf: releasedHoldSlots)
        releasedHoldSlots.removeAll(keepingCapacity: true)
    }

    /// Every packet the connection holds, released as a drop (it ended).
    func dropAllHeld(_ mp: MPConn) {
        while let held = mp.held.popFirst() { dropHeld(held) }
    }
}

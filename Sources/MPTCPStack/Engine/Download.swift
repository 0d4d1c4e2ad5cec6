// The download side of a multipath connection: the peer's data on its way
// to the client. Each peer segment is forwarded at once (the rewritten
// packet is the verdict) and a copy is kept here until the client
// acknowledges it, so a segment the LAN loses is sent again from the
// gateway, not after the peer's data-level timeout. Data the peer sends
// beyond the client's receive window is held here instead and forwarded as
// the window opens: the client would drop it, and the peer, whose subflows
// we have acknowledged, would resend it only on that timeout.

/// A stretch of the peer's data, in DSN.
struct DownSegment {
    var dsn: UInt64
    var length: UInt32
    /// The peer's DATA_FIN follows its last byte.
    var fin: Bool
    /// When it last went to the client; nil while held for the window.
    var sentAt: Instant?
    var retransmitted = false
    var end: UInt64 { dsn &+ UInt64(length) }
}

/// The peer's bytes from `base` (the client's cumulative ACK) in a ring at
/// offset dsn % capacity, and the segments they belong to (bounded).
final class DownBuffer {
    let capacity: Int
    private var storage: UnsafeMutableRawBufferPointer
    /// The client's cumulative ACK, as a DSN: nothing below is kept.
    private(set) var base: UInt64
    /// In the order they were kept (not DSN order: the subflows interleave).
    private(set) var segments: [DownSegment] = []
    static let maxSegments = 1024
    /// Send time of the newest transmission the client has acknowledged or
    /// SACKed: what was sent well before it and is still missing was lost
    /// (RACK, RFC 8985 §6.2).
    private(set) var deliveredSentAt = Instant(nanoseconds: 0)
    /// Tail-loss timeout (seconds, backed off) and when it fires.
    var rto = DownBuffer.initialRTO
    var timerAt: Instant?
    static let initialRTO = 0.25 // above a client's longest delayed ACK (200 ms)
    /// Reordering a LAN may do without loss (veth on two cores: well under this).
    static let reorderWindow = Duration.milliseconds(2)

    /// Nothing kept, nothing held, no timer running.
    var isEmpty: Bool { segments.isEmpty && timerAt == nil }

    init(capacity: Int, base: UInt64) {
        self.capacity = capacity
        self.base = base
        storage = .allocate(byteCount: capacity, alignment: 16)
        segments.reserveCapacity(Self.maxSegments)
    }
    deinit { storage.deallocate() }

    /// Keeps `bytes` (the peer's data at `dsn`), sent to the client at
    /// `sentAt`, or held for its window when nil (then in pieces of at most
    /// `piece` bytes, to go out as the window allows). What lies below `base`
    /// is dropped; what is kept already is not kept twice. False when it
    /// does not fit.
    func keep(dsn: UInt64, _ bytes: UnsafeRawBufferPointer, fin: Bool, sentAt: Instant?, piece: Int) -> Bool {
        var from = dsn, offset = 0
        if dsnBefore(from, base) { offset = Int(base &- from); from = base }
        let end = dsn &+ UInt64(bytes.count)
        guard dsnBefore(from, end) || (fin && from == end) else { return true } // all acknowledged
        guard !dsnBefore(base &+ UInt64(capacity), end) else { return false }
        // Kept already (the peer sent it again, or a subflow duplicated it):
        // a resend through us counts as our transmission.
        if let i = segments.firstIndex(where: { !dsnBefore(from, $0.dsn) && !dsnBefore($0.end, end) }) {
            if let s = sentAt, segments[i].sentAt != nil { segments[i].sentAt = s }
            return true
        }
        let pieces = sentAt == nil ? max(1, (Int(end &- from) + piece - 1) / piece) : 1
        guard segments.count + pieces <= Self.maxSegments else { return false }
        var done = 0
        let n = Int(end &- from)
        while done < n {
            let at = Int((from &+ UInt64(done)) % UInt64(capacity))
            let k = min(n - done, capacity - at)
            UnsafeMutableRawBufferPointer(rebasing: storage[at ..< at + k])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset + done ..< offset + done + k]))
            done += k
        }
        if sentAt != nil {
            segments.append(DownSegment(dsn: from, length: UInt32(n), fin: fin, sentAt: sentAt))
        } else {
            var at = 0
            repeat {
                let len = min(piece, n - at)
                let last = at + len == n
                segments.append(DownSegment(dsn: from &+ UInt64(at), length: UInt32(len), fin: fin && last, sentAt: nil))
                at += len
            } while at < n
        }
        return true
    }

    /// The client acknowledged everything before `ack` and SACKed `sacked`
    /// (DSN ranges): forgets what it has. True when that was anything sent.
    func acknowledge(_ ack: UInt64, sacked: UnsafeBufferPointer<(UInt64, UInt64)>) -> Bool {
        if dsnBefore(base, ack) { base = ack }
        var delivered = false
        var i = 0
        while i < segments.count {
            var s = segments[i]
            let covered = !dsnBefore(base, s.end) && !(s.fin && base == s.end)
                || sacked.contains { !dsnBefore(s.dsn, $0.0) && !dsnBefore($0.1, s.end) }
            if covered {
                if let at = s.sentAt {
                    delivered = true
                    if deliveredSentAt < at { deliveredSentAt = at }
                }
                segments.swapAt(i, segments.count - 1)
                segments.removeLast()
                continue
            }
            if dsnBefore(s.dsn, base) {
                // Partly acknowledged.
                s.length -= UInt32(base &- s.dsn)
                s.dsn = base
                segments[i] = s
            }
            i += 1
        }
        return delivered
    }

    /// Segments sent before the newest delivered one by more than the
    /// reordering window: lost on the LAN.
    func isLost(_ s: DownSegment) -> Bool {
        guard let at = s.sentAt else { return false }
        return at + Self.reorderWindow < deliveredSentAt
    }

    /// Something sent is outstanding: the tail-loss timer runs (if it does
    /// not already).
    func startTimer(now: Instant) {
        if timerAt == nil { timerAt = now + .nanoseconds(Int64(rto * 1e9)) }
    }

    /// The timer from now, while anything sent is unacknowledged.
    func restartTimer(now: Instant) {
        timerAt = oldestSent == nil ? nil : now + .nanoseconds(Int64(rto * 1e9))
    }

    func markSent(_ i: Int, at now: Instant) {
        if segments[i].sentAt != nil { segments[i].retransmitted = true }
        segments[i].sentAt = now
    }

    /// The index of the sent segment with the lowest DSN (the client's hole).
    var oldestSent: Int? {
        var best: Int?
        for (i, s) in segments.enumerated() where s.sentAt != nil {
            if best == nil || dsnBefore(s.dsn, segments[best!].dsn) { best = i }
        }
        return best
    }

    /// The held segment with the lowest DSN that ends within `edge`.
    func nextHeld(within edge: UInt64) -> Int? {
        var best: Int?
        for (i, s) in segments.enumerated() where s.sentAt == nil && !dsnBefore(edge, s.end) {
            if best == nil || dsnBefore(s.dsn, segments[best!].dsn) { best = i }
        }
        return best
    }

    /// Bytes at `dsn` (kept), at most `max` and never across the ring's end.
    func bytes(at dsn: UInt64, max: Int) -> UnsafeRawBufferPointer {
        let at = Int(dsn % UInt64(capacity))
        return UnsafeRawBufferPointer(rebasing: storage[at ..< at + Swift.min(max, capacity - at)])
    }
}

extension Engine {
    /// Payload bytes per segment the gateway itself sends to the client.
    func downPiece(_ mp: MPConn) -> Int {
        min(Int(mp.clientMSS), Outbox.slotSize - 100) - (mp.clientTimestamps ? 12 : 0)
    }

    /// The connection's download buffer, made on first use.
    func downBuffer(_ c: Connection, _ mp: MPConn) -> DownBuffer {
        if let d = mp.down { return d }
        let d = DownBuffer(capacity: config.sendBuffer, base: c.haveDataAckToPeer ? c.dataAckToPeer : c.remoteIDSN &+ 1)
        mp.down = d
        return d
    }

    /// A peer segment about to be forwarded to the client: kept (a copy, in
    /// case the LAN loses it), or held instead when it lies beyond the
    /// client's window (the peer overran it), to go out as the window opens.
    /// Returns whether to forward it now. When the buffer has no room it is
    /// forwarded without a copy.
    func keepForClient(_ c: inout Connection, _ mp: MPConn, dsn: UInt64, _ payload: UnsafeRawBufferPointer, fin: Bool,
                       now: Instant) -> Bool {
        let d = downBuffer(c, mp)
        mp.noteData(now: now)
        if let edge = mp.clientEdge, dsnBefore(edge, dsn &+ UInt64(payload.count)) {
            if d.keep(dsn: dsn, payload, fin: fin, sentAt: nil, piece: downPiece(mp)) {
                stats.heldForClientWindow &+= 1
                sendHeld(&c, mp, now: now)
                return false
            }
        } else if d.keep(dsn: dsn, payload, fin: fin, sentAt: now, piece: downPiece(mp)) {
            d.startTimer(now: now)
            return true
        }
        stats.downloadNotKept &+= 1
        return true
    }

    /// The client's ACK (already folded into `dataAckToPeer` and
    /// `clientEdge`) with its SACK blocks: forget what it has, resend what
    /// the LAN lost, send what its window now admits.
    func downOnClientAck(_ c: inout Connection, _ mp: MPConn, sack: SACKBlocks, now: Instant) {
        guard let d = mp.down else { return }
        let near = c.dataAckToPeer
        let delivered = withUnsafeTemporaryAllocation(of: (UInt64, UInt64).self, capacity: 4) { buf -> Bool in
            for i in 0 ..< sack.count {
                buf[i] = (c.downloadDSN(ofClientAck: sack[i].left, near: near), c.downloadDSN(ofClientAck: sack[i].right, near: near))
            }
            return d.acknowledge(c.dataAckToPeer, sacked: UnsafeBufferPointer(rebasing: buf[0 ..< sack.count]))
        }
        if delivered { d.rto = DownBuffer.initialRTO }
        // Without SACK blocks the client's out-of-order data looks missing:
        // only the segment at its cumulative ACK can be judged.
        var i = 0
        while i < d.segments.count, outbox.count < Outbox.slots - 8 {
            if d.isLost(d.segments[i]) && (mp.clientUsesSACK || d.segments[i].dsn == d.base) {
                sendDown(&c, mp, d, i, now: now)
                stats.lanRetransmits &+= 1
            }
            i += 1
        }
        sendHeld(&c, mp, now: now)
        if delivered || d.segments.isEmpty { d.restartTimer(now: now) }
    }

    /// Sends held segments the client's window now admits, lowest DSN first.
    func sendHeld(_ c: inout Connection, _ mp: MPConn, now: Instant) {
        guard let d = mp.down, let edge = mp.clientEdge else { return }
        while outbox.count < Outbox.slots - 8, let i = d.nextHeld(within: edge) {
            sendDown(&c, mp, d, i, now: now)
        }
    }

    /// The tail-loss timer fired: the client has acknowledged nothing we sent
    /// for a timeout; the lowest segment goes again (a lost last segment
    /// sets off no SACK that would show it).
    func downTimer(_ c: inout Connection, _ mp: MPConn, now: Instant) {
        guard let d = mp.down, let at = d.timerAt, at <= now else { return }
        guard let i = d.oldestSent else { d.timerAt = nil; return }
        sendDown(&c, mp, d, i, now: now)
        stats.lanRetransmits &+= 1
        d.rto = min(d.rto * 2, 8)
        d.restartTimer(now: now)
    }

    /// Segment `i` of the download buffer to the client, from the gateway
    /// (in pieces of at most `downPiece`).
    func sendDown(_ c: inout Connection, _ mp: MPConn, _ d: DownBuffer, _ i: Int, now: Instant) {
        let s = d.segments[i]
        let piece = downPiece(mp)
        let ack = clientAckNumber(c)
        let window = windowToClient(c, mp)
        let ol = clientOptions(mp, now: now)
        var off = 0
        repeat {
            let bytes = d.bytes(at: s.dsn &+ UInt64(off), max: min(piece, Int(s.length) - off))
            let last = off + bytes.count == Int(s.length)
            let flags = TCPFlags.ack | (last ? TCPFlags.psh : 0) | (last && s.fin ? TCPFlags.fin : 0)
            guard let out = outbox.reserve() else { break }
            let len = SegmentWriter.writeBare(into: out, source: c.key.server, destination: c.key.client,
                                              seq: c.clientSeq(ofDownloadDSN: s.dsn &+ UInt64(off)), ack: ack, flags: flags,
                                              window: window, options: UnsafeRawBufferPointer(rebasing: writer.options[0 ..< ol]),
                                              payload: bytes)
            guard len > 0 else { break }
            outbox.commit(length: len, towards: .lan)
            stats.originated &+= 1
            off += bytes.count
        } while off < Int(s.length)
        let end = c.clientSeq(ofDownloadDSN: s.end) + (s.fin ? 1 : 0)
        forwarded(&c, mp, upTo: end, now: now)
        mp.lastAckToClient = ack
        mp.lastWindowToClient = window
        d.markSent(i, at: now)
        d.startTimer(now: now)
    }
}

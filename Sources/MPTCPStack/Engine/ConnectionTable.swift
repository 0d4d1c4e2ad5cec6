/// The engine's connections by handle, in chunks of `chunkSize` allocated
/// as handles are first used: the table grows by a chunk at a time, never
/// by doubling one contiguous array (which, at 10 000 connections, held
/// room for 16 384 of them). A connection's slot never moves.
final class ConnectionTable {
    static let chunkShift = 6
    static let chunkSize = 1 << chunkShift
    private var chunks: [UnsafeMutablePointer<Connection?>] = []
    /// Handles in use or freed: 0 ..< count.
    private(set) var count = 0

    var indices: Range<Int> { 0 ..< count }

    init() {}

    deinit {
        for p in chunks {
            p.deinitialize(count: Self.chunkSize)
            p.deallocate()
        }
    }

    /// A new handle at the end (`count` before the call).
    func append(_ c: Connection) {
        if count >> Self.chunkShift == chunks.count {
            let p = UnsafeMutablePointer<Connection?>.allocate(capacity: Self.chunkSize)
            p.initialize(repeating: nil, count: Self.chunkSize)
            chunks.append(p)
        }
        (chunks[count >> Self.chunkShift] + (count & (Self.chunkSize - 1))).pointee = c
        count += 1
    }

    /// Addressed, not a `_modify` coroutine: no frame to allocate per access.
    subscript(h: Int) -> Connection? {
        unsafeAddress { UnsafePointer(slot(h)) }
        unsafeMutableAddress { slot(h) }
    }

    @inline(__always)
    private func slot(_ h: Int) -> UnsafeMutablePointer<Connection?> {
        precondition(h >= 0 && h < count, "connection handle out of range")
        return chunks[h >> Self.chunkShift] + (h & (Self.chunkSize - 1))
    }
}

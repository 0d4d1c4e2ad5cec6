import Glibc
import MPTCPStack

/// The engine's recovery records (MPTCPStack's Recovery.swift), kept in a
/// file mapped into memory so that they outlive the process: a daemon
/// killed with SIGKILL (or by the OOM killer) leaves them in the page
/// cache, and the next start hands them to its engine, which resets those
/// connections at both ends instead of leaving them to hang. A record is
/// written by a plain store into the mapping when the engine reports a
/// change (a connection established, a subflow joined or failed, a
/// connection closed): no system call on the packet path.
///
/// One file per queue and network namespace, in the state directory
/// (`/run/nfq-mptcp` by default: tmpfs, gone at reboot, as the connections
/// are). Slot `h` holds the record of engine handle `h`; the file is sparse,
/// so only slots ever used take memory.
public final class Journal {
    public let path: String
    let slots: Int
    private let fd: Int32
    private let map: UnsafeMutableRawBufferPointer
    /// Records of handles beyond the file's slots (not kept).
    public private(set) var skipped: UInt64 = 0
    /// Records held now (connections a crash would leave).
    public private(set) var live = 0

    /// `<dir>/conns-q<queue>-netns<cookie>`: the network namespace's
    /// cookie (`SO_NETNS_COOKIE`), which, unlike its inode number, is never
    /// given to another namespace while the system runs.
    public static func defaultPath(directory: String, queue: UInt16) -> String {
        var cookie: UInt64 = 0
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd >= 0 {
            var len = socklen_t(MemoryLayout<UInt64>.size)
            if getsockopt(fd, SOL_SOCKET, 71 /* SO_NETNS_COOKIE */, &cookie, &len) != 0 { cookie = 0 }
            close(fd)
        }
        if cookie == 0 {
            var st = stat()
            if stat("/proc/self/ns/net", &st) == 0 { return "\(directory)/conns-q\(queue)-netns-ino\(st.st_ino)" }
        }
        return "\(directory)/conns-q\(queue)-netns\(cookie)"
    }

    /// Opens (creating the directory and the file if needed) the journal at
    /// `path` for `slots` handles. The records an earlier instance left go
    /// to `previous` (each `RecoveryRecord.size` bytes), then the file is
    /// cleared for this instance.
    public init(path: String, slots: Int, previous: (UnsafeRawBufferPointer) -> Void) throws {
        self.path = path
        self.slots = slots
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            let dir = String(path[..<slash])
            if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw QueueError("state directory \(dir)") }
        }
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw QueueError("journal \(path)") }
        let size = slots * RecoveryRecord.size
        // What an earlier instance left.
        var st = stat()
        if fstat(fd, &st) == 0, st.st_size >= RecoveryRecord.size {
            let old = Int(st.st_size) / RecoveryRecord.size * RecoveryRecord.size
            if let p = mmap(nil, old, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED {
                let all = UnsafeRawBufferPointer(start: p, count: old)
                var at = 0
                while at < old {
                    if all[at] != 0 { previous(UnsafeRawBufferPointer(rebasing: all[at ..< at + RecoveryRecord.size])) }
                    at += RecoveryRecord.size
                }
                munmap(p, old)
            }
        }
        // Cleared (sparse again), then mapped for this instance.
        guard ftruncate(fd, 0) == 0, ftruncate(fd, off_t(size)) == 0 else {
            let e = errno
            close(fd)
            throw QueueError("journal \(path)", errno: e)
        }
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            let e = errno
            close(fd)
            throw QueueError("journal \(path)", errno: e)
        }
        map = UnsafeMutableRawBufferPointer(start: p, count: size)
    }

    /// Removes the file (a clean exit with no connection left to reset).
    public func remove() { unlink(path) }

    deinit {
        munmap(map.baseAddress, map.count)
        close(fd)
    }

    /// Stores handle `h`'s record.
    @inline(__always)
    public func write(_ h: Int, _ record: UnsafeRawBufferPointer) {
        guard h >= 0, h < slots else { skipped &+= 1; return }
        let at = h * RecoveryRecord.size
        // An empty record over an empty slot: nothing to touch (keeps the file sparse).
        if record[0] == 0 && map[at] == 0 { return }
        // The first byte (the magic) last when writing a record and first
        // when clearing one: a record cut short by a crash is never read.
        if record[0] == 0 { map[at] = 0; live -= 1 } else if map[at] == 0 { live += 1 }
        UnsafeMutableRawBufferPointer(rebasing: map[at + 1 ..< at + RecoveryRecord.size])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: record[1 ..< RecoveryRecord.size]))
        map[at] = record[0]
    }
}

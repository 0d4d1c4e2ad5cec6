import Glibc

/// The main thread's orders to the engine threads of `--queues N` (they
/// block the daemon's signals; the main thread reads them): one byte each
/// on a pipe per thread, read by `Daemon.run(control:)`.
public final class Control {
    /// Log the counters (and the multipath state): SIGUSR1.
    public static let stats = UInt8(ascii: "s")
    /// Stop: SIGINT, SIGTERM, or another thread failed.
    public static let stop = UInt8(ascii: "q")

    /// The thread's end (non-blocking) and the main thread's.
    public let readEnd: Int32
    private let writeEnd: Int32

    public init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw QueueError("pipe") }
        readEnd = fds[0]
        writeEnd = fds[1]
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC); _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    public func send(_ order: UInt8) {
        var b = order
        _ = write(writeEnd, &b, 1)
    }
}

import ArgumentParser
import CLinux
import Glibc
import Translator

/// The bare NFQUEUE ceiling: packets read from a queue and accepted
/// unchanged, on the daemon's queue wrapper with the daemon's socket options
/// (GSO super-segments, whole-packet copies, the 64 MiB receive buffer; one
/// verdict per packet, as the daemon sends them). Counts packets and bytes;
/// prints them on SIGTERM/SIGINT and exits 0.
struct NFQAccept: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nfq-accept",
        abstract: "Reads packets from an NFQUEUE and accepts each unchanged (the ceiling of any NFQUEUE program)."
    )

    @Option(help: "NFQUEUE number.")
    var queue: UInt16

    func run() throws {
        // Signals only through the signalfd (before any thread exists).
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, SIGINT)
        sigaddset(&mask, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        let sfd = signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC))
        guard sfd >= 0 else { throw BenchError("signalfd: \(String(cString: strerror(errno)))") }
        defer { close(sfd) }
        let q: NFQueue
        do { q = try NFQueue(number: queue) } catch { throw BenchError("\(error)") }
        print("nfq-accept: queue \(queue) bound")
        fflush(nil)
        var packets: UInt64 = 0, bytes: UInt64 = 0, gso: UInt64 = 0, truncated: UInt64 = 0, verdictErrors: UInt64 = 0
        var fds = [pollfd(fd: q.fileDescriptor, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: sfd, events: Int16(POLLIN), revents: 0)]
        loop: while true {
            let r = poll(&fds, 2, 1000)
            if r < 0 && errno != EINTR { throw BenchError("poll: \(String(cString: strerror(errno)))") }
            if fds[1].revents != 0 {
                var si = signalfd_siginfo()
                if read(sfd, &si, MemoryLayout<signalfd_siginfo>.size) > 0 { break loop }
            }
            if fds[0].revents != 0 {
                // Drain what is ready, bounded so a signal gets a turn (as the daemon does).
                for _ in 0 ..< 256 {
                    let n = try q.receive { p in
                        packets &+= 1
                        bytes &+= UInt64(p.payload.count)
                        if p.gso { gso &+= 1 }
                        if p.truncated { truncated &+= 1 }
                        do { try q.accept(p.id, mark: nil) } catch { verdictErrors &+= 1 }
                    }
                    if n == 0 { break }
                }
            }
        }
        print("nfq-accept: queue \(queue): packets=\(packets) bytes=\(bytes) gso=\(gso) truncated=\(truncated) "
            + "verdict_errors=\(verdictErrors) enobufs=\(q.enobufs)")
        fflush(nil)
    }
}

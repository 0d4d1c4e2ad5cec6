import ArgumentParser
import DequeModule
import CLinux
import Glibc
import MPTCPStack
import Translator

/// A userspace link emulator for test beds on kernels without netem: packets
/// queued by iptables (NFQUEUE) are held in the kernel and released after a
/// fixed one-way delay, or dropped at random. Rate is left to a tbf qdisc.
/// Constant delay keeps the order, so one FIFO of packet ids is the whole
/// state; packets are not copied (only their ids are kept).
@main
struct LinkEmu: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linkemu",
        abstract: "Delay and drop packets queued by iptables NFQUEUE (a netem stand-in for test beds)."
    )

    @Option(help: "NFQUEUE number.")
    var queue: UInt16

    @Option(help: "One-way delay in milliseconds.")
    var delayMs: Double = 0

    @Option(help: "Probability of dropping a packet (0 to 1).")
    var loss: Double = 0

    @Option(help: "Seed for the drop decisions.")
    var seed: UInt64 = 1

    func validate() throws {
        guard delayMs >= 0, delayMs <= 10_000 else { throw ValidationError("--delay-ms must be within 0...10000") }
        guard loss >= 0, loss <= 1 else { throw ValidationError("--loss must be within 0...1") }
    }

    func run() throws {
        var mask = sigset_t()
        sigemptyset(&mask); sigaddset(&mask, SIGINT); sigaddset(&mask, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        let q = try NFQueue(number: queue, maxLength: 65_536)
        let delay = UInt64(delayMs * 1_000_000)
        let threshold = UInt64(loss * Double(UInt64.max))
        var rng = SeededRandom(seed: seed)
        var held = Deque<(id: UInt32, at: UInt64)>()
        var passed: UInt64 = 0, dropped: UInt64 = 0
        var ts = timespec()
        func now() -> UInt64 { clock_gettime(CLOCK_MONOTONIC, &ts); return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec) }
        var sfdMask = mask
        let sfd = signalfd_like(&sfdMask)
        var fds = [pollfd(fd: q.fileDescriptor, events: Int16(POLLIN), revents: 0), pollfd(fd: sfd, events: Int16(POLLIN), revents: 0)]
        print("linkemu: queue \(queue), delay \(delayMs) ms, loss \(loss)")
        fflush(nil)
        loop: while true {
            var timeout: Int32 = 1000
            if let first = held.first {
                let t = now()
                timeout = first.at > t ? Int32(min((first.at - t + 999_999) / 1_000_000, 1000)) : 0
            }
            _ = poll(&fds, 2, timeout)
            if fds[1].revents != 0 { break loop }
            if fds[0].revents != 0 {
                for _ in 0 ..< 512 {
                    let t = now()
                    let n = try q.receive { p in
                        if threshold > 0 && rng.next() < threshold {
                            try? q.drop(p.id)
                            dropped &+= 1
                        } else if delay == 0 {
                            try? q.accept(p.id, mark: nil)
                            passed &+= 1
                        } else {
                            held.append((p.id, t + delay))
                        }
                    }
                    if n == 0 { break }
                }
            }
            let t = now()
            while let first = held.first, first.at <= t {
                held.removeFirst()
                try? q.accept(first.id, mark: nil)
                passed &+= 1
            }
        }
        // Release what is still held rather than leave it in the kernel.
        while let first = held.popFirst() { try? q.accept(first.id, mark: nil); passed &+= 1 }
        print("linkemu: \(passed) passed, \(dropped) dropped")
    }
}

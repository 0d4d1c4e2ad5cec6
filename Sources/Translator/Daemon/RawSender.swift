import Glibc
import MPTCPStack

/// Sends packets the engine originates (complete IP packets, small) through
/// raw sockets with the IP header included. Marked with SO_MARK so rules can
/// tell them apart; they leave through OUTPUT and are never queued again by
/// the PREROUTING rules.
public final class RawSender {
    private let fd4: Int32
    private let fd6: Int32
    public private(set) var errors: UInt64 = 0
    public static let mark: UInt32 = 0x6d70 // "mp"

    public init() throws {
        fd4 = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW))
        guard fd4 >= 0 else { throw QueueError("raw IPv4 socket") }
        fd6 = socket(AF_INET6, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW))
        guard fd6 >= 0 else { close(fd4); throw QueueError("raw IPv6 socket") }
        var m = Self.mark
        for fd in [fd4, fd6] {
            _ = setsockopt(fd, SOL_SOCKET, SO_MARK, &m, socklen_t(MemoryLayout<UInt32>.size))
        }
    }

    deinit { close(fd4); close(fd6) }

    /// sendto with a concrete socket address type.
    private static func send<A>(_ p: UnsafeRawBufferPointer, on fd: Int32, to sa: inout A) -> Int {
        withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, p.baseAddress, p.count, 0, $0, socklen_t(MemoryLayout<A>.size))
            }
        }
    }

    /// Sends one complete IPv4 or IPv6 packet to its destination address.
    public func send(_ p: UnsafeRawBufferPointer) {
        guard p.count >= 20 else { errors &+= 1; return }
        var r = -1
        if p[0] >> 4 == 4 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            memcpy(&sa.sin_addr, p.baseAddress! + 16, 4)
            r = Self.send(p, on: fd4, to: &sa)
        } else if p.count >= 40 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            memcpy(&sa.sin6_addr, p.baseAddress! + 24, 16)
            r = Self.send(p, on: fd6, to: &sa)
        }
        if r < 0 { errors &+= 1 }
    }
}

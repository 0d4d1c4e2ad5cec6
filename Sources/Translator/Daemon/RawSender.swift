import CLinux
import Glibc
import MPTCPStack

/// Sends packets the engine originates (complete IP packets up to an MTU)
/// through raw sockets with the IP header included. Marked with SO_MARK so
/// rules can tell them apart; they leave through OUTPUT and are never queued
/// again by the PREROUTING rules.
///
/// Packets towards the LAN (and, with no uplink sockets, all packets) go
/// through two unbound sockets routed by the main table. With uplink sockets
/// (multipath), a packet leaving by `.uplink(k)` goes through uplink k's
/// sockets: bound to the device (SO_BINDTODEVICE: the route lookup only takes
/// routes through it) and to the uplink's own address (a raw socket routes by
/// the socket's source, not the header's, so `ip rule from ADDR lookup T`
/// selects the uplink's table even for packets carrying the client's address).
public final class RawSender {
    private let fd4: Int32
    private let fd6: Int32
    /// Per uplink (index = `Side.uplink` index); -1 when there is none.
    private let up4: [Int32]
    private let up6: [Int32]
    public private(set) var errors: UInt64 = 0
    /// The errno of the last failed send (0: none yet).
    public private(set) var lastErrno: Int32 = 0
    public static let mark: UInt32 = 0x6d70 // "mp"
    /// `sendMany`'s scratch: per message an address, an iovec and a header.
    private static let manyCapacity = 64
    private let manyAddresses = UnsafeMutablePointer<sockaddr_in6>.allocate(capacity: RawSender.manyCapacity)
    private let manyIOV = UnsafeMutablePointer<iovec>.allocate(capacity: RawSender.manyCapacity)
    private let manyMsgs = UnsafeMutablePointer<batch_msghdr>.allocate(capacity: RawSender.manyCapacity)
    /// System calls that sent packets, and the packets they sent.
    public private(set) var sendCalls: UInt64 = 0
    public private(set) var packetsSent: UInt64 = 0

    /// One uplink's device and addresses (its first IPv4 and first IPv6 one
    /// are bound).
    public struct Uplink {
        public var device: String
        public var addresses: [IPAddress]
        public init(device: String, addresses: [IPAddress]) {
            self.device = device
            self.addresses = addresses
        }
    }

    /// `uplinks` empty: every packet goes through the unbound sockets (one
    /// uplink: routing decides, as before multipath).
    public init(uplinks: [Uplink] = []) throws {
        var opened: [Int32] = []
        func cleanup() { for fd in opened { close(fd) } }
        func open(_ family: Int32, device: String?, address: IPAddress?) throws -> Int32 {
            let fam = family == AF_INET ? "IPv4" : "IPv6"
            let fd = socket(family, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_RAW))
            guard fd >= 0 else { throw QueueError("raw \(fam) socket") }
            opened.append(fd)
            var m = Self.mark
            _ = setsockopt(fd, SOL_SOCKET, SO_MARK, &m, socklen_t(MemoryLayout<UInt32>.size))
            // Room for a burst of full-size data segments (root: forced).
            var size: Int32 = 4 << 20
            if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            if let device {
                let r = device.withCString { setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
                guard r == 0 else { throw QueueError("binding a raw \(fam) socket to \(device)") }
            }
            switch address {
            case let .v4(a)?:
                var sa = sockaddr_in()
                sa.sin_family = sa_family_t(AF_INET)
                sa.sin_addr.s_addr = a.rawValue.bigEndian
                guard Self.bind(fd, &sa) == 0 else { throw QueueError("binding a raw IPv4 socket to \(a) (\(device ?? ""))") }
            case let .v6(a)?:
                var sa = sockaddr_in6()
                sa.sin6_family = sa_family_t(AF_INET6)
                withUnsafeMutableBytes(of: &sa.sin6_addr) { b in
                    for i in 0 ..< 8 { b[i] = UInt8(truncatingIfNeeded: a.high >> (56 - 8 * UInt64(i))) }
                    for i in 0 ..< 8 { b[8 + i] = UInt8(truncatingIfNeeded: a.low >> (56 - 8 * UInt64(i))) }
                }
                guard Self.bind(fd, &sa) == 0 else { throw QueueError("binding a raw IPv6 socket to \(a) (\(device ?? ""))") }
            case nil:
                break
            }
            return fd
        }
        do {
            fd4 = try open(AF_INET, device: nil, address: nil)
            fd6 = try open(AF_INET6, device: nil, address: nil)
            var u4: [Int32] = []
            var u6: [Int32] = []
            for u in uplinks {
                let a4 = u.addresses.first { if case .v4 = $0 { return true } else { return false } }
                let a6 = u.addresses.first { if case .v6 = $0 { return true } else { return false } }
                u4.append(try open(AF_INET, device: u.device, address: a4))
                u6.append(try open(AF_INET6, device: u.device, address: a6))
            }
            up4 = u4
            up6 = u6
        } catch {
            cleanup()
            throw error
        }
    }

    deinit {
        manyAddresses.deallocate()
        manyIOV.deallocate()
        manyMsgs.deallocate()
        close(fd4)
        close(fd6)
        for fd in up4 { close(fd) }
        for fd in up6 { close(fd) }
    }

    private static func bind<A>(_ fd: Int32, _ sa: inout A) -> Int32 {
        withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<A>.size)) }
        }
    }

    /// What became of a packet.
    public enum Outcome: Equatable {
        case sent
        /// Larger than the interface's MTU: a raw socket neither fragments
        /// nor truncates (EMSGSIZE). The engine is told (`sendFailed`).
        case tooBig
        case failed
    }

    /// The socket a packet leaves through and its destination, written to
    /// `sa` (nil: not a packet that can be sent).
    private func route(_ p: UnsafeRawBufferPointer, side: Side, into sa: UnsafeMutablePointer<sockaddr_in6>) -> (fd: Int32, length: Int)? {
        guard p.count >= 20 else { return nil }
        if p[0] >> 4 == 4 {
            var fd = fd4
            if case let .uplink(k) = side, Int(k) < up4.count { fd = up4[Int(k)] }
            sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { s in
                s.pointee = sockaddr_in()
                s.pointee.sin_family = sa_family_t(AF_INET)
                memcpy(&s.pointee.sin_addr, p.baseAddress! + 16, 4)
            }
            return (fd, MemoryLayout<sockaddr_in>.size)
        } else if p.count >= 40 {
            var fd = fd6
            if case let .uplink(k) = side, Int(k) < up6.count { fd = up6[Int(k)] }
            sa.pointee = sockaddr_in6()
            sa.pointee.sin6_family = sa_family_t(AF_INET6)
            memcpy(&sa.pointee.sin6_addr, p.baseAddress! + 24, 16)
            return (fd, MemoryLayout<sockaddr_in6>.size)
        }
        return nil
    }

    /// Sends packets `0 ..< count` (`packet(i)` gives each) with one
    /// `sendmmsg` per run that leaves through the same socket, in order.
    /// Stops before the first packet that could not be sent and returns
    /// how many were: the caller sends that one with `send`, which tells
    /// what became of it, and goes on after it.
    public func sendMany(count: Int, _ packet: (Int) -> (bytes: UnsafeRawBufferPointer, side: Side)) -> Int {
        var done = 0
        while done < count {
            var n = 0
            var runFD: Int32 = -1
            while done + n < count && n < Self.manyCapacity {
                let (bytes, side) = packet(done + n)
                guard let (fd, length) = route(bytes, side: side, into: manyAddresses + n) else { break }
                if n > 0 && fd != runFD { break }
                runFD = fd
                manyIOV[n] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                var h = msghdr()
                h.msg_name = UnsafeMutableRawPointer(manyAddresses + n)
                h.msg_namelen = socklen_t(length)
                h.msg_iov = manyIOV + n
                h.msg_iovlen = 1
                manyMsgs[n] = batch_msghdr(msg_hdr: h, msg_len: 0)
                n += 1
            }
            guard n > 0 else { return done }
            let r = n == 1 ? (sendmsg(runFD, &manyMsgs[0].msg_hdr, 0) >= 0 ? 1 : -1)
                           : Int(batch_sendmmsg(runFD, manyMsgs, UInt32(n), 0))
            sendCalls &+= 1
            guard r > 0 else { return done }
            packetsSent &+= UInt64(r)
            done += r
            if r < n { return done }
        }
        return done
    }

    /// Sends one complete IPv4 or IPv6 packet to its destination address,
    /// through the routing table (`.lan`, or no uplink sockets) or uplink k.
    /// Every failure is counted in `errors` (too big ones too).
    @discardableResult
    public func send(_ p: UnsafeRawBufferPointer, side: Side = .lan) -> Outcome {
        guard let (fd, length) = route(p, side: side, into: manyAddresses) else { errors &+= 1; return .failed }
        let r = manyAddresses.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            sendto(fd, p.baseAddress, p.count, 0, $0, socklen_t(length))
        }
        sendCalls &+= 1
        guard r < 0 else { packetsSent &+= 1; return .sent }
        errors &+= 1
        lastErrno = errno
        return lastErrno == EMSGSIZE ? .tooBig : .failed
    }
}

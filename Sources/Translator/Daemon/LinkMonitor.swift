import CMnl
import Glibc

/// Link state changes, from rtnetlink (the RTMGRP_LINK group): which
/// interface went down or came back, and its MTU. The daemon passes those of
/// its uplinks to the engine, so a subflow on a dead link is given up at
/// once, and segments are sized to an MTU that changed.
public final class LinkMonitor {
    private let nl: OpaquePointer
    private let buffer: UnsafeMutableRawBufferPointer

    public var fileDescriptor: Int32 { mnl_socket_get_fd(nl) }

    public init() throws {
        guard let s = mnl_socket_open(NETLINK_ROUTE) else { throw QueueError("rtnetlink socket") }
        // RTMGRP_LINK = 1: link messages (RTM_NEWLINK, RTM_DELLINK).
        guard mnl_socket_bind(s, 1, pid_t(MNL_SOCKET_AUTOPID)) >= 0 else {
            let e = QueueError("rtnetlink bind")
            mnl_socket_close(s)
            throw e
        }
        nl = s
        buffer = .allocate(byteCount: 32 * 1024, alignment: 16)
        let fd = mnl_socket_get_fd(s)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        mnl_socket_close(nl)
        buffer.deallocate()
    }

    /// Reads what is pending and calls `body(interface index, up, mtu)` for
    /// each link message: up is administratively up with carrier (IFF_UP and
    /// IFF_RUNNING); a deleted link is down; mtu is the IFLA_MTU attribute
    /// (nil when the message has none).
    public func read(_ body: (UInt32, Bool, Int?) -> Void) {
        while true {
            let n = recv(fileDescriptor, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            guard n > 0 else { return }
            Self.parse(UnsafeRawBufferPointer(rebasing: buffer[0 ..< n]), body)
        }
    }

    /// The link messages in `bytes` (netlink messages: nlmsghdr, then for
    /// RTM_NEWLINK / RTM_DELLINK an ifinfomsg and attributes).
    static func parse(_ bytes: UnsafeRawBufferPointer, _ body: (UInt32, Bool, Int?) -> Void) {
        let rtmNewLink: UInt16 = 16, rtmDelLink: UInt16 = 17
        let iffUp: UInt32 = 0x1, iffRunning: UInt32 = 0x40
        var off = 0
        while off + 16 <= bytes.count {
            let len = Int(bytes.loadUnaligned(fromByteOffset: off, as: UInt32.self))
            let type = bytes.loadUnaligned(fromByteOffset: off + 4, as: UInt16.self)
            guard len >= 16, off + len <= bytes.count else { return }
            if (type == rtmNewLink || type == rtmDelLink) && len >= 32 {
                // ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32.
                let index = bytes.loadUnaligned(fromByteOffset: off + 20, as: Int32.self)
                let flags = bytes.loadUnaligned(fromByteOffset: off + 24, as: UInt32.self)
                // Attributes (rtattr: length u16, type u16, value; 4-byte aligned): IFLA_MTU = 4, a u32.
                var mtu: Int?
                var a = off + 32
                while a + 4 <= off + len {
                    let alen = Int(bytes.loadUnaligned(fromByteOffset: a, as: UInt16.self))
                    let atype = bytes.loadUnaligned(fromByteOffset: a + 2, as: UInt16.self) & 0x3fff
                    guard alen >= 4, a + alen <= off + len else { break }
                    if atype == 4 && alen >= 8 { mtu = Int(bytes.loadUnaligned(fromByteOffset: a + 4, as: UInt32.self)) }
                    a += (alen + 3) & ~3
                }
                body(UInt32(bitPattern: index), type == rtmNewLink && flags & iffUp != 0 && flags & iffRunning != 0, mtu)
            }
            off += (len + 3) & ~3
        }
    }
}

import CMnl
import CNetfilterQueue
import Glibc

/// An error from the queue layer, with the system's reason.
public struct QueueError: Error, CustomStringConvertible {
    public let description: String
    init(_ what: String, errno e: Int32 = errno) {
        description = "\(what): \(String(cString: strerror(e)))" + QueueError.hint(e)
    }
    init(message: String) { description = message }

    static func hint(_ e: Int32) -> String {
        switch e {
        case EPERM: return " (needs root or CAP_NET_ADMIN)"
        case EBUSY: return " (another program has bound this queue number)"
        case EPROTONOSUPPORT, ENOENT: return " (is nfnetlink_queue available? try: modprobe nfnetlink_queue)"
        default: return ""
        }
    }
}

/// One packet read from the queue. `payload` is valid until the next read.
public struct QueuedPacket {
    public var id: UInt32
    public var payload: UnsafeRawBufferPointer
    /// A GSO super-segment (its TCP checksum is completed by the kernel).
    public var gso: Bool
    /// Input interface index (0 when not given).
    public var inputInterface: UInt32
    /// The kernel copied only part of the packet (it is larger than the
    /// copy range): it cannot be rewritten.
    public var truncated: Bool = false
    /// The packet's mark (0 when it has none).
    public var mark: UInt32 = 0
}

/// The packet source and verdict sink the daemon runs on. NFQueue is the
/// real one; tests can run the daemon loop on a fake.
public protocol PacketQueue: AnyObject {
    var fileDescriptor: Int32 { get }
    /// Reads what is ready (without blocking) and calls `body` per packet.
    /// Returns the number of packets, 0 when nothing was ready.
    func receive(_ body: (QueuedPacket) -> Void) throws -> Int
    /// Accepts the packet, with `mark` as its new mark (nil: unchanged).
    func accept(_ id: UInt32, mark: UInt32?) throws
    func drop(_ id: UInt32) throws
    /// Accepts the packet as `header` followed by `payload`.
    func accept(_ id: UInt32, mark: UInt32?, header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) throws
    /// The queue's own counters for the stats line, by name (not per packet).
    var counters: [(name: String, value: UInt64)] { get }
}

extension PacketQueue {
    public var counters: [(name: String, value: UInt64)] { [] }
}

/// NFQUEUE over libmnl and libnetfilter_queue's netlink helpers, configured
/// for GSO super-segments and whole-packet copies (docs/datapath.md).
public final class NFQueue: PacketQueue {
    public let queueNumber: UInt16
    private let nl: OpaquePointer
    private let portID: UInt32
    private let recvBuffer: UnsafeMutableRawBufferPointer
    private let sendBuffer: UnsafeMutableRawBufferPointer
    private var attrs: [UnsafePointer<nlattr>?] = Array(repeating: nil, count: Int(__NFQA_MAX.rawValue))
    /// Reused for every verdict that carries a packet (no per-packet allocation).
    private let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 4)
    private let pad = UnsafeMutableRawPointer.allocate(byteCount: 4, alignment: 4)
    private var peer = sockaddr_nl()
    /// Reads that failed with ENOBUFS: the kernel could not hand us
    /// packets (the socket's buffer was full) and dropped them, or let them
    /// pass with `failOpen`.
    public private(set) var enobufs: UInt64 = 0
    /// Packets beyond a full queue or socket pass untranslated instead of
    /// being dropped (NFQA_CFG_F_FAIL_OPEN).
    public let failOpen: Bool

    public var fileDescriptor: Int32 { mnl_socket_get_fd(nl) }

    /// Binds queue `number`. With `failOpen` the kernel lets packets pass
    /// unqueued while the queue (`maxLength` packets) or the socket's buffer
    /// is full, instead of dropping them.
    public init(number: UInt16, receiveBufferBytes: Int = 64 << 20, maxLength: UInt32 = 8192, failOpen: Bool = false) throws {
        queueNumber = number
        self.failOpen = failOpen
        guard let s = mnl_socket_open(NETLINK_NETFILTER) else { throw QueueError("netlink socket") }
        nl = s
        guard mnl_socket_bind(s, 0, pid_t(MNL_SOCKET_AUTOPID)) >= 0 else {
            let e = QueueError("netlink bind")
            mnl_socket_close(s)
            throw e
        }
        portID = mnl_socket_get_portid(s)
        pad.storeBytes(of: 0, as: UInt32.self)
        peer.nl_family = sa_family_t(AF_NETLINK)
        recvBuffer = .allocate(byteCount: 0xffff + 4096, alignment: 16)
        sendBuffer = .allocate(byteCount: 4096, alignment: 16)
        var size = Int32(receiveBufferBytes)
        let fd = mnl_socket_get_fd(s)
        // Forced size (root); the default 208 KB drops packets under load.
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        // Fully initialized from here: on a throw, deinit closes and frees.
        // (PF_BIND/PF_UNBIND are no-ops since Linux 3.8 and not sent.)
        try config { nlh in nfq_nlmsg_cfg_put_cmd(nlh, UInt16(AF_INET), UInt8(NFQNL_CFG_CMD_BIND.rawValue)) }
        let flags = UInt32(NFQA_CFG_F_GSO) | (failOpen ? UInt32(NFQA_CFG_F_FAIL_OPEN) : 0)
        try config { nlh in
            nfq_nlmsg_cfg_put_params(nlh, UInt8(NFQNL_COPY_PACKET.rawValue), 0xffff)
            mnl_attr_put_u32(nlh, UInt16(NFQA_CFG_FLAGS.rawValue), flags.bigEndian)
            mnl_attr_put_u32(nlh, UInt16(NFQA_CFG_MASK.rawValue), UInt32(NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN).bigEndian)
        }
        try config { nlh in nfq_nlmsg_cfg_put_qmaxlen(nlh, maxLength) }
        let fl = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, fl | O_NONBLOCK)
    }

    deinit {
        iov.deallocate()
        pad.deallocate()
        mnl_socket_close(nl)
        recvBuffer.deallocate()
        sendBuffer.deallocate()
    }

    /// Sends one config message with NLM_F_ACK and waits for the kernel's answer.
    private func config(_ fill: (UnsafeMutablePointer<nlmsghdr>) -> Void) throws {
        let buf = sendBuffer.baseAddress!.assumingMemoryBound(to: CChar.self)
        guard let nlh = nfq_nlmsg_put(buf, Int32(NFQNL_MSG_CONFIG.rawValue), UInt32(queueNumber)) else {
            throw QueueError(message: "nfq_nlmsg_put failed")
        }
        nlh.pointee.nlmsg_flags |= UInt16(NLM_F_ACK)
        fill(nlh)
        guard mnl_socket_sendto(nl, nlh, Int(nlh.pointee.nlmsg_len)) >= 0 else { throw QueueError("queue \(queueNumber) config send") }
        let n = mnl_socket_recvfrom(nl, recvBuffer.baseAddress, recvBuffer.count)
        guard n >= 0 else { throw QueueError("queue \(queueNumber) config") }
        guard mnl_cb_run(recvBuffer.baseAddress, n, 0, portID, nil, nil) >= 0 else {
            if errno == EPERM {
                // The kernel says EPERM both without CAP_NET_ADMIN and when
                // another socket holds the queue.
                throw QueueError(message: "binding queue \(queueNumber): not permitted: another program holds this queue "
                    + "(see /proc/net/netfilter/nfnetlink_queue), or CAP_NET_ADMIN is missing")
            }
            throw QueueError("binding queue \(queueNumber)")
        }
    }

    /// `queue_enobufs`, and the kernel's own counts for this queue from
    /// /proc/net/netfilter/nfnetlink_queue: `queue_dropped` (the queue was
    /// full) and `queue_user_dropped` (the socket's buffer was full). With
    /// `failOpen` neither drops: what passed unqueued is counted nowhere.
    public var counters: [(name: String, value: UInt64)] {
        var c: [(name: String, value: UInt64)] = [("queue_enobufs", enobufs)]
        if let k = Self.kernelCounters(queue: queueNumber) {
            c.append(("queue_dropped", k.dropped))
            c.append(("queue_user_dropped", k.userDropped))
        }
        return c
    }

    /// This queue's line of /proc/net/netfilter/nfnetlink_queue (queue,
    /// port id, length, copy mode, copy range, dropped, user dropped, id, 1).
    static func kernelCounters(queue: UInt16) -> (dropped: UInt64, userDropped: UInt64)? {
        let fd = open("/proc/net/netfilter/nfnetlink_queue", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0 ..< n]
            if bytes.count > 1 << 20 { break }
        }
        return parseKernelCounters(String(decoding: bytes, as: UTF8.self), queue: queue)
    }

    static func parseKernelCounters(_ text: String, queue: UInt16) -> (dropped: UInt64, userDropped: UInt64)? {
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 7, UInt16(f[0]) == queue, let d = UInt64(f[5]), let u = UInt64(f[6]) else { continue }
            return (d, u)
        }
        return nil
    }

    public func receive(_ body: (QueuedPacket) -> Void) throws -> Int {
        let n = mnl_socket_recvfrom(nl, recvBuffer.baseAddress, recvBuffer.count)
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return 0 }
            if errno == ENOBUFS { enobufs &+= 1; return 0 } // the kernel dropped packets: counted
            throw QueueError("queue receive")
        }
        var len = Int32(n)
        var nlh = recvBuffer.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
        var count = 0
        while mnl_nlmsg_ok(nlh, len) {
            if nlh.pointee.nlmsg_type == UInt16(NFNL_SUBSYS_QUEUE << 8) | UInt16(NFQNL_MSG_PACKET.rawValue) {
                if let p = parse(nlh) { body(p); count += 1 }
            }
            nlh = mnl_nlmsg_next(nlh, &len)
        }
        return count
    }

    private func parse(_ nlh: UnsafeMutablePointer<nlmsghdr>) -> QueuedPacket? {
        let ok = attrs.withUnsafeMutableBufferPointer { a -> Bool in
            for i in a.indices { a[i] = nil }
            return a.baseAddress!.withMemoryRebound(to: UnsafeMutablePointer<nlattr>?.self, capacity: a.count) {
                nfq_nlmsg_parse(nlh, $0) >= 0
            }
        }
        guard ok, let ph = attrs[Int(NFQA_PACKET_HDR.rawValue)], let pl = attrs[Int(NFQA_PAYLOAD.rawValue)] else { return nil }
        let hdr = mnl_attr_get_payload(ph)!.assumingMemoryBound(to: nfqnl_msg_packet_hdr.self)
        let id = UInt32(bigEndian: hdr.pointee.packet_id)
        let payload = UnsafeRawBufferPointer(start: mnl_attr_get_payload(pl), count: Int(mnl_attr_get_payload_len(pl)))
        var gso = false
        if let si = attrs[Int(NFQA_SKB_INFO.rawValue)] {
            gso = UInt32(bigEndian: mnl_attr_get_u32(si)) & UInt32(NFQA_SKB_GSO) != 0
        }
        var ifin: UInt32 = 0
        if let a = attrs[Int(NFQA_IFINDEX_INDEV.rawValue)] { ifin = UInt32(bigEndian: mnl_attr_get_u32(a)) }
        var truncated = false
        if let a = attrs[Int(NFQA_CAP_LEN.rawValue)] {
            truncated = Int(UInt32(bigEndian: mnl_attr_get_u32(a))) > payload.count
        }
        var mark: UInt32 = 0
        if let a = attrs[Int(NFQA_MARK.rawValue)] { mark = UInt32(bigEndian: mnl_attr_get_u32(a)) }
        return QueuedPacket(id: id, payload: payload, gso: gso, inputInterface: ifin, truncated: truncated, mark: mark)
    }

    private func verdictHeader(_ id: UInt32, _ verdict: UInt32, mark: UInt32? = nil) -> UnsafeMutablePointer<nlmsghdr> {
        let buf = sendBuffer.baseAddress!.assumingMemoryBound(to: CChar.self)
        let nlh = nfq_nlmsg_put(buf, Int32(NFQNL_MSG_VERDICT.rawValue), UInt32(queueNumber))!
        nfq_nlmsg_verdict_put(nlh, Int32(bitPattern: id), Int32(verdict))
        if let mark { nfq_nlmsg_verdict_put_mark(nlh, mark) }
        return nlh
    }

    public func accept(_ id: UInt32, mark: UInt32?) throws {
        let nlh = verdictHeader(id, UInt32(NF_ACCEPT), mark: mark)
        guard mnl_socket_sendto(nl, nlh, Int(nlh.pointee.nlmsg_len)) >= 0 else { throw QueueError("verdict") }
    }

    public func drop(_ id: UInt32) throws {
        let nlh = verdictHeader(id, UInt32(NF_DROP))
        guard mnl_socket_sendto(nl, nlh, Int(nlh.pointee.nlmsg_len)) >= 0 else { throw QueueError("verdict") }
    }

    /// A verdict carrying the rewritten packet, sent with one sendmsg whose
    /// iovecs point at the new headers and the original payload: the payload
    /// is not copied in userspace.
    public func accept(_ id: UInt32, mark: UInt32?, header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) throws {
        let nlh = verdictHeader(id, UInt32(NF_ACCEPT), mark: mark)
        let pktLen = header.count + payload.count
        // The NFQA_PAYLOAD attribute header follows the verdict attribute.
        let attrAt = UnsafeMutableRawPointer(nlh) + Int(nlh.pointee.nlmsg_len)
        let attr = attrAt.assumingMemoryBound(to: nlattr.self)
        attr.pointee.nla_len = UInt16(truncatingIfNeeded: 4 + pktLen)
        attr.pointee.nla_type = UInt16(NFQA_PAYLOAD.rawValue)
        let prefix = Int(nlh.pointee.nlmsg_len) + 4
        let pad = (4 - (pktLen & 3)) & 3
        nlh.pointee.nlmsg_len = UInt32(prefix + pktLen + pad)
        var n = 0
        iov[n] = iovec(iov_base: UnsafeMutableRawPointer(nlh), iov_len: prefix); n += 1
        iov[n] = iovec(iov_base: UnsafeMutableRawPointer(mutating: header.baseAddress), iov_len: header.count); n += 1
        if payload.count > 0 {
            iov[n] = iovec(iov_base: UnsafeMutableRawPointer(mutating: payload.baseAddress), iov_len: payload.count); n += 1
        }
        if pad > 0 { iov[n] = iovec(iov_base: self.pad, iov_len: pad); n += 1 }
        let r = withUnsafeMutablePointer(to: &peer) { sap -> Int in
            var msg = msghdr()
            msg.msg_name = UnsafeMutableRawPointer(sap)
            msg.msg_namelen = socklen_t(MemoryLayout<sockaddr_nl>.size)
            msg.msg_iov = iov
            msg.msg_iovlen = n
            return sendmsg(mnl_socket_get_fd(nl), &msg, 0)
        }
        guard r >= 0 else { throw QueueError("verdict with packet") }
    }
}

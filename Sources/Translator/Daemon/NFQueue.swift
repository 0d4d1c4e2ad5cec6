import CMnl
import CLinux
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
    /// Sends the verdicts given since the last flush, when the queue defers
    /// them: until then `header` has been copied but `payload` must stay
    /// valid (a received packet's bytes stay valid until the next
    /// `receive`). Returns how many could not be sent.
    func flush() -> Int
    /// The queue's own counters for the stats line, by name (not per packet).
    var counters: [(name: String, value: UInt64)] { get }
}

extension PacketQueue {
    public var counters: [(name: String, value: UInt64)] { [] }
    public func flush() -> Int { 0 }
}

/// NFQUEUE over libmnl and libnetfilter_queue's netlink helpers, configured
/// for GSO super-segments and whole-packet copies (docs/datapath.md).
///
/// Batched (`batch` > 1): one `recvmmsg` reads up to `batch` packets, and
/// verdicts wait in a list until `flush`, which sends them with one
/// `sendmmsg` (each verdict stays its own netlink message, in order). The
/// list holds each verdict's netlink header and packet header (copied) and
/// points at its payload. A full list is flushed.
public final class NFQueue: PacketQueue {
    public let queueNumber: UInt16
    private let nl: OpaquePointer
    private let portID: UInt32
    /// `batch` receive buffers of `bufferSize` bytes, one after another.
    private let recvBuffer: UnsafeMutableRawBufferPointer
    private static let bufferSize = 0xffff + 4096
    private let sendBuffer: UnsafeMutableRawBufferPointer
    private var attrs: [UnsafePointer<nlattr>?] = Array(repeating: nil, count: Int(__NFQA_MAX.rawValue))
    private let pad = UnsafeMutableRawPointer.allocate(byteCount: 4, alignment: 4)
    private var peer = sockaddr_nl()
    /// Packets read per `receive` (1: one `recv`, verdicts sent at once).
    public let batch: Int
    /// The daemon's batch: 16 packets (1.1 MB of buffers) per read.
    public static let daemonBatch = 16
    private let recvIOV: UnsafeMutablePointer<iovec>
    private let recvMsgs: UnsafeMutablePointer<batch_msghdr>
    /// Deferred verdicts: a netlink message prefix and packet header per
    /// slot, three iovecs per slot (that area, payload, padding).
    private static let slotSize = 64 + 512
    private static let pendingCapacity = 64
    private let slots: UnsafeMutableRawPointer
    private let sendIOV: UnsafeMutablePointer<iovec>
    private let sendMsgs: UnsafeMutablePointer<batch_msghdr>
    private var pending = 0
    /// System calls that sent verdicts, and the verdicts they sent.
    public private(set) var verdictCalls: UInt64 = 0
    public private(set) var verdictsSent: UInt64 = 0
    /// Calls that read packets, and the packets read.
    public private(set) var receiveCalls: UInt64 = 0
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
    public init(number: UInt16, receiveBufferBytes: Int = 64 << 20, maxLength: UInt32 = 8192, failOpen: Bool = false,
                batch: Int = 1) throws {
        queueNumber = number
        self.failOpen = failOpen
        self.batch = max(1, min(batch, 64))
        let rb = UnsafeMutableRawBufferPointer.allocate(byteCount: self.batch * Self.bufferSize, alignment: 16)
        // Touched now, as the verdict slots below: the daemon's resident
        // memory holds the whole batch of receive buffers (about 1.1 MB at
        // 16) from the start, instead of growing as the first bursts of
        // super-segments fill them.
        rb.initializeMemory(as: UInt8.self, repeating: 0)
        let ri = UnsafeMutablePointer<iovec>.allocate(capacity: self.batch)
        let rm = UnsafeMutablePointer<batch_msghdr>.allocate(capacity: self.batch)
        let sl = UnsafeMutableRawPointer.allocate(byteCount: Self.pendingCapacity * Self.slotSize, alignment: 16)
        sl.initializeMemory(as: UInt8.self, repeating: 0, count: Self.pendingCapacity * Self.slotSize)
        let si = UnsafeMutablePointer<iovec>.allocate(capacity: 3 * Self.pendingCapacity)
        let sm = UnsafeMutablePointer<batch_msghdr>.allocate(capacity: Self.pendingCapacity)
        let sb = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        let pd = pad
        recvBuffer = rb; recvIOV = ri; recvMsgs = rm; slots = sl; sendIOV = si; sendMsgs = sm; sendBuffer = sb
        func release() {
            rb.deallocate(); ri.deallocate(); rm.deallocate()
            sl.deallocate(); si.deallocate(); sm.deallocate(); sb.deallocate()
            pd.deallocate()
        }
        guard let s = mnl_socket_open(NETLINK_NETFILTER) else { let e = QueueError("netlink socket"); release(); throw e }
        nl = s
        guard mnl_socket_bind(s, 0, pid_t(MNL_SOCKET_AUTOPID)) >= 0 else {
            let e = QueueError("netlink bind")
            mnl_socket_close(s)
            release()
            throw e
        }
        portID = mnl_socket_get_portid(s)
        pad.storeBytes(of: 0, as: UInt32.self)
        peer.nl_family = sa_family_t(AF_NETLINK)
        for i in 0 ..< self.batch {
            recvIOV[i] = iovec(iov_base: recvBuffer.baseAddress! + i * Self.bufferSize, iov_len: Self.bufferSize)
        }
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
        _ = flush()
        mnl_socket_close(nl)
        pad.deallocate()
        recvBuffer.deallocate()
        recvIOV.deallocate()
        recvMsgs.deallocate()
        slots.deallocate()
        sendIOV.deallocate()
        sendMsgs.deallocate()
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

    /// `queue_enobufs`; `queue_reads` (system calls that read packets),
    /// `queue_verdict_calls` and `queue_verdicts` (system calls that sent
    /// verdicts, and the verdicts they sent); and the kernel's own counts for this queue from
    /// /proc/net/netfilter/nfnetlink_queue: `queue_dropped` (the queue was
    /// full) and `queue_user_dropped` (the socket's buffer was full). With
    /// `failOpen` neither drops: what passed unqueued is counted nowhere.
    public var counters: [(name: String, value: UInt64)] {
        var c: [(name: String, value: UInt64)] = [("queue_enobufs", enobufs), ("queue_reads", receiveCalls),
                                                  ("queue_verdict_calls", verdictCalls), ("queue_verdicts", verdictsSent)]
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

    /// Reads up to `batch` messages and calls `body` per packet. Verdicts
    /// still deferred are flushed first: their payloads may be in the
    /// buffers this read reuses.
    public func receive(_ body: (QueuedPacket) -> Void) throws -> Int {
        if pending > 0 { _ = flush() }
        let fd = mnl_socket_get_fd(nl)
        var messages = 1
        if batch == 1 {
            let n = recv(fd, recvBuffer.baseAddress, Self.bufferSize, 0)
            if n < 0 { return try receiveFailed() }
            recvMsgs[0].msg_len = UInt32(n)
        } else {
            for i in 0 ..< batch {
                var h = msghdr()
                h.msg_iov = recvIOV + i
                h.msg_iovlen = 1
                recvMsgs[i] = batch_msghdr(msg_hdr: h, msg_len: 0)
            }
            let n = batch_recvmmsg(fd, recvMsgs, UInt32(batch), Int32(MSG_DONTWAIT))
            if n < 0 { return try receiveFailed() }
            messages = Int(n)
        }
        receiveCalls &+= 1
        var count = 0
        for i in 0 ..< messages {
            var len = Int32(recvMsgs[i].msg_len)
            var nlh = (recvBuffer.baseAddress! + i * Self.bufferSize).assumingMemoryBound(to: nlmsghdr.self)
            while mnl_nlmsg_ok(nlh, len) {
                if nlh.pointee.nlmsg_type == UInt16(NFNL_SUBSYS_QUEUE << 8) | UInt16(NFQNL_MSG_PACKET.rawValue) {
                    if let p = parse(nlh) { body(p); count += 1 }
                }
                nlh = mnl_nlmsg_next(nlh, &len)
            }
        }
        return count
    }

    private func receiveFailed() throws -> Int {
        if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return 0 }
        if errno == ENOBUFS { enobufs &+= 1; return 0 } // the kernel dropped packets: counted
        throw QueueError("queue receive")
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

    /// Adds a verdict to the list (flushing a full one first); with
    /// `batch` 1 it is sent at once. `header` is copied, `payload` must
    /// stay valid until the flush.
    private func enqueue(_ id: UInt32, _ verdict: UInt32, mark: UInt32?,
                         packet: (header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer)?) throws {
        // A slot holds the netlink prefix (at most 48 bytes) and any header
        // the engine writes (its header buffer is 512 bytes).
        if let packet, packet.header.count > Self.slotSize - 64 {
            throw QueueError(message: "a verdict's packet header of \(packet.header.count) bytes does not fit its slot")
        }
        if pending == Self.pendingCapacity { _ = flush() }
        let base = slots + pending * Self.slotSize
        let nlh = nfq_nlmsg_put(base.assumingMemoryBound(to: CChar.self), Int32(NFQNL_MSG_VERDICT.rawValue), UInt32(queueNumber))!
        nfq_nlmsg_verdict_put(nlh, Int32(bitPattern: id), Int32(verdict))
        if let mark { nfq_nlmsg_verdict_put_mark(nlh, mark) }
        let iov = sendIOV + 3 * pending
        var n = 1
        if let packet {
            let pktLen = packet.header.count + packet.payload.count
            let attr = (base + Int(nlh.pointee.nlmsg_len)).assumingMemoryBound(to: nlattr.self)
            attr.pointee.nla_len = UInt16(truncatingIfNeeded: 4 + pktLen)
            attr.pointee.nla_type = UInt16(NFQA_PAYLOAD.rawValue)
            let prefix = Int(nlh.pointee.nlmsg_len) + 4
            if packet.header.count > 0 {
                (base + prefix).copyMemory(from: packet.header.baseAddress!, byteCount: packet.header.count)
            }
            let padding = (4 - (pktLen & 3)) & 3
            nlh.pointee.nlmsg_len = UInt32(prefix + pktLen + padding)
            iov[0] = iovec(iov_base: base, iov_len: prefix + packet.header.count)
            if packet.payload.count > 0 {
                iov[n] = iovec(iov_base: UnsafeMutableRawPointer(mutating: packet.payload.baseAddress), iov_len: packet.payload.count)
                n += 1
            }
            if padding > 0 { iov[n] = iovec(iov_base: pad, iov_len: padding); n += 1 }
        } else {
            iov[0] = iovec(iov_base: base, iov_len: Int(nlh.pointee.nlmsg_len))
        }
        var h = msghdr()
        h.msg_iov = iov
        h.msg_iovlen = n
        sendMsgs[pending] = batch_msghdr(msg_hdr: h, msg_len: 0)
        pending += 1
        if batch == 1 {
            if flush() > 0 { throw QueueError("verdict") }
        }
    }

    /// Sends the deferred verdicts (one `sendmmsg` for all, unless one
    /// fails: that one is skipped, counted and the rest sent). Returns the
    /// number that failed.
    @discardableResult
    public func flush() -> Int {
        guard pending > 0 else { return 0 }
        let fd = mnl_socket_get_fd(nl)
        var failed = 0
        withUnsafeMutablePointer(to: &peer) { sap in
            for i in 0 ..< pending {
                sendMsgs[i].msg_hdr.msg_name = UnsafeMutableRawPointer(sap)
                sendMsgs[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_nl>.size)
            }
            var off = 0
            while off < pending {
                let r: Int32
                if pending - off == 1 {
                    r = sendmsg(fd, &sendMsgs[off].msg_hdr, 0) >= 0 ? 1 : -1
                } else {
                    r = batch_sendmmsg(fd, sendMsgs + off, UInt32(pending - off), 0)
                }
                verdictCalls &+= 1
                if r > 0 {
                    verdictsSent &+= UInt64(r)
                    off += Int(r)
                } else if errno != EINTR {
                    failed += 1
                    off += 1
                }
            }
        }
        pending = 0
        return failed
    }

    public func accept(_ id: UInt32, mark: UInt32?) throws {
        try enqueue(id, UInt32(NF_ACCEPT), mark: mark, packet: nil)
    }

    public func drop(_ id: UInt32) throws {
        try enqueue(id, UInt32(NF_DROP), mark: nil, packet: nil)
    }

    /// A verdict carrying the rewritten packet: its netlink message points
    /// at the new headers (copied into the verdict list) and the original
    /// payload, which is not copied in userspace.
    public func accept(_ id: UInt32, mark: UInt32?, header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) throws {
        try enqueue(id, UInt32(NF_ACCEPT), mark: mark, packet: (header, payload))
    }
}

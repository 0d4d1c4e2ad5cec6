/// How packets are spread over several queues (`--queues N`), one engine
/// thread each, so that every packet of a connection, its join subflows
/// included, reaches the thread that owns it:
///
/// - a connection's first subflow by its LAN host's address: packets from a
///   LAN interface by their source, packets from an uplink by their
///   destination (the same host in both roles: the client of an initiated
///   connection, the server of a responded one). Thread k takes the
///   addresses whose low bits are k (`-s 0.0.0.k/0.0.0.(N-1)`), so
///   neighbouring hosts go to different threads. N is a power of two.
/// - the subflows the gateway opens itself by their join port: thread k
///   owns the k-th slice of `--join-ports` and opens its joins from it;
/// - the joins a peer opens to an address the gateway announced, by the
///   port announced with it: the top of the announcing thread's slice.
///
/// A join the peer opens from another of its addresses to the LAN host's
/// address has that address as destination, and reaches the owner too.
/// Not steered: ICMP errors, spread over the threads by their outer
/// addresses. A thread that does not own the subflow lets the error pass;
/// the owner then learns of a smaller path MTU from a failed send or the
/// uplink's MTU, and of a dead path from its probes.
public enum QueueSteering {
    /// The thread counts `--queues` takes.
    public static let allowed = [1, 2, 4, 8]

    /// Thread `k`'s slice of the join ports (of `n`): equal parts, the last
    /// takes what is left. Each has at least 2 ports when the range has
    /// `2 * n` (`OptionChecks.queues`).
    public static func joinPorts(_ r: ClosedRange<UInt16>, slice k: Int, of n: Int) -> ClosedRange<UInt16> {
        guard n > 1 else { return r }
        let size = r.count / n
        let lo = Int(r.lowerBound) + k * size
        let hi = k == n - 1 ? Int(r.upperBound) : lo + size - 1
        return UInt16(lo) ... UInt16(hi)
    }

    /// The iptables match that selects thread `k`'s LAN hosts (of `n`):
    /// by source address on a LAN interface, by destination on an uplink.
    public static func hostMatch(v6: Bool, slice k: Int, of n: Int, lanSide: Bool) -> [String] {
        let mask = n - 1
        let spec = v6 ? "::\(String(k, radix: 16))/::\(String(mask, radix: 16))" : "0.0.0.\(k)/0.0.0.\(mask)"
        return [lanSide ? "-s" : "-d", spec]
    }
}

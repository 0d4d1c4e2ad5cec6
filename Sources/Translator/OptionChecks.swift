import Glibc
import MPTCPStack

/// The command line's value checks, made before anything is installed.
/// Each returns nil for a good value, else a one-line reason naming the
/// option. Nothing here traps, whatever the value (NaN, infinities,
/// negatives, the ends of an integer type).
public enum OptionChecks {
    /// The longest time setting: 30 days.
    public static let maxSeconds = 2_592_000.0

    /// Seconds within `range` (finite: NaN and infinities fail).
    public static func seconds(_ v: Double, _ option: String, _ range: ClosedRange<Double>) -> String? {
        guard v.isFinite, range.contains(v) else {
            return "\(option) \(v): seconds, \(format(range.lowerBound)) to \(format(range.upperBound))"
                + (range.upperBound == maxSeconds ? " (30 days)" : "")
        }
        return nil
    }

    /// An integer within `range`.
    public static func integer(_ v: Int, _ option: String, _ range: ClosedRange<Int>, _ unit: String = "") -> String? {
        range.contains(v) ? nil : "\(option) \(v): \(range.lowerBound) to \(range.upperBound)\(unit.isEmpty ? "" : " " + unit)"
    }

    /// The join ports: at least 2 (the top one is announced, the others are
    /// sources), none of the well-known ones (a service on the uplink
    /// address would lose them to the translator).
    public static func joinPorts(_ r: ClosedRange<UInt16>) -> String? {
        if r.lowerBound < 1024 { return "--join-ports \(r.lowerBound)-\(r.upperBound): ports from 1024 up" }
        if r.count < 2 { return "--join-ports \(r.lowerBound)-\(r.upperBound): at least 2 ports" }
        return nil
    }

    /// `--queues`: a power of two up to 8 (threads are chosen by the low
    /// bits of the LAN host's address), queue numbers within 16 bits, and
    /// at least 2 join ports per thread (each opens its joins from its own
    /// slice and announces its top port).
    public static func queues(_ n: Int, first: UInt16, joinPorts r: ClosedRange<UInt16>) -> String? {
        guard QueueSteering.allowed.contains(n) else { return "--queues \(n): 1, 2, 4 or 8" }
        if Int(first) + n - 1 > Int(UInt16.max) { return "--queues \(n) from --queue \(first): queue numbers end at 65535" }
        if r.count < 2 * n {
            return "--queues \(n): --join-ports \(r.lowerBound)-\(r.upperBound) needs at least \(2 * n) ports (2 per thread)"
        }
        return nil
    }

    /// The join ports must lie outside the gateway's ephemeral port range
    /// (its own connections would take them, and reserving them would take
    /// those from its own connections).
    public static func joinPorts(_ r: ClosedRange<UInt16>, outside ephemeral: ClosedRange<UInt16>) -> String? {
        guard r.overlaps(ephemeral) else { return nil }
        return "--join-ports \(r.lowerBound)-\(r.upperBound) overlaps the ephemeral ports \(ephemeral.lowerBound)-\(ephemeral.upperBound) "
            + "(net.ipv4.ip_local_port_range): pick ports outside them"
    }

    /// `net.ipv4.ip_local_port_range` now (of this network namespace); nil
    /// when it cannot be read.
    public static func ephemeralPorts() -> ClosedRange<UInt16>? {
        let fd = open("/proc/sys/net/ipv4/ip_local_port_range", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return parseEphemeralPorts(String(decoding: buf[0 ..< n], as: UTF8.self))
    }

    /// "32768\t60999\n" -> 32768...60999.
    static func parseEphemeralPorts(_ text: String) -> ClosedRange<UInt16>? {
        let f = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard f.count == 2, let lo = UInt16(f[0]), let hi = UInt16(f[1]), lo <= hi else { return nil }
        return lo ... hi
    }

    /// An address prefix length for the family of `address`.
    public static func prefixLength(_ len: Int, of address: IPAddress, _ option: String) -> String? {
        let most: Int
        switch address {
        case .v4: most = 32
        case .v6: most = 128
        }
        return (0 ... most).contains(len) ? nil : "\(option) \(address)/\(len): prefix length 0 to \(most)"
    }

    /// 0.001 -> "0.001", 2592000.0 -> "2592000".
    static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? "\(Int64(v))" : "\(v)"
    }
}

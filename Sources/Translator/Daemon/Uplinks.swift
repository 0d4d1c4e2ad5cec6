import Glibc
import MPTCPStack

/// One `--uplink IFACE[:backup]` argument.
public struct UplinkSpec: Equatable, CustomStringConvertible {
    public var name: String
    public var backup: Bool

    public init(name: String, backup: Bool = false) {
        self.name = name
        self.backup = backup
    }

    /// Parses `IFACE` or `IFACE:backup`; nil for an empty name or an unknown flag.
    public init?(argument: String) {
        var n = Substring(argument)
        var b = false
        if let colon = n.lastIndex(of: ":") {
            guard n[n.index(after: colon)...] == "backup" else { return nil }
            n = n[..<colon]
            b = true
        }
        guard !n.isEmpty, n.count < Int(IFNAMSIZ) else { return nil }
        self.init(name: String(n), backup: b)
    }

    public var description: String { backup ? "\(name):backup" : name }
}

/// The addresses an interface has now.
public enum InterfaceAddresses {
    /// The global IPv4 and IPv6 addresses of interface `name`, IPv4 first
    /// (link-local fe80::/10, 169.254/16 and loopback addresses are left out).
    public static func global(of name: String) -> [IPAddress] {
        var v4: [IPAddress] = []
        var v6: [IPAddress] = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var p = list
        while let ifa = p {
            defer { p = ifa.pointee.ifa_next }
            guard let sa = ifa.pointee.ifa_addr, let n = ifa.pointee.ifa_name, String(cString: n) == name else { continue }
            switch Int32(sa.pointee.sa_family) {
            case AF_INET:
                let raw = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
                if raw >> 24 == 127 || raw >> 16 == 0xa9fe || raw == 0 { continue }
                let a = IPAddress.v4(IPv4Address(raw))
                if !v4.contains(a) { v4.append(a) }
            case AF_INET6:
                let (hi, lo) = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { s -> (UInt64, UInt64) in
                    withUnsafeBytes(of: s.pointee.sin6_addr) { b in
                        var h: UInt64 = 0, l: UInt64 = 0
                        for i in 0 ..< 8 { h = h << 8 | UInt64(b[i]) }
                        for i in 8 ..< 16 { l = l << 8 | UInt64(b[i]) }
                        return (h, l)
                    }
                }
                if hi >> 54 == 0x3fa { continue } // fe80::/10
                if hi == 0 && (lo == 0 || lo == 1) { continue } // :: and ::1
                let a = IPAddress.v6(IPv6Address(high: hi, low: lo))
                if !v6.contains(a) { v6.append(a) }
            default:
                continue
            }
        }
        return v4 + v6
    }
}

/// An interface's MTU now.
public enum InterfaceMTU {
    /// The MTU of interface `name` (SIOCGIFMTU), nil when it cannot be read.
    public static func of(_ name: String) -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var req = ifreq()
        let n = name.utf8.count
        guard n < Int(IFNAMSIZ) else { return nil }
        withUnsafeMutableBytes(of: &req.ifr_ifrn.ifrn_name) { b in
            for (i, c) in name.utf8.enumerated() { b[i] = c }
            b[n] = 0
        }
        guard ioctl(fd, UInt(SIOCGIFMTU), &req) == 0 else { return nil }
        let mtu = Int(req.ifr_ifru.ifru_mtu)
        return mtu > 0 ? mtu : nil
    }
}

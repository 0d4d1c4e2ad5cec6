// MPTCP v1 option (TCP option kind 30) value types, RFC 8684 §3 and §8.
//
// Each type parses from the option's bytes (kind and length included) and
// emits the exact inverse: reserved bits are kept, so emit(parse(b)) == b.
// Which form of a subtype is meant is decided by the option length, as
// Linux (net/mptcp/options.c) and tshark do, never by the TCP flags.

public enum MPTCPSubtype: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case mpCapable = 0, mpJoin = 1, dss = 2, addAddr = 3, removeAddr = 4
    case mpPrio = 5, mpFail = 6, mpFastclose = 7, mpTCPRST = 8, mpExperimental = 0xf

    public var description: String {
        switch self {
        case .mpCapable: return "MP_CAPABLE"
        case .mpJoin: return "MP_JOIN"
        case .dss: return "DSS"
        case .addAddr: return "ADD_ADDR"
        case .removeAddr: return "REMOVE_ADDR"
        case .mpPrio: return "MP_PRIO"
        case .mpFail: return "MP_FAIL"
        case .mpFastclose: return "MP_FASTCLOSE"
        case .mpTCPRST: return "MP_TCPRST"
        case .mpExperimental: return "MP_EXPERIMENTAL"
        }
    }
}

/// MP_CAPABLE, RFC 8684 §3.1. Lengths: 4 (SYN), 12 (SYN/ACK: sender's key),
/// 20 (third ACK: both keys), 22 (first data: both keys + data-level length),
/// 24 (the same with the DSS checksum).
public struct MPCapable: Equatable, Hashable, Sendable {
    public var version: UInt8
    public var flags: UInt8
    public var senderKey: UInt64?
    public var receiverKey: UInt64?
    public var dataLevelLength: UInt16?
    public var checksum: UInt16?

    public static let flagChecksumRequired: UInt8 = 0x80 // A
    public static let flagExtensibility: UInt8 = 0x40 // B
    public static let flagNoNewSubflowsToSource: UInt8 = 0x20 // C
    public static let flagHMACSHA256: UInt8 = 0x01 // H

    public init(version: UInt8 = 1, flags: UInt8 = MPCapable.flagHMACSHA256,
                senderKey: UInt64? = nil, receiverKey: UInt64? = nil,
                dataLevelLength: UInt16? = nil, checksum: UInt16? = nil) {
        self.version = version; self.flags = flags
        self.senderKey = senderKey; self.receiverKey = receiverKey
        self.dataLevelLength = dataLevelLength; self.checksum = checksum
    }

    public var checksumRequired: Bool { flags & Self.flagChecksumRequired != 0 }
    public var hmacSHA256: Bool { flags & Self.flagHMACSHA256 != 0 }

    public var encodedLength: Int {
        4 + (senderKey == nil ? 0 : 8) + (receiverKey == nil ? 0 : 8)
            + (dataLevelLength == nil ? 0 : 2) + (checksum == nil ? 0 : 2)
    }

    init(parsing b: UnsafeRawBufferPointer) throws(WireError) {
        let len = b.count
        guard len == 4 || len == 12 || len == 20 || len == 22 || len == 24 else { throw .badOptionLength }
        version = b.u8(2) & 0x0f
        flags = b.u8(3)
        senderKey = len >= 12 ? b.u64(4) : nil
        receiverKey = len >= 20 ? b.u64(12) : nil
        dataLevelLength = len >= 22 ? b.u16(20) : nil
        checksum = len == 24 ? b.u16(22) : nil
    }

    func write(into w: inout ByteWriter) {
        w.u8(MPTCPSubtype.mpCapable.rawValue << 4 | (version & 0x0f))
        w.u8(flags)
        if let k = senderKey { w.u64(k) }
        if let k = receiverKey { w.u64(k) }
        if let l = dataLevelLength { w.u16(l) }
        if let c = checksum { w.u16(c) }
    }
}

/// The full 160-bit HMAC carried in the MP_JOIN third ACK.
public struct HMAC160: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var a: UInt64, b: UInt64, c: UInt32
    public init(a: UInt64, b: UInt64, c: UInt32) { self.a = a; self.b = b; self.c = c }
    public var description: String { hex64(a) + hex64(b) + hex32(c) }
}

/// MP_JOIN, RFC 8684 §3.2. Lengths: 12 (SYN), 16 (SYN/ACK), 24 (third ACK).
public enum MPJoin: Equatable, Hashable, Sendable {
    /// `flags` is the low nibble of the subtype byte (bit 0 = B, backup).
    case syn(flags: UInt8, addressID: UInt8, token: UInt32, nonce: UInt32)
    case synAck(flags: UInt8, addressID: UInt8, truncatedHMAC: UInt64, nonce: UInt32)
    /// `reserved` is the 12 bits after the subtype.
    case ack(reserved: UInt16, hmac: HMAC160)

    public var backup: Bool {
        switch self {
        case .syn(let f, _, _, _), .synAck(let f, _, _, _): return f & 1 != 0
        case .ack: return false
        }
    }

    public var encodedLength: Int {
        switch self { case .syn: return 12; case .synAck: return 16; case .ack: return 24 }
    }

    init(parsing b: UnsafeRawBufferPointer) throws(WireError) {
        switch b.count {
        case 12: self = .syn(flags: b.u8(2) & 0x0f, addressID: b.u8(3), token: b.u32(4), nonce: b.u32(8))
        case 16: self = .synAck(flags: b.u8(2) & 0x0f, addressID: b.u8(3), truncatedHMAC: b.u64(4), nonce: b.u32(12))
        case 24:
            self = .ack(reserved: UInt16(b.u8(2) & 0x0f) << 8 | UInt16(b.u8(3)),
                        hmac: HMAC160(a: b.u64(4), b: b.u64(12), c: b.u32(20)))
        default: throw .badOptionLength
        }
    }

    func write(into w: inout ByteWriter) {
        let st = MPTCPSubtype.mpJoin.rawValue << 4
        switch self {
        case let .syn(f, id, token, nonce):
            w.u8(st | f & 0x0f); w.u8(id); w.u32(token); w.u32(nonce)
        case let .synAck(f, id, mac, nonce):
            w.u8(st | f & 0x0f); w.u8(id); w.u64(mac); w.u32(nonce)
        case let .ack(reserved, mac):
            w.u8(st | UInt8(truncatingIfNeeded: reserved >> 8) & 0x0f); w.u8(UInt8(truncatingIfNeeded: reserved))
            w.u64(mac.a); w.u64(mac.b); w.u32(mac.c)
        }
    }
}

/// A DSS mapping: data sequence number, subflow sequence number (relative to
/// the subflow's ISN), data-level length, and the optional DSS checksum.
public struct DSSMapping: Equatable, Hashable, Sendable {
    /// The DSN as carried (a 4-byte DSN is held in the low 32 bits).
    public var dsn: UInt64
    public var subflowSeq: UInt32
    public var length: UInt16
    public var checksum: UInt16?
    public init(dsn: UInt64, subflowSeq: UInt32, length: UInt16, checksum: UInt16? = nil) {
        self.dsn = dsn; self.subflowSeq = subflowSeq; self.length = length; self.checksum = checksum
    }
}

/// DSS, RFC 8684 §3.3. Flags (low bits of byte 3): A=0x01 DATA_ACK present,
/// a=0x02 DATA_ACK is 8 octets, M=0x04 mapping present, m=0x08 DSN is 8
/// octets, F=0x10 DATA_FIN.
public struct DSS: Equatable, Hashable, Sendable {
    public static let flagDataAck: UInt8 = 0x01
    public static let flagDataAck8: UInt8 = 0x02
    public static let flagMapping: UInt8 = 0x04
    public static let flagDSN8: UInt8 = 0x08
    public static let flagDataFin: UInt8 = 0x10

    /// Byte 3 as sent, including the three reserved bits.
    public var flags: UInt8
    /// Low nibble of byte 2 (reserved).
    public var reserved: UInt8
    /// The DATA_ACK as carried (4-byte form in the low 32 bits).
    public var dataAck: UInt64?
    public var mapping: DSSMapping?

    @inlinable
    public init(dataAck: UInt64? = nil, dataAck8: Bool = true, mapping: DSSMapping? = nil,
                dsn8: Bool = true, dataFin: Bool = false) {
        var f: UInt8 = 0
        if dataAck != nil { f |= Self.flagDataAck | (dataAck8 ? Self.flagDataAck8 : 0) }
        if mapping != nil { f |= Self.flagMapping | (dsn8 ? Self.flagDSN8 : 0) }
        if dataFin { f |= Self.flagDataFin }
        flags = f; reserved = 0
        self.dataAck = dataAck.map { dataAck8 ? $0 : $0 & 0xFFFF_FFFF }
        self.mapping = mapping.map { m in var m = m; if !dsn8 { m.dsn &= 0xFFFF_FFFF }; return m }
    }

    public var dataAckIs8: Bool { flags & Self.flagDataAck8 != 0 }
    public var dsnIs8: Bool { flags & Self.flagDSN8 != 0 }
    public var dataFin: Bool { flags & Self.flagDataFin != 0 }

    public var encodedLength: Int {
        var n = 4
        if dataAck != nil { n += dataAckIs8 ? 8 : 4 }
        if let m = mapping { n += (dsnIs8 ? 8 : 4) + 4 + 2 + (m.checksum == nil ? 0 : 2) }
        return n
    }

    init(parsing b: UnsafeRawBufferPointer) throws(WireError) {
        let f = b.u8(3)
        flags = f
        reserved = b.u8(2) & 0x0f
        var need = 4
        let hasAck = f & Self.flagDataAck != 0, ack8 = f & Self.flagDataAck8 != 0
        let hasMap = f & Self.flagMapping != 0, dsn8 = f & Self.flagDSN8 != 0
        if hasAck { need += ack8 ? 8 : 4 }
        if hasMap { need += (dsn8 ? 8 : 4) + 6 }
        let withChecksum = hasMap && b.count == need + 2
        guard b.count == need || withChecksum else { throw .badOptionLength }
        var o = 4
        if hasAck {
            dataAck = ack8 ? b.u64(o) : UInt64(b.u32(o))
            o += ack8 ? 8 : 4
        } else { dataAck = nil }
        if hasMap {
            let dsn = dsn8 ? b.u64(o) : UInt64(b.u32(o))
            o += dsn8 ? 8 : 4
            mapping = DSSMapping(dsn: dsn, subflowSeq: b.u32(o), length: b.u16(o + 4),
                                 checksum: withChecksum ? b.u16(o + 6) : nil)
        } else { mapping = nil }
    }

    func write(into w: inout ByteWriter) {
        w.u8(MPTCPSubtype.dss.rawValue << 4 | reserved & 0x0f)
        w.u8(flags)
        if let a = dataAck { if dataAckIs8 { w.u64(a) } else { w.u32(UInt32(truncatingIfNeeded: a)) } }
        if let m = mapping {
            if dsnIs8 { w.u64(m.dsn) } else { w.u32(UInt32(truncatingIfNeeded: m.dsn)) }
            w.u32(m.subflowSeq); w.u16(m.length)
            if let c = m.checksum { w.u16(c) }
        }
    }
}

/// ADD_ADDR, RFC 8684 §3.4.1. Byte 2 low nibble: bit 0 = E (echo).
/// Lengths: IPv4 8/10 (echo, without/with port), 16/18 (with truncated HMAC);
/// IPv6 20/22 (echo), 28/30 (with HMAC).
public struct AddAddr: Equatable, Hashable, Sendable {
    public var flags: UInt8
    public var addressID: UInt8
    public var address: IPAddress
    public var port: UInt16?
    /// Rightmost 64 bits of HMAC-SHA256; absent on an echo.
    public var hmac: UInt64?

    public init(echo: Bool = false, addressID: UInt8, address: IPAddress, port: UInt16? = nil, hmac: UInt64? = nil) {
        flags = echo ? 1 : 0
        self.addressID = addressID; self.address = address; self.port = port; self.hmac = hmac
    }

    public var echo: Bool { flags & 1 != 0 }
    public var encodedLength: Int { 4 + address.encodedLength + (port == nil ? 0 : 2) + (hmac == nil ? 0 : 8) }

    init(parsing b: UnsafeRawBufferPointer) throws(WireError) {
        flags = b.u8(2) & 0x0f
        addressID = b.u8(3)
        let isV6: Bool, hasPort: Bool, hasHMAC: Bool
        switch b.count {
        case 8: (isV6, hasPort, hasHMAC) = (false, false, false)
        case 10: (isV6, hasPort, hasHMAC) = (false, true, false)
        case 16: (isV6, hasPort, hasHMAC) = (false, false, true)
        case 18: (isV6, hasPort, hasHMAC) = (false, true, true)
        case 20: (isV6, hasPort, hasHMAC) = (true, false, false)
        case 22: (isV6, hasPort, hasHMAC) = (true, true, false)
        case 28: (isV6, hasPort, hasHMAC) = (true, false, true)
        case 30: (isV6, hasPort, hasHMAC) = (true, true, true)
        default: throw .badOptionLength
        }
        var o = 4
        if isV6 { address = .v6(IPv6Address(high: b.u64(4), low: b.u64(12))); o += 16 } else { address = .v4(IPv4Address(b.u32(4))); o += 4 }
        if hasPort { port = b.u16(o); o += 2 } else { port = nil }
        hmac = hasHMAC ? b.u64(o) : nil
    }

    func write(into w: inout ByteWriter) {
        w.u8(MPTCPSubtype.addAddr.rawValue << 4 | flags & 0x0f)
        w.u8(addressID)
        address.write(into: &w)
        if let p = port { w.u16(p) }
        if let h = hmac { w.u64(h) }
    }
}

/// REMOVE_ADDR, RFC 8684 §3.4.2: one or more address IDs.
public struct RemoveAddr: Equatable, Hashable, Sendable {
    public var reserved: UInt8
    public var addressIDs: InlineBytes40
    public init(addressIDs: InlineBytes40) { reserved = 0; self.addressIDs = addressIDs }
    public var encodedLength: Int { 3 + addressIDs.count }

    init(parsing b: UnsafeRawBufferPointer) throws(WireError) {
        guard b.count >= 4 else { throw .badOptionLength }
        reserved = b.u8(2) & 0x0f
        addressIDs = InlineBytes40(b.slice(3, b.count - 3))!
    }

    func write(into w: inout ByteWriter) {
        w.u8(MPTCPSubtype.removeAddr.rawValue << 4 | reserved & 0x0f)
        addressIDs.write(into: &w)
    }
}

/// MP_PRIO, RFC 8684 §3.3.8: length 3 (v1). Length 4 carries the address
/// ID of RFC 6824 (v0); it is decoded too. Bit 0 of the nibble = B (backup).
public struct MPPrio: Equatable, Hashable, Sendable {
    public var flags: UInt8
    public var addressID: UInt8?
    public init(backup: Bool, addressID: UInt8? = nil) { flags = backup ? 1 : 0; self.addressID = addressID }
    public var backup: Bool { flags & 1 != 0 }
    public var encodedLength: Int { addressID == nil ? 3 : 4 }

    init(parsing b: UnsafeRawBufferPointer) throws(WireError) {
        guard b.count == 3 || b.count == 4 else { throw .badOptionLength }
        flags = b.u8(2) & 0x0f
        addressID = b.count == 4 ? b.u8(3) : nil
    }

    func write(into w: inout ByteWriter) {
        w.u8(MPTCPSubtype.mpPrio.rawValue << 4 | flags & 0x0f)
        if let id = addressID { w.u8(id) }
    }
}

/// MP_FAIL, RFC 8684 §3.7: the 64-bit DSN of the failed mapping.
public struct MPFail: Equatable, Hashable, Sendable {
    public var reserved: UInt16
    public var dsn: UInt64
    public init(dsn: UInt64) { reserved = 0; self.dsn = dsn }
    public var encodedLength: Int { 12 }

    init(parsing b: UnsafeRawBufferPointer) throws(WireError) {
        guard b.count == 12 else { throw .badOptionLength }
        reserved = UInt16(b.u8(2) & 0x0f) << 8 | UInt16(b.u8(3))
        dsn = b.u64(4)
    }

    func write(into w: inout ByteWriter) {
        w.u8(MPTCPSubtype.mpFail.rawValue << 4 | UInt8(truncatingIfNeeded: reserved >> 8) & 0x0f)
        w.u8(UInt8(truncatingIfNeeded: reserved)); w.u64(dsn)
    }
}

/// MP_FASTCLOSE, RFC 8684 §3.5: the option receiver's key.
public struct MPFastclose: Equatable, Hashable, Sendable {
    public var reserved: UInt16
    public var receiverKey: UInt64
    public init(receiverKey: UInt64) { reserved = 0; self.receiverKey = receiverKey }
    public var encodedLength: Int { 12 }

    init(parsing b: UnsafeRawBufferPointer) throws(WireError) {
        guard b.count == 12 else { throw .badOptionLength }
        reserved = UInt16(b.u8(2) & 0x0f) << 8 | UInt16(b.u8(3))
        receiverKey = b.u64(4)
    }

    func write(into w: inout ByteWriter) {
        w.u8(MPTCPSubtype.mpFastclose.rawValue << 4 | UInt8(truncatingIfNeeded: reserved >> 8) & 0x0f)
        w.u8(UInt8(truncatingIfNeeded: reserved)); w.u64(receiverKey)
    }
}

/// MP_TCPRST, RFC 8684 §3.6. Nibble flags U=0x8 V=0x4 W=0x2 T=0x1 (transient).
public struct MPTCPRst: Equatable, Hashable, Sendable {
    public var flags: UInt8
    public var reason: UInt8
    public init(flags: UInt8 = 0, reason: UInt8) { self.flags = flags; self.reason = reason }
    public var transient: Bool { flags & 1 != 0 }
    /// Reason codes (RFC 8684 §3.6).
    public static let reasonUnspecified: UInt8 = 0x00
    public static let reasonMPTCPError: UInt8 = 0x01
    public static let reasonProhibited: UInt8 = 0x03
    public var encodedLength: Int { 4 }

    init(parsing b: UnsafeRawBufferPointer) throws(WireError) {
        guard b.count == 4 else { throw .badOptionLength }
        flags = b.u8(2) & 0x0f
        reason = b.u8(3)
    }

    func write(into w: inout ByteWriter) {
        w.u8(MPTCPSubtype.mpTCPRST.rawValue << 4 | flags & 0x0f); w.u8(reason)
    }
}

/// One MPTCP option (TCP kind 30).
public enum MPTCPOption: Equatable, Hashable, Sendable {
    case mpCapable(MPCapable)
    case mpJoin(MPJoin)
    case dss(DSS)
    case addAddr(AddAddr)
    case removeAddr(RemoveAddr)
    case mpPrio(MPPrio)
    case mpFail(MPFail)
    case mpFastclose(MPFastclose)
    case mpTCPRST(MPTCPRst)
    /// MP_EXPERIMENTAL or an unassigned subtype: the whole option, kept as is.
    case other(subtype: UInt8, bytes: InlineBytes40)

    public var subtype: UInt8 {
        switch self {
        case .mpCapable: return 0
        case .mpJoin: return 1
        case .dss: return 2
        case .addAddr: return 3
        case .removeAddr: return 4
        case .mpPrio: return 5
        case .mpFail: return 6
        case .mpFastclose: return 7
        case .mpTCPRST: return 8
        case .other(let s, _): return s
        }
    }

    /// Length of the whole option including kind and length bytes.
    public var encodedLength: Int {
        switch self {
        case .mpCapable(let o): return o.encodedLength
        case .mpJoin(let o): return o.encodedLength
        case .dss(let o): return o.encodedLength
        case .addAddr(let o): return o.encodedLength
        case .removeAddr(let o): return o.encodedLength
        case .mpPrio(let o): return o.encodedLength
        case .mpFail(let o): return o.encodedLength
        case .mpFastclose(let o): return o.encodedLength
        case .mpTCPRST(let o): return o.encodedLength
        case .other(_, let b): return b.count
        }
    }

    /// Parses a whole kind-30 option (kind, length, subtype, ...).
    public init(parsing b: UnsafeRawBufferPointer) throws(WireError) {
        guard b.count >= 3, b.count <= InlineBytes40.capacity else { throw .badOptionLength }
        let st = b.u8(2) >> 4
        switch st {
        case 0: self = .mpCapable(try MPCapable(parsing: b))
        case 1: self = .mpJoin(try MPJoin(parsing: b))
        case 2:
            guard b.count >= 4 else { throw .badOptionLength }
            self = .dss(try DSS(parsing: b))
        case 3:
            guard b.count >= 8 else { throw .badOptionLength }
            self = .addAddr(try AddAddr(parsing: b))
        case 4: self = .removeAddr(try RemoveAddr(parsing: b))
        case 5: self = .mpPrio(try MPPrio(parsing: b))
        case 6: self = .mpFail(try MPFail(parsing: b))
        case 7: self = .mpFastclose(try MPFastclose(parsing: b))
        case 8: self = .mpTCPRST(try MPTCPRst(parsing: b))
        default: self = .other(subtype: st, bytes: InlineBytes40(b)!)
        }
    }

    /// Writes the whole option (kind 30, length, body).
    public func write(into w: inout ByteWriter) {
        if case .other(_, let b) = self { b.write(into: &w); return }
        w.u8(TCPOptionKind.mptcp)
        w.u8(UInt8(encodedLength))
        switch self {
        case .mpCapable(let o): o.write(into: &w)
        case .mpJoin(let o): o.write(into: &w)
        case .dss(let o): o.write(into: &w)
        case .addAddr(let o): o.write(into: &w)
        case .removeAddr(let o): o.write(into: &w)
        case .mpPrio(let o): o.write(into: &w)
        case .mpFail(let o): o.write(into: &w)
        case .mpFastclose(let o): o.write(into: &w)
        case .mpTCPRST(let o): o.write(into: &w)
        case .other: break
        }
    }
}

@usableFromInline func hex64(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

@usableFromInline func hex32(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}

import Crypto

/// The MPTCP v1 cryptography (RFC 8684 §3.1, §3.2, §3.4.1), on swift-crypto.
/// Keys, nonces and tokens are integers in host order; on the wire they are
/// big-endian, and that is what is hashed.
public enum MPTCPCrypto {
    /// token = most significant 32 bits of SHA-256(key) (RFC 8684 §3.2).
    public static func token(key: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: digest(key).0 >> 32)
    }

    /// IDSN = least significant 64 bits of SHA-256(key) (RFC 8684 §3.1).
    public static func idsn(key: UInt64) -> UInt64 {
        digest(key).3
    }

    /// SHA-256 of the 8-byte big-endian key, as four big-endian 64-bit words.
    static func digest(_ key: UInt64) -> (UInt64, UInt64, UInt64, UInt64) {
        var be = key.bigEndian
        var h = SHA256()
        withUnsafeBytes(of: &be) { h.update(bufferPointer: $0) }
        return words(h.finalize())
    }

    /// HMAC-SHA256 with Key = keyA ‖ keyB and Message = msg (all big-endian).
    static func hmac(keyA: UInt64, keyB: UInt64, message: UnsafeRawBufferPointer) -> (UInt64, UInt64, UInt64, UInt64) {
        var key = (keyA.bigEndian, keyB.bigEndian)
        let sym = withUnsafeBytes(of: &key) { SymmetricKey(data: Array($0)) }
        var mac = HMAC<SHA256>(key: sym)
        mac.update(data: message)
        return mac.finalize().withUnsafeBytes { b in (b.u64(0), b.u64(8), b.u64(16), b.u64(24)) }
    }

    private static func words(_ d: SHA256.Digest) -> (UInt64, UInt64, UInt64, UInt64) {
        d.withUnsafeBytes { b in (b.u64(0), b.u64(8), b.u64(16), b.u64(24)) }
    }

    /// The MP_JOIN HMAC (RFC 8684 §3.2): HMAC(Key = keyLocal ‖ keyRemote,
    /// Msg = nonceLocal ‖ nonceRemote), where "local" is the sender of the
    /// option. The SYN/ACK carries its leftmost 64 bits, the third ACK its
    /// leftmost 160.
    public static func joinHMAC(keyLocal: UInt64, keyRemote: UInt64, nonceLocal: UInt32, nonceRemote: UInt32) -> HMAC160 {
        var msg = (nonceLocal.bigEndian, nonceRemote.bigEndian)
        let w = withUnsafeBytes(of: &msg) { hmac(keyA: keyLocal, keyB: keyRemote, message: $0) }
        return HMAC160(a: w.0, b: w.1, c: UInt32(truncatingIfNeeded: w.2 >> 32))
    }

    /// The ADD_ADDR HMAC (RFC 8684 §3.4.1): rightmost 64 bits of
    /// HMAC(Key = senderKey ‖ receiverKey, Msg = address ID ‖ address ‖ port),
    /// where the port is 0 when the option carries none (as Linux does).
    public static func addAddrHMAC(senderKey: UInt64, receiverKey: UInt64, addressID: UInt8,
                                   address: IPAddress, port: UInt16?) -> UInt64 {
        withUnsafeTemporaryAllocation(byteCount: 19, alignment: 8) { buf in
            var w = ByteWriter(buf)
            w.u8(addressID)
            address.write(into: &w)
            w.u16(port ?? 0)
            return hmac(keyA: senderKey, keyB: receiverKey, message: UnsafeRawBufferPointer(rebasing: buf[0 ..< w.offset])).3
        }
    }
}

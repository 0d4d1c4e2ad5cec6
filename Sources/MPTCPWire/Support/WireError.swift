/// Why a byte sequence could not be decoded. Small, allocation-free, typed.
///
/// Every decoder in `Wire/` throws only this type, so a caller can count
/// reasons without a string in sight and a malformed packet never traps.
public enum WireError: Error, Equatable, Hashable, Sendable {
    /// Fewer bytes than the header (or a length field) requires.
    case truncated
    /// IP version nibble is neither 4 nor 6, or does not match the expected family.
    case badVersion
    /// IPv4 IHL < 5, or TCP data offset < 5, or a header longer than the packet.
    case badHeaderLength
    /// A total/payload length field disagrees with the bytes present.
    case badTotalLength
    /// The packet is not TCP (after skipping IPv6 extension headers).
    case notTCP
    /// A non-first IP fragment: no transport header to decode.
    case fragment
    /// A TCP option's length byte is missing.
    case optionMissingLength
    /// A TCP option's length is < 2.
    case optionLengthTooSmall
    /// A TCP option's length runs past the end of the option area.
    case optionOverrun
    /// A known option kind/subtype with a length that kind does not allow.
    case badOptionLength
    /// A field value that the option does not allow (e.g. an ADD_ADDR IP version).
    case badField
    /// The link-layer type of a capture is not one we decode.
    case unsupportedLinkType
    /// An output buffer too small for what was asked to be emitted.
    case noRoom

    /// A short, stable, human-readable reason (used by `inspect`).
    public var reason: StaticString {
        switch self {
        case .truncated: return "truncated"
        case .badVersion: return "bad IP version"
        case .badHeaderLength: return "bad header length"
        case .badTotalLength: return "bad total length"
        case .notTCP: return "not TCP"
        case .fragment: return "non-first fragment"
        case .optionMissingLength: return "option length byte missing"
        case .optionLengthTooSmall: return "option length < 2"
        case .optionOverrun: return "option overruns option area"
        case .badOptionLength: return "bad option length for its kind"
        case .badField: return "bad field value"
        case .unsupportedLinkType: return "unsupported link type"
        case .noRoom: return "no room in output buffer"
        }
    }
}

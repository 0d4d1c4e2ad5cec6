/// Everything the options of one segment say, in one value, with a presence
/// set: what the engine reads on the data path (no allocation, no ordering).
///
/// Parsing is lenient as in Linux (net/mptcp/options.c): a mis-sized or
/// unknown option is skipped and counted, never fatal.
public struct TCPOptionSummary: Sendable {
    public struct Present: OptionSet, Sendable {
        public let rawValue: UInt32
        @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
        // Computed and @inlinable, not stored: a stored static read from
        // another module (the engine, per packet) is a call to its addressor.
        @inlinable public static var mss: Present { Present(rawValue: 1 << 0) }
        @inlinable public static var windowScale: Present { Present(rawValue: 1 << 1) }
        @inlinable public static var sackPermitted: Present { Present(rawValue: 1 << 2) }
        @inlinable public static var sack: Present { Present(rawValue: 1 << 3) }
        @inlinable public static var timestamps: Present { Present(rawValue: 1 << 4) }
        @inlinable public static var mpCapable: Present { Present(rawValue: 1 << 5) }
        @inlinable public static var mpJoin: Present { Present(rawValue: 1 << 6) }
        @inlinable public static var dss: Present { Present(rawValue: 1 << 7) }
        @inlinable public static var addAddr: Present { Present(rawValue: 1 << 8) }
        @inlinable public static var removeAddr: Present { Present(rawValue: 1 << 9) }
        @inlinable public static var mpPrio: Present { Present(rawValue: 1 << 10) }
        @inlinable public static var mpFail: Present { Present(rawValue: 1 << 11) }
        @inlinable public static var mpFastclose: Present { Present(rawValue: 1 << 12) }
        @inlinable public static var mpTCPRST: Present { Present(rawValue: 1 << 13) }
        @inlinable public static var unknown: Present { Present(rawValue: 1 << 14) }
        @inlinable public static var malformed: Present { Present(rawValue: 1 << 15) }
        /// Address signalling: nothing in it for a LAN host.
        public static let signalling: Present = [.addAddr, .removeAddr, .mpPrio]
        public static let anyMPTCP: Present = [.mpCapable, .mpJoin, .dss, .addAddr, .removeAddr, .mpPrio, .mpFail, .mpFastclose, .mpTCPRST]
    }

    public var present: Present = []
    public var mss: UInt16 = 0
    public var windowScale: UInt8 = 0
    public var sack = SACKBlocks()
    public var tsValue: UInt32 = 0
    public var tsEchoReply: UInt32 = 0
    public var mpCapable = MPCapable()
    public var mpJoin = MPJoin.syn(flags: 0, addressID: 0, token: 0, nonce: 0)
    public var dss = DSS()
    public var addAddr = AddAddr(addressID: 0, address: .v4(IPv4Address(0)))
    public var removeAddr = RemoveAddr(addressIDs: InlineBytes40())
    public var mpPrio = MPPrio(backup: false)
    public var mpFail = MPFail(dsn: 0)
    public var mpFastclose = MPFastclose(receiverKey: 0)
    public var mpTCPRST = MPTCPRst(reason: 0)
    /// Options that failed to decode (their reasons are in the first one seen).
    public var malformedCount = 0
    public var firstMalformedReason: WireError?
    /// Bytes of the option area actually used (excluding trailing padding).
    public var usedLength = 0

    public init() {}

    public init(parsing area: UnsafeRawBufferPointer) {
        self.init()
        for e in TCPOptionIterator(area) {
            let o: TCPOption
            do { o = try e.parse() } catch {
                present.insert(.malformed)
                malformedCount += 1
                if firstMalformedReason == nil { firstMalformedReason = error }
                continue
            }
            switch o {
            case .endOfList: continue
            case .noOperation: break
            case .maxSegmentSize(let v): present.insert(.mss); mss = v
            case .windowScale(let v): present.insert(.windowScale); windowScale = v
            case .sackPermitted: present.insert(.sackPermitted)
            case .sack(let s): present.insert(.sack); sack = s
            case .timestamps(let v, let e): present.insert(.timestamps); tsValue = v; tsEchoReply = e
            case .mptcp(let m):
                // A repeated subtype: the first one counts (Linux keeps the last;
                // a well-formed segment never repeats one).
                switch m {
                case .mpCapable(let x): if !present.contains(.mpCapable) { present.insert(.mpCapable); mpCapable = x }
                case .mpJoin(let x): if !present.contains(.mpJoin) { present.insert(.mpJoin); mpJoin = x }
                case .dss(let x): if !present.contains(.dss) { present.insert(.dss); dss = x }
                case .addAddr(let x): if !present.contains(.addAddr) { present.insert(.addAddr); addAddr = x }
                case .removeAddr(let x): if !present.contains(.removeAddr) { present.insert(.removeAddr); removeAddr = x }
                case .mpPrio(let x): if !present.contains(.mpPrio) { present.insert(.mpPrio); mpPrio = x }
                case .mpFail(let x): if !present.contains(.mpFail) { present.insert(.mpFail); mpFail = x }
                case .mpFastclose(let x): if !present.contains(.mpFastclose) { present.insert(.mpFastclose); mpFastclose = x }
                case .mpTCPRST(let x): if !present.contains(.mpTCPRST) { present.insert(.mpTCPRST); mpTCPRST = x }
                case .other: present.insert(.unknown)
                }
            case .unknown: present.insert(.unknown)
            case .malformed: present.insert(.malformed) // not produced by parse()
            }
            usedLength = e.offset + e.bytes.count
        }
    }

    @inlinable public func has(_ p: Present) -> Bool { present.contains(p) }
}

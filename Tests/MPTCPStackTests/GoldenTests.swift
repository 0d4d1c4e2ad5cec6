import MPTCPStack
import TestSupport
import Testing

// Golden decode of the captured packets. The expected header fields come
// from tshark 4 (`-e tcp.seq_raw -e tcp.ack_raw ...`), the expected option
// lists from an independent RFC 8684 decoder (python) run over the same
// bytes and checked by hand against the capture notes.

struct HeaderExpect: Sendable, CustomTestStringConvertible {
    let v: Vector
    let src: String, dst: String
    let ttl: UInt8
    let ipID: UInt16?, ipChecksum: UInt16?, flow: UInt32?
    let ports: (UInt16, UInt16)
    let seq: UInt32, ack: UInt32
    let headerLength: Int
    let flags: UInt8
    let window: UInt16, checksum: UInt16
    let payload: Int
    init(_ v: Vector, _ src: String, _ dst: String, ttl: UInt8, ipID: UInt16?, ipChecksum: UInt16?, flow: UInt32?,
         ports: (UInt16, UInt16), seq: UInt32, ack: UInt32, headerLength: Int, flags: UInt8,
         window: UInt16, checksum: UInt16, payload: Int) {
        self.v = v; self.src = src; self.dst = dst; self.ttl = ttl; self.ipID = ipID; self.ipChecksum = ipChecksum
        self.flow = flow; self.ports = ports; self.seq = seq; self.ack = ack; self.headerLength = headerLength
        self.flags = flags; self.window = window; self.checksum = checksum; self.payload = payload
    }
    var testDescription: String { v.testDescription }
}

enum Golden {
    static let headers: [HeaderExpect] = [
        HeaderExpect(Captured.aSYN, "10.20.1.1", "10.20.1.2", ttl: 64, ipID: 0x6c71, ipChecksum: 0xb81c, flow: nil, ports: (60916, 8080), seq: 1736448566, ack: 0, headerLength: 44, flags: 0x0002, window: 64240, checksum: 0x7169, payload: 0),
        HeaderExpect(Captured.aSYNACK, "10.20.1.2", "10.20.1.1", ttl: 64, ipID: 0x0000, ipChecksum: 0x2486, flow: nil, ports: (8080, 60916), seq: 3339685144, ack: 1736448567, headerLength: 52, flags: 0x0012, window: 65160, checksum: 0xc478, payload: 0),
        HeaderExpect(Captured.aACK, "10.20.1.1", "10.20.1.2", ttl: 64, ipID: 0x6c72, ipChecksum: 0xb813, flow: nil, ports: (60916, 8080), seq: 1736448567, ack: 3339685145, headerLength: 52, flags: 0x0010, window: 63, checksum: 0xd08e, payload: 0),
        HeaderExpect(Captured.aFirstData, "10.20.1.1", "10.20.1.2", ttl: 64, ipID: 0x6c73, ipChecksum: 0xb556, flow: nil, ports: (60916, 8080), seq: 1736448567, ack: 3339685145, headerLength: 56, flags: 0x0018, window: 63, checksum: 0x749e, payload: 696),
        HeaderExpect(Captured.aDataAck8, "10.20.1.2", "10.20.1.1", ttl: 64, ipID: 0xd902, ipChecksum: 0x4b8b, flow: nil, ports: (8080, 60916), seq: 3339685145, ack: 1736449263, headerLength: 44, flags: 0x0010, window: 58, checksum: 0x6b77, payload: 0),
        HeaderExpect(Captured.aDataFin4Ack, "10.20.1.1", "10.20.1.2", ttl: 64, ipID: 0x6c74, ipChecksum: 0xb80d, flow: nil, ports: (60916, 8080), seq: 1736449263, ack: 3339685145, headerLength: 56, flags: 0x0010, window: 63, checksum: 0x7b0f, payload: 0),
        HeaderExpect(Captured.aData8, "10.20.1.2", "10.20.1.1", ttl: 64, ipID: 0xd904, ipChecksum: 0x4b35, flow: nil, ports: (8080, 60916), seq: 3339685145, ack: 1736449263, headerLength: 60, flags: 0x0018, window: 58, checksum: 0x3ef8, payload: 68),
        HeaderExpect(Captured.aDataFin8Ack, "10.20.1.2", "10.20.1.1", ttl: 64, ipID: 0xd905, ipChecksum: 0x4b78, flow: nil, ports: (8080, 60916), seq: 3339685213, ack: 1736449263, headerLength: 60, flags: 0x0010, window: 58, checksum: 0x46c7, payload: 0),
        HeaderExpect(Captured.aFIN, "10.20.1.1", "10.20.1.2", ttl: 64, ipID: 0x6c76, ipChecksum: 0xb817, flow: nil, ports: (60916, 8080), seq: 1736449263, ack: 3339685213, headerLength: 44, flags: 0x0011, window: 63, checksum: 0x5505, payload: 0),
        HeaderExpect(Captured.bSYN, "10.20.1.1", "10.20.1.2", ttl: 64, ipID: 0x46ee, ipChecksum: 0xdd9f, flow: nil, ports: (56230, 8080), seq: 1099122607, ack: 0, headerLength: 44, flags: 0x0002, window: 64240, checksum: 0x36cd, payload: 0),
        HeaderExpect(Captured.bSYNACK, "10.20.1.2", "10.20.1.1", ttl: 64, ipID: 0x0000, ipChecksum: 0x2486, flow: nil, ports: (8080, 56230), seq: 4183266718, ack: 1099122608, headerLength: 52, flags: 0x0012, window: 65160, checksum: 0x23e8, payload: 0),
        HeaderExpect(Captured.bACK, "10.20.1.1", "10.20.1.2", ttl: 64, ipID: 0x46ef, ipChecksum: 0xdd96, flow: nil, ports: (56230, 8080), seq: 1099122608, ack: 4183266719, headerLength: 52, flags: 0x0010, window: 63, checksum: 0x0021, payload: 0),
        HeaderExpect(Captured.bAddAddr, "10.20.1.2", "10.20.1.1", ttl: 64, ipID: 0xf1e8, ipChecksum: 0x32a1, flow: nil, ports: (8080, 56230), seq: 4183266719, ack: 1099122608, headerLength: 48, flags: 0x0010, window: 63, checksum: 0xada4, payload: 0),
        HeaderExpect(Captured.bAddAddrEcho, "10.20.1.1", "10.20.1.2", ttl: 64, ipID: 0x46f0, ipChecksum: 0xdda1, flow: nil, ports: (56230, 8080), seq: 1099122608, ack: 4183266719, headerLength: 40, flags: 0x0010, window: 63, checksum: 0xe8b4, payload: 0),
        HeaderExpect(Captured.bJoinSYN, "10.20.2.1", "10.20.2.2", ttl: 64, ipID: 0x42ac, ipChecksum: 0xdfd9, flow: nil, ports: (58159, 8080), seq: 921154943, ack: 0, headerLength: 52, flags: 0x0002, window: 64240, checksum: 0x8c39, payload: 0),
        HeaderExpect(Captured.bJoinSYNACK, "10.20.2.2", "10.20.2.1", ttl: 64, ipID: 0x0000, ipChecksum: 0x2282, flow: nil, ports: (8080, 58159), seq: 2256436592, ack: 921154944, headerLength: 56, flags: 0x0012, window: 65160, checksum: 0x43ec, payload: 0),
        HeaderExpect(Captured.bJoinACK, "10.20.2.1", "10.20.2.2", ttl: 64, ipID: 0x42ad, ipChecksum: 0xdfd4, flow: nil, ports: (58159, 8080), seq: 921154944, ack: 2256436593, headerLength: 56, flags: 0x0010, window: 63, checksum: 0x4ba0, payload: 0),
        HeaderExpect(Captured.bJoin4thACK, "10.20.2.2", "10.20.2.1", ttl: 64, ipID: 0xc1c2, ipChecksum: 0x60cf, flow: nil, ports: (8080, 58159), seq: 2256436593, ack: 921154944, headerLength: 40, flags: 0x0010, window: 63, checksum: 0x8067, payload: 0),
        HeaderExpect(Captured.bData4Ack, "10.20.1.1", "10.20.1.2", ttl: 64, ipID: 0x46f1, ipChecksum: 0xdd84, flow: nil, ports: (56230, 8080), seq: 1099122608, ack: 4183266719, headerLength: 56, flags: 0x0018, window: 63, checksum: 0xa2ea, payload: 12),
        HeaderExpect(Captured.bFullData, "10.20.1.2", "10.20.1.1", ttl: 64, ipID: 0xf1ea, ipChecksum: 0x2d07, flow: nil, ports: (8080, 56230), seq: 4183266719, ack: 1099122620, headerLength: 60, flags: 0x0010, window: 63, checksum: 0x8952, payload: 1420),
        HeaderExpect(Captured.bDataWithFin, "10.20.2.2", "10.20.2.1", ttl: 64, ipID: 0xc370, ipChecksum: 0x5a0d, flow: nil, ports: (8080, 58159), seq: 2256998209, ack: 921154944, headerLength: 60, flags: 0x0018, window: 63, checksum: 0x6253, payload: 1280),
        HeaderExpect(Captured.dSYN, "10.20.1.1", "10.20.1.2", ttl: 64, ipID: 0xff50, ipChecksum: 0x253d, flow: nil, ports: (60930, 8080), seq: 4073077752, ack: 0, headerLength: 44, flags: 0x0002, window: 64240, checksum: 0xbc6d, payload: 0),
        HeaderExpect(Captured.dSYNACK, "10.20.1.2", "10.20.1.1", ttl: 64, ipID: 0x0000, ipChecksum: 0x2492, flow: nil, ports: (8080, 60930), seq: 898738271, ack: 4073077753, headerLength: 40, flags: 0x0012, window: 65160, checksum: 0xdcaa, payload: 0),
        HeaderExpect(Captured.dACK, "10.20.1.1", "10.20.1.2", ttl: 64, ipID: 0xff51, ipChecksum: 0x2548, flow: nil, ports: (60930, 8080), seq: 4073077753, ack: 898738272, headerLength: 32, flags: 0x0010, window: 63, checksum: 0x09c4, payload: 0),
        HeaderExpect(Captured.eSYN, "fd20:3::1", "fd20:3::2", ttl: 64, ipID: nil, ipChecksum: nil, flow: 0x0fcc9a, ports: (40060, 8080), seq: 1314067296, ack: 0, headerLength: 44, flags: 0x0002, window: 64800, checksum: 0x7ea4, payload: 0),
        HeaderExpect(Captured.eSYNACK, "fd20:3::2", "fd20:3::1", ttl: 64, ipID: nil, ipChecksum: nil, flow: 0x03f1b6, ports: (8080, 40060), seq: 3193756857, ack: 1314067297, headerLength: 52, flags: 0x0012, window: 64260, checksum: 0xb1a0, payload: 0),
        HeaderExpect(Captured.eACK, "fd20:3::1", "fd20:3::2", ttl: 64, ipID: nil, ipChecksum: nil, flow: 0x0fcc9a, ports: (40060, 8080), seq: 1314067297, ack: 3193756858, headerLength: 52, flags: 0x0010, window: 64, checksum: 0xe01b, payload: 0),
        HeaderExpect(Captured.eFirstData, "fd20:3::1", "fd20:3::2", ttl: 64, ipID: nil, ipChecksum: nil, flow: 0x0fcc9a, ports: (40060, 8080), seq: 1314067297, ack: 3193756858, headerLength: 56, flags: 0x0018, window: 64, checksum: 0x842b, payload: 696),
        HeaderExpect(Captured.eDataFin, "fd20:3::1", "fd20:3::2", ttl: 64, ipID: nil, ipChecksum: nil, flow: 0x0fcc9a, ports: (40060, 8080), seq: 1314067993, ack: 3193756858, headerLength: 56, flags: 0x0010, window: 63, checksum: 0x8c4b, payload: 0),
        HeaderExpect(Captured.eData8, "fd20:3::2", "fd20:3::1", ttl: 64, ipID: nil, ipChecksum: nil, flow: 0x03f1b6, ports: (8080, 40060), seq: 3193756858, ack: 1314067993, headerLength: 60, flags: 0x0018, window: 58, checksum: 0xc4ac, payload: 68),
        HeaderExpect(Captured.gAddAddr, "10.20.1.2", "10.20.1.1", ttl: 64, ipID: 0x5ad8, ipChecksum: 0xc9b1, flow: nil, ports: (8080, 38364), seq: 2413871674, ack: 2813405617, headerLength: 48, flags: 0x0010, window: 63, checksum: 0x27b6, payload: 0),
        HeaderExpect(Captured.gJoinSYN, "10.20.2.1", "10.20.2.2", ttl: 64, ipID: 0x5b93, ipChecksum: 0xc6f2, flow: nil, ports: (55923, 8080), seq: 2089160209, ack: 0, headerLength: 52, flags: 0x0002, window: 64240, checksum: 0x22a9, payload: 0),
        HeaderExpect(Captured.gJoinSYNACK, "10.20.2.2", "10.20.2.1", ttl: 64, ipID: 0x0000, ipChecksum: 0x2282, flow: nil, ports: (8080, 55923), seq: 2213371258, ack: 2089160210, headerLength: 56, flags: 0x0012, window: 65160, checksum: 0x2e9e, payload: 0),
        HeaderExpect(Captured.gJoinACK, "10.20.2.1", "10.20.2.2", ttl: 64, ipID: 0x5b94, ipChecksum: 0xc6ed, flow: nil, ports: (55923, 8080), seq: 2089160210, ack: 2213371259, headerLength: 56, flags: 0x0010, window: 63, checksum: 0x1d55, payload: 0),
        HeaderExpect(Captured.gFastclose1, "10.20.1.2", "10.20.1.1", ttl: 64, ipID: 0x5ae9, ipChecksum: 0xc9a0, flow: nil, ports: (8080, 38364), seq: 2413871674, ack: 2813425629, headerLength: 48, flags: 0x0014, window: 54, checksum: 0xa0be, payload: 0),
        HeaderExpect(Captured.gFastclose2, "10.20.2.2", "10.20.2.1", ttl: 64, ipID: 0x73ed, ipChecksum: 0xae9c, flow: nil, ports: (8080, 55923), seq: 2213371259, ack: 2089160210, headerLength: 48, flags: 0x0014, window: 63, checksum: 0xedd6, payload: 0),
    ]

    static let options: [String: [TCPOption]] = [
        "aSYN": [
            .maxSegmentSize(1460),
            .sackPermitted,
            .timestamps(value: 0xb48352b0, echoReply: 0x00000000),
            .noOperation,
            .windowScale(10),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x01)))],
        "aSYNACK": [
            .maxSegmentSize(1460),
            .sackPermitted,
            .timestamps(value: 0x88da4390, echoReply: 0xb48352b0),
            .noOperation,
            .windowScale(10),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x01, senderKey: 0xa78ab8b13030d837)))],
        "aACK": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0xb48352b0, echoReply: 0x88da4390),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x01, senderKey: 0x220ca80f410bf5cb, receiverKey: 0xa78ab8b13030d837)))],
        "aFirstData": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0xb48352b0, echoReply: 0x88da4390),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x01, senderKey: 0x220ca80f410bf5cb, receiverKey: 0xa78ab8b13030d837, dataLevelLength: 696))),
            .noOperation,
            .noOperation],
        "aDataAck8": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x88da4390, echoReply: 0xb48352b0),
            .mptcp(.dss(DSS(dataAck: 0xe7c1930ad7957aa7)))],
        "aDataFin4Ack": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0xb48352b0, echoReply: 0x88da4390),
            .mptcp(.dss(DSS(dataAck: 0x688956a7, dataAck8: false, mapping: DSSMapping(dsn: 0xe7c1930ad7957aa7, subflowSeq: 0, length: 1), dataFin: true))),
            .noOperation,
            .noOperation],
        "aData8": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x88da4390, echoReply: 0xb48352b0),
            .mptcp(.dss(DSS(dataAck: 0xe7c1930ad7957aa8, mapping: DSSMapping(dsn: 0xf6b82d01688956a7, subflowSeq: 1, length: 68)))),
            .noOperation,
            .noOperation],
        "aDataFin8Ack": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x88da4390, echoReply: 0xb48352b0),
            .mptcp(.dss(DSS(dataAck: 0xe7c1930ad7957aa8, mapping: DSSMapping(dsn: 0xf6b82d01688956eb, subflowSeq: 0, length: 1), dataFin: true))),
            .noOperation,
            .noOperation],
        "aFIN": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0xb48352b2, echoReply: 0x88da4390),
            .mptcp(.dss(DSS(dataAck: 0xf6b82d01688956ec)))],
        "bSYN": [
            .maxSegmentSize(1460),
            .sackPermitted,
            .timestamps(value: 0x830fc992, echoReply: 0x00000000),
            .noOperation,
            .windowScale(10),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x01)))],
        "bSYNACK": [
            .maxSegmentSize(1460),
            .sackPermitted,
            .timestamps(value: 0xf155ab1d, echoReply: 0x830fc992),
            .noOperation,
            .windowScale(10),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x01, senderKey: 0xf04ce84007d7e35c)))],
        "bACK": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x830fc992, echoReply: 0xf155ab1d),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x01, senderKey: 0x626ceb320231e0ff, receiverKey: 0xf04ce84007d7e35c)))],
        "bAddAddr": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0xf155ab1d, echoReply: 0x830fc992),
            .mptcp(.addAddr(AddAddr(addressID: 1, address: .v4(IPv4Address(10, 20, 2, 2)), hmac: 0x9ab7dd0aeca1b79b)))],
        "bAddAddrEcho": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x830fc992, echoReply: 0xf155ab1d),
            .mptcp(.addAddr(AddAddr(echo: true, addressID: 1, address: .v4(IPv4Address(10, 20, 2, 2)))))],
        "bJoinSYN": [
            .maxSegmentSize(1460),
            .sackPermitted,
            .timestamps(value: 0x2a09e4db, echoReply: 0x00000000),
            .noOperation,
            .windowScale(10),
            .mptcp(.mpJoin(.syn(flags: 0, addressID: 1, token: 0x0e568f1e, nonce: 0x11be9d50)))],
        "bJoinSYNACK": [
            .maxSegmentSize(1460),
            .sackPermitted,
            .timestamps(value: 0x98eb9669, echoReply: 0x2a09e4db),
            .noOperation,
            .windowScale(10),
            .mptcp(.mpJoin(.synAck(flags: 0, addressID: 1, truncatedHMAC: 0xe160d3b40d8a9f88, nonce: 0xaa6e4144)))],
        "bJoinACK": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x2a09e4db, echoReply: 0x98eb9669),
            .mptcp(.mpJoin(.ack(reserved: 0, hmac: HMAC160(a: 0x7e9674a37f663d63, b: 0xde1fe7ba40230ef9, c: 0xd06fbdc6))))],
        "bJoin4thACK": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x98eb9669, echoReply: 0x2a09e4db),
            .mptcp(.dss(DSS(dataAck: 0xf6a557e3, dataAck8: false)))],
        "bData4Ack": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x830fc993, echoReply: 0xf155ab1d),
            .mptcp(.dss(DSS(dataAck: 0x1bea0118, dataAck8: false, mapping: DSSMapping(dsn: 0x00b24946f6a557e3, subflowSeq: 1, length: 12)))),
            .noOperation,
            .noOperation],
        "bFullData": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0xf155ab21, echoReply: 0x830fc993),
            .mptcp(.dss(DSS(dataAck: 0x00b24946f6a557ef, mapping: DSSMapping(dsn: 0x40237fde1bea0118, subflowSeq: 1, length: 31240)))),
            .noOperation,
            .noOperation],
        "bDataWithFin": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x98eb96e1, echoReply: 0x2a09e553),
            .mptcp(.dss(DSS(dataAck: 0x00b24946f6a557ef, mapping: DSSMapping(dsn: 0x40237fde1bf9fc18, subflowSeq: 561617, length: 1281), dataFin: true))),
            .noOperation,
            .noOperation],
        "dSYN": [
            .maxSegmentSize(1460),
            .sackPermitted,
            .timestamps(value: 0x700d9f0b, echoReply: 0x00000000),
            .noOperation,
            .windowScale(10),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x01)))],
        "dSYNACK": [
            .maxSegmentSize(1460),
            .sackPermitted,
            .timestamps(value: 0x10da1c58, echoReply: 0x700d9f0b),
            .noOperation,
            .windowScale(10)],
        "dACK": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x700d9f0b, echoReply: 0x10da1c58)],
        "eSYN": [
            .maxSegmentSize(1440),
            .sackPermitted,
            .timestamps(value: 0x21a16397, echoReply: 0x00000000),
            .noOperation,
            .windowScale(10),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x01)))],
        "eSYNACK": [
            .maxSegmentSize(1440),
            .sackPermitted,
            .timestamps(value: 0xeb49818d, echoReply: 0x21a16397),
            .noOperation,
            .windowScale(10),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x01, senderKey: 0x1476bdfc4ba888f5)))],
        "eACK": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x21a16397, echoReply: 0xeb49818d),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x01, senderKey: 0xfddcf56e7fac67fc, receiverKey: 0x1476bdfc4ba888f5)))],
        "eFirstData": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x21a16397, echoReply: 0xeb49818d),
            .mptcp(.mpCapable(MPCapable(version: 1, flags: 0x01, senderKey: 0xfddcf56e7fac67fc, receiverKey: 0x1476bdfc4ba888f5, dataLevelLength: 696))),
            .noOperation,
            .noOperation],
        "eDataFin": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x21a16397, echoReply: 0xeb49818d),
            .mptcp(.dss(DSS(dataAck: 0x8fb7e07c, dataAck8: false, mapping: DSSMapping(dsn: 0xcb4c22bb18a42c1a, subflowSeq: 0, length: 1), dataFin: true))),
            .noOperation,
            .noOperation],
        "eData8": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0xeb49818d, echoReply: 0x21a16397),
            .mptcp(.dss(DSS(dataAck: 0xcb4c22bb18a42c1b, mapping: DSSMapping(dsn: 0x70cd3e748fb7e07c, subflowSeq: 1, length: 68)))),
            .noOperation,
            .noOperation],
        "gAddAddr": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x6fd3dc22, echoReply: 0x89894ad7),
            .mptcp(.addAddr(AddAddr(addressID: 1, address: .v4(IPv4Address(10, 20, 2, 2)), hmac: 0x2e2762333ed8d5f1)))],
        "gJoinSYN": [
            .maxSegmentSize(1460),
            .sackPermitted,
            .timestamps(value: 0x11f7af14, echoReply: 0x00000000),
            .noOperation,
            .windowScale(10),
            .mptcp(.mpJoin(.syn(flags: 0, addressID: 1, token: 0x7057ef46, nonce: 0x2dc4e115)))],
        "gJoinSYNACK": [
            .maxSegmentSize(1460),
            .sackPermitted,
            .timestamps(value: 0x94233d19, echoReply: 0x11f7af14),
            .noOperation,
            .windowScale(10),
            .mptcp(.mpJoin(.synAck(flags: 0, addressID: 1, truncatedHMAC: 0x2a7670fd01c19ea8, nonce: 0x396726e9)))],
        "gJoinACK": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x11f7af14, echoReply: 0x94233d19),
            .mptcp(.mpJoin(.ack(reserved: 0, hmac: HMAC160(a: 0x0cf493051be0d909, b: 0xa4eab92c7f01bc98, c: 0x83750876))))],
        "gFastclose1": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x6fd3de17, echoReply: 0x89894ad8),
            .mptcp(.mpFastclose(MPFastclose(receiverKey: 0xa36e66c58dfe71e2))),
            .mptcp(.mpTCPRST(MPTCPRst(flags: 0, reason: 0)))],
        "gFastclose2": [
            .noOperation,
            .noOperation,
            .timestamps(value: 0x94233f0e, echoReply: 0x11f7af14),
            .mptcp(.mpFastclose(MPFastclose(receiverKey: 0xa36e66c58dfe71e2))),
            .mptcp(.mpTCPRST(MPTCPRst(flags: 0, reason: 0)))],
    ]
}

@Suite("Golden decode of captured packets")
struct GoldenDecodeTests {
    @Test("every captured vector has a header and an option expectation")
    func tablesCoverAllVectors() {
        #expect(Golden.headers.map(\.v.name) == Captured.all.map(\.name))
        #expect(Set(Golden.options.keys) == Set(Captured.all.map(\.name)))
    }

    @Test("IP and TCP header fields", arguments: Golden.headers)
    func headerFields(_ x: HeaderExpect) throws {
        try x.v.bytes.withUnsafeBytes { raw in
            let v = try TCPPacketView(raw)
            #expect(v.source == IPAddress(x.src))
            #expect(v.destination == IPAddress(x.dst))
            #expect(v.source.description == x.src)
            #expect(v.destination.description == x.dst)
            #expect(v.ip.count == x.v.bytes.count)
            #expect(v.tcp.sourcePort == x.ports.0)
            #expect(v.tcp.destinationPort == x.ports.1)
            #expect(v.tcp.seq == TCPSeq(x.seq))
            #expect(v.tcp.ack == TCPSeq(x.ack))
            #expect(v.tcp.headerLength == x.headerLength)
            #expect(v.tcp.flags == x.flags)
            #expect(v.tcp.reservedBits == 0)
            #expect(v.tcp.window == x.window)
            #expect(v.tcp.checksum == x.checksum)
            #expect(v.tcp.urgentPointer == 0)
            #expect(v.tcp.payload.count == x.payload)
            #expect(v.tcp.optionArea.count == x.headerLength - 20)
            #expect(v.tcp.bytes.count == x.headerLength + x.payload)
            switch v.family {
            case .v4:
                #expect(x.flow == nil)
                #expect(v.tcpOffset == 20)
                let ip = try IPv4PacketView(raw)
                #expect(ip.headerLength == 20)
                #expect(ip.totalLength == UInt16(x.v.bytes.count))
                #expect(ip.identification == x.ipID)
                #expect(ip.headerChecksum == x.ipChecksum)
                #expect(ip.ttl == x.ttl)
                #expect(ip.proto == 6)
                #expect(ip.tos == 0)
                #expect(ip.flagsAndFragmentOffset == 0x4000) // DF
                #expect(ip.fragmentOffset == 0)
                #expect(!ip.moreFragments)
                #expect(ip.payload.count == x.headerLength + x.payload)
            case .v6:
                #expect(x.ipID == nil)
                #expect(v.tcpOffset == 40)
                let ip = try IPv6PacketView(raw)
                #expect(ip.flowLabel == x.flow)
                #expect(ip.trafficClass == 0)
                #expect(ip.hopLimit == x.ttl)
                #expect(ip.nextHeader == 6)
                #expect(ip.upperLayerProtocol == 6)
                #expect(ip.upperLayerOffset == 40)
                #expect(!ip.isNonFirstFragment)
                #expect(ip.extensionHeaders.count == 0)
                #expect(Int(ip.payloadLength) == x.headerLength + x.payload)
            }
        }
        // The value type agrees with the view.
        let p = try parsePacket(x.v.bytes).get()
        #expect(p.tcpHeader.sourcePort == x.ports.0)
        #expect(p.tcpHeader.destinationPort == x.ports.1)
        #expect(p.tcpHeader.seq.rawValue == x.seq)
        #expect(p.tcpHeader.ack.rawValue == x.ack)
        #expect(p.tcpHeader.flags == x.flags)
        #expect(p.tcpHeader.window == x.window)
        #expect(p.tcpHeader.checksum == x.checksum)
        #expect(p.tcpHeader.encodedLength == x.headerLength)
        #expect(p.payload.count == x.payload)
        #expect(p.payload[...] == tcpSegment(of: x.v.bytes).dropFirst(x.headerLength))
        switch p.ipHeader {
        case .v4(let h):
            #expect(h.identification == x.ipID)
            #expect(h.headerChecksum == x.ipChecksum)
            #expect(h.ttl == x.ttl)
            #expect(h.source.description == x.src)
            #expect(h.destination.description == x.dst)
            #expect(h.options.count == 0)
        case .v6(let h):
            #expect(h.flowLabel == x.flow)
            #expect(h.hopLimit == x.ttl)
            #expect(h.source.description == x.src)
            #expect(h.destination.description == x.dst)
            #expect(p.extensionHeaders.isEmpty)
        }
    }

    @Test("option list", arguments: Captured.all)
    func optionList(_ v: Vector) throws {
        let expected = try #require(Golden.options[v.name])
        let p = try parsePacket(v.bytes).get()
        #expect(p.tcpHeader.options.array == expected)
        // The iterator splits the area at the same places, with no faults.
        let area = optionArea(of: v.bytes)
        var offsets: [Int] = []
        var kinds: [UInt8] = []
        area.withUnsafeBytes { raw in
            for e in TCPOptionIterator(raw) {
                #expect(e.fault == nil)
                offsets.append(e.offset)
                kinds.append(e.kind)
            }
        }
        #expect(kinds == expected.map(\.kind))
        var o = 0
        var expectedOffsets: [Int] = []
        for e in expected { expectedOffsets.append(o); o += e.encodedLength }
        #expect(offsets == expectedOffsets)
        #expect(o == area.count)
    }

    @Test("TCPFlags.string")
    func flagString() {
        #expect(TCPFlags.string(0x02) == "S")
        #expect(TCPFlags.string(0x12) == "S.")
        #expect(TCPFlags.string(0x19) == "FP.")
        #expect(TCPFlags.string(0x14) == "R.")
        #expect(TCPFlags.string(0) == "none")
        #expect(TCPFlags.string(0xff) == "SFRP.UEW")
    }
}

@Suite("Golden decode: MPTCP semantics against the capture notes")
struct MPTCPSemanticsTests {
    func capable(_ v: Vector) throws -> MPCapable {
        let opts = mptcpOptions(v.bytes)
        try #require(opts.count == 1)
        guard case .mpCapable(let c) = opts[0] else { Issue.record("not MP_CAPABLE: \(opts[0])"); throw WireError.badField }
        return c
    }

    func dss(_ v: Vector) throws -> DSS {
        let opts = mptcpOptions(v.bytes)
        try #require(opts.count == 1)
        guard case .dss(let d) = opts[0] else { Issue.record("not DSS: \(opts[0])"); throw WireError.badField }
        return d
    }

    @Test("MP_CAPABLE handshake keys (a, b, e)", arguments: [
        (Keys.a, Captured.aSYN, Captured.aSYNACK, Captured.aACK),
        (Keys.b, Captured.bSYN, Captured.bSYNACK, Captured.bACK),
        (Keys.e, Captured.eSYN, Captured.eSYNACK, Captured.eACK),
    ])
    func handshake(_ t: (Keys.Pair, Vector, Vector, Vector)) throws {
        let (k, syn, synAck, ack) = t
        let s = try capable(syn)
        #expect(s.version == 1)
        #expect(s.flags == MPCapable.flagHMACSHA256)
        #expect(s.hmacSHA256 && !s.checksumRequired)
        #expect(s.senderKey == nil && s.receiverKey == nil && s.dataLevelLength == nil && s.checksum == nil)
        #expect(s.encodedLength == 4)

        let sa = try capable(synAck)
        #expect(sa.version == 1 && sa.flags == 0x01)
        #expect(sa.senderKey == k.serverKey)
        #expect(sa.receiverKey == nil)
        #expect(sa.encodedLength == 12)

        let a = try capable(ack)
        #expect(a.senderKey == k.clientKey)
        #expect(a.receiverKey == k.serverKey)
        #expect(a.dataLevelLength == nil)
        #expect(a.encodedLength == 20)
    }

    @Test("MP_CAPABLE first data with data-level length (a #4, e #4)", arguments: [
        (Keys.a, Captured.aFirstData), (Keys.e, Captured.eFirstData),
    ])
    func firstData(_ t: (Keys.Pair, Vector)) throws {
        let (k, v) = t
        let c = try capable(v)
        #expect(c.senderKey == k.clientKey)
        #expect(c.receiverKey == k.serverKey)
        #expect(c.dataLevelLength == 696)
        #expect(c.checksum == nil)
        #expect(c.encodedLength == 22)
        let p = try parsePacket(v.bytes).get()
        #expect(p.payload.count == 696)
        #expect(Array(p.payload.prefix(8)) == Array("PUT 688\n".utf8))
        // Linux pads the 22-byte option with two NOPs.
        #expect(p.tcpHeader.options.array.suffix(2) == [.noOperation, .noOperation])
    }

    @Test("fallback: SYN/ACK from a plain TCP server has no MPTCP option (d)")
    func fallback() throws {
        #expect(try capable(Captured.dSYN).senderKey == nil)
        #expect(mptcpOptions(Captured.dSYNACK.bytes).isEmpty)
        #expect(mptcpOptions(Captured.dACK.bytes).isEmpty)
        let s = Captured.dSYNACK.bytes.withUnsafeBytes { raw in
            TCPOptionSummary(parsing: try! TCPPacketView(raw).tcp.optionArea)
        }
        #expect(s.present == [.mss, .sackPermitted, .timestamps, .windowScale])
        #expect(s.present.isDisjoint(with: .anyMPTCP))
        #expect(s.mss == 1460 && s.windowScale == 10)
        #expect(s.tsValue == 0x10da_1c58 && s.tsEchoReply == 0x700d_9f0b)
    }

    @Test("DSS in capture a: DATA_ACK widths, DSNs relative to the IDSNs, DATA_FIN")
    func dssCaptureA() throws {
        let k = Keys.a
        let ack8 = try dss(Captured.aDataAck8)
        #expect(ack8.flags == 0x03)
        #expect(ack8.dataAckIs8 && ack8.mapping == nil && !ack8.dataFin)
        #expect(ack8.dataAck == k.clientIDSN &+ 1 &+ 696) // acks the client's 696 bytes
        #expect(ack8.encodedLength == 12)

        let fin = try dss(Captured.aDataFin4Ack)
        #expect(fin.flags == 0x1d)
        #expect(!fin.dataAckIs8 && fin.dsnIs8 && fin.dataFin)
        #expect(fin.dataAck == (k.serverIDSN &+ 1) & 0xffff_ffff) // 4-byte DATA_ACK: low 32 bits
        let m = try #require(fin.mapping)
        #expect(m.dsn == k.clientIDSN &+ 697) // DATA_FIN after 696 data bytes
        #expect(m.subflowSeq == 0 && m.length == 1 && m.checksum == nil)
        #expect(fin.encodedLength == 22)

        let data = try dss(Captured.aData8)
        #expect(data.flags == 0x0f)
        #expect(data.dataAck == k.clientIDSN &+ 698) // the DATA_FIN is acked too
        #expect(data.mapping == DSSMapping(dsn: k.serverIDSN &+ 1, subflowSeq: 1, length: 68))
        let p = try parsePacket(Captured.aData8.bytes).get()
        #expect(p.payload.count == 68)
        #expect(Array(p.payload.prefix(3)) == Array("OK ".utf8))

        let fin8 = try dss(Captured.aDataFin8Ack)
        #expect(fin8.flags == 0x1f)
        #expect(fin8.mapping == DSSMapping(dsn: k.serverIDSN &+ 69, subflowSeq: 0, length: 1))

        let tcpFin = try dss(Captured.aFIN)
        #expect(tcpFin.dataAck == k.serverIDSN &+ 70)
        #expect(try parsePacket(Captured.aFIN.bytes).get().tcpHeader.flags == TCPFlags.fin | TCPFlags.ack)
    }

    @Test("DSS in capture b: 4-byte DATA_ACK, full 40-byte option area, data with DATA_FIN")
    func dssCaptureB() throws {
        let k = Keys.b
        let fourth = try dss(Captured.bJoin4thACK)
        #expect(fourth.flags == 0x01)
        #expect(fourth.dataAck == (k.clientIDSN &+ 1) & 0xffff_ffff)
        #expect(fourth.encodedLength == 8)

        let d = try dss(Captured.bData4Ack)
        #expect(d.flags == 0x0d)
        #expect(d.dataAck == (k.serverIDSN &+ 1) & 0xffff_ffff)
        #expect(d.mapping == DSSMapping(dsn: k.clientIDSN &+ 1, subflowSeq: 1, length: 12))

        let full = try dss(Captured.bFullData)
        #expect(full.encodedLength == 26)
        #expect(full.mapping?.dsn == k.serverIDSN &+ 1)
        #expect(full.mapping?.length == 31240) // one mapping for 22 segments
        #expect(optionArea(of: Captured.bFullData.bytes).count == 40)

        let df = try dss(Captured.bDataWithFin)
        #expect(df.dataFin)
        #expect(df.mapping?.length == 1281) // 1280 data bytes + DATA_FIN
        #expect(df.mapping.map { $0.dsn &+ UInt64($0.length) } == k.serverIDSN &+ 1 &+ 1_048_576 &+ 1)
    }

    @Test("ADD_ADDR and its echo (b #4, #5)")
    func addAddr() throws {
        let a = mptcpOptions(Captured.bAddAddr.bytes)
        guard case .addAddr(let x) = try #require(a.first) else { Issue.record("not ADD_ADDR"); return }
        #expect(!x.echo && x.flags == 0)
        #expect(x.addressID == 1)
        #expect(x.address == .v4(IPv4Address(10, 20, 2, 2)))
        #expect(x.address.description == "10.20.2.2")
        #expect(x.port == nil)
        #expect(x.hmac == 0x9ab7_dd0a_eca1_b79b)
        #expect(x.encodedLength == 16)

        let e = mptcpOptions(Captured.bAddAddrEcho.bytes)
        guard case .addAddr(let y) = try #require(e.first) else { Issue.record("not ADD_ADDR"); return }
        #expect(y.echo && y.flags == 1)
        #expect(y.addressID == 1 && y.address == x.address && y.port == nil && y.hmac == nil)
        #expect(y.encodedLength == 8)
    }

    @Test("MP_JOIN SYN, SYN/ACK, ACK (b #6-8)")
    func join() throws {
        let syn = mptcpOptions(Captured.bJoinSYN.bytes)
        #expect(syn == [.mpJoin(.syn(flags: 0, addressID: 1, token: Keys.b.serverToken, nonce: 0x11be_9d50))])
        if case .mpJoin(let j) = syn.first { #expect(!j.backup && j.encodedLength == 12) } else { Issue.record("no MP_JOIN") }
        let synAck = mptcpOptions(Captured.bJoinSYNACK.bytes)
        #expect(synAck == [.mpJoin(.synAck(flags: 0, addressID: 1, truncatedHMAC: 0xe160_d3b4_0d8a_9f88, nonce: 0xaa6e_4144))])
        let ack = mptcpOptions(Captured.bJoinACK.bytes)
        #expect(ack == [.mpJoin(.ack(reserved: 0, hmac: HMAC160(a: 0x7e96_74a3_7f66_3d63, b: 0xde1f_e7ba_4023_0ef9, c: 0xd06f_bdc6)))])
        if case .mpJoin(let j) = ack.first {
            #expect(j.encodedLength == 24)
            if case .ack(_, let h) = j { #expect(h.description == "7e9674a37f663d63de1fe7ba40230ef9d06fbdc6") }
        }
    }

    @Test("MP_FASTCLOSE + MP_TCPRST on RSTs (g #42, #43)", arguments: [Captured.gFastclose1, Captured.gFastclose2])
    func fastclose(_ v: Vector) throws {
        let p = try parsePacket(v.bytes).get()
        #expect(p.tcpHeader.flags == TCPFlags.rst | TCPFlags.ack)
        #expect(mptcpOptions(v.bytes) == [
            .mpFastclose(MPFastclose(receiverKey: Keys.g.clientKey)),
            .mpTCPRST(MPTCPRst(flags: 0, reason: 0)),
        ])
        let s = optionArea(of: v.bytes).withUnsafeBytes { TCPOptionSummary(parsing: $0) }
        #expect(s.present == [.timestamps, .mpFastclose, .mpTCPRST])
        #expect(s.mpFastclose.receiverKey == Keys.g.clientKey)
        #expect(s.mpFastclose.reserved == 0)
        #expect(s.mpTCPRST.reason == 0 && !s.mpTCPRST.transient)
        #expect(s.usedLength == 28)
        #expect(s.malformedCount == 0 && s.firstMalformedReason == nil)
    }
}

@Suite("TCPOptionSummary")
struct SummaryTests {
    /// What the summary must say for a list of options.
    static func expectSummary(_ s: TCPOptionSummary, _ opts: [TCPOption]) {
        var present: TCPOptionSummary.Present = []
        for o in opts {
            switch o {
            case .maxSegmentSize(let v): present.insert(.mss); #expect(s.mss == v)
            case .windowScale(let v): present.insert(.windowScale); #expect(s.windowScale == v)
            case .sackPermitted: present.insert(.sackPermitted)
            case .sack(let b): present.insert(.sack); #expect(s.sack == b)
            case .timestamps(let v, let e): present.insert(.timestamps); #expect(s.tsValue == v && s.tsEchoReply == e)
            case .mptcp(let m):
                switch m {
                case .mpCapable(let x): present.insert(.mpCapable); #expect(s.mpCapable == x)
                case .mpJoin(let x): present.insert(.mpJoin); #expect(s.mpJoin == x)
                case .dss(let x): present.insert(.dss); #expect(s.dss == x)
                case .addAddr(let x): present.insert(.addAddr); #expect(s.addAddr == x)
                case .removeAddr(let x): present.insert(.removeAddr); #expect(s.removeAddr == x)
                case .mpPrio(let x): present.insert(.mpPrio); #expect(s.mpPrio == x)
                case .mpFail(let x): present.insert(.mpFail); #expect(s.mpFail == x)
                case .mpFastclose(let x): present.insert(.mpFastclose); #expect(s.mpFastclose == x)
                case .mpTCPRST(let x): present.insert(.mpTCPRST); #expect(s.mpTCPRST == x)
                case .other: present.insert(.unknown)
                }
            case .unknown: present.insert(.unknown)
            case .malformed: present.insert(.malformed)
            case .noOperation, .endOfList: break
            }
        }
        #expect(s.present == present)
    }

    @Test("summary of each captured packet", arguments: Captured.all)
    func captured(_ v: Vector) throws {
        let area = optionArea(of: v.bytes)
        let s = area.withUnsafeBytes { TCPOptionSummary(parsing: $0) }
        Self.expectSummary(s, try #require(Golden.options[v.name]))
        #expect(s.usedLength == area.count) // no EOL padding in Linux's segments
        #expect(s.malformedCount == 0)
    }

    @Test("summary of each hand-built option", arguments: Handmade.options)
    func handmade(_ o: OptionVector) {
        let s = o.bytes.withUnsafeBytes { TCPOptionSummary(parsing: $0) }
        Self.expectSummary(s, [o.expected])
        if case .endOfList = o.expected { #expect(s.usedLength == 0) } else { #expect(s.usedLength == o.bytes.count) }
    }

    @Test("malformed options are counted and skipped; the first subtype wins")
    func malformedAndRepeats() {
        // NOP, MSS with length 5 (bad), DSS (A, 4 bytes), second DSS (ignored),
        // MP_PRIO with length 5 (bad), unknown kind 99, EOL, padding.
        let area = hexBytes("01 02 05 05b400 1e082001 00000001 1e082001 00000002 1e055100ff 6304abcd 00 0000")
        let s = area.withUnsafeBytes { TCPOptionSummary(parsing: $0) }
        #expect(s.present == [.dss, .unknown, .malformed])
        #expect(s.malformedCount == 2)
        #expect(s.firstMalformedReason == .badOptionLength)
        #expect(s.dss.dataAck == 1)
        #expect(s.usedLength == area.count - 3)

        // A structural fault ends the walk (as Linux does): what precedes it counts.
        let cut = hexBytes("02 04 05b4 1e 28 2001")
        let t = cut.withUnsafeBytes { TCPOptionSummary(parsing: $0) }
        #expect(t.present == [.mss, .malformed])
        #expect(t.mss == 1460)
        #expect(t.firstMalformedReason == .optionOverrun)
        #expect(t.usedLength == 4)
    }
}

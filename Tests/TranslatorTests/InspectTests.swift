import Foundation
import MPTCPStack
import Testing
import Tools
import Translator

/// `inspect` on hostile input: it reports and goes on.
@Suite struct InspectTests {
    /// A temporary pcap (raw IP link type) holding `packets`.
    static func writeCapture(_ packets: [[UInt8]]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("inspect-\(UUID().uuidString).pcap").path
        let w = try PcapWriter(path: path, linkType: .raw)
        for (i, p) in packets.enumerated() { p.withUnsafeBytes { w.write($0, seconds: 1_700_000_000, microseconds: i) } }
        w.close()
        return path
    }

    /// A valid IPv4 SYN carrying MP_CAPABLE, built from values.
    static func syn(options: [TCPOption]) throws -> [UInt8] {
        var list = TCPOptionList()
        for o in options { list.append(o) }
        var p = TCPPacket(ipHeader: .v4(IPv4Header(totalLength: 0, source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2))),
                          tcpHeader: TCPHeader(sourcePort: 40000, destinationPort: 80, seq: TCPSeq(1000), ack: TCPSeq(0),
                                               flags: TCPFlags.syn, window: 65535, options: list),
                          payload: [])
        p.fixLengthsAndChecksums()
        return try p.emitted()
    }

    @Test func malformedPacketsAreReportedAndTheRunGoesOn() throws {
        let good = try Self.syn(options: [.maxSegmentSize(1460), .mptcp(.mpCapable(MPCapable()))])
        // Option area of the good SYN starts at 40 (20 IP + 20 TCP).
        var badLen = good; badLen[45] = 3               // MP_CAPABLE with length 3: no such form
        var overrun = good; overrun[41] = 60              // MSS option claiming 60 bytes
        var zeroLen = good; zeroLen[41] = 0               // option length 0
        var unknownSub = good; unknownSub[46] = 0xC1      // MPTCP subtype 12: unassigned, kept
        let truncatedIP = Array(good.prefix(30))          // IP header says more than is there
        let notTCP: [UInt8] = [0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
        let path = try Self.writeCapture([good, badLen, overrun, zeroLen, unknownSub, truncatedIP, notTCP, good])
        defer { try? FileManager.default.removeItem(atPath: path) }

        var lines: [String] = []
        let totals = try InspectRunner.run(path: path, options: .init(json: false)) { lines.append($0) }
        #expect(lines.count == 9) // 8 frames and the summary
        #expect(totals.packets == 8)
        #expect(totals.undecodable == 2)
        #expect(totals.malformedOptions == 3)
        #expect(lines[1].contains("MALFORMED(kind_num=30 subtype=MP_CAPABLE subtype_num=0 length=3 reason=bad option length for its kind"))
        #expect(lines[2].contains("reason=option overruns option area"))
        #expect(lines[3].contains("reason=option length < 2"))
        #expect(lines[4].contains("unknown(") || lines[4].contains("hex="))
        #expect(lines[5].contains("undecodable: truncated"))
        #expect(lines[6].contains("undecodable: not TCP"))
        #expect(lines[7].contains("MP_CAPABLE(version=1"))
    }

    @Test func jsonLinesAreValidJSONWithExact64BitValues() throws {
        let path = Repo.root.appendingPathComponent("pcaps/reference-shared/a-single-subflow.pcap").path
        var lines: [String] = []
        try InspectRunner.run(path: path, options: .init(json: true)) { lines.append($0) }
        #expect(lines.count == 14)
        for l in lines {
            let obj = try JSONSerialization.jsonObject(with: Data(l.utf8))
            #expect(obj is [String: Any])
        }
        // Frame 3 carries both keys; the note gives tokens and IDSNs.
        #expect(lines[2].contains(#""sender_key":"0x220ca80f410bf5cb","sender_token":"0x5068b813","sender_idsn":16699790568042362862"#))
        #expect(lines[2].contains(#""receiver_key":"0xa78ab8b13030d837","receiver_token":"0x3a6b4c5e","receiver_idsn":17778009013117081254"#))
    }

    @Test func hmacsAndKeysVerifyInKernelCaptures() throws {
        // b: ADD_ADDR HMAC, MP_JOIN SYN/ACK and ACK HMACs; g: also both MP_FASTCLOSE keys.
        for (name, checks) in [("b-two-subflows-addaddr-join", 3), ("g-fastclose", 5)] {
            let path = Repo.root.appendingPathComponent("pcaps/reference-shared/\(name).pcap").path
            let t = try InspectRunner.run(path: path, options: .init()) { _ in }
            #expect(t.hmacChecked == checks, "\(name)")
            #expect(t.hmacFailed == 0, "\(name)")
        }
    }

    @Test func dssChecksumsOfTheKernelVerify() throws {
        // With checksums negotiated every mapping (including the implicit one
        // of MP_CAPABLE with data, and DATA_FINs) carries a checksum.
        let path = Repo.root.appendingPathComponent("pcaps/reference/v4-checksum.pcap").path
        var verdicts: [Bool] = []
        try InspectRunner.records(path: path) { rec in
            guard case .object(let f) = rec, let c = f.first(where: { $0.0 == "dss_checksum" })?.1,
                  case .object(let cf) = c, case .bool(let ok)? = cf.first(where: { $0.0 == "valid" })?.1 else { return }
            verdicts.append(ok)
        }
        #expect(verdicts.count >= 5)
        #expect(verdicts.allSatisfy { $0 })

        // One flipped payload bit in a checksummed segment must be caught.
        let (lt, frames) = try PcapReader.readAll(path: path)
        var packets: [[UInt8]] = []
        var flipped = false
        for (_, bytes) in frames {
            var ip = try bytes.withUnsafeBytes { Array(try lt!.ipPayload($0)) }
            let hasPayload = try ip.withUnsafeBytes { try TCPPacketView($0).tcp.payload.count > 100 }
            if hasPayload && !flipped { ip[ip.count - 10] ^= 0x01; flipped = true }
            packets.append(ip)
        }
        let bad = try InspectTests.writeCapture(packets)
        defer { try? FileManager.default.removeItem(atPath: bad) }
        let t = try InspectRunner.run(path: bad, options: .init()) { _ in }
        #expect(flipped)
        #expect(t.hmacFailed == 1)
    }
}

/// The same packets under every link-layer type we read decode the same.
@Suite struct LinkTypeTests {
    @Test func cookedRawAndEthernetGiveTheSameRecords() throws {
        let src = Repo.root.appendingPathComponent("pcaps/reference-shared/e-ipv6-single-subflow.pcap").path
        let (lt, frames) = try PcapReader.readAll(path: src)
        #expect(lt == .ethernet)
        let ips = try frames.map { f in try f.1.withUnsafeBytes { Array(try lt!.ipPayload($0)) } }
        func sll(_ ip: [UInt8]) -> [UInt8] { [0, 0, 0, 1, 0, 6, 2, 0x20, 3, 0, 0, 0, 0, 0xb] + [0x86, 0xdd] + ip }
        func sll2(_ ip: [UInt8]) -> [UInt8] { [0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0x20, 3, 0, 0, 0, 0, 0] + ip }
        func records(_ path: String) throws -> [String] {
            var out: [String] = []
            try InspectRunner.records(path: path) { out.append($0.rendered) }
            return out
        }
        let reference = try records(src)
        for (type, wrap) in [(LinkType.linuxSLL, sll), (.linuxSLL2, sll2), (.raw, { $0 })] as [(LinkType, ([UInt8]) -> [UInt8])] {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("lt-\(type.rawValue)-\(UUID().uuidString).pcap").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            let w = try PcapWriter(path: path, linkType: type)
            for (i, (f, _)) in frames.enumerated() {
                wrap(ips[i]).withUnsafeBytes { w.write($0, seconds: f.seconds, microseconds: f.microseconds) }
            }
            w.close()
            #expect(try records(path) == reference, "link type \(type)")
        }
    }
}

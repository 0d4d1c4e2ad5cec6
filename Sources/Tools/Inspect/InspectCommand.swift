import MPTCPStack

/// Runs `inspect` over a capture file: one line (or JSON object) per frame.
public enum InspectRunner {
    public struct Options {
        public var json = false
        public var summary = true
        public init(json: Bool = false, summary: Bool = true) { self.json = json; self.summary = summary }
    }

    /// Decodes every frame of `path` and hands each output line to `emit`.
    /// Returns the totals. A malformed packet never stops the run.
    @discardableResult
    public static func run(path: String, options: Options, emit: (String) -> Void) throws -> Inspector.Totals {
        let t = try records(path: path) { rec in emit(options.json ? rec.rendered : text(rec)) }
        if options.summary && !options.json {
            let st = t.subtypes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            emit("# \(t.packets) frames, \(t.tcp) TCP, \(t.undecodable) undecodable, \(t.malformedOptions) malformed options; "
                + "MPTCP options: \(st.isEmpty ? "none" : st); HMAC/key checks: \(t.hmacChecked) done, \(t.hmacFailed) failed")
        }
        return t
    }

    /// Decodes every frame of `path` into one record each.
    @discardableResult
    public static func records(path: String, _ each: (JSONValue) -> Void) throws -> Inspector.Totals {
        let reader = try PcapReader(path: path)
        let inspector = Inspector()
        while let f = try reader.next() {
            var rec: JSONValue
            if let lt = reader.linkType {
                do {
                    let ip = try lt.ipPayload(f.data)
                    rec = inspector.inspect(frame: f.index, seconds: f.seconds, microseconds: f.microseconds, ip: ip,
                                            truncatedCapture: f.capturedLength < f.originalLength)
                } catch {
                    rec = .object([("frame", .uint(UInt64(f.index))), ("error", .string(String(describing: error.reason))),
                                   ("length", .uint(UInt64(f.capturedLength)))])
                }
            } else {
                rec = .object([("frame", .uint(UInt64(f.index))), ("error", .string("unsupported link type \(reader.linkTypeRaw)"))])
            }
            each(rec)
        }
        return inspector.totals
    }

    /// The one-line text form of a record.
    public static func text(_ rec: JSONValue) -> String {
        guard case .object(let f) = rec else { return rec.rendered }
        func get(_ k: String) -> JSONValue? { f.first { $0.0 == k }?.1 }
        func s(_ v: JSONValue?) -> String {
            switch v {
            case .string(let x)?: return x
            case .uint(let x)?: return String(x)
            case .int(let x)?: return String(x)
            case .bool(let x)?: return x ? "yes" : "no"
            case .array(let a)?: return "[" + a.map { s($0) }.joined(separator: ",") + "]"
            case .object?: return v!.rendered
            case .null?, nil: return "-"
            }
        }
        var line = "\(s(get("frame"))) \(s(get("time")))"
        if let e = get("error") { return line + " undecodable: \(s(e)) (\(s(get("length"))) bytes)" }
        let v6 = s(get("ip")) == "6"
        func ep(_ a: String, _ p: String) -> String { v6 ? "[\(s(get(a)))]:\(s(get(p)))" : "\(s(get(a))):\(s(get(p)))" }
        line += " \(ep("src", "sport")) > \(ep("dst", "dport")) [\(s(get("flags")))] seq=\(s(get("seq"))) ack=\(s(get("ack")))"
        line += " win=\(s(get("win"))) len=\(s(get("len")))"
        if s(get("csum_partial")) == "yes" { line += " csum-offloaded" } else if s(get("csum_ok")) == "no" { line += " BAD-CSUM" }
        if case .array(let opts)? = get("options"), !opts.isEmpty {
            var parts: [String] = []
            for op in opts {
                guard case .object(let of) = op else { continue }
                let kind = s(of.first { $0.0 == "kind" }?.1)
                var p = kind == "mptcp" ? s(of.first { $0.0 == "subtype" }?.1) : kind
                if kind == "malformed" { p = "MALFORMED" }
                let hidden = kind == "malformed" ? ["kind"] : ["kind", "subtype", "subtype_num", "length"]
                let rest = of.filter { !hidden.contains($0.0) }
                    .map { "\($0.0)=\(s($0.1))" }
                if !rest.isEmpty { p += "(" + rest.joined(separator: " ") + ")" }
                parts.append(p)
            }
            line += " <" + parts.joined(separator: ", ") + ">"
        }
        return line
    }
}

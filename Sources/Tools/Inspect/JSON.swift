/// A tiny ordered JSON value for `inspect --json` (keys keep their order, so
/// the output reads like the packet; 64-bit values stay exact).
public indirect enum JSONValue: Equatable {
    case string(String)
    case int(Int64)
    case uint(UInt64)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case let (.string(x), .string(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.uint(x), .uint(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.null, .null): return true
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public func render(into s: inout String) {
        switch self {
        case .string(let v): JSONValue.quote(v, into: &s)
        case .int(let v): s += String(v)
        case .uint(let v): s += String(v)
        case .bool(let v): s += v ? "true" : "false"
        case .null: s += "null"
        case .array(let a):
            s += "["
            for (i, v) in a.enumerated() {
                if i > 0 { s += "," }
                v.render(into: &s)
            }
            s += "]"
        case .object(let o):
            s += "{"
            for (i, (k, v)) in o.enumerated() {
                if i > 0 { s += "," }
                JSONValue.quote(k, into: &s)
                s += ":"
                v.render(into: &s)
            }
            s += "}"
        }
    }

    public var rendered: String {
        var s = ""
        render(into: &s)
        return s
    }

    static func quote(_ v: String, into s: inout String) {
        s += "\""
        for u in v.unicodeScalars {
            switch u {
            case "\"": s += "\\\""
            case "\\": s += "\\\\"
            case "\n": s += "\\n"
            case "\r": s += "\\r"
            case "\t": s += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    s += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    s.unicodeScalars.append(u)
                }
            }
        }
        s += "\""
    }
}

/// Builds an ordered JSON object field by field.
public struct JSONObjectBuilder {
    public private(set) var fields: [(String, JSONValue)] = []
    public init() {}
    public mutating func add(_ k: String, _ v: JSONValue) { fields.append((k, v)) }
    public mutating func add(_ k: String, _ v: String) { fields.append((k, .string(v))) }
    public mutating func add(_ k: String, _ v: Bool) { fields.append((k, .bool(v))) }
    public mutating func add<I: BinaryInteger>(_ k: String, _ v: I) {
        fields.append((k, v < 0 ? .int(Int64(v)) : .uint(UInt64(v))))
    }
    public var value: JSONValue { .object(fields) }
}

func hex(_ v: UInt64, digits: Int) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, digits - s.count)) + s
}

func hexBytes(_ b: some Sequence<UInt8>) -> String {
    var s = ""
    for x in b {
        s += x < 16 ? "0" + String(x, radix: 16) : String(x, radix: 16)
    }
    return s
}

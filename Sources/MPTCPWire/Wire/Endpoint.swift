// Connection endpoints and the 4-tuple that names a connection.

/// One end of a TCP connection.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    public init(address: IPAddress, port: UInt16) { self.address = address; self.port = port }
    // == as synthesized, written out to be @inlinable: the engine compares
    // flow keys on every packet, across the module boundary.
    @inlinable public static func == (a: Endpoint, b: Endpoint) -> Bool { a.address == b.address && a.port == b.port }
    public var description: String {
        switch address {
        case .v4: return "\(address):\(port)"
        case .v6: return "[\(address)]:\(port)"
        }
    }
}

/// A connection as its initial 4-tuple, oriented from the LAN client to the server.
public struct FlowKey: Hashable, Sendable {
    public var client: Endpoint
    public var server: Endpoint
    public init(client: Endpoint, server: Endpoint) { self.client = client; self.server = server }
    @inlinable public static func == (a: FlowKey, b: FlowKey) -> Bool { a.client == b.client && a.server == b.server }
}

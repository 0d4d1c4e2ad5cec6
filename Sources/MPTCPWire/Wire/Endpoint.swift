// Connection endpoints and the 4-tuple that names a connection.

/// One end of a TCP connection.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    public init(address: IPAddress, port: UInt16) { self.address = address; self.port = port }
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
}

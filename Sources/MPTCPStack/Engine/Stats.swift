/// Counters: what the engine did, by kind. Nothing is logged per packet.
public struct EngineStats: Sendable, Equatable {
    public var packets: UInt64 = 0
    public var notTCP: UInt64 = 0
    public var malformed: UInt64 = 0
    /// Packets of flows the engine does not track (passed unchanged).
    public var untracked: UInt64 = 0
    public var translatedToPeer: UInt64 = 0
    public var translatedToLAN: UInt64 = 0
    public var passedFallback: UInt64 = 0
    /// Responder role: MP_CAPABLE SYNs from an uplink taken on, and
    /// connections whose LAN host answered with MPTCP itself (passed).
    public var responderSYNs: UInt64 = 0
    public var passedNative: UInt64 = 0
    public var connectionsOpened: UInt64 = 0
    public var connectionsMPTCP: UInt64 = 0
    public var connectionsFallback: UInt64 = 0
    public var connectionsClosed: UInt64 = 0
    public var connectionsReset: UInt64 = 0
    public var connectionsExpired: UInt64 = 0
    public var tableFull: UInt64 = 0
    /// Half-open connections forgotten to make room (`maxHalfOpen`), and
    /// those that timed out (`handshakeTimeout`).
    public var halfOpenEvicted: UInt64 = 0
    public var halfOpenExpired: UInt64 = 0
    public var noOptionRoom: UInt64 = 0
    public var sackDropped: UInt64 = 0
    public var dssChecksumFailed: UInt64 = 0
    public var fastcloseReceived: UInt64 = 0
    public var fastcloseSent: UInt64 = 0
    /// Packets the translator sent on its own (subflow-level ACKs).
    public var originated: UInt64 = 0
    // Multipath.
    public var subflowsOpened: UInt64 = 0
    public var subflowsFailed: UInt64 = 0
    public var joinsSent: UInt64 = 0
    public var joinsRejected: UInt64 = 0
    /// MP_JOIN subflows the peer opened to us, accepted (HMAC checked) and
    /// refused (unknown token, over the limit, bad HMAC).
    public var joinsAccepted: UInt64 = 0
    public var joinsRefused: UInt64 = 0
    public var addAddrSent: UInt64 = 0
    /// Announcements sent on a pure ACK without the timestamp option, which
    /// left no room for them (IPv6 with port: 30 bytes + 12).
    public var addAddrWithoutTimestamps: UInt64 = 0
    /// Announcements that could not be sent at all (no form fits).
    public var addAddrUnsent: UInt64 = 0
    /// SYNs with data (TCP Fast Open) from an uplink towards a LAN host:
    /// passed untranslated (the host's plain SYN/ACK makes the peer fall
    /// back to TCP for that connection).
    public var synDataPassed: UInt64 = 0
    public var bufferedBytes: UInt64 = 0
    public var dataSegmentsSent: UInt64 = 0
    /// First transmissions carried by the verdict of a client segment
    /// (GSO super-segments count once), and their bytes.
    public var carriedSegments: UInt64 = 0
    public var carriedBytes: UInt64 = 0
    /// ACKs written over a packet that went no further (the client's ACK
    /// becoming a subflow's DATA_ACK, the peer's becoming the client's).
    public var acksByVerdict: UInt64 = 0
    /// Client packets held in the queue (Held.swift), and releases that
    /// found the release list full (none expected).
    public var heldPackets: UInt64 = 0
    public var heldLost: UInt64 = 0
    public var retransmits: UInt64 = 0
    public var fastRetransmits: UInt64 = 0
    public var rtoExpiries: UInt64 = 0
    public var reinjectedBytes: UInt64 = 0
    public var addAddrReceived: UInt64 = 0
    /// Announcements whose HMAC did not check (ignored, RFC 8684 §3.4.1).
    public var addAddrRejected: UInt64 = 0
    public var removeAddrReceived: UInt64 = 0
    /// Subflows given up at once because their uplink went down (reported
    /// by the caller), and REMOVE_ADDRs sent to the peer for them.
    public var subflowsLinkDown: UInt64 = 0
    /// ICMP / ICMPv6 destination-unreachable errors seen on the uplinks, and
    /// subflows given up because of one.
    public var icmpUnreachable: UInt64 = 0
    public var subflowsUnreachable: UInt64 = 0
    /// ICMP fragmentation-needed / ICMPv6 packet-too-big errors seen on the
    /// uplinks; packets the caller could not send because they were too big
    /// for the interface (`sendFailed`, EMSGSIZE); subflows whose segment
    /// size was lowered for either (or an uplink's smaller MTU); subflows
    /// given up because the MSS announced on them no longer fits the
    /// uplink's MTU (rejoined with a smaller one).
    public var icmpTooBig: UInt64 = 0
    public var sendTooBig: UInt64 = 0
    public var mssLowered: UInt64 = 0
    public var subflowsOverMTU: UInt64 = 0
    public var removeAddrSent: UInt64 = 0
    public var dataLevelRetransmits: UInt64 = 0
    /// Idle connections that gave their buffers back (`MPConn.compact`).
    public var compactions: UInt64 = 0
    /// Resets sent again to a client that answered ours with a challenge ACK.
    public var clientResetsRepeated: UInt64 = 0
    /// Subflows reset because they held the send buffer full with data the
    /// others had delivered.
    public var subflowsReleased: UInt64 = 0
    public var opportunisticReinjections: UInt64 = 0
    /// Subflows given up after unanswered keepalive probes.
    public var deadSubflowsDetected: UInt64 = 0
    /// Client segments that came beyond a gap (the LAN reordered or lost
    /// one before them), held until the gap filled.
    public var clientOutOfOrder: UInt64 = 0
    /// Subflow recoveries (fast retransmit or RTO) undone: the peer's
    /// timestamps showed the originals had arrived.
    public var spuriousRecoveries: UInt64 = 0
    /// Peer segments that came beyond the client's receive window, held
    /// until it opened (the client would have dropped them).
    public var heldForClientWindow: UInt64 = 0
    /// Segments sent to the client again from the download buffer (lost on
    /// the LAN).
    public var lanRetransmits: UInt64 = 0
    /// Peer segments forwarded without a copy (the download buffer was
    /// full): a LAN loss of these waits for the peer's data-level timeout.
    public var downloadNotKept: UInt64 = 0
    // Validation (issue 13).
    /// Peer segments outside the receive window (dropped).
    public var outOfWindow: UInt64 = 0
    /// RSTs in the window but not at the expected sequence number
    /// (challenged), and outside it (ignored).
    public var rstChallenged: UInt64 = 0
    public var rstIgnored: UInt64 = 0
    public var challengeAcks: UInt64 = 0
    /// MP_FASTCLOSE whose key is not ours (ignored).
    public var fastcloseRejected: UInt64 = 0
    /// DATA_ACKs for data never sent or going back; mappings and DATA_FINs
    /// outside the data-level window (segments dropped).
    public var dataAckInvalid: UInt64 = 0
    public var dataOutOfWindow: UInt64 = 0
    /// Connections reset at both ends because their translation could no
    /// longer be exact (an infinite mapping that does not fit, MPTCP after a fallback).
    public var abortedBoth: UInt64 = 0
    /// Non-SYN packets with MPTCP options for connections the engine does not
    /// know; resets sent for them (both ends), and resets held back by the limit.
    public var unknownMPTCP: UInt64 = 0
    public var unknownResets: UInt64 = 0
    public var unknownResetsLimited: UInt64 = 0
    /// REMOVE_ADDR: subflows probed, removals applied (no answer), and
    /// removals called off (the subflow answered).
    public var removeAddrProbes: UInt64 = 0
    public var removeAddrApplied: UInt64 = 0
    public var removeAddrIgnored: UInt64 = 0
    /// Connections of LAN hosts that speak MPTCP themselves, passed (tracked).
    public var nativeConnections: UInt64 = 0
    /// Crash recovery: an earlier instance's connections taken over
    /// (`recover`), probe rounds sent for them, and resets sent for their
    /// answers (also counted in `unknownResets`).
    public var recoveredConnections: UInt64 = 0
    public var recoveryProbes: UInt64 = 0
    public var recoveryResets: UInt64 = 0
    public var dropped: [UInt64] = Array(repeating: 0, count: DropReason.allCases.count)

    public init() {}

    public func dropped(_ r: DropReason) -> UInt64 { dropped[Int(r.rawValue)] }
}

extension EngineStats {
    /// One counter: its name in logs and metrics, what it counts, where it is.
    public struct Counter: Sendable {
        public let name: String
        public let help: String
        public let value: WritableKeyPath<EngineStats, UInt64> & Sendable
    }

    /// Every counter, in declaration order (the per-reason `dropped` counts
    /// aside: `DropReason`). The daemon's stats line and its metrics iterate
    /// this table; a test checks it names every stored counter once.
    public static let counters: [Counter] = [
        .init(name: "packets", help: "Packets handed to the engine.", value: \.packets),
        .init(name: "not_tcp", help: "Packets that are not TCP (passed).", value: \.notTCP),
        .init(name: "malformed", help: "Packets whose headers do not parse.", value: \.malformed),
        .init(name: "untracked", help: "Packets of flows the engine does not track (passed unchanged).", value: \.untracked),
        .init(name: "to_peer", help: "Segments translated towards an MPTCP peer.", value: \.translatedToPeer),
        .init(name: "to_lan", help: "Segments translated towards a LAN host.", value: \.translatedToLAN),
        .init(name: "fallback_pkts", help: "Packets of connections fallen back to TCP, passed.", value: \.passedFallback),
        .init(name: "responder_syns", help: "Responder role: MP_CAPABLE SYNs from an uplink taken on.", value: \.responderSYNs),
        .init(name: "passed_native", help: "Responder role: connections whose LAN host answered with MPTCP itself (passed).",
              value: \.passedNative),
        .init(name: "opened", help: "Connections opened.", value: \.connectionsOpened),
        .init(name: "mptcp", help: "Connections translated to MPTCP.", value: \.connectionsMPTCP),
        .init(name: "fallback", help: "Connections that went on as plain TCP (the peer did not speak MPTCP).",
              value: \.connectionsFallback),
        .init(name: "closed", help: "Connections closed.", value: \.connectionsClosed),
        .init(name: "reset", help: "Connections reset.", value: \.connectionsReset),
        .init(name: "expired", help: "Connections forgotten after the idle timeout.", value: \.connectionsExpired),
        .init(name: "table_full", help: "New connections passed untranslated: the table was full.", value: \.tableFull),
        .init(name: "half_open_evicted", help: "Half-open connections forgotten to make room.", value: \.halfOpenEvicted),
        .init(name: "half_open_expired", help: "Half-open connections that timed out.", value: \.halfOpenExpired),
        .init(name: "no_option_room", help: "Times an option was left out (or MPTCP not offered) for want of room in the option area.", value: \.noOptionRoom),
        .init(name: "sack_dropped", help: "Segments whose SACK blocks did not all fit (some left out).", value: \.sackDropped),
        .init(name: "dss_checksum_failed", help: "DSS checksums that did not check.", value: \.dssChecksumFailed),
        .init(name: "fastclose_received", help: "MP_FASTCLOSE received with our key.", value: \.fastcloseReceived),
        .init(name: "fastclose_sent", help: "MP_FASTCLOSE sent.", value: \.fastcloseSent),
        .init(name: "originated", help: "Packets the translator sent on its own.", value: \.originated),
        .init(name: "subflows_opened", help: "Subflows established.", value: \.subflowsOpened),
        .init(name: "subflows_failed", help: "Subflows given up.", value: \.subflowsFailed),
        .init(name: "joins_sent", help: "MP_JOIN SYNs sent.", value: \.joinsSent),
        .init(name: "joins_rejected", help: "Joins we opened whose SYN/ACK HMAC did not check (reset).",
              value: \.joinsRejected),
        .init(name: "joins_accepted", help: "MP_JOIN subflows the peer opened to us, accepted (HMAC checked).",
              value: \.joinsAccepted),
        .init(name: "joins_refused", help: "MP_JOIN subflows the peer opened to us, refused (unknown token, over the limit, bad HMAC).",
              value: \.joinsRefused),
        .init(name: "add_addr_sent", help: "ADD_ADDR announcements sent.", value: \.addAddrSent),
        .init(name: "add_addr_without_ts", help: "Announcements sent on a pure ACK without the timestamp option (no room).",
              value: \.addAddrWithoutTimestamps),
        .init(name: "add_addr_unsent", help: "Announcements that could not be sent at all (no form fits).", value: \.addAddrUnsent),
        .init(name: "syn_data_passed", help: "SYNs with data (TCP Fast Open) from an uplink, passed untranslated.",
              value: \.synDataPassed),
        .init(name: "buffered_bytes", help: "Client bytes taken into multipath send buffers.", value: \.bufferedBytes),
        .init(name: "data_segments", help: "Data segments sent on subflows.", value: \.dataSegmentsSent),
        .init(name: "carried_segments", help: "First transmissions carried onto a subflow by a client segment's verdict.", value: \.carriedSegments),
        .init(name: "carried_bytes", help: "Bytes of those first transmissions.", value: \.carriedBytes),
        .init(name: "held_packets", help: "Client packets held in the queue until a subflow had room.", value: \.heldPackets),
        .init(name: "held_lost", help: "Held packets whose release did not fit the release list.", value: \.heldLost),
        .init(name: "acks_by_verdict", help: "ACKs written over a packet that went no further, instead of sent from the outbox.", value: \.acksByVerdict),
        .init(name: "retransmits", help: "Subflow retransmissions.", value: \.retransmits),
        .init(name: "fast_retransmits", help: "Subflow fast retransmits.", value: \.fastRetransmits),
        .init(name: "rto_expiries", help: "Subflow retransmission timeouts.", value: \.rtoExpiries),
        .init(name: "reinjected_bytes", help: "Bytes sent again on another subflow.", value: \.reinjectedBytes),
        .init(name: "add_addr_received", help: "ADD_ADDR announcements received.", value: \.addAddrReceived),
        .init(name: "add_addr_rejected", help: "Announcements whose HMAC did not check (ignored).", value: \.addAddrRejected),
        .init(name: "remove_addr_received", help: "REMOVE_ADDR received.", value: \.removeAddrReceived),
        .init(name: "subflows_link_down", help: "Subflows given up because their uplink went down.", value: \.subflowsLinkDown),
        .init(name: "icmp_unreachable", help: "ICMP destination-unreachable errors seen on the uplinks.", value: \.icmpUnreachable),
        .init(name: "subflows_unreachable", help: "Subflows given up for an ICMP unreachable error.", value: \.subflowsUnreachable),
        .init(name: "icmp_too_big", help: "ICMP fragmentation-needed / packet-too-big errors seen on the uplinks.",
              value: \.icmpTooBig),
        .init(name: "send_too_big", help: "Packets the daemon could not send: too big for the interface.", value: \.sendTooBig),
        .init(name: "mss_lowered", help: "Subflows whose segment size was lowered.", value: \.mssLowered),
        .init(name: "subflows_over_mtu", help: "Subflows given up: the MSS announced no longer fits the uplink's MTU.",
              value: \.subflowsOverMTU),
        .init(name: "remove_addr_sent", help: "REMOVE_ADDR sent.", value: \.removeAddrSent),
        .init(name: "data_level_retransmits", help: "Data-level retransmissions (the data-level timeout).",
              value: \.dataLevelRetransmits),
        .init(name: "compactions", help: "Idle multipath connections that gave their buffers back.", value: \.compactions),
        .init(name: "client_resets_repeated", help: "Resets sent again, at its ACK number, to a client that answered ours with a challenge ACK.",
              value: \.clientResetsRepeated),
        .init(name: "subflows_released", help: "Subflows reset because they held the send buffer full with data the others had delivered.",
              value: \.subflowsReleased),
        .init(name: "opportunistic_reinjections", help: "Reinjections of the oldest unacknowledged data on another subflow while sending was blocked.",
              value: \.opportunisticReinjections),
        .init(name: "dead_subflows", help: "Subflows given up after unanswered keepalive probes.", value: \.deadSubflowsDetected),
        .init(name: "client_out_of_order", help: "Client segments that came beyond a gap, held until it filled.",
              value: \.clientOutOfOrder),
        .init(name: "spurious_recoveries", help: "Subflow recoveries undone: the originals had arrived.", value: \.spuriousRecoveries),
        .init(name: "held_for_client_window", help: "Peer segments beyond the client's receive window, held until it opened.",
              value: \.heldForClientWindow),
        .init(name: "lan_retransmits", help: "Segments sent to the client again from the download buffer.", value: \.lanRetransmits),
        .init(name: "download_not_kept", help: "Peer segments forwarded without a copy (the download buffer was full).",
              value: \.downloadNotKept),
        .init(name: "out_of_window", help: "Peer segments outside the receive window (dropped).", value: \.outOfWindow),
        .init(name: "rst_challenged", help: "RSTs in the window but not at the expected sequence number (challenged).",
              value: \.rstChallenged),
        .init(name: "rst_ignored", help: "RSTs outside the window (ignored).", value: \.rstIgnored),
        .init(name: "challenge_acks", help: "Challenge ACKs sent (RFC 5961).", value: \.challengeAcks),
        .init(name: "fastclose_rejected", help: "MP_FASTCLOSE whose key is not ours (ignored).", value: \.fastcloseRejected),
        .init(name: "data_ack_invalid", help: "DATA_ACKs for data never sent or going back (dropped).", value: \.dataAckInvalid),
        .init(name: "data_out_of_window", help: "Mappings and DATA_FINs outside the data-level window (dropped).",
              value: \.dataOutOfWindow),
        .init(name: "aborted_both", help: "Connections reset at both ends: their translation could no longer be exact.",
              value: \.abortedBoth),
        .init(name: "unknown_mptcp", help: "Non-SYN MPTCP packets for connections the engine does not know.", value: \.unknownMPTCP),
        .init(name: "unknown_resets", help: "Resets sent for unknown connections (both ends).", value: \.unknownResets),
        .init(name: "unknown_resets_limited", help: "Resets for unknown connections held back by the rate limit.",
              value: \.unknownResetsLimited),
        .init(name: "remove_addr_probes", help: "Subflows probed after a REMOVE_ADDR.", value: \.removeAddrProbes),
        .init(name: "remove_addr_applied", help: "Removals applied (the subflow did not answer).", value: \.removeAddrApplied),
        .init(name: "remove_addr_ignored", help: "Removals called off (the subflow answered).", value: \.removeAddrIgnored),
        .init(name: "native_connections", help: "Connections of LAN hosts that speak MPTCP themselves, passed.",
              value: \.nativeConnections),
        .init(name: "recovered_connections", help: "An earlier instance's connections taken over after a crash.",
              value: \.recoveredConnections),
        .init(name: "recovery_probes", help: "Probe rounds sent for recovered connections.", value: \.recoveryProbes),
        .init(name: "recovery_resets", help: "Resets sent for the answers to recovery probes.", value: \.recoveryResets),
    ]
}

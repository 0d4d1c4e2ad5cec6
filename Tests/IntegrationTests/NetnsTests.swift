import Foundation
import Testing

/// The netns integration tests: real namespaces, the real daemon, the Linux
/// kernel's MPTCP as the peer. Each script prints `ok - …` / `FAIL - …` per
/// check (or `KNOWN - …`: failed by a known defect, recognised by its
/// signature) and `RESULT k=v` figures; every FAIL line is recorded here. They
/// need root (CI runs as root); without it they fail, they do not skip.
@Suite(.serialized) struct NetnsTests {

    struct Outcome {
        var status: Int32
        var lines: [String]
    }

    static func script(_ name: String, env: [String: String] = [:]) throws -> Outcome {
        let r = try runCapturingOutput("/bin/bash", [repositoryRoot.appendingPathComponent("netns/\(name)").path], env: env)
        return Outcome(status: r.status, lines: r.text.split(separator: "\n").map(String.init))
    }

    static func assertAllChecksPassed(_ o: Outcome, minimumChecks: Int) {
        for l in o.lines where l.hasPrefix("FAIL") { Issue.record(Comment(rawValue: l)) }
        // A check a script recognised as failing by a known defect's own
        // signature (the evidence and the open issue on the line): a known
        // issue, shown as such, and it counts as a check that ran.
        for l in o.lines where l.hasPrefix("KNOWN") {
            withKnownIssue(Comment(rawValue: l)) { Issue.record(Comment(rawValue: l)) }
        }
        let passed = o.lines.filter { $0.hasPrefix("ok ") || $0.hasPrefix("KNOWN") }.count
        #expect(passed >= minimumChecks, "only \(passed) checks passed")
        #expect(o.status == 0, "script exited \(o.status)")
    }

    @Test func runsAsRoot() {
        #expect(geteuid() == 0, "the netns integration tests need root")
    }

    /// The test-bed link emulator: configured vs measured delay, loss, rate.
    @Test func linkEmulatorIsAccurate() throws {
        let o = try Self.script("linkemu.sh")
        Self.assertAllChecksPassed(o, minimumChecks: 4)
    }

    /// Issue 3: plain TCP client -> nfq-mptcp -> kernel MPTCP server.
    @Test func initiatorAgainstTheKernel() throws {
        let o = try Self.script("initiator.sh")
        Self.assertAllChecksPassed(o, minimumChecks: 41)
    }

    /// Issue 4: two uplinks (40 Mbit/s 20 ms, 10 Mbit/s 35 ms): aggregation
    /// against plain TCP on each uplink measured in the same run, joins in
    /// the server kernel, both uplinks used, a 10 s cut of uplink 1, 1% loss.
    /// Each throughput figure is a 30 s transfer, as the issue asks.
    @Test func multipathAgainstTheKernel() throws {
        let o = try Self.script("multipath.sh", env: ["DURATION": "30"])
        Self.assertAllChecksPassed(o, minimumChecks: 21)
    }

    /// Issue 4, each direction against the kernel:
    /// - `backup.sh`: `--uplink g2:backup`: the join carries the backup
    ///   flag, the backup uplink carries no data while uplink 1 works, and
    ///   the transfer when uplink 1 is cut;
    /// - `addaddr.sh`: the server announces its second address (ADD_ADDR):
    ///   joined from both uplinks; then removed (REMOVE_ADDR) mid-download;
    /// - `linkdown.sh`: the gateway's uplink 1 interface goes down and comes
    ///   back: seen from rtnetlink, failed over at once, REMOVE_ADDR, rejoined;
    /// - `icmp.sh`: a cut beyond the gateway that the link router reports
    ///   with ICMP unreachable: failed over at once, rejoined.
    @Test(arguments: [("backup.sh", 9), ("addaddr.sh", 8), ("linkdown.sh", 13), ("icmp.sh", 14)])
    func multipathFailuresAgainstTheKernel(script: String, minimumChecks: Int) throws {
        Self.assertAllChecksPassed(try Self.script(script), minimumChecks: minimumChecks)
    }

    /// Issue 12, a narrow uplink: the gateway's side of uplink 2, then of
    /// uplink 1, at MTU 1400 and 1280 (16 MiB each way, IPv6 too at 1280):
    /// both uplinks carry a share, no raw send error, nothing dropped as too
    /// big on the way in; then uplink 2's MTU lowered during a transfer.
    @Test func narrowUplinkAgainstTheKernel() throws {
        Self.assertAllChecksPassed(try Self.script("mtu.sh"), minimumChecks: 51)
    }

    /// Issue 5, responder role: kernel MPTCP client -> nfq-mptcp -> plain
    /// TCP server, 64 MiB each way over both uplinks (joins to the LAN
    /// host's address and to the announced uplink 2 address accepted); an
    /// MPTCP-native LAN server passed untouched.
    @Test func responderAgainstTheKernel() throws {
        Self.assertAllChecksPassed(try Self.script("responder.sh"), minimumChecks: 13)
    }

    /// Issue 12, peers with ordinary non-default Linux settings
    /// (`interop.sh`): the one-uplink responder with a two-address kernel
    /// client (its join refused at the gateway; 16 MiB each way, no stall
    /// over 1 s; a 1 KB request without an RTO; ADD_ADDR echoed; the join
    /// reaching the LAN host by another path and the kernel's data-level
    /// resend); a server with flag C (no join to its initial address); a TCP
    /// Fast Open client over two uplinks; the IPv6 responder's ADD_ADDR
    /// beside timestamps, joined.
    @Test func interopWithOrdinaryLinuxSettings() throws {
        Self.assertAllChecksPassed(try Self.script("interop.sh"), minimumChecks: 27)
    }

    /// Issue 5, federation: plain client -> nfq-mptcp (initiator) -> two
    /// uplinks -> nfq-mptcp (responder) -> plain server, and the reverse at
    /// the same time; throughput against each uplink alone (10% above the
    /// best one, each way); a 10 s cut of uplink 1; no packet a gateway
    /// carried came back to it (issue 15).
    @Test func federationOfTwoGateways() throws {
        Self.assertAllChecksPassed(try Self.script("federation.sh"), minimumChecks: 22)
    }

    /// Issue 15: both uplinks shaped to 1 Gbit/s (tbf, no added delay), one
    /// gateway against the kernel and federation: 256 MiB each way, sha256
    /// equal, each uplink at least 30% of the bytes (a known shortfall when
    /// the translation runs slower than one link alone).
    @Test func gigabitAggregation() throws {
        Self.assertAllChecksPassed(try Self.script("gigabit.sh"), minimumChecks: 14)
    }

    /// Issue 15: `--queues 2`, one engine thread per queue: connections from
    /// two client addresses (IPv4 and IPv6) and, in federation, to two
    /// server addresses behind the responder, each owned by its thread with
    /// its joins (nothing unknown on any thread), sha256 equal; SIGUSR1 and
    /// SIGTERM reach every thread, the rules go.
    @Test func severalQueuesOneThreadEach() throws {
        Self.assertAllChecksPassed(try Self.script("queues.sh"), minimumChecks: 24)
    }

    /// Issue 15: the daemon's memory follows the data: 64 connections idle
    /// after moving 4 MiB each way give their rings back (at most 64 KiB of
    /// RSS each left), 1000 never used cost at most 8 KiB each; the goals
    /// (8 and 4 KiB) are known shortfalls when missed.
    @Test func memoryFollowsTheData() throws {
        Self.assertAllChecksPassed(try Self.script("memory.sh"), minimumChecks: 9)
    }

    /// Issue 12, item 4: uplink 2 routed only by the operator's policy table
    /// (`ip rule from ADDR table N`, no route through it in the main table),
    /// L2 answering ARP only for its own addresses: joins established over
    /// IPv4 and IPv6 and uplink 2 carrying data; with no route at all, a
    /// one-line error at start and nothing installed.
    @Test func policyRoutedUplink() throws {
        Self.assertAllChecksPassed(try Self.script("policyroute.sh"), minimumChecks: 13)
    }

    /// Issue 13, item 1: bad command lines (the six that trapped, the ones
    /// accepted though wrong, every range's ends, `replay`'s) exit non-zero
    /// without a trap, with one `Error:` line naming the option, and leave
    /// nothing installed; good ones at the ends of every range start, log
    /// every counter at SIGUSR1 and clean up.
    @Test func badCommandLinesAreRefusedBeforeAnythingIsInstalled() throws {
        Self.assertAllChecksPassed(try Self.script("cli.sh"), minimumChecks: 41)
    }

    /// Issue 13, item 2: with `--fail-open` a stopped daemon's full queue
    /// lets a new connection through; without it the connection fails and
    /// the kernel's drops are counted (`queue_dropped`).
    @Test func failOpenLetsPacketsPassAFullQueue() throws {
        Self.assertAllChecksPassed(try Self.script("failopen.sh"), minimumChecks: 12)
    }

    /// Issue 13, item 3: SIGUSR1 with 300 multipath connections: the state
    /// comes in parts, each connection once, and a connection opened
    /// meanwhile connects.
    @Test func stateDumpComesInParts() throws {
        Self.assertAllChecksPassed(try Self.script("dump.sh"), minimumChecks: 7)
    }

    /// Issue 13: forged segments from the uplink side into live 16 MiB
    /// transfers (`inject.sh`, `forge.py` spoofing the kernel server with the
    /// subflow's current numbers): RSTs out of the window and in it but not
    /// exact, MP_FASTCLOSE with a wrong key, REMOVE_ADDR of address 0, a
    /// DATA_FIN 2^40 ahead, a DATA_ACK 2^40 ahead, with one uplink and two;
    /// each transfer intact, no reset at either end, the rejection counted;
    /// an infinite mapping: intact, or both ends reset — never a wrong byte.
    @Test func forgedSegmentsAreRejected() throws {
        // 102 when all three infinite mappings end in a reset (4 checks each);
        // one that is dropped and leaves the transfer intact, as valid, has 1.
        Self.assertAllChecksPassed(try Self.script("inject.sh"), minimumChecks: 93)
    }

    /// Issue 13: 10 000 SYN/s for 20 s with spoofed sources, from the LAN
    /// (initiator) and with MP_CAPABLE from an uplink (responder)
    /// (`flood.sh`): a transfer keeps at least half its rate, 20 new
    /// connections are translated, the daemon's RSS and table stay bounded,
    /// the half-open state is reclaimed within 60 s.
    @Test func synFloodsCostOnlyTheFlood() throws {
        Self.assertAllChecksPassed(try Self.script("flood.sh"), minimumChecks: 22)
    }

    /// Issue 13: the daemon killed mid-transfer and restarted, with one
    /// uplink and two, at once and after 10 s (`crash.sh`, every byte
    /// checked as it arrives by `verify.py`): intact or reset, never a wrong
    /// byte, over within 10 s of the restart (the restarted daemon resets
    /// the killed one's connections from its journal); a new transfer
    /// through the restarted daemon intact.
    @Test func aCrashEndsConnectionsWithoutCorruptingThem() throws {
        Self.assertAllChecksPassed(try Self.script("crash.sh"), minimumChecks: 54)
    }
}

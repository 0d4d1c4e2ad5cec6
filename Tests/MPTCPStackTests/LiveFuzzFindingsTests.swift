import MPTCPStack
import Testing

// Engine defects the live fuzz (Sources/Workloads/LiveFuzz.swift, `Bench
// fuzz`) found, each as a send/expect script: fixed ones as regression tests,
// open ones as known issues (they pass while the defect is there and fail
// once it is fixed, so that the `withKnownIssue` can go).

private let ACK = TCPFlags.ack
private let FIN = TCPFlags.fin
private let RST = TCPFlags.rst
private let SYN = TCPFlags.syn

@Suite("Live fuzz findings")
struct LiveFuzzFindingsTests {
    @Test("two uplinks: a DATA_FIN sent alone (the client's FIN after all its data was acknowledged) arms no subflow retransmission timer: no RTO, the subflow stays while the download goes on")
    func dataFinAloneArmsNoRTO() throws {
        let s = MPScript()
        _ = try s.establish() // the join SYN goes unanswered: subflow 0 only
        var rng = SplitMix64(seed: 21)
        let up = randomBytes(1000, &rng)
        let d = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: up))
        let sent = s.out(d, .uplink(0)).filter { !$0.payload.isEmpty }
        #expect(sent.reduce(0) { $0 + $1.payload.count } == 1000)
        _ = s.h.peer(s.c.fromPeer(seq: 1, ack: 1001, mptcp: [s.peerDSS(s.L &+ 1001)]))
        // The client closes its side: a DATA_FIN alone on subflow 0, acknowledged at data level.
        let f = s.h.lan(s.c.fromClient(seq: 1001, ack: 1, flags: ACK | FIN))
        #expect(s.out(f, .uplink(0)).contains { $0.dss?.dataFin == true && $0.payload.isEmpty })
        _ = s.h.peer(s.c.fromPeer(seq: 1, ack: 1001, mptcp: [s.peerDSS(s.L &+ 1002)]))
        // The download goes on for 3 s; the client acknowledges it.
        var down: UInt32 = 1
        var resets = 0
        for _ in 0 ..< 30 {
            s.h.advance(.milliseconds(100))
            resets += s.timerOut(.uplink(0)).count { $0.flags & RST != 0 }
            let data = randomBytes(500, &rng)
            let m = DSSMapping(dsn: s.R &+ UInt64(down), subflowSeq: down, length: 500)
            let e = s.h.peer(s.c.fromPeer(seq: down, ack: 1001, mptcp: [s.peerDSS(s.L &+ 1002, mapping: m)], payload: data))
            resets += s.out(e, .uplink(0)).count { $0.flags & RST != 0 }
            down &+= 500
            _ = s.h.lan(s.c.fromClient(seq: 1002, ack: down))
        }
        #expect(resets == 0)
        #expect(s.h.engine.stats.rtoExpiries == 0 && s.h.engine.stats.subflowsFailed == 0)
    }
}

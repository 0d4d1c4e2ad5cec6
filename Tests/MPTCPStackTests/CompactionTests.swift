import MPTCPStack
import TestSupport
import Testing

// Memory that follows the data (issue 15): a multipath connection with
// nothing outstanding gives its rings and queues back after `compactAfter`,
// and takes them again when data comes.

private let ACK = TCPFlags.ack

@Suite("Idle connections give their buffers back")
struct CompactionTests {
    /// Client data, all of it acknowledged by the peer at subflow and data
    /// level; peer data, all of it acknowledged by the client.
    private func exchange(_ s: MPScript, upload: [UInt8], uploadAt: UInt32, download: [UInt8], downloadAt: UInt32) throws {
        let e = s.h.lan(s.c.fromClient(seq: uploadAt, ack: downloadAt, payload: upload))
        let on0 = s.out(e, .uplink(0)).filter { !$0.payload.isEmpty }
        let on1 = s.out(e, .uplink(1)).filter { !$0.payload.isEmpty }
        #expect(on0.reduce(0) { $0 + $1.payload.count } + on1.reduce(0) { $0 + $1.payload.count } == upload.count)
        let dataEnd = s.L &+ UInt64(uploadAt) &+ UInt64(upload.count)
        let m = DSSMapping(dsn: s.R &+ UInt64(downloadAt), subflowSeq: downloadAt, length: UInt16(download.count))
        let end0 = on0.last.map { $0.seq &+ UInt32($0.payload.count) &- s.c.clientISN } ?? uploadAt
        if let last1 = on1.last {
            _ = s.onJoin(seq: 1, ack: last1.seq &+ UInt32(last1.payload.count) &- s.joinISN, mptcp: [s.peerDSS(dataEnd)])
        }
        // The peer's data on subflow 0, with the ACK of subflow 0 and the DATA_ACK of everything.
        let d = s.h.peer(s.c.fromPeer(seq: downloadAt, ack: end0, mptcp: [s.peerDSS(dataEnd, mapping: m)], payload: download))
        let toClient = try d.rewritten()
        #expect(toClient.payload == download)
        _ = s.h.lan(s.c.fromClient(seq: uploadAt &+ UInt32(upload.count), ack: downloadAt &+ UInt32(download.count)))
    }

    @Test("after data both ways, all of it acknowledged, the connection holds its two rings; idle for compactAfter, it holds none; new data both ways goes through intact")
    func idleGivesBack() throws {
        let config = multipathConfig(sendBuffer: 1 << 20)
        let s = MPScript(config: config)
        try s.twoSubflows()
        var rng = SplitMix64(seed: 31)
        let up1 = randomBytes(3000, &rng), down1 = randomBytes(2000, &rng)
        try exchange(s, upload: up1, uploadAt: 1, download: down1, downloadAt: 1)
        #expect(s.h.engine.ringBytes == 2 << 20) // send ring and download buffer
        // Still within compactAfter: kept.
        s.h.advance(.milliseconds(1500))
        _ = s.timerOut(nil)
        #expect(s.h.engine.ringBytes == 2 << 20)
        #expect(s.h.engine.stats.compactions == 0)
        s.h.advance(.milliseconds(1000))
        _ = s.timerOut(nil)
        #expect(s.h.engine.ringBytes == 0)
        #expect(s.h.engine.stats.compactions == 1)
        // Data again, both ways: the buffers come back and the bytes are right.
        let up2 = randomBytes(2500, &rng), down2 = randomBytes(1500, &rng)
        try exchange(s, upload: up2, uploadAt: 1 + 3000, download: down2, downloadAt: 1 + 2000)
        #expect(s.h.engine.ringBytes == 2 << 20)
    }

    @Test("a connection with data outstanding is not compacted: the peer has not acknowledged the client's bytes")
    func outstandingKept() throws {
        let s = MPScript(config: multipathConfig(sendBuffer: 1 << 20))
        try s.twoSubflows()
        var rng = SplitMix64(seed: 32)
        let e = s.h.lan(s.c.fromClient(seq: 1, ack: 1, payload: randomBytes(3000, &rng)))
        #expect(!(s.out(e, .uplink(0)) + s.out(e, .uplink(1))).isEmpty)
        s.h.advance(.seconds(3))
        _ = s.timerOut(nil)
        #expect(s.h.engine.ringBytes == 1 << 20)
        #expect(s.h.engine.stats.compactions == 0)
    }
}

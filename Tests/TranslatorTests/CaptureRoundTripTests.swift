import MPTCPStack
import Testing
import Tools
import Translator

/// Every packet of every reference capture (recorded from the Linux kernel)
/// decodes, and re-emits byte for byte.
@Suite struct CaptureRoundTripTests {
    @Test func referenceCapturesExist() {
        // The suite below is vacuous without captures: insist on them.
        #expect(Repo.referenceCaptures.count >= 10)
    }

    @Test(arguments: Repo.referenceCaptures.map(\.path))
    func everyPacketRoundTrips(path: String) throws {
        let (lt, frames) = try PcapReader.readAll(path: path)
        let link = try #require(lt)
        #expect(!frames.isEmpty)
        var mptcpOptions = 0
        for (f, bytes) in frames {
            try bytes.withUnsafeBytes { raw in
                let ip = try link.ipPayload(raw)
                let view = try TCPPacketView(ip)
                // Offloads were off when recording: every checksum is real.
                #expect(view.tcpChecksumValid, "frame \(f.index): TCP checksum")
                #expect(view.computedTCPChecksum() == view.tcp.checksum, "frame \(f.index)")
                let pkt = try TCPPacket(parsing: ip)
                let again = try pkt.emitted()
                #expect(again == Array(view.ip), "frame \(f.index) of \(path) does not re-emit identically")
                for i in 0 ..< pkt.tcpHeader.options.count {
                    if case .malformed(let r, _) = pkt.tcpHeader.options[i] {
                        Issue.record("frame \(f.index): malformed option (\(r)) in a kernel capture")
                    }
                    if case .mptcp = pkt.tcpHeader.options[i] { mptcpOptions += 1 }
                }
                if case .v4(let h) = pkt.ipHeader {
                    #expect(h.computedChecksum() == h.headerChecksum, "frame \(f.index): IPv4 header checksum")
                }
            }
        }
        #expect(mptcpOptions > 0)
    }
}

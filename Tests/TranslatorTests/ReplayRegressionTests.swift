import Foundation
import MPTCPStack
import Testing
import Tools
import Translator

/// Pcap replay regression: captures recorded by the daemon (`--record`,
/// seeded keys) on the netns testbed against the kernel, replayed through
/// the engine offline with the same seed, must give the recorded outputs
/// byte for byte. A change of behaviour shows up here as a diff.
@Suite struct ReplayRegressionTests {
    static var recordings: [String] {
        let dir = Repo.root.appendingPathComponent("pcaps/regression")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".pcap") }.sorted().map { dir.appendingPathComponent($0).path }
    }

    /// Output frames (packet type 4) of a recorder capture, in order.
    static func outputs(_ path: String) throws -> [[UInt8]] {
        let (lt, frames) = try PcapReader.readAll(path: path)
        #expect(lt == .linuxSLL2)
        return frames.filter { $0.1.count >= 20 && $0.1[10] == 4 }.map { Array($0.1.dropFirst(20)) }
    }

    @Test func thereAreRecordings() {
        #expect(!Self.recordings.isEmpty)
    }

    @Test(arguments: recordings)
    func replayReproducesTheRecordedOutput(path: String) throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString).pcap").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let engine = Engine(config: EngineConfig(), random: SeededRandom(seed: 42))
        let r = try Replayer.run(input: path, output: out, engine: engine, rule: .init(lanPrefixes: []))
        #expect(r.inputs > 100)
        #expect(r.stats.connectionsMPTCP > 0)
        let recorded = try Self.outputs(path)
        let replayed = try Self.outputs(out)
        #expect(recorded.count == replayed.count)
        for (i, (a, b)) in zip(recorded, replayed).enumerated() where a != b {
            Issue.record("output \(i) differs: recorded \(a.count) bytes, replayed \(b.count) bytes")
            break
        }
    }

    @Test func replayIsDeterministicPerSeedAndKeysFollowTheSeed() throws {
        guard let path = Self.recordings.first else { Issue.record("no recording"); return }
        func run(_ seed: UInt64) throws -> [[UInt8]] {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(UUID().uuidString).pcap").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            _ = try Replayer.run(input: path, output: out, engine: Engine(config: EngineConfig(), random: SeededRandom(seed: seed)),
                                 rule: .init(lanPrefixes: []))
            return try Self.outputs(out)
        }
        #expect(try run(7) == run(7))
        #expect(try run(7) != run(8)) // other keys on the wire
    }
}

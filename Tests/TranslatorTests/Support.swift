import Foundation
import MPTCPStack
import Translator

/// Paths of the repository, found from this file's location.
enum Repo {
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// Captures recorded from the Linux kernel: ours (pcaps/reference, made by
    /// tools/capture.sh) and the project's shared set (pcaps/reference-shared).
    static var referenceCaptures: [URL] {
        ["pcaps/reference", "pcaps/reference-shared"].flatMap { sub -> [URL] in
            let dir = root.appendingPathComponent(sub)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.filter { $0.hasSuffix(".pcap") }.sorted().map { dir.appendingPathComponent($0) }
        }
    }
}

/// Runs a program and returns its standard output; throws when it fails.
func run(_ argv: [String]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let edata = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw NSError(domain: "run", code: Int(p.terminationStatus), userInfo: [
            NSLocalizedDescriptionKey: "\(argv.joined(separator: " ")) exited \(p.terminationStatus): \(String(decoding: edata, as: UTF8.self))"])
    }
    return String(decoding: data, as: UTF8.self)
}

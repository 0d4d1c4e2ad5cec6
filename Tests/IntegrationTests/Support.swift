import Foundation

/// The repository's root (this file is Tests/IntegrationTests/Support.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Runs `path` with `arguments` (environment: ours, with `env` on top),
/// stdout and stderr together; prints the output into the test log.
func runCapturingOutput(_ path: String, _ arguments: [String], env: [String: String] = [:]) throws -> (status: Int32, text: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    print(text)
    return (p.terminationStatus, text)
}

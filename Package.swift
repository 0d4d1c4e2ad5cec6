// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "nfq-mptcp",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MPTCPWire", targets: ["MPTCPWire"]),
        .library(name: "MPTCPStack", targets: ["MPTCPStack"]),
        .library(name: "Tools", targets: ["Tools"]),
        .library(name: "Translator", targets: ["Translator"]),
        .executable(name: "nfq-mptcp", targets: ["nfq-mptcp"]),
        .executable(name: "Bench", targets: ["Bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        // System libraries (Debian package names in `providers`).
        .systemLibrary(name: "CPcap", path: "Sources/CPcap",
                       pkgConfig: "libpcap", providers: [.apt(["libpcap-dev"])]),
        .systemLibrary(name: "CNetfilterQueue", path: "Sources/CNetfilterQueue",
                       pkgConfig: "libnetfilter_queue", providers: [.apt(["libnetfilter-queue-dev"])]),
        .systemLibrary(name: "CMnl", path: "Sources/CMnl",
                       pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        .systemLibrary(name: "CLinux", path: "Sources/CLinux"),
        // Heap-allocation counter for the benchmark and the allocation test only.
        .target(name: "CAllocCounter"),

        // The wire: bytes, checksums, sequence numbers, header and option
        // views and values, MPTCP crypto. Pure Swift, no syscalls, no
        // Foundation; knows nothing of the engine.
        .target(name: "MPTCPWire",
                dependencies: [
                    .product(name: "Crypto", package: "swift-crypto"),
                ]),

        // The protocol engine: pure Swift, no syscalls, no Foundation.
        // Re-exports MPTCPWire (Engine/Exports.swift).
        .target(name: "MPTCPStack",
                dependencies: [
                    "MPTCPWire",
                    .product(name: "DequeModule", package: "swift-collections"),
                    .product(name: "HeapModule", package: "swift-collections"),
                ]),

        // The offline tools: pcap files, inspect (every option decoded),
        // record and replay. No sockets, no queue.
        .target(name: "Tools",
                dependencies: ["MPTCPStack", "CPcap"]),

        // The shell: NFQUEUE, raw sockets, rules, rtnetlink, signals, the
        // journal, option checks and start-up. No protocol logic.
        .target(name: "Translator",
                dependencies: [
                    "MPTCPStack", "Tools", "CNetfilterQueue", "CMnl", "CLinux",
                    .product(name: "Logging", package: "swift-log"),
                ]),

        // The command line: imports the shell and the tools, not the engine.
        .executableTarget(name: "nfq-mptcp",
                          dependencies: [
                              "Translator", "Tools",
                              .product(name: "ArgumentParser", package: "swift-argument-parser"),
                              .product(name: "Logging", package: "swift-log"),
                          ]),

        // A steady-state engine workload shared by Bench and the allocation test.
        .target(name: "Workloads", dependencies: ["MPTCPStack"]),

        // Test-bed tool: delay and loss through NFQUEUE (the kernel has no netem).
        .executableTarget(name: "linkemu",
                          dependencies: [
                              "Translator", "Tools", "MPTCPStack", "CLinux",
                              .product(name: "ArgumentParser", package: "swift-argument-parser"),
                              .product(name: "DequeModule", package: "swift-collections"),
                          ]),

        .executableTarget(name: "Bench",
                          dependencies: [
                              "Translator", "Tools", "MPTCPStack", "CAllocCounter", "Workloads", "CLinux",
                              .product(name: "ArgumentParser", package: "swift-argument-parser"),
                          ]),

        // Helpers shared by the test targets: packet builders, the engine
        // harness, the network simulator, test vectors, seeded randomness.
        .target(name: "TestSupport", dependencies: ["MPTCPStack"], path: "Tests/TestSupport"),

        .testTarget(name: "MPTCPStackTests", dependencies: ["MPTCPStack", "TestSupport"]),
        .testTarget(name: "TranslatorTests", dependencies: ["Translator", "Tools", "MPTCPStack", "TestSupport", "Workloads", "CAllocCounter",
                                                         .product(name: "Logging", package: "swift-log")]),
        // Runs netns/*.sh (namespaces, the daemon, the kernel's MPTCP).
        .testTarget(name: "IntegrationTests"),
    ]
)

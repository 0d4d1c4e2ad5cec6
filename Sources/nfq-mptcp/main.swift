import ArgumentParser
import Translator

@main
struct NfqMptcp: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nfq-mptcp",
        abstract: "Packet-level TCP <-> MPTCP v1 translator for Linux gateways (NFQUEUE).",
        subcommands: [Inspect.self]
    )
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode every TCP and MPTCP option of a capture file, one line per packet.",
        discussion: """
        Reads pcap or pcapng (Ethernet, Linux cooked v1/v2, raw IP, loopback). For MPTCP it shows every \
        field of every subtype, derives tokens and IDSNs from keys seen on the wire, and verifies MP_JOIN \
        and ADD_ADDR HMACs and MP_FASTCLOSE keys when the connection's keys were captured. Malformed \
        options are shown with the reason and never stop the run.
        """
    )

    @Argument(help: "The capture file to decode.")
    var file: String

    @Flag(help: "One JSON object per packet (JSON Lines) instead of text.")
    var json = false

    @Flag(help: "Omit the summary line at the end (text mode).")
    var noSummary = false

    func run() throws {
        do {
            try InspectRunner.run(path: file, options: .init(json: json, summary: !noSummary)) { line in
                print(line)
            }
        } catch let e as PcapError {
            throw ValidationError(e.description)
        }
    }
}

import MPTCPStack
import TestSupport
import Testing

extension SimTests {
    /// Two uplinks, each with 1% loss and 1% reordering in both directions.
    /// The LAN loses nothing here (see `twoUplinksLossyLANToClient`).
    @Test("two uplinks, 1% loss and reordering on each, 500 seeds (sizes, rates, delays, IPv4/IPv6 vary)")
    func twoUplinksLossy() {
        sweep(500, salt: 0x2_5EED) { seed, r in
            var s = SimScenario(seed: seed)
            s.upload = 48 * 1024 + Int(r.next() % (96 * 1024))
            s.download = 48 * 1024 + Int(r.next() % (96 * 1024))
            s.varyEndpoints(&r)
            s.uplinks = [SimUplink(lossyLink(&r)), SimUplink(lossyLink(&r))]
            s.deadline = .seconds(90)
            return s
        }
    }

    /// The client's segments reordered (and some lost) on the LAN on their
    /// way to a two-uplink gateway: the engine keeps what comes beyond a
    /// gap and SACKs it, so only the gap is sent again.
    @Test("two uplinks; the LAN reorders 5% and loses 1% of the client's segments, 300 seeds")
    func twoUplinksReorderingLAN() {
        let outcomes = behindLAN(300, salt: 0x3_5EED) { s, r in
            s.upload = 128 * 1024 + Int(r.next() % (256 * 1024))
            s.download = 16 * 1024
            s.varyEndpoints(&r)
            s.lan = LinkProfile(rate: 125_000_000, delay: .microseconds(100), loss: 0.01, reorder: 0.05,
                                reorderDelay: .microseconds(50 + Int64(r.next() % 400)))
            s.lanToClient = LinkProfile(rate: 125_000_000, delay: .microseconds(100))
        }

        // The gap path was taken. (This model client has no SACK, so it
        // still resends after a gap as NewReno does; the Linux client in
        // the netns test resends only the gap.)
        let held = outcomes.reduce(0) { $0 + $1.engineStats.clientOutOfOrder }
        #expect(held > 1000, "client segments held beyond a gap: \(held)")
    }

    /// The LAN loses 1% of what the gateway forwards to the client and
    /// reorders some. The gateway resends from its own copy (the model
    /// client does not SACK: a loss shows when data forwarded after it is
    /// acknowledged, or on the tail-loss timer), before the model server's
    /// data-level timer does (it fired 532 times over this sweep when the
    /// gateway resent nothing, 5 times with the gateway resending 527
    /// segments).
    @Test("two uplinks; the LAN loses 1% and reorders 2% of the segments to the client, 300 seeds")
    func twoUplinksLossyLANToClient() {
        let outcomes = behindLAN(300, salt: 0x4_5EED) { s, r in
            s.upload = 16 * 1024
            s.download = 128 * 1024 + Int(r.next() % (256 * 1024))
            s.varyEndpoints(&r)
            s.lanToClient = LinkProfile(rate: 125_000_000, delay: .microseconds(100), loss: 0.01, reorder: 0.02,
                                        reorderDelay: .microseconds(50 + Int64(r.next() % 400)))
        }
        let resent = outcomes.reduce(0) { $0 + $1.engineStats.lanRetransmits }
        #expect(resent > 300, "segments resent to the client: \(resent)")
        let serverResent = outcomes.reduce(0) { $0 + $1.serverDataLevelRetransmits }
        #expect(serverResent * 10 < resent, "the server's data-level retransmissions: \(serverResent)")
    }

    /// `n` seeds of two clean uplinks (1-3 Mbit/s, 5-45 ms) behind a LAN
    /// that `lan` sets up (with the sizes and endpoints).
    private func behindLAN(_ n: Int, salt: UInt64, _ lan: (inout SimScenario, inout SplitMix64) -> Void) -> [SimOutcome] {
        sweep(n, salt: salt) { seed, r in
            var s = SimScenario(seed: seed)
            lan(&s, &r)
            func path() -> LinkProfile {
                LinkProfile(rate: Double(1_000_000 + r.next() % 2_000_000), delay: .milliseconds(5 + Int64(r.next() % 40)),
                            queueLimit: 64 * 1024)
            }
            s.uplinks = [SimUplink(path()), SimUplink(path())]
            s.deadline = .seconds(90)
            return s
        }
    }
}

extension SimTests {
    /// Federation: two engine instances back to back (the near one in the
    /// initiator role, the far one in the responder role) over two links,
    /// plain TCP hosts at both ends.
    @Test("federation: two engines back to back over two links with 1% loss and reordering, 200 seeds: streams intact, the far engine accepts joins")
    func federationLossy() {
        let outcomes = sweep(200, salt: 0xFED_5EED) { seed, r in
            var s = SimScenario(seed: seed)
            s.federation = true
            s.upload = 64 * 1024 + Int(r.next() % (192 * 1024))
            s.download = 64 * 1024 + Int(r.next() % (192 * 1024))
            s.varyEndpoints(&r)
            s.uplinks = [SimUplink(lossyLink(&r)), SimUplink(lossyLink(&r))]
            s.deadline = .seconds(90)
            return s
        }
        // (A small transfer may end before a join completes over a lossy link.)
        let joined = outcomes.filter { $0.joins >= 1 }.count
        #expect(joined * 10 >= outcomes.count * 9, "the far engine accepted joins in only \(joined) of \(outcomes.count) runs")
    }

    @Test("federation: two links with different rates and delays, 512 KiB each way, 20 seeds: both links carry a real share")
    func federationBothLinks() {
        let outcomes = sweep(20, salt: 0xFED_B07) { seed, r in
            var s = SimScenario(seed: seed)
            s.federation = true
            s.upload = 512 * 1024
            s.download = 512 * 1024
            s.varyEndpoints(&r)
            // Short queues: congestion bounds each subflow's window (as in `twoUplinks`).
            s.uplinks = [SimUplink(LinkProfile(rate: 2_000_000, delay: .milliseconds(10), queueLimit: 32 * 1024)),
                         SimUplink(LinkProfile(rate: 1_000_000, delay: .milliseconds(25), queueLimit: 32 * 1024))]
            s.deadline = .seconds(60)
            return s
        }
        for o in outcomes where o.ok {
            #expect(o.joins >= 1, "seed \(o.scenario.seed): the far engine accepted no join")
            let total = o.uplinkBytes.reduce(0, +)
            #expect(o.uplinkBytes.allSatisfy { $0 * 10 > total }, "seed \(o.scenario.seed): bytes per link \(o.uplinkBytes)")
        }
    }

    @Test("federation: link 0 cut for 3 s mid-transfer then restored, 30 seeds: streams intact")
    func federationCut() {
        sweep(30, salt: 0xFED_C07) { seed, r in
            var s = SimScenario(seed: seed)
            s.federation = true
            s.upload = 512 * 1024
            s.download = 512 * 1024
            s.varyEndpoints(&r)
            s.uplinks = [SimUplink(LinkProfile(rate: 2_000_000, delay: .milliseconds(10)), cuts: [(.milliseconds(300), .milliseconds(3300))]),
                         SimUplink(LinkProfile(rate: 1_000_000, delay: .milliseconds(30)))]
            s.deadline = .seconds(90)
            return s
        }
    }
}

/// An uplink of the lossy sweeps: 1-3 MB/s, 5-45 ms, 1% loss and 1% reordering by 2-8 ms, 64 KiB queue.
func lossyLink(_ r: inout SplitMix64) -> LinkProfile {
    LinkProfile(rate: Double(1_000_000 + r.next() % 2_000_000), delay: .milliseconds(5 + Int64(r.next() % 40)),
                loss: 0.01, reorder: 0.01, reorderDelay: .milliseconds(2 + Int64(r.next() % 6)), queueLimit: 64 * 1024)
}

import MPTCPStack

// A simulated link: two independent directions, each a drop-tail queue
// drained at a fixed rate, then a fixed one-way delay, random loss and
// random reordering (an extra delay for some packets). A cut link drops
// everything: what is offered while it is cut, and what is in flight
// when it arrives during a cut.

/// One direction's characteristics.
package struct LinkProfile: Sendable {
    /// Serialization rate in bytes per second; 0 = unlimited.
    package var rate: Double = 0
    /// One-way propagation delay.
    package var delay: Duration = .milliseconds(5)
    /// Probability that a packet is lost.
    package var loss: Double = 0
    /// Probability that a packet is held back by `reorderDelay` (arriving
    /// after packets sent later).
    package var reorder: Double = 0
    package var reorderDelay: Duration = .milliseconds(4)
    /// Drop-tail limit on the bytes waiting for serialization.
    package var queueLimit: Int = 256 * 1024
    /// Larger packets are dropped and counted as `oversize` (a bug of
    /// whoever built them: the tests require zero).
    package var mtu: Int = 1500

    package init(rate: Double = 0, delay: Duration = .milliseconds(5), loss: Double = 0, reorder: Double = 0,
         reorderDelay: Duration = .milliseconds(4), queueLimit: Int = 256 * 1024, mtu: Int = 1500) {
        self.rate = rate; self.delay = delay; self.loss = loss; self.reorder = reorder
        self.reorderDelay = reorderDelay; self.queueLimit = queueLimit; self.mtu = mtu
    }
}

/// What happened to the packets offered to one direction.
package struct LinkCounters: Sendable, CustomStringConvertible {
    package var offered = 0, delivered = 0, deliveredBytes = 0, lost = 0, queueDrops = 0, cutDrops = 0, oversize = 0, reordered = 0
    package var description: String {
        "offered \(offered) delivered \(delivered) (\(deliveredBytes) B) lost \(lost) queue-drops \(queueDrops) cut-drops \(cutDrops) oversize \(oversize) reordered \(reordered)"
    }
}

package final class SimLink {
    /// Which way a packet goes: from end A to end B, or back.
    package enum Direction { case aToB, bToA }

    private struct Pipe {
        var profile: LinkProfile
        /// When the serializer is free again.
        var busyUntil = Instant(nanoseconds: 0)
        var counters = LinkCounters()
    }

    package let name: String
    private let scheduler: SimScheduler
    private let random: SimRandom
    private var pipes: [Pipe]
    /// Intervals [from, to) during which the link is down.
    package var cuts: [(from: Instant, to: Instant)] = []

    package init(name: String, scheduler: SimScheduler, seed: UInt64, aToB: LinkProfile, bToA: LinkProfile) {
        self.name = name
        self.scheduler = scheduler
        random = SimRandom(seed: seed)
        pipes = [Pipe(profile: aToB), Pipe(profile: bToA)]
    }

    package func counters(_ d: Direction) -> LinkCounters { pipes[d == .aToB ? 0 : 1].counters }

    package func isCut(at t: Instant) -> Bool { cuts.contains { $0.from <= t && t < $0.to } }

    /// Offers a packet to one direction; `deliver` runs when (if) it arrives.
    package func send(_ packet: [UInt8], _ d: Direction, deliver: @escaping ([UInt8]) -> Void) {
        let i = d == .aToB ? 0 : 1
        let now = scheduler.now
        let p = pipes[i].profile
        pipes[i].counters.offered += 1
        // Every packet draws the same number of values, whatever befalls it.
        let lose = random.chance(p.loss), hold = random.chance(p.reorder)
        if isCut(at: now) { pipes[i].counters.cutDrops += 1; return }
        if packet.count > p.mtu { pipes[i].counters.oversize += 1; return }
        var start = now
        if p.rate > 0 {
            if pipes[i].busyUntil > now {
                let backlog = Double(pipes[i].busyUntil.nanoseconds - now.nanoseconds) * p.rate / 1e9
                if Int(backlog) + packet.count > p.queueLimit { pipes[i].counters.queueDrops += 1; return }
                start = pipes[i].busyUntil
            }
            pipes[i].busyUntil = start + .simNanoseconds(UInt64(Double(packet.count) * 1e9 / p.rate))
            start = pipes[i].busyUntil
        }
        if lose { pipes[i].counters.lost += 1; return } // lost on the wire, after using its slot
        var arrival = start + p.delay
        if hold { arrival = arrival + p.reorderDelay; pipes[i].counters.reordered += 1 }
        scheduler.schedule(at: arrival) { [self] in
            if isCut(at: scheduler.now) { pipes[i].counters.cutDrops += 1; return }
            pipes[i].counters.delivered += 1
            pipes[i].counters.deliveredBytes += packet.count
            deliver(packet)
        }
    }
}

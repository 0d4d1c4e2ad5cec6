import MPTCPStack

// The simulation's clock and event queue: a discrete-event scheduler with
// no wall clock, no threads and no timers of its own. Every action runs at a
// simulated `Instant`; actions due at the same instant run in the order they
// were scheduled, so a run is a pure function of its inputs and seeds.

extension Duration {
    /// The duration in whole nanoseconds (negative durations are a bug here).
    package var simNanoseconds: UInt64 {
        let (s, a) = components
        return UInt64(s) &* 1_000_000_000 &+ UInt64(a / 1_000_000_000)
    }

    package static func simNanoseconds(_ ns: UInt64) -> Duration { .nanoseconds(Int64(ns)) }
}

extension Instant {
    /// `self - earlier` (zero when `earlier` is later).
    package func since(_ earlier: Instant) -> Duration {
        .simNanoseconds(nanoseconds >= earlier.nanoseconds ? nanoseconds - earlier.nanoseconds : 0)
    }

    /// Milliseconds since the simulation's epoch (TCP timestamp clocks).
    package var simMilliseconds: UInt32 { UInt32(truncatingIfNeeded: nanoseconds / 1_000_000) }
}

/// A seeded generator shared by reference (a link draws from its own).
package final class SimRandom {
    private var g: SplitMix64
    package init(seed: UInt64) { g = SplitMix64(seed: seed) }
    package func next() -> UInt64 { g.next() }
    /// Uniform in [0, 1).
    package func unit() -> Double { Double(g.next() >> 11) * 0x1p-53 }
    /// True with probability `p`.
    package func chance(_ p: Double) -> Bool { p > 0 && unit() < p }
}

/// The event queue. `run` pops events in (time, insertion order).
package final class SimScheduler {
    private struct Event {
        var at: Instant
        var order: UInt64
        var action: () -> Void
        func before(_ o: Event) -> Bool { at < o.at || (at == o.at && order < o.order) }
    }

    private var heap: [Event] = []
    private var counter: UInt64 = 0
    package private(set) var now: Instant
    /// Events run so far.
    package private(set) var eventsRun = 0

    package init(start: Instant) { now = start }

    package var isEmpty: Bool { heap.isEmpty }

    /// Runs `action` at `t` (never in the past: `t` earlier than now means now).
    package func schedule(at t: Instant, _ action: @escaping () -> Void) {
        counter += 1
        heap.append(Event(at: max(t, now), order: counter, action: action))
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard heap[i].before(heap[p]) else { break }
            heap.swapAt(i, p)
            i = p
        }
    }

    package func schedule(after d: Duration, _ action: @escaping () -> Void) { schedule(at: now + d, action) }

    private func popMin() -> Event {
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && heap[l].before(heap[m]) { m = l }
                if r < heap.count && heap[r].before(heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return top
    }

    /// Runs events in order until `done()` holds (checked after each event),
    /// the queue is empty, or the next event lies beyond `limit`; the clock
    /// then stands at the last event run (or at `limit` when it got there).
    /// Returns whether `done()` held.
    @discardableResult
    package func run(until limit: Instant, done: () -> Bool = { false }) -> Bool {
        if done() { return true }
        while let first = heap.first, first.at <= limit {
            let e = popMin()
            now = e.at
            eventsRun += 1
            e.action()
            if done() { return true }
        }
        if now < limit { now = limit }
        return done()
    }
}

/// A restartable one-shot timer on the scheduler. Moving the deadline later
/// schedules nothing new (the pending event re-arms itself when it fires
/// early), so a timer restarted on every ACK costs one event per expiry.
package final class SimTimer {
    private let scheduler: SimScheduler
    private let action: () -> Void
    /// When the timer fires next; nil when stopped.
    package private(set) var deadline: Instant?
    /// The time of the event currently queued for this timer, if any.
    private var queuedAt: Instant?

    package init(_ scheduler: SimScheduler, action: @escaping () -> Void) {
        self.scheduler = scheduler
        self.action = action
    }

    package func set(_ t: Instant?) {
        deadline = t
        guard let t else { return }
        if let q = queuedAt, q <= t { return }
        enqueue(t)
    }

    package func stop() { deadline = nil }

    private func enqueue(_ t: Instant) {
        queuedAt = t
        scheduler.schedule(at: t) { [weak self] in self?.fired(t) }
    }

    private func fired(_ t: Instant) {
        guard queuedAt == t else { return } // superseded by an earlier event
        queuedAt = nil
        guard let d = deadline else { return }
        if d <= scheduler.now {
            deadline = nil
            action()
        } else {
            enqueue(d)
        }
    }
}

@testable import MPTCPStack
import TestSupport
import Testing

// The client's TSval history (`TSHistory`) starts small and doubles up to
// its capacity: what it answers must be what a ring of the full capacity
// answers, before and after it wraps.
@Suite("TSval history")
struct TSHistoryTests {
    /// The newest of the last `capacity` distinct records at or before
    /// `position`, as `TSHistory.value` defines it.
    private func model(_ records: [(UInt64, UInt32)], capacity: Int, at position: UInt64, fallback: UInt32, oldestIfNone: Bool) -> UInt32 {
        let kept = records.suffix(capacity)
        if let r = kept.last(where: { $0.0 <= position }) { return r.1 }
        return oldestIfNone && records.count > capacity ? kept.first!.1 : fallback
    }

    @Test("growing from 16 to 64 records and wrapping: every lookup matches a full-size ring's")
    func growsLikeAFullRing() {
        var rng = SplitMix64(seed: 5)
        var h = TSHistory(capacity: 64)
        var records: [(UInt64, UInt32)] = []
        var position: UInt64 = 0, value: UInt32 = 100
        for n in 0 ..< 300 {
            position += 1 + rng.next() % 5
            value += 1
            h.record(value, at: position, replacingPosition: false)
            records.append((position, value))
            for probe in [position, position - min(position, 40), position - min(position, 200), 0] {
                for oldest in [false, true] {
                    let got = h.value(atOrBefore: probe, before: { $0 < $1 }, fallback: 7, oldestIfNone: oldest)
                    #expect(got == model(records, capacity: 64, at: probe, fallback: 7, oldestIfNone: oldest), "record \(n), probe \(probe)")
                }
            }
        }
    }

    @Test("a repeated TSval is stored once; with replacingPosition it moves to the newer position")
    func repeats() {
        var h = TSHistory(capacity: 1024)
        h.record(5, at: 10, replacingPosition: true)
        h.record(5, at: 20, replacingPosition: true)
        #expect(h.value(atOrBefore: 15, before: { $0 < $1 }, fallback: 0, oldestIfNone: false) == 0)
        #expect(h.value(atOrBefore: 20, before: { $0 < $1 }, fallback: 0, oldestIfNone: false) == 5)
        h.record(6, at: 30, replacingPosition: false)
        h.record(6, at: 40, replacingPosition: false)
        #expect(h.value(atOrBefore: 35, before: { $0 < $1 }, fallback: 0, oldestIfNone: false) == 6)
    }
}

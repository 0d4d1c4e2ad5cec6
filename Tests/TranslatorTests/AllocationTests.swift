import CAllocCounter
import MPTCPStack
import Testing
import Workloads

/// The data path allocates nothing per packet: steady-state translation in
/// both directions (client data, DATA_ACKs, peer data, client ACKs) makes no
/// heap allocation at all. Counted by wrapping glibc's allocator.
@Suite struct AllocationTests {
    @Test func steadyStateTranslationDoesNotAllocate() {
        let w = EngineWorkload(rounds: 3_000)
        w.run(0 ..< 500) // warm-up: tables and heaps reach their size
        // Counted on this thread only: other tests run in parallel.
        let a0 = nfq_alloc_count_this_thread()
        let r = w.run(500 ..< 3_000)
        let d = nfq_alloc_count_this_thread() - a0
        #expect(r.segments == 10_000)
        #expect(r.rewrites == r.segments)
        #expect(d == 0, "\(d) heap allocations for \(r.segments) translated segments")
    }
}

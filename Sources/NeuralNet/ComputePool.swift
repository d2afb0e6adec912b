// Intra-op parallelism for batch-1 networks: a few persistent worker threads that run the same
// forward pass as the calling thread, each computing its share ("part") of every layer, with a
// barrier after each layer (SPMD). Workers are created once; a forward allocates nothing.
//
//   caller:   run(job) -> barrier (start) -> job.run(part 0) [layer, barrier, layer, ...] -> barrier (end)
//   worker i: barrier (start) -> job.run(part i)            [layer, barrier, layer, ...] -> barrier (end)
//
// The barrier spins briefly (the other part of a layer usually finishes within microseconds),
// then blocks on a condition variable, so an idle pool, or a part whose partner was descheduled
// on a loaded machine, does not burn a core.
import Foundation
import Synchronization

/// Work a `ComputePool` runs on all of its threads at once.
public protocol ComputePoolJob: AnyObject {
    /// Computes share `part` (0 ..< `parts`) of the job; calls the pool's `barrier()` between
    /// steps whose inputs other parts write (the same number of times in every part). The pool
    /// keeps the job while it lives: a job refers to its owner weakly or unowned.
    func run(part: Int, of parts: Int)
}

/// The shared state of a pool and its workers.
///
/// Thread-safety rule: `arrived`, `generation`, `sleepers` and `stop` are atomics; `job` is
/// written only by the caller of `ComputePool.run` before it enters the start barrier and read by
/// workers only after they leave it (the barrier orders the two: the last arrival's release store
/// of `generation`, the waiters' acquire loads). The mutex and condition variable are used only
/// through pthread calls.
final class ComputePoolState: @unchecked Sendable {
    let threads: Int
    /// Threads that reached the current barrier.
    let arrived = Atomic<Int>(0)
    /// Barriers completed so far (waiters wait for it to change).
    let generation = Atomic<Int>(0)
    /// Threads blocked (or about to block) on `condition`.
    let sleepers = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
    var job: (any ComputePoolJob)?
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    let condition: UnsafeMutablePointer<pthread_cond_t>

    init(threads: Int) {
        self.threads = threads
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Waits until all `threads` threads have called `barrier` (a reusable counting barrier).
    /// Spins for up to `ComputePool.spinNanoseconds`, then blocks.
    func barrier() {
        let g = generation.load(ordering: .acquiring)
        if arrived.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue == threads {
            arrived.store(0, ordering: .relaxed)  // nobody touches it until generation moves
            generation.wrappingAdd(1, ordering: .sequentiallyConsistent)
            // A waiter registers in `sleepers` before re-reading `generation` under the mutex
            // (both sequentially consistent): either it sees the new generation, or we see it.
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(condition)
                pthread_mutex_unlock(mutex)
            }
            return
        }
        // Spin: check the clock every 64 loads (about 0.1 us each way).
        let deadline = monotonicNanoseconds() + ComputePool.spinNanoseconds
        while true {
            for _ in 0..<64 where generation.load(ordering: .acquiring) != g { return }
            if monotonicNanoseconds() >= deadline { break }
        }
        pthread_mutex_lock(mutex)
        sleepers.wrappingAdd(1, ordering: .sequentiallyConsistent)
        while generation.load(ordering: .sequentiallyConsistent) == g {
            pthread_cond_wait(condition, mutex)
        }
        sleepers.wrappingSubtract(1, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(mutex)
        _ = generation.load(ordering: .acquiring)  // acquire what the last arrival released
    }

    /// A worker's loop: wait at the start barrier, run part `part`, meet at the end barrier.
    func workerLoop(part: Int) {
        while true {
            barrier()
            if stop.load(ordering: .acquiring) { return }
            job?.run(part: part, of: threads)
            barrier()
        }
    }
}

/// A fixed set of worker threads that, with the calling thread, run one job split in `threads`
/// parts (intra-op parallelism for a batch-1 forward pass). Created once, with its threads; `run`
/// allocates nothing.
///
/// ```swift
/// let pool = ComputePool(threads: 2)      // the caller + 1 worker
/// pool.run(job)                           // job.run(part: 0/1, of: 2, pool:) on both, returns when both finish
/// ```
///
/// Thread-safety rule: one thread at a time calls `run` (the owner of the network); `barrier` is
/// called only from inside a running job, by every part the same number of times. The state the
/// threads share is `ComputePoolState` (see its rule).
public final class ComputePool: @unchecked Sendable {
    /// How long a thread at a barrier spins before it blocks (20 us: a layer's parts finish
    /// within a few microseconds of each other on an idle machine; longer waits mean the other
    /// thread was descheduled, and spinning would take a core from whoever has it).
    public static let spinNanoseconds: UInt64 = 20_000

    /// Threads a job runs on, the caller included.
    public let threads: Int
    let state: ComputePoolState
    /// One pair of counts per part for `sum` ([threads, 2]).
    private let slots: UnsafeMutablePointer<Int>

    /// Starts `threads - 1` worker threads (`threads` at least 1; 1 starts none and `run` simply
    /// calls the job).
    public init(threads: Int) {
        self.threads = max(1, threads)
        state = ComputePoolState(threads: self.threads)
        slots = .allocate(capacity: 2 * self.threads)
        slots.initialize(repeating: 0, count: 2 * self.threads)
        for part in 1..<self.threads {
            let state = self.state
            let thread = Thread { state.workerLoop(part: part) }
            thread.name = "compute-pool-\(part)"
            thread.start()
        }
    }

    deinit {
        defer { slots.deallocate() }
        guard threads > 1 else { return }
        // Workers are idle at the start barrier: release them with the stop flag set.
        state.stop.store(true, ordering: .releasing)
        state.barrier()
    }

    /// Runs `job` on all threads (part 0 on the caller) and returns when every part has finished.
    public func run(_ job: some ComputePoolJob) {
        guard threads > 1 else { job.run(part: 0, of: 1); return }
        if state.job !== job { state.job = job }
        state.barrier()
        job.run(part: 0, of: threads)
        state.barrier()
    }

    /// Waits until every part of the running job has reached this barrier.
    @inline(__always) public func barrier() {
        if threads > 1 { state.barrier() }
    }

    /// The sums over all parts of (a, b), for part `part` of a running job; a barrier (every part
    /// calls it, the same number of times). The slots are next written after the layer's own
    /// barrier, when every part has read them.
    public func sum(_ a: Int, _ b: Int, part: Int) -> (Int, Int) {
        guard threads > 1 else { return (a, b) }
        slots[2 * part] = a
        slots[2 * part + 1] = b
        state.barrier()
        var s = (0, 0)
        for p in 0..<threads { s.0 += slots[2 * p]; s.1 += slots[2 * p + 1] }
        return s
    }

    /// The share `part` of `count` items split in `parts` contiguous ranges whose inner bounds
    /// are multiples of `align` (nearly equal for counts much larger than `align`; a non-empty
    /// share starts at a multiple of `align`).
    @inline(__always) public static func share(_ count: Int, part: Int, of parts: Int, align: Int) -> Range<Int> {
        let lo = part == 0 ? 0 : min(count, (count * part / parts + align / 2) / align * align)
        let hi = part == parts - 1 ? count : min(count, (count * (part + 1) / parts + align / 2) / align * align)
        return lo..<max(lo, hi)
    }

    /// The share `part` of `count` items split in `parts` nearly equal contiguous ranges.
    @inline(__always) public static func share(_ count: Int, part: Int, of parts: Int) -> Range<Int> {
        (count * part / parts)..<(count * (part + 1) / parts)
    }
}

import Synchronization

/// A lock-free single-producer single-consumer ring of `Float` samples.
///
/// - Capacity is a power of two, so positions are free-running counters masked into storage.
/// - Storage is caller-owned (allocated once by the caller, never by the ring), so the
///   real-time capture thread never allocates.
/// - Exactly one thread may call the producer methods (`write`, `writableRegions`,
///   `commitWrite`) and exactly one thread the consumer methods (`read`, `readableRegions`,
///   `commitRead`, `skip`). `availableToRead` / `availableToWrite` may be called from either.
///
/// Overrun policy: the producer never overwrites unread audio. A live producer that finds the
/// ring full drops the newest period and counts it (`AudioSourceStats.droppedSamples`); a file
/// producer waits. When the consumer falls behind it may call `skip(_:)` to jump to the
/// newest audio, and reports how much it skipped.
///
/// ```swift
/// let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: 1 << 16)
/// let ring = SampleRing(storage: storage)
/// _ = ring.write(samples)            // producer thread
/// let n = ring.read(into: scratch)   // consumer thread
/// ```
public final class SampleRing: @unchecked Sendable {
    // @unchecked Sendable: `storage` is shared, but each index range is touched by one side
    // only; the acquire/release pairs on `writePos` / `readPos` below order those accesses.

    /// Total samples ever written (producer-owned; consumer reads with acquire).
    private let writePos = Atomic<Int>(0)
    /// Total samples ever consumed (consumer-owned; producer reads with acquire).
    private let readPos = Atomic<Int>(0)
    private let storage: UnsafeMutableBufferPointer<Float>
    private let mask: Int

    /// Number of samples the ring holds.
    public let capacity: Int

    /// Creates a ring over caller-owned storage whose count is a power of two.
    public init(storage: UnsafeMutableBufferPointer<Float>) {
        precondition(storage.count > 0 && storage.count & (storage.count - 1) == 0,
                     "ring capacity must be a power of two")
        self.storage = storage
        self.capacity = storage.count
        self.mask = storage.count - 1
    }

    /// Test-only: starts both counters at `position`, so wrapped-around layouts can be built
    /// without pushing `position` samples through the ring first.
    public init(storage: UnsafeMutableBufferPointer<Float>, startingAt position: Int) {
        precondition(storage.count > 0 && storage.count & (storage.count - 1) == 0,
                     "ring capacity must be a power of two")
        self.storage = storage
        self.capacity = storage.count
        self.mask = storage.count - 1
        writePos.store(position, ordering: .relaxed)
        readPos.store(position, ordering: .relaxed)
    }

    /// Samples ready for the consumer.
    public var availableToRead: Int {
        writePos.load(ordering: .acquiring) - readPos.load(ordering: .acquiring)
    }

    /// Free space for the producer.
    public var availableToWrite: Int { capacity - availableToRead }

    /// Total samples written since creation (stream position of the producer).
    public var totalWritten: Int { writePos.load(ordering: .acquiring) }

    /// Total samples consumed or skipped since creation (stream position of the consumer).
    public var totalRead: Int { readPos.load(ordering: .acquiring) }

    // MARK: producer

    /// Two regions of free space (the second is empty unless the free space wraps).
    public func writableRegions() -> (UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) {
        let w = writePos.load(ordering: .relaxed)            // our own counter
        // Acquire: the consumer's reads of these slots happen before we overwrite them.
        let r = readPos.load(ordering: .acquiring)
        return regions(start: w, count: capacity - (w - r))
    }

    /// Publishes `count` samples written into `writableRegions()`.
    public func commitWrite(_ count: Int) {
        let w = writePos.load(ordering: .relaxed)
        // Release: the sample stores above become visible before the new position does.
        writePos.store(w + count, ordering: .releasing)
    }

    /// Copies as many of `samples` as fit; returns how many were written.
    @discardableResult
    public func write(_ samples: UnsafeBufferPointer<Float>) -> Int {
        let (a, b) = writableRegions()
        let n = min(samples.count, a.count + b.count)
        guard n > 0, let src = samples.baseAddress else { return 0 }
        let na = min(n, a.count)
        a.baseAddress!.update(from: src, count: na)
        if n > na { b.baseAddress!.update(from: src + na, count: n - na) }
        commitWrite(n)
        return n
    }

    /// Convenience for tests and non-real-time producers.
    @discardableResult
    public func write(_ samples: [Float]) -> Int {
        samples.withUnsafeBufferPointer { write($0) }
    }

    // MARK: consumer

    /// Two regions of readable samples, oldest first (zero-copy view).
    public func readableRegions() -> (UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) {
        let r = readPos.load(ordering: .relaxed)             // our own counter
        // Acquire: pairs with the producer's release in commitWrite, so the samples are visible.
        let w = writePos.load(ordering: .acquiring)
        return regions(start: r, count: w - r)
    }

    /// Marks `count` samples as consumed, freeing their space for the producer.
    public func commitRead(_ count: Int) {
        let r = readPos.load(ordering: .relaxed)
        // Release: our reads of the slots complete before the producer may reuse them.
        readPos.store(r + count, ordering: .releasing)
    }

    /// Copies up to `destination.count` samples out; returns how many were read.
    @discardableResult
    public func read(into destination: UnsafeMutableBufferPointer<Float>) -> Int {
        let (a, b) = readableRegions()
        let n = min(destination.count, a.count + b.count)
        guard n > 0, let dst = destination.baseAddress else { return 0 }
        let na = min(n, a.count)
        dst.update(from: a.baseAddress!, count: na)
        if n > na { (dst + na).update(from: b.baseAddress!, count: n - na) }
        commitRead(n)
        return n
    }

    /// Drops the oldest samples so that at most `keep` remain; returns how many were dropped.
    /// This is how a consumer that fell behind skips ahead to the newest audio.
    @discardableResult
    public func skip(keepingNewest keep: Int) -> Int {
        let avail = availableToRead
        let drop = max(0, avail - keep)
        if drop > 0 { commitRead(drop) }
        return drop
    }

    private func regions(start: Int, count: Int) -> (UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) {
        let base = storage.baseAddress!
        let offset = start & mask
        let first = min(count, capacity - offset)
        return (UnsafeMutableBufferPointer(start: base + offset, count: first),
                UnsafeMutableBufferPointer(start: base, count: count - first))
    }
}

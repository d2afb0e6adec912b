import Foundation
import Synchronization

/// One active class as the analysis sees it.
public struct ActiveClass: Sendable, Equatable {
    public var name: String
    public var index: Int
    public var score: Float
    /// The separator's 128-d visual embedding for this class (nil without a separator).
    public var embedding: [Float]?
    public init(name: String, index: Int, score: Float, embedding: [Float]? = nil) {
        self.name = name; self.index = index; self.score = score; self.embedding = embedding
    }
}

/// What the analysis publishes for the render loop after each hop.
public struct Scene: Sendable {
    /// Stream time at the end of the analysis window, seconds.
    public var time: Double = 0
    /// Active classes, strongest first.
    public var active: [ActiveClass] = []
    /// Smoothed score of every vocabulary class (for fading cards).
    public var scores: [Float] = []
    /// Input level over the last hop (dBFS RMS and peak).
    public var levelDB: Float = -120
    public var peakDB: Float = -120
    /// Analysis stage timings so far (for the overlay).
    public var timings = StageTimings()
    /// Seconds of audio the analysis skipped so far.
    public var skippedSeconds: Double = 0
    public init() {}
}

/// A value guarded by a pthread mutex. Used instead of `Synchronization.Mutex` for the stores
/// shared by the analysis and render threads: on Linux `Mutex` locks with futex calls inside the
/// uninstrumented standard library, so ThreadSanitizer cannot see its ordering and reported the
/// correctly locked spectrogram copy as a race (tenth session); pthread locks it intercepts.
/// Thread-safety rule: `value` is touched only inside `withLock`.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

/// The latest scene, swapped under a lock held only for the copy. Analysis writes, render reads;
/// the render loop never waits for analysis beyond that copy.
public final class SceneStore: Sendable {
    private let scene = Locked(Scene())
    public init() {}
    public func publish(_ s: Scene) { scene.withLock { $0 = s } }
    public func latest() -> Scene { scene.withLock { $0 } }
}

/// Recent log-mel frames for the display, shared between analysis (appends) and render
/// (copies the newest frames). Fixed capacity, allocated once.
public final class SpectrogramStore: Sendable {
    private struct State {
        var frames: [Float]
        var count = 0
    }
    public let capacity: Int
    public let bands: Int
    private let state: Locked<State>

    public init(capacity: Int = 1024, bands: Int = 64) {
        self.capacity = capacity
        self.bands = bands
        state = Locked(State(frames: [Float](repeating: -13.8, count: capacity * bands)))
    }

    /// Appends one frame of `bands` values.
    public func append(_ frame: UnsafePointer<Float>) {
        let b = bands, cap = capacity
        nonisolated(unsafe) let src = frame
        state.withLock { s in
            let slot = s.count % cap
            s.frames.withUnsafeMutableBufferPointer { p in (p.baseAddress! + slot * b).update(from: src, count: b) }
            s.count += 1
        }
    }

    /// Copies the newest `count` frames, oldest first, into `out` ([count][bands], resized);
    /// returns how many frames were available (older slots are filled with silence).
    @discardableResult
    public func copyLatest(_ count: Int, into out: inout [Float]) -> Int {
        let b = bands, cap = capacity
        let n = min(count, cap)
        if out.count != n * b { out = [Float](repeating: -13.8, count: n * b) }
        return out.withUnsafeMutableBufferPointer { o in
            state.withLock { s in
                let have = min(n, s.count)
                let missing = n - have
                for i in 0..<missing * b { o[i] = -13.8 }
                s.frames.withUnsafeBufferPointer { f in
                    for i in 0..<have {
                        let slot = (s.count - have + i) % cap
                        (o.baseAddress! + (missing + i) * b).update(from: f.baseAddress! + slot * b, count: b)
                    }
                }
                return have
            }
        }
    }
}

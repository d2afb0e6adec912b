// Turns per-hop class scores into stable "active classes".
import Foundation

/// Settings of `ClassTracker`. Times are seconds of stream time, so they do not depend on the
/// analysis hop (and a hop skipped when analysis falls behind is just a longer step).
///
/// Defaults, chosen on the dataset's VALIDATION recordings only (tools/tune_listening.py: a
/// Python simulation of this path, grid search; method, grid and val/test numbers in
/// training/reports/listening.md), for a 100 ms hop and YAMNet's 0.96 s window. (The previous
/// defaults, on 0.35 / off 0.2 / EMA 0.1 s, had been picked on the 44 held-out test clips.)
/// No setting reaches the targets: recall 0.9 needs thresholds that bring 2-3 wrong
/// classes per clip, and onset latency is bounded by how much of YAMNet's window the source
/// must fill (see the report).
/// - `onThreshold` 0.30, `offThreshold` 0.15: a class turns on when its smoothed score reaches
///   0.30 and only counts as gone below 0.15 (hysteresis: no flicker around one threshold).
///   On val, recall is flat for on thresholds 0.25-0.30 and drops above 0.32.
/// - `smoothingTime` 0.25 s: exponential moving average with time constant 0.25 s, i.e. a weight
///   of 1 - exp(-0.1 / 0.25) = 0.33 on the newest score at a 100 ms hop: brief spurious scores
///   of other classes are damped (fewer wrong classes than 0.1 s at the same recall, for about
///   one hop of onset latency on slowly rising scores).
/// - `minimumOnTime` 0.5 s: once shown, a class stays at least half a second (the generator
///   needs a few frames to draw it).
/// - `holdTime` 0.5 s: a class leaves only after its score stayed below `offThreshold` this
///   long (bridges gaps between barks, words, notes; on val the true class turns on 1.03 times
///   per clip instead of 1.12 with 0.3 s, for slightly more hops of wrong classes).
public struct TrackerConfiguration: Sendable, Equatable, Codable {
    public var onThreshold: Float = 0.30
    public var offThreshold: Float = 0.15
    public var smoothingTime: Double = 0.25
    public var minimumOnTime: Double = 0.5
    public var holdTime: Double = 0.5
    /// Onset path (nil: off): a class also turns on at once when its score on the tiled patch
    /// after an onset (`OnsetDetector`, fed to `update(scores:fast:time:)`) reaches this, without
    /// waiting for the smoothed score. Off in these defaults (the label mapping was not measured
    /// with it); `learnedHead` uses 0.9.
    public var fastOnThreshold: Float?

    public init() {}

    /// Defaults for the learned presence head (`--presence head`, Assets/models/presence.safetensors
    /// combined with the label mapping by noisy-OR): its scores are higher than the mapping's
    /// alone, so it turns a class on at 0.45 (off 0.225); the times are the defaults above.
    /// Chosen on the VAL clips with training/avgas/presence.py (on 0.40 / 0.45 / 0.50 gave
    /// class-balanced recall 0.867 / 0.867 / 0.842 with 1.19 / 0.91 / 0.73 wrong classes per
    /// clip); the file's metadata "tracker" records the same values.
    /// `fastOnThreshold` 0.9: the onset path (training/avgas/presence_onset.py, chosen on the val
    /// clips: class-balanced median onset latency 0.77 -> 0.48 s at equal recall, 0.91 -> 0.95
    /// wrong classes per clip; lower thresholds were faster only with more than one wrong class).
    public static let learnedHead = TrackerConfiguration(onThreshold: 0.45, offThreshold: 0.225, smoothingTime: 0.25,
                                                         minimumOnTime: 0.5, holdTime: 0.5, fastOnThreshold: 0.9)

    /// The learned head's tracker at a `Sensitivity` (`--sensitivity`): `.normal` is `learnedHead`;
    /// the others change only the on-threshold and the smoothing time (off = on / 2 as always; the
    /// minimum on-time, hold and the onset path's fast-on threshold stay those of `learnedHead`).
    public static func learnedHead(sensitivity: Sensitivity) -> TrackerConfiguration {
        var c = learnedHead
        switch sensitivity {
        case .low: (c.onThreshold, c.smoothingTime) = (0.50, 0.25)
        case .normal: break
        case .high: (c.onThreshold, c.smoothingTime) = (0.35, 0.15)
        }
        c.offThreshold = c.onThreshold / 2
        return c
    }

    public init(onThreshold: Float, offThreshold: Float, smoothingTime: Double, minimumOnTime: Double, holdTime: Double,
                fastOnThreshold: Float? = nil) {
        self.onThreshold = onThreshold; self.offThreshold = offThreshold
        self.smoothingTime = smoothingTime; self.minimumOnTime = minimumOnTime; self.holdTime = holdTime
        self.fastOnThreshold = fastOnThreshold
    }

    /// Checks the ranges (0 <= off <= on <= 1, non-negative finite times) and says what is wrong.
    public func validate() throws {
        guard offThreshold >= 0, onThreshold <= 1, offThreshold <= onThreshold else {
            throw TrackerError.invalidConfiguration("thresholds need 0 <= off (\(offThreshold)) <= on (\(onThreshold)) <= 1")
        }
        for (name, v) in [("smoothingTime", smoothingTime), ("minimumOnTime", minimumOnTime), ("holdTime", holdTime)]
        where !(v >= 0 && v.isFinite) {
            throw TrackerError.invalidConfiguration("\(name) must be a non-negative number of seconds, got \(v)")
        }
        if let f = fastOnThreshold, !(f >= 0 && f <= 1) {
            throw TrackerError.invalidConfiguration("fastOnThreshold must be within 0...1, got \(f)")
        }
    }
}

/// How readily a class is shown (`--sensitivity`): three measured points of the trade-off
/// between hearing a source and naming classes that are not there, for the learned presence head.
///
/// Picked from a grid of tracker settings by rules written before the test clips were run with them
/// (training/reports/listening.md, "Thirteenth session"), on 329 clips of training recordings held
/// out in four folds (pooled, class-balanced recall / wrong classes per clip / share heard within
/// 0.4 s): `low` 0.813 / 0.76 / 0.530, `normal` (the default) 0.840 / 0.90 / 0.535, `high`
/// 0.891 / 1.78 / 0.570.
public enum Sensitivity: String, CaseIterable, Sendable, Codable {
    /// Fewer false classes: on-threshold 0.50, smoothing 0.25 s.
    case low
    /// The default: on-threshold 0.45, smoothing 0.25 s.
    case normal
    /// Hears more and sooner, and names more wrong classes (1.4-1.8 per clip where `normal`
    /// names 0.9-1.0): on-threshold 0.35, smoothing 0.15 s.
    case high

    /// The next setting in the window's V-key cycle: low -> normal -> high -> low.
    public var next: Sensitivity {
        switch self { case .low: .normal; case .normal: .high; case .high: .low }
    }

    /// What the setting does, in a few words (the window's notice when V changes it).
    public var summary: String {
        switch self {
        case .low: "fewer false classes"
        case .normal: "the default"
        case .high: "shows more classes, and more wrong ones"
        }
    }
}

/// A tracker setting that makes no sense.
public enum TrackerError: Error, CustomStringConvertible, Equatable {
    case invalidConfiguration(String)
    public var description: String {
        switch self { case .invalidConfiguration(let d): "invalid tracker configuration: \(d)" }
    }
}

/// Per-class presence over time: score smoothing (EMA), on/off thresholds with hysteresis, a
/// minimum on-time and a hold time. A value type with no I/O: feed it one score vector per
/// analysis hop with the stream time at the end of the window.
///
/// ```swift
/// var tracker = try ClassTracker(classCount: vocabulary.count)
/// tracker.update(scores: classScores, time: 3.42)
/// for i in tracker.activeIndices { print(vocabulary.classes[i].name, tracker.states[i].smoothed) }
/// ```
///
/// Per class and update at time t (dt since the previous update):
/// 1. smoothed += a * (score - smoothed), a = 1 - exp(-dt / smoothingTime) (first update: smoothed = score);
/// 2. inactive and smoothed >= onThreshold, or its `fast` score (the onset path's tiled patch,
///    when given) >= fastOnThreshold: becomes active (`activeSince` = t);
/// 3. active: while smoothed >= offThreshold, `lastAbove` = t; it becomes inactive once
///    smoothed < offThreshold, t - lastAbove >= holdTime and t - activeSince >= minimumOnTime.
/// Scores that are not finite count as 0; time going backwards counts as dt = 0. An ignored class
/// (`ignore`) scores 0 and never becomes active, by either rule.
public struct ClassTracker: Sendable {
    /// The tracked state of one class.
    public struct State: Sendable, Equatable {
        /// Smoothed score in [0, 1].
        public var smoothed: Float = 0
        public var active = false
        /// Stream time the class last became active.
        public var activeSince: Double = 0
        /// Last stream time its smoothed score was at or above `offThreshold` while active.
        public var lastAbove: Double = 0
    }

    public private(set) var configuration: TrackerConfiguration
    /// One state per class, in vocabulary order.
    public private(set) var states: [State]
    /// Stream time of the last update (nil before the first).
    public private(set) var time: Double?
    /// Classes that never turn on (`--ignore`, `--only`), in vocabulary order: their scores count
    /// as 0 and the onset path's fast rule skips them.
    public private(set) var ignored: [Bool]

    public init(classCount: Int, configuration: TrackerConfiguration = TrackerConfiguration()) throws {
        try configuration.validate()
        self.configuration = configuration
        states = Array(repeating: State(), count: classCount)
        ignored = Array(repeating: false, count: classCount)
    }

    /// From now on the classes at `indices` never turn on (one that is on turns off at once and
    /// forgets its score); every other class is tracked. Indices outside the classes are refused.
    public mutating func ignore(_ indices: Set<Int>) throws {
        if let bad = indices.first(where: { !states.indices.contains($0) }) {
            throw TrackerError.invalidConfiguration("class index \(bad) is not one of the \(states.count) classes")
        }
        for i in states.indices {
            ignored[i] = indices.contains(i)
            if ignored[i] { states[i] = State() }
        }
    }

    /// Follows `configuration` from the next update on (a live `--sensitivity` change), keeping
    /// every class's smoothed score and on/off state: an active class stays until the new
    /// off-threshold, hold and minimum on-time let it go; an inactive one turns on when its
    /// smoothed score reaches the new on-threshold.
    public mutating func reconfigure(_ configuration: TrackerConfiguration) throws {
        try configuration.validate()
        self.configuration = configuration
    }

    /// Forgets all history (e.g. when the input changes); the ignored classes stay ignored.
    public mutating func reset() {
        for i in states.indices { states[i] = State() }
        time = nil
    }

    /// Feeds one score per class (`scores.count` must equal the class count), at stream time `t`;
    /// `fast`: the onset path's scores for this hop (one per class), if it has any.
    public mutating func update(scores: UnsafeBufferPointer<Float>, fast: UnsafeBufferPointer<Float>? = nil, time t: Double) {
        precondition(scores.count == states.count, "ClassTracker.update: \(scores.count) scores for \(states.count) classes")
        precondition(fast.map { $0.count == states.count } ?? true, "ClassTracker.update: fast scores for another class count")
        let fastOn = fast == nil ? nil : configuration.fastOnThreshold
        let cfg = configuration
        let alpha: Float
        if let last = time {
            let dt = max(0, t - last)
            alpha = cfg.smoothingTime > 0 ? Float(1 - exp(-dt / cfg.smoothingTime)) : 1
        } else {
            alpha = 1
        }
        for i in states.indices {
            let raw = ignored[i] ? 0 : scores[i]
            let x: Float = raw.isFinite ? min(max(raw, 0), 1) : 0
            var s = states[i]
            s.smoothed += alpha * (x - s.smoothed)
            if !s.active {
                if !ignored[i], s.smoothed >= cfg.onThreshold || (fastOn.map { th in fast![i] >= th } ?? false) {
                    s.active = true
                    s.activeSince = t
                    s.lastAbove = t
                }
            } else if s.smoothed >= cfg.offThreshold {
                s.lastAbove = t
            } else if t - s.lastAbove >= cfg.holdTime - 1e-9, t - s.activeSince >= cfg.minimumOnTime - 1e-9 {
                s.active = false
            }
            states[i] = s
        }
        time = t
    }

    /// The onset path between hops (`OnsetConfiguration.midHop`): only the fast rule runs. Inactive
    /// classes whose `fast` score reaches `fastOnThreshold` turn on at `t`; smoothed scores, the
    /// time of the last update and active classes are left alone (nothing turns off here).
    /// Returns whether a class turned on. Without a `fastOnThreshold` it does nothing.
    @discardableResult
    public mutating func fastOnly(fast: UnsafeBufferPointer<Float>, time t: Double) -> Bool {
        precondition(fast.count == states.count, "ClassTracker.fastOnly: \(fast.count) scores for \(states.count) classes")
        guard let th = configuration.fastOnThreshold else { return false }
        var changed = false
        for i in states.indices where !states[i].active && !ignored[i] && fast[i] >= th {
            states[i].active = true
            states[i].activeSince = t
            states[i].lastAbove = t
            changed = true
        }
        return changed
    }

    /// Allocating-free convenience for arrays.
    public mutating func update(scores: [Float], time t: Double) {
        scores.withUnsafeBufferPointer { update(scores: $0, time: t) }
    }

    /// Whether class `i` is active.
    public func isActive(_ i: Int) -> Bool { states[i].active }

    /// Indices of the active classes, highest smoothed score first (allocates).
    public var activeIndices: [Int] {
        states.indices.filter { states[$0].active }.sorted { states[$0].smoothed > states[$1].smoothed }
    }
}

// Onsets out of quiet, and the tiled patch that lets YAMNet name a new source early.
//
// Mirrors training/avgas/presence_onset.py (`onsets`, `tiled_patches`), where the settings were
// chosen on the validation clips (training/reports/listening.md, "Onset path").
import Foundation

/// Settings of `OnsetDetector`. Levels are in dB of the mean mel magnitude of a log-mel frame.
///
/// Defaults (chosen on the dataset's VALIDATION clips; the detector itself was not tuned much:
/// jumps of 9-20 dB and minimum lengths of 16-32 frames gave the same recall and latency):
/// - `jumpDB` 12: an onset is a frame more than 12 dB above the running floor;
/// - `riseDBPerFrame` 0.02: the floor follows the level down at once and up by 2 dB per second,
///   so a steady sound does not become the floor within the second after its onset;
/// - `rearmFrames` 30: after an onset, the next one needs 0.3 s below floor + jump / 2 first;
/// - `preFrames` 0: the tiled segment starts at the onset frame (seventh session: 0 instead of 2,
///   together with `midHop`; see below);
/// - `minimumFrames` 24: no tiled patch from less than 0.24 s of audio (YAMNet names little from
///   shorter pieces; on val 16 frames gave the same latency with more wrong classes).
/// - `fill` `.both`: the post-onset frames fill one patch repeated end to end and one mirrored
///   (forward and time-reversed copies alternating), and a class takes the larger of its two
///   tiled scores. On val (fifth session) the share of detected clips heard within 0.4 s rose from
///   0.26 to 0.37 (class-balanced) at equal recall, 0.97 vs 0.95 wrong classes per clip.
/// - `midHop` true: while a tiled patch exists, it is also scored midway between hops (50 ms
///   after a 100 ms hop) and only the fast-on rule runs there (`ClassTracker.fastOnly`), so a
///   confident new source need not wait for the next hop. Chosen with `preFrames` 0 by a rule
///   written before the grid was run (training/reports/listening.md, seventh session): on val
///   the class-balanced share of detected clips heard within 0.4 s rose from 0.369 to 0.444 at
///   equal recall (0.867) and 0.98 vs 0.97 wrong classes per clip.
public struct OnsetConfiguration: Sendable, Equatable, Codable {
    public var jumpDB: Double = 12
    public var riseDBPerFrame: Double = 0.02
    public var rearmFrames = 30
    public var preFrames = 0
    public var minimumFrames = 24
    public var fill: OnsetFill = .both
    public var midHop = true

    public init() {}
}

/// How the frames since an onset fill a whole patch (`OnsetDetector.fill`).
public enum OnsetFill: String, Sendable, Equatable, Codable, CaseIterable {
    /// The segment end to end (numpy: np.tile).
    case repeated = "repeat"
    /// Forward and time-reversed copies alternating, the last one forward: no seam jumps from the
    /// newest frame back to the onset.
    case mirrored = "mirror"
    /// Both patches; each class takes the larger of the two scores (two YAMNet forwards).
    case both

    /// The single fills (`mirrored` flags) whose patches are scored.
    public var patches: [Bool] {
        switch self {
        case .repeated: return [false]
        case .mirrored: return [true]
        case .both: return [false, true]
        }
    }
}

/// A causal onset detector over log-mel frames, and the span of frames a tiled patch is made of.
///
/// Per frame t with level L (dB): floor = min(L, floor + rise) (the first frame sets the floor);
/// if armed and L > floor + jump, frame t is an onset (disarmed); while disarmed, `rearmFrames`
/// consecutive frames below floor + jump / 2 re-arm it.
///
/// ```swift
/// var onsets = OnsetDetector()
/// onsets.push(frame: melFrame, index: f)                // every frame, in order
/// if let span = onsets.tiledSpan(endingAt: f, patchFrames: 96) { /* tile frames span into a patch */ }
/// ```
public struct OnsetDetector: Sendable {
    public let configuration: OnsetConfiguration
    /// Frame index of the latest onset (nil before the first, or after `reset`).
    public private(set) var lastOnset: Int?
    private var floor: Double?
    private var armed = true
    private var quiet = 0

    public init(configuration: OnsetConfiguration = OnsetConfiguration()) {
        self.configuration = configuration
    }

    /// Forgets everything (a gap in the audio: frames before it must not be tiled with later ones).
    public mutating func reset() {
        lastOnset = nil
        floor = nil
        armed = true
        quiet = 0
    }

    /// Level of one log-mel frame: 20 log10(mean_m exp(frame[m])) dB (double precision).
    public static func level(_ frame: UnsafeBufferPointer<Float>) -> Double {
        var sum = 0.0
        for v in frame { sum += exp(Double(v)) }
        return 20 / log(10.0) * log(sum / Double(max(1, frame.count)) + 1e-12)
    }

    /// Feeds frame number `index` ([melBands] log-mel). Frames must come in order.
    public mutating func push(frame: UnsafeBufferPointer<Float>, index: Int) {
        let c = configuration
        let x = Self.level(frame)
        let f = min(x, (floor ?? x) + c.riseDBPerFrame)
        floor = f
        if armed && x > f + c.jumpDB {
            lastOnset = index
            armed = false
            quiet = 0
        } else if !armed {
            quiet = x < f + c.jumpDB / 2 ? quiet + 1 : 0
            if quiet >= c.rearmFrames { armed = true }
        }
    }

    /// The frames a tiled patch for a hop ending at frame `last` is made of: from `preFrames`
    /// before the latest onset to `last`, when that is at least `minimumFrames` and fewer than
    /// `patchFrames` frames (afterwards the ordinary window holds only post-onset audio).
    public func tiledSpan(endingAt last: Int, patchFrames: Int) -> ClosedRange<Int>? {
        guard let o = lastOnset, o <= last else { return nil }
        let start = max(0, o - configuration.preFrames)
        let n = last - start + 1
        guard n >= configuration.minimumFrames, n < patchFrames else { return nil }
        return start...last
    }

    /// Fills `patch` [patchFrames][bands] with `segment` [count][bands] repeated end to end so
    /// that the patch ends with the segment's last frame (numpy: np.tile(segment, reps)[-patchFrames:]).
    public static func tile(segment: UnsafePointer<Float>, count: Int, bands: Int,
                            into patch: UnsafeMutablePointer<Float>, patchFrames: Int) {
        fill(segment: segment, count: count, bands: bands, into: patch, patchFrames: patchFrames, mirrored: false)
    }

    /// Like `tile`, or with `mirrored` the copies alternate forward and time-reversed, the last
    /// (newest) one forward (presence_onset.py `fill(seg, "mirror")`): copy k of the reps counted
    /// from the end is reversed when k is odd.
    public static func fill(segment: UnsafePointer<Float>, count: Int, bands: Int,
                            into patch: UnsafeMutablePointer<Float>, patchFrames: Int, mirrored: Bool) {
        precondition(count > 0, "OnsetDetector.fill: empty segment")
        let reps = (patchFrames + count - 1) / count
        let base = reps * count - patchFrames
        for j in 0..<patchFrames {
            let c = base + j
            let r = c % count
            let reversed = mirrored && (reps - 1 - c / count) % 2 == 1
            (patch + j * bands).update(from: segment + (reversed ? count - 1 - r : r) * bands, count: bands)
        }
    }
}

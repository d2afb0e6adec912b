import XCTest
@testable import Listening

/// The onset detector, the tiled patch and the tracker's fast-on rule (the onset path).
final class OnsetTests: XCTestCase {
    /// A log-mel frame whose level is `db` (all 64 bands equal: level = 20 log10(exp(v)) = 8.686 v).
    func frame(_ db: Double) -> [Float] { [Float](repeating: Float(db / (20 / log(10.0))), count: 64) }

    func push(_ levels: [Double], into d: inout OnsetDetector) -> [Int?] {
        levels.enumerated().map { i, db in
            frame(db).withUnsafeBufferPointer { d.push(frame: $0, index: i) }
            return d.lastOnset
        }
    }

    func testLevelIsMeanMelMagnitudeInDecibels() {
        XCTAssertEqual(frame(-40).withUnsafeBufferPointer { OnsetDetector.level($0) }, -40, accuracy: 1e-4)
        // Mean of the magnitudes, not of the logs: one band 20 dB up, 63 at -60 dB.
        var f = frame(-60)
        f[0] = Float(-40 / (20 / log(10.0)))
        let expected = 20 * log10((0.01 + 63 * 0.001) / 64)
        XCTAssertEqual(f.withUnsafeBufferPointer { OnsetDetector.level($0) }, expected, accuracy: 1e-4)
    }

    func testOnsetAfterQuietAndNotDuringASteadySound() {
        var d = OnsetDetector()
        // 50 quiet frames at -60 dB, then a source at -30 dB for 100 frames.
        let out = push(Array(repeating: -60, count: 50) + Array(repeating: -30, count: 100), into: &d)
        XCTAssertNil(out[49])
        XCTAssertEqual(out[50], 50)
        XCTAssertEqual(out[149], 50)          // the steady source is no new onset (the floor rises 2 dB/s only)
        // A jump of less than 12 dB is no onset.
        var e = OnsetDetector()
        XCTAssertNil(push(Array(repeating: -60, count: 30) + Array(repeating: -50, count: 30), into: &e).last!)
    }

    func testRearmsOnlyAfterQuiet() {
        var d = OnsetDetector()
        // Onset at 10; back to quiet for 20 frames (< 30: not re-armed); loud again at 40: still the
        // onset of frame 10. Then 40 quiet frames re-arm it, and the next sound is an onset.
        let levels = Array(repeating: -60.0, count: 10) + Array(repeating: -30, count: 10) + Array(repeating: -60, count: 20)
            + Array(repeating: -30, count: 10) + Array(repeating: -60, count: 40) + Array(repeating: -30, count: 5)
        let out = push(levels, into: &d)
        XCTAssertEqual(out[45], 10)
        XCTAssertEqual(out[90], 90)
        d.reset()
        XCTAssertNil(d.lastOnset)
    }

    func testTiledSpanBounds() {
        var d = OnsetDetector()
        XCTAssertEqual(d.configuration.preFrames, 0)
        _ = push(Array(repeating: -60, count: 100) + Array(repeating: -20, count: 200), into: &d)
        XCTAssertEqual(d.lastOnset, 100)
        // The default: from the onset frame; at least 24 and fewer than 96 frames.
        XCTAssertNil(d.tiledSpan(endingAt: 122, patchFrames: 96))           // 23 frames
        XCTAssertEqual(d.tiledSpan(endingAt: 123, patchFrames: 96), 100...123)
        XCTAssertEqual(d.tiledSpan(endingAt: 194, patchFrames: 96), 100...194)  // 95 frames
        XCTAssertNil(d.tiledSpan(endingAt: 195, patchFrames: 96))
        // With 2 frames before the onset (the fourth to sixth sessions' setting).
        var c = OnsetConfiguration()
        c.preFrames = 2
        d = OnsetDetector(configuration: c)
        _ = push(Array(repeating: -60, count: 100) + Array(repeating: -20, count: 200), into: &d)
        XCTAssertNil(d.tiledSpan(endingAt: 120, patchFrames: 96))           // 23 frames
        XCTAssertEqual(d.tiledSpan(endingAt: 121, patchFrames: 96), 98...121)
        XCTAssertEqual(d.tiledSpan(endingAt: 192, patchFrames: 96), 98...192)  // 95 frames
        XCTAssertNil(d.tiledSpan(endingAt: 193, patchFrames: 96))           // 96: the ordinary window is all post-onset
        XCTAssertNil(d.tiledSpan(endingAt: 90, patchFrames: 96))            // before the onset
    }

    /// Tiling repeats the segment so that the patch ends with its last frame (np.tile(...)[-96:]).
    func testTileEndsWithTheNewestFrame() {
        let bands = 2, n = 40, frames = 96
        let segment = (0..<(n * bands)).map { Float($0 / bands) }      // frame k holds the value k
        var patch = [Float](repeating: -1, count: frames * bands)
        segment.withUnsafeBufferPointer { s in
            patch.withUnsafeMutableBufferPointer {
                OnsetDetector.tile(segment: s.baseAddress!, count: n, bands: bands, into: $0.baseAddress!, patchFrames: frames)
            }
        }
        // 3 repetitions = 120 frames, the last 96 kept: starts at frame 24 of the first copy.
        let firstFrames = (0..<frames).map { patch[$0 * bands] }
        XCTAssertEqual(firstFrames, (24..<120).map { Float($0 % n) })
        XCTAssertEqual(patch[(frames - 1) * bands + 1], Float(n - 1))
    }

    /// Mirrored fill: copies alternate forward / reversed, the newest copy forward, so there is no
    /// seam from the newest frame back to the onset (presence_onset.py fill(seg, "mirror"):
    /// for 5 frames into 12, [3 4 | 4 3 2 1 0 | 0 1 2 3 4]).
    /// `OnsetDetector.fill` of `segment` (`count` frames of `bands` values) into a patch of
    /// `frames` frames, the patch first set to -1.
    private func filled(_ segment: [Float], count n: Int, bands: Int, frames: Int, mirrored: Bool) -> [Float] {
        var patch = [Float](repeating: -1, count: frames * bands)
        segment.withUnsafeBufferPointer { s in
            patch.withUnsafeMutableBufferPointer {
                OnsetDetector.fill(segment: s.baseAddress!, count: n, bands: bands, into: $0.baseAddress!,
                                   patchFrames: frames, mirrored: mirrored)
            }
        }
        return patch
    }

    func testMirroredFill() {
        let bands = 3, n = 5, frames = 12
        let segment = (0..<(n * bands)).map { Float($0 / bands) }
        let patch = filled(segment, count: n, bands: bands, frames: frames, mirrored: true)
        XCTAssertEqual((0..<frames).map { patch[$0 * bands] }, [3, 4, 4, 3, 2, 1, 0, 0, 1, 2, 3, 4])
        XCTAssertEqual((0..<frames).map { patch[$0 * bands + bands - 1] }, [3, 4, 4, 3, 2, 1, 0, 0, 1, 2, 3, 4])
        // Not mirrored, `fill` is `tile`.
        let repeated = filled(segment, count: n, bands: bands, frames: frames, mirrored: false)
        var tiled = patch
        segment.withUnsafeBufferPointer { s in
            tiled.withUnsafeMutableBufferPointer {
                OnsetDetector.tile(segment: s.baseAddress!, count: n, bands: bands, into: $0.baseAddress!, patchFrames: frames)
            }
        }
        XCTAssertEqual(repeated, tiled)
        XCTAssertEqual((0..<frames).map { repeated[$0 * bands] }, [3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
        XCTAssertEqual(OnsetConfiguration().fill, .both)
        XCTAssertEqual(OnsetFill.both.patches, [false, true])
    }

    func testTrackerFastOn() throws {
        let c = TrackerConfiguration(onThreshold: 0.5, offThreshold: 0.25, smoothingTime: 1.0, minimumOnTime: 0.5,
                                     holdTime: 0.5, fastOnThreshold: 0.9)
        var t = try ClassTracker(classCount: 2, configuration: c)
        t.update(scores: [0, 0], time: 0.1)
        // Smoothed scores stay low (0.09), but class 0's fast score reaches 0.9: on at once; class 1's 0.85 does not.
        let scores: [Float] = [1, 1], fast: [Float] = [0.95, 0.85]
        scores.withUnsafeBufferPointer { s in fast.withUnsafeBufferPointer { t.update(scores: s, fast: $0, time: 0.2) } }
        XCTAssertTrue(t.isActive(0))
        XCTAssertFalse(t.isActive(1))
        XCTAssertLessThan(t.states[0].smoothed, 0.5)
        // Without fast scores (no onset patch this hop) the rule is the ordinary one.
        var u = try ClassTracker(classCount: 1, configuration: c)
        u.update(scores: [0.95], time: 0.1)
        XCTAssertTrue(u.isActive(0))   // the first update sets smoothed = score
        XCTAssertThrowsError(try ClassTracker(classCount: 1, configuration: TrackerConfiguration(
            onThreshold: 0.5, offThreshold: 0.25, smoothingTime: 0, minimumOnTime: 0, holdTime: 0, fastOnThreshold: 1.5)))
    }

    /// Midway between hops only the fast rule runs: a class whose tiled score reaches the
    /// threshold turns on at that time; smoothed scores and the update clock stay as they were,
    /// and nothing turns off there.
    func testTrackerFastOnlyBetweenHops() throws {
        let c = TrackerConfiguration(onThreshold: 0.5, offThreshold: 0.25, smoothingTime: 1.0, minimumOnTime: 0,
                                     holdTime: 0, fastOnThreshold: 0.9)
        var t = try ClassTracker(classCount: 3, configuration: c)
        t.update(scores: [0.2, 0.6, 0], time: 1.0)          // class 1 on through its smoothed score
        XCTAssertTrue(t.isActive(1))
        let before = t.states.map(\.smoothed)
        let fast: [Float] = [0.95, 0.0, 0.89]
        let changed = fast.withUnsafeBufferPointer { t.fastOnly(fast: $0, time: 1.05) }
        XCTAssertTrue(changed)
        XCTAssertTrue(t.isActive(0))
        XCTAssertEqual(t.states[0].activeSince, 1.05)
        XCTAssertTrue(t.isActive(1), "a low tiled score does not turn a class off")
        XCTAssertFalse(t.isActive(2))
        XCTAssertEqual(t.states.map(\.smoothed), before)
        XCTAssertEqual(t.time, 1.0)
        XCTAssertFalse(fast.withUnsafeBufferPointer { t.fastOnly(fast: $0, time: 1.07) }, "nothing new turns on")
        // The next hop's smoothing step spans the whole 100 ms since the last hop.
        t.update(scores: [0.2, 0.6, 0], time: 1.1)
        XCTAssertEqual(t.states[0].smoothed, 0.2, accuracy: 1e-6)
        // Without a fast-on threshold there is no onset path: nothing happens.
        var u = try ClassTracker(classCount: 1, configuration: TrackerConfiguration())
        XCTAssertFalse([Float(1)].withUnsafeBufferPointer { u.fastOnly(fast: $0, time: 0.5) })
        XCTAssertFalse(u.isActive(0))
    }

    /// The floor follows the level down at once: a stream that starts loud (the floor set high by
    /// the first frames) still detects an onset out of the quiet that follows.
    func testFloorFollowsTheLevelDownAfterALoudStart() {
        var d = OnsetDetector()
        // 20 loud frames (no onset: the first frame sets the floor), 50 quiet, then a source.
        let out = push(Array(repeating: -20, count: 20) + Array(repeating: -60, count: 50) + Array(repeating: -30, count: 10), into: &d)
        XCTAssertNil(out[69], "a loud start is no onset")
        XCTAssertEqual(out[70], 70, "the source after the quiet is an onset")
    }

    /// Re-arming needs `rearmFrames` CONSECUTIVE quiet frames: a loud frame restarts the count.
    func testRearmCountRestartsOnALoudFrame() {
        var d = OnsetDetector()
        // Onset at 10; then 20 quiet, 1 loud, 20 quiet (40 quiet in all, never 30 in a row), then loud.
        let levels = Array(repeating: -60.0, count: 10) + Array(repeating: -30, count: 10) + Array(repeating: -60, count: 20)
            + [-30] + Array(repeating: -60, count: 20) + Array(repeating: -30, count: 5)
        let out = push(levels, into: &d)
        XCTAssertEqual(out.last!, 10, "not re-armed: no new onset")
    }

    /// `reset` re-arms the detector: after a gap in the audio the next source is an onset at once,
    /// without first waiting for `rearmFrames` quiet frames.
    func testResetRearms() {
        var d = OnsetDetector()
        _ = push(Array(repeating: -60, count: 10) + Array(repeating: -30, count: 10), into: &d)
        XCTAssertEqual(d.lastOnset, 10)
        d.reset()
        let out = push(Array(repeating: -60, count: 5) + Array(repeating: -30, count: 3), into: &d)
        XCTAssertEqual(out[5], 5)
    }

    /// Mirrored fill with an EVEN number of copies (here 2): the newest copy is still forward and
    /// the one before it reversed (presence_onset.py: 5 frames into 8 -> [2 1 0 | 0 1 2 3 4]).
    /// With the default 96-frame patch this is every segment of 24 to 31 (4 copies) or 48 to 95 frames (2 copies).
    func testMirroredFillWithAnEvenNumberOfCopies() {
        let bands = 2, n = 5, frames = 8
        let segment = (0..<(n * bands)).map { Float($0 / bands) }
        let patch = filled(segment, count: n, bands: bands, frames: frames, mirrored: true)
        XCTAssertEqual((0..<frames).map { patch[$0 * bands] }, [2, 1, 0, 0, 1, 2, 3, 4])
        // The default patch: a 60-frame segment gives 2 copies, the newest forward, ending with frame 59.
        let m = 60, p = 96
        let seg = (0..<m).map { Float($0) }
        let big = filled(seg, count: m, bands: 1, frames: p, mirrored: true)
        XCTAssertEqual(Array(big[(p - m)...]), seg, "the newest copy is forward")
        XCTAssertEqual(Array(big[..<(p - m)]), (0..<(p - m)).reversed().map { Float($0) }, "the copy before it is reversed")
    }
}

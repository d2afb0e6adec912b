import XCTest
@testable import Listening

final class TrackerTests: XCTestCase {
    /// No smoothing, so the thresholds, minimum on-time and hold are seen directly.
    let raw = TrackerConfiguration(onThreshold: 0.5, offThreshold: 0.3, smoothingTime: 0, minimumOnTime: 0.5, holdTime: 0.2)

    /// Feeds one class a score sequence at a 100 ms hop and returns the active flag after each update.
    func run(_ scores: [Float], _ config: TrackerConfiguration) throws -> [Bool] {
        var t = try ClassTracker(classCount: 1, configuration: config)
        return scores.enumerated().map { i, s in
            t.update(scores: [s], time: Double(i + 1) * 0.1)
            return t.isActive(0)
        }
    }

    func testHysteresisBetweenOnAndOffThresholds() throws {
        let c = TrackerConfiguration(onThreshold: 0.5, offThreshold: 0.3, smoothingTime: 0, minimumOnTime: 0, holdTime: 0)
        // 0.45 never turns it on; 0.6 does; 0.35 (between thresholds) keeps it; 0.25 turns it off; 0.45 does not turn it back on.
        XCTAssertEqual(try run([0.45, 0.6, 0.35, 0.4, 0.25, 0.45], c), [false, true, true, true, false, false])
    }

    /// A new configuration mid-stream keeps every class's state: an active class stays on until
    /// the new off-threshold lets it go, an inactive one turns on at the new on-threshold.
    func testReconfigureKeepsTheTrackedState() throws {
        let strict = TrackerConfiguration(onThreshold: 0.6, offThreshold: 0.4, smoothingTime: 0, minimumOnTime: 0, holdTime: 0)
        let loose = TrackerConfiguration(onThreshold: 0.3, offThreshold: 0.1, smoothingTime: 0, minimumOnTime: 0, holdTime: 0)
        var t = try ClassTracker(classCount: 2, configuration: strict)
        t.update(scores: [0.8, 0.5], time: 0.1)
        XCTAssertEqual(t.activeIndices, [0])            // 0.5 is below strict's 0.6
        t.update(scores: [0.3, 0.5], time: 0.2)
        XCTAssertEqual(t.activeIndices, [])             // 0.3 is below strict's off 0.4
        t.update(scores: [0.8, 0.5], time: 0.3)
        try t.reconfigure(loose)
        XCTAssertEqual(t.configuration, loose)
        XCTAssertEqual(t.activeIndices, [0])            // nothing changes until the next update
        t.update(scores: [0.3, 0.5], time: 0.4)
        XCTAssertEqual(Set(t.activeIndices), [0, 1])    // 0.3 keeps class 0 (off 0.1); 0.5 turns class 1 on
        XCTAssertEqual(t.states[0].activeSince, 0.3)    // still the same activation
        var bad = loose
        bad.offThreshold = 0.9
        XCTAssertThrowsError(try t.reconfigure(bad))
        XCTAssertEqual(t.configuration, loose)
    }

    /// An ignored class never turns on, by its score or the onset path's fast rule; one that is
    /// on when ignored turns off at once; the others are tracked as before, and a reset keeps
    /// the ignored set.
    func testIgnoredClassesNeverTurnOn() throws {
        let c = TrackerConfiguration(onThreshold: 0.5, offThreshold: 0.3, smoothingTime: 0, minimumOnTime: 1, holdTime: 1,
                                     fastOnThreshold: 0.9)
        var t = try ClassTracker(classCount: 3, configuration: c)
        t.update(scores: [0.8, 0.1, 0.1], time: 0.1)
        XCTAssertEqual(t.activeIndices, [0])
        try t.ignore([0, 2])
        XCTAssertEqual(t.activeIndices, [])              // off at once, despite minimum on-time and hold
        XCTAssertEqual(t.ignored, [true, false, true])
        [Float](repeating: 0.95, count: 3).withUnsafeBufferPointer { fast in
            [Float](repeating: 0.8, count: 3).withUnsafeBufferPointer { t.update(scores: $0, fast: fast, time: 0.2) }
            XCTAssertFalse(t.fastOnly(fast: fast, time: 0.25))   // class 1 is already on; 0 and 2 are ignored
        }
        XCTAssertEqual(t.activeIndices, [1])
        XCTAssertEqual(t.states[0].smoothed, 0)
        t.reset()
        t.update(scores: [1, 1, 1], time: 0.1)
        XCTAssertEqual(t.activeIndices, [1])
        XCTAssertThrowsError(try t.ignore([3]))
        try t.ignore([])
        t.update(scores: [1, 1, 1], time: 0.2)
        XCTAssertEqual(Set(t.activeIndices), [0, 1, 2])
    }

    func testMinimumOnTime() throws {
        let c = TrackerConfiguration(onThreshold: 0.5, offThreshold: 0.3, smoothingTime: 0, minimumOnTime: 0.5, holdTime: 0)
        // On at t = 0.1 after one loud window; stays on through t = 0.5 despite silence, off at t = 0.6.
        XCTAssertEqual(try run([0.9, 0, 0, 0, 0, 0, 0], c), [true, true, true, true, true, false, false])
    }

    func testHoldBridgesShortGaps() throws {
        let c = TrackerConfiguration(onThreshold: 0.5, offThreshold: 0.3, smoothingTime: 0, minimumOnTime: 0, holdTime: 0.2)
        // A one-hop dip (t = 0.2) is bridged; it leaves at t = 0.5, 0.2 s after the last score above 0.3 (t = 0.3).
        XCTAssertEqual(try run([0.9, 0.1, 0.9, 0.1, 0.1, 0.1], c), [true, true, true, true, false, false])
        XCTAssertEqual(try run([0.9, 0.1, 0.1, 0.1], raw), [true, true, true, true])  // minimum on-time 0.5 still holds
    }

    func testSmoothingDampsASingleOutlierAndFollowsSustainedScores() throws {
        let c = TrackerConfiguration(onThreshold: 0.5, offThreshold: 0.3, smoothingTime: 0.1, minimumOnTime: 0, holdTime: 0)
        var t = try ClassTracker(classCount: 1, configuration: c)
        t.update(scores: [0], time: 0.1)
        t.update(scores: [0.7], time: 0.2)   // a = 1 - e^-1 = 0.632: smoothed 0.442 < 0.5
        XCTAssertEqual(t.states[0].smoothed, 0.7 * Float(1 - exp(-1.0)), accuracy: 1e-5)
        XCTAssertFalse(t.isActive(0))
        t.update(scores: [0.7], time: 0.3)   // 0.442 + 0.632 * (0.7 - 0.442) = 0.605
        XCTAssertTrue(t.isActive(0))
        // A longer step weighs the new score more (time-based, so skipped hops are handled).
        var u = try ClassTracker(classCount: 1, configuration: c)
        u.update(scores: [0], time: 0)
        u.update(scores: [1], time: 1.0)
        XCTAssertGreaterThan(u.states[0].smoothed, 0.9999)
    }

    func testSeveralClassesOrderingResetAndBadInput() throws {
        var t = try ClassTracker(classCount: 3, configuration: raw)
        t.update(scores: [0.6, 0.1, 0.9], time: 0.1)
        XCTAssertEqual(t.activeIndices, [2, 0])
        t.update(scores: [.nan, .infinity, 2], time: 0.2)  // non-finite counts as 0, scores clamp to [0, 1]
        XCTAssertEqual(t.states[1].smoothed, 0)
        XCTAssertEqual(t.states[2].smoothed, 1)
        t.update(scores: [0.6, 0.6, 0.6], time: 0.15)      // time going backwards: dt = 0, no crash
        XCTAssertTrue(t.isActive(1))
        t.reset()
        XCTAssertEqual(t.activeIndices, [])
        XCTAssertNil(t.time)
    }

    func testConfigurationValidation() {
        XCTAssertNoThrow(try TrackerConfiguration().validate())
        let bad = [
            TrackerConfiguration(onThreshold: 0.3, offThreshold: 0.5, smoothingTime: 0, minimumOnTime: 0, holdTime: 0),
            TrackerConfiguration(onThreshold: 1.5, offThreshold: 0.5, smoothingTime: 0, minimumOnTime: 0, holdTime: 0),
            TrackerConfiguration(onThreshold: 0.5, offThreshold: 0.3, smoothingTime: -1, minimumOnTime: 0, holdTime: 0),
            TrackerConfiguration(onThreshold: 0.5, offThreshold: 0.3, smoothingTime: 0, minimumOnTime: .nan, holdTime: 0),
            TrackerConfiguration(onThreshold: 0.5, offThreshold: 0.3, smoothingTime: 0, minimumOnTime: 0, holdTime: .infinity),
        ]
        for c in bad {
            XCTAssertThrowsError(try ClassTracker(classCount: 1, configuration: c)) { error in
                guard case TrackerError.invalidConfiguration = error else { return XCTFail("\(error)") }
            }
        }
    }

    /// Time going backwards counts as dt = 0 also WITH smoothing: the smoothed score stays put
    /// (a negative step would push it away from the score, above 0.5 here).
    func testTimeGoingBackwardsDoesNotMoveTheSmoothedScore() throws {
        let c = TrackerConfiguration(onThreshold: 0.5, offThreshold: 0.3, smoothingTime: 0.25, minimumOnTime: 0, holdTime: 0)
        var t = try ClassTracker(classCount: 1, configuration: c)
        t.update(scores: [0.4], time: 1.0)
        t.update(scores: [0], time: 0.9)
        XCTAssertEqual(t.states[0].smoothed, 0.4, accuracy: 1e-6)
        XCTAssertFalse(t.isActive(0))
    }

    func testNegativeOffThresholdIsRefused() {
        let c = TrackerConfiguration(onThreshold: 0.5, offThreshold: -0.1, smoothingTime: 0, minimumOnTime: 0, holdTime: 0)
        XCTAssertThrowsError(try c.validate()) { error in
            guard case TrackerError.invalidConfiguration(let d) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(d.contains("off"), d)
        }
    }
}

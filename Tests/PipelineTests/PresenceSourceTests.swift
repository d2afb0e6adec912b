import Foundation
import Listening
import Pipeline
import TestSupport
import XCTest

/// Which presence source the listener uses, and its tracker defaults.
final class PresenceSourceTests: XCTestCase {
    let assets = TestPaths.repoRoot.appendingPathComponent("Assets")

    func testDefaultIsTheLearnedHeadWithItsTrackerSettings() throws {
        let listener = try SceneListener(assets: assets)
        XCTAssertEqual(listener.presence, .head)
        XCTAssertNotNil(listener.head)
        XCTAssertEqual(listener.tracker.configuration, .learnedHead)
        XCTAssertEqual(listener.tracker.configuration.fastOnThreshold, 0.9)   // the onset path is on by default
        XCTAssertTrue(listener.usesOnsetPath)
        let mapping = try SceneListener(assets: assets, presence: .yamnet)
        XCTAssertEqual(mapping.presence, .yamnet)
        XCTAssertNil(mapping.head)
        XCTAssertEqual(mapping.tracker.configuration, TrackerConfiguration())
        XCTAssertFalse(mapping.usesOnsetPath)                                  // not measured with the mapping
        var own = TrackerConfiguration()
        own.onThreshold = 0.6
        XCTAssertEqual(try SceneListener(assets: assets, tracker: own).tracker.configuration, own)
    }

    /// The presets change only the on-threshold (off = on / 2) and the smoothing time, as
    /// training/reports/listening.md ("Thirteenth session") picked them; `normal` is the default.
    func testSensitivityPresets() throws {
        XCTAssertEqual(TrackerConfiguration.learnedHead(sensitivity: .normal), .learnedHead)
        for (s, on, smoothing) in [(Sensitivity.low, Float(0.50), 0.25), (.high, 0.35, 0.15)] {
            let c = TrackerConfiguration.learnedHead(sensitivity: s)
            XCTAssertEqual(c.onThreshold, on, "\(s)")
            XCTAssertEqual(c.offThreshold, on / 2, "\(s)")
            XCTAssertEqual(c.smoothingTime, smoothing, "\(s)")
            var rest = c
            (rest.onThreshold, rest.offThreshold, rest.smoothingTime) = (0.45, 0.225, 0.25)
            XCTAssertEqual(rest, .learnedHead, "\(s) changes more than the threshold and smoothing")
            XCTAssertNoThrow(try c.validate())
        }
    }

    /// The head source combines by noisy-OR: on one (quiet, constant) patch its first-hop scores
    /// are never below the mapping's, and the head adds evidence to at least one class.
    func testHeadScoresDifferFromMapping() throws {
        let patch = [Float](repeating: -4, count: 96 * 64)
        let head = try SceneListener(assets: assets)
        let mapping = try SceneListener(assets: assets, presence: .yamnet)
        let a = try patch.withUnsafeBufferPointer { try head.analyse(patch: $0, time: 0.96) }.smoothed
        let b = try patch.withUnsafeBufferPointer { try mapping.analyse(patch: $0, time: 0.96) }.smoothed
        XCTAssertEqual(a.count, b.count)
        // Noisy-OR with the mapping: never below the mapping's score, and the head adds something.
        for k in a.indices { XCTAssertGreaterThanOrEqual(a[k], b[k] - 1e-6) }
        XCTAssertGreaterThan(zip(a, b).map { $0 - $1 }.max() ?? 0, 1e-4)
    }

    func testMissingHeadFileIsNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("presence-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("models"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for f in ["models/yamnet.safetensors", "models/yamnet_classes.txt", "classes.json"] {
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(f), withDestinationURL: assets.appendingPathComponent(f))
        }
        XCTAssertNoThrow(try SceneListener(assets: dir, presence: .yamnet))
        XCTAssertThrowsError(try SceneListener(assets: dir)) { error in
            XCTAssertTrue("\(error)".contains("presence.safetensors"), "\(error)")
        }
    }
}

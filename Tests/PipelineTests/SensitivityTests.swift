import AudioInput
import Foundation
import Listening
import Pipeline
import TestSupport
import XCTest

/// A sensitivity change in the middle of a live stream (key V): the analysis before it is
/// untouched, the hops after it follow the new tracker settings.
final class SensitivityTests: XCTestCase {
    let assets = TestPaths.repoRoot.appendingPathComponent("Assets")

    /// The demo soundscape through the real analysis path in 10 ms periods; at `switchAt`
    /// seconds of stream time the analyzer is retuned to `sensitivity` (nil: never).
    func run(switchAt: Double, to sensitivity: Sensitivity?) throws -> [(time: Double, active: [String])] {
        let audio = try FileSource(path: assets.appendingPathComponent("demo/soundscape.wav").path).readAll()
        let listener = try SceneListener(assets: assets)
        let scenes = SceneStore()
        let analyzer = Analyzer(hopMilliseconds: 100, listener: listener, spectrogram: SpectrogramStore(capacity: 64),
                                scenes: scenes, events: nil)
        var hops: [(time: Double, active: [String])] = []
        var seen = 0
        var switched = false
        try analyzer.consume(audio, pushSize: 160) {
            let n = analyzer.timings.hops + analyzer.timings.midHops
            if n != seen {
                seen = n
                let s = scenes.latest()
                hops.append((s.time, s.active.map(\.name)))
            }
            if let sensitivity, !switched, analyzer.streamTime >= switchAt {
                try analyzer.retune(.learnedHead(sensitivity: sensitivity))
                switched = true
                XCTAssertEqual(listener.tracker.configuration, .learnedHead(sensitivity: sensitivity))
            }
        }
        return hops
    }

    func testRetuneMidStreamChangesOnlyTheHopsAfterIt() throws {
        let normal = try run(switchAt: 12, to: nil)
        let high = try run(switchAt: 12, to: .high)
        let low = try run(switchAt: 12, to: .low)
        XCTAssertGreaterThan(normal.count, 250)
        func split(_ h: [(time: Double, active: [String])]) -> (before: [String], after: Int) {
            (h.filter { $0.time < 12 }.map { "\($0.time) \($0.active)" }, h.filter { $0.time >= 12 }.reduce(0) { $0 + $1.active.count })
        }
        let (n, h, l) = (split(normal), split(high), split(low))
        XCTAssertEqual(h.before, n.before)
        XCTAssertEqual(l.before, n.before)
        print("active class-hops after 12 s: low \(l.after), normal \(n.after), high \(h.after)")
        XCTAssertGreaterThan(h.after, n.after)
        XCTAssertLessThan(l.after, n.after)
    }

    /// With hops waiting in a batch (headless file runs), a change applies from the same point
    /// as hop by hop: the waiting hops are analysed with the old settings first.
    func testRetuneWithBatchedHopsMatchesHopByHop() throws {
        let audio = try FileSource(path: assets.appendingPathComponent("demo/soundscape.wav").path).readAll()
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        func events(batch: Int) throws -> String {
            let path = dir.appendingPathComponent("batch\(batch).jsonl").path
            let writer = try EventsWriter(path: path)
            let analyzer = Analyzer(hopMilliseconds: 100, listener: try SceneListener(assets: assets),
                                    spectrogram: SpectrogramStore(capacity: 64), scenes: SceneStore(), events: writer)
            analyzer.batchHops = batch
            var switched = false
            try analyzer.consume(audio, pushSize: 4096) {
                if !switched, analyzer.streamTime >= 12 {
                    try analyzer.retune(.learnedHead(sensitivity: .high))
                    switched = true
                }
            }
            try analyzer.flush()
            return try String(contentsOfFile: path, encoding: .utf8)
        }
        let hopByHop = try events(batch: 0)
        XCTAssertGreaterThan(hopByHop.split(separator: "\n").count, 250)
        XCTAssertEqual(try events(batch: 32), hopByHop)
    }

    /// --no-onset-path stays off across a change: the new settings keep the old fast-on rule.
    func testRetuneKeepsTheOnsetPathSetting() throws {
        var noPath = TrackerConfiguration.learnedHead
        noPath.fastOnThreshold = nil
        let listener = try SceneListener(assets: assets, tracker: noPath)
        let analyzer = Analyzer(hopMilliseconds: 100, listener: listener, spectrogram: SpectrogramStore(capacity: 64),
                                scenes: SceneStore(), events: nil)
        try analyzer.retune(.learnedHead(sensitivity: .high))
        XCTAssertNil(listener.tracker.configuration.fastOnThreshold)
        XCTAssertEqual(listener.tracker.configuration.onThreshold, 0.35)
    }
}

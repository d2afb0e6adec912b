import AudioInput
import Foundation
import Listening
import Pipeline
import TestSupport
import XCTest

/// The onset path on real held-out recordings: after 2 s of quiet noise, a source whose tiled
/// patch YAMNet names confidently turns on sooner than with the sliding window alone.
/// (Measured over all 44 clips by `avgas-bench listening`; training/reports/listening.md.)
final class OnsetPathTests: XCTestCase {
    let assets = TestPaths.repoRoot.appendingPathComponent("Assets")

    /// 2 s of Gaussian-like noise at about -60 dBFS, then the clip; returns (audio, onset time):
    /// the onset is the first 10 ms frame of the clip above -40 dBFS, as in the benchmark.
    func onsetClip(_ file: String) throws -> ([Float], Double) {
        let clip = try FileSource(path: TestPaths.fixture("ListeningTests", "clips").appendingPathComponent(file).path).readAll()
        var state: UInt64 = 12345
        let lead = (0..<32_000).map { _ -> Float in
            var s: Float = 0
            for _ in 0..<4 {   // sum of 4 uniforms: roughly Gaussian, unit variance after scaling
                state = state &* 6364136223846793005 &+ 1442695040888963407
                s += Float(state >> 40) / Float(1 << 24) - 0.5
            }
            return s * 1.732 * 1e-3
        }
        let frame = (0..<(clip.count / 160)).first { f in
            (clip[(f * 160)..<(f * 160 + 160)].map { $0 * $0 }.reduce(0, +) / 160).squareRoot() > 0.01
        } ?? 0
        return (lead + clip, Double(32_000 + frame * 160) / 16_000)
    }

    func firstDetection(_ audio: [Float], onset: Double, cls: String, listener: SceneListener) throws -> Double? {
        let hops = try OfflineAnalysis.run(audio, listener: listener)
        return hops.first { $0.time > onset && $0.active.contains { $0.name == cls } }.map { $0.time - onset }
    }

    func testOnsetPathDetectsSooner() throws {
        let withPath = try SceneListener(assets: assets)
        XCTAssertTrue(withPath.usesOnsetPath)
        var noPath = TrackerConfiguration.learnedHead
        noPath.fastOnThreshold = nil
        let without = try SceneListener(assets: assets, tracker: noPath)
        XCTAssertFalse(without.usesOnsetPath)
        for (file, cls) in [("sheep_bleating.flac", "sheep bleating"), ("playing_cello.flac", "playing cello")] {
            let (audio, onset) = try onsetClip(file)
            let fast = try XCTUnwrap(try firstDetection(audio, onset: onset, cls: cls, listener: withPath), file)
            let slow = try XCTUnwrap(try firstDetection(audio, onset: onset, cls: cls, listener: without), file)
            print(String(format: "%@: first detected %.2f s after the onset with the onset path, %.2f s without", cls, fast, slow))
            XCTAssertLessThanOrEqual(fast, 0.4, file)
            XCTAssertLessThan(fast, slow - 0.15, file)
        }
    }

    /// Midway between hops (`OnsetConfiguration.midHop`) the tiled patch can turn a class on; such
    /// a scene is published at the mid-hop's time (window end 1.025 s + k * 0.1 s at a 100 ms hop),
    /// counted apart from the hops, and it only adds classes to the previous hop's list.
    func testMidHopTurnsAClassOnBetweenHops() throws {
        let listener = try SceneListener(assets: assets)
        let (audio, onset) = try onsetClip("duck_quacking.flac")
        let hops = try OfflineAnalysis.run(audio, listener: listener)
        let isMid = { (t: Double) -> Bool in
            let k = (t - 0.975) / 0.05
            return abs(k - k.rounded()) < 1e-6 && Int(k.rounded()) % 2 == 1
        }
        let mids = hops.indices.filter { isMid(hops[$0].time) }
        XCTAssertFalse(mids.isEmpty, "the duck is named on its tiled patch between two hops")
        for i in mids {
            XCTAssertGreaterThan(hops[i].time, onset)
            guard i > 0 else { XCTFail("a mid-hop before the first hop"); continue }
            let before = Set(hops[i - 1].active.map(\.name)), now = Set(hops[i].active.map(\.name))
            XCTAssertTrue(now.isStrictSuperset(of: before), "a mid-hop only turns classes on")
        }
        XCTAssertTrue(hops[mids[0]].active.contains { $0.name == "duck quacking" })
        XCTAssertLessThan(hops[mids[0]].time - onset, 0.3)
        let regular = hops.filter { !isMid($0.time) }
        XCTAssertEqual(regular.count, (audio.count - 15_600) / 1600 + 1, "every 100 ms hop is still there")
    }

    /// The batched offline path (file replays without images) queues mid-hops with the hops in
    /// stream order: the same events as hop-by-hop analysis, mid-hop line included.
    func testMidHopsInBatchesGiveTheSameEvents() throws {
        let (audio, _) = try onsetClip("duck_quacking.flac")
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var texts: [String] = []
        var midHops: [Int] = []
        for batch in [0, 3, 7, 40] {
            let listener = try SceneListener(assets: assets)
            let path = dir.appendingPathComponent("e\(batch).jsonl").path
            let analyzer = Analyzer(hopMilliseconds: 100, listener: listener, spectrogram: SpectrogramStore(capacity: 64),
                                    scenes: SceneStore(), events: try EventsWriter(path: path))
            analyzer.batchHops = batch
            try analyzer.consume(audio, pushSize: 4096)
            try analyzer.flush()
            texts.append(try String(contentsOfFile: path, encoding: .utf8))
            midHops.append(analyzer.timings.midHops)
        }
        XCTAssertEqual(midHops[0], 1, "one class turned on between hops")
        for (i, t) in texts.enumerated().dropFirst() {
            XCTAssertEqual(texts[0], t, "batch variant \(i)")
            XCTAssertEqual(midHops[i], midHops[0])
        }
        let lines = texts[0].split(separator: "\n")
        XCTAssertEqual(lines.count, (audio.count - 15_600) / 1600 + 1 + 1, "every hop plus the mid-hop line")
    }
}

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
        for (file, cls) in [("raining.flac", "raining"), ("sheep_bleating.flac", "sheep bleating")] {
            let (audio, onset) = try onsetClip(file)
            let fast = try XCTUnwrap(try firstDetection(audio, onset: onset, cls: cls, listener: withPath), file)
            let slow = try XCTUnwrap(try firstDetection(audio, onset: onset, cls: cls, listener: without), file)
            print(String(format: "%@: first detected %.2f s after the onset with the onset path, %.2f s without", cls, fast, slow))
            XCTAssertLessThanOrEqual(fast, 0.4, file)
            XCTAssertLessThan(fast, slow - 0.15, file)
        }
    }
}

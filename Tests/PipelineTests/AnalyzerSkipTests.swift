import AudioInput
import Foundation
import Pipeline
import TestSupport
import XCTest

/// `Analyzer.skip` (live analysis fell behind and jumps to the newest audio): hops go on after the
/// gap, stream time counts the skipped audio, and a skip right after start-up (fewer than 96
/// frames produced, so the realigned first hop's window reaches before frame 0) does not fail.
final class AnalyzerSkipTests: XCTestCase {
    func testHopsContinueAfterSkips() throws {
        let demo = TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path
        let audio = try FileSource(path: demo).readAll()
        let listener = try SceneListener(assets: TestPaths.repoRoot.appendingPathComponent("Assets"))
        let scenes = SceneStore()
        let analyzer = Analyzer(hopMilliseconds: 100, listener: listener, spectrogram: SpectrogramStore(capacity: 64),
                                scenes: scenes, events: nil)
        func feed(_ range: Range<Int>) throws {
            try audio.withUnsafeBufferPointer { a in
                var o = range.lowerBound
                while o < range.upperBound {
                    let n = min(4096, range.upperBound - o)
                    try analyzer.consume(UnsafeBufferPointer(rebasing: a[o..<(o + n)]))
                    o += n
                }
            }
        }
        try feed(0..<4_800)                  // 0.3 s: 28 frames, no hop yet
        XCTAssertEqual(analyzer.timings.hops, 0)
        analyzer.skip(32_000)                // 2 s skipped right after start-up
        try feed(36_800..<(36_800 + 48_000)) // 3 s more
        let afterFirst = analyzer.timings.hops
        XCTAssertGreaterThanOrEqual(afterFirst, 29)
        XCTAssertGreaterThan(scenes.latest().time, 5.0)
        analyzer.skip(16_000)                // and once more mid-stream
        try feed(100_800..<(100_800 + 32_000))
        XCTAssertGreaterThanOrEqual(analyzer.timings.hops, afterFirst + 19)
        XCTAssertEqual(analyzer.skippedSamples, 48_000)
        XCTAssertEqual(analyzer.streamTime, Double(4_800 + 32_000 + 48_000 + 16_000 + 32_000) / 16_000, accuracy: 1e-9)
    }
}

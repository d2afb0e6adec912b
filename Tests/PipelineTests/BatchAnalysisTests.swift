import AudioInput
import Foundation
import Pipeline
import TestSupport
import XCTest

/// Batched two-thread analysis (file replays without images) gives exactly the events of
/// hop-by-hop analysis: batches of 7 (4 + 3 hops per worker) and of 40 (a worker's 20 hops in
/// YAMNet forwards of up to `Analyzer.forwardBatch` = 4 patches, taken by both workers), onset
/// patches included; and the events do not depend on how the audio is cut into pushes (one
/// 10 ms period, 1000 samples, 4096 samples as file replay reads the ring, 20000 samples).
final class BatchAnalysisTests: XCTestCase {
    func testBatchedEqualsHopByHop() throws {
        let demo = TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path
        let audio = Array(try FileSource(path: demo).readAll().prefix(16_000 * 8))
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var texts: [String] = []
        for (batch, pushSize) in [(0, 1000), (7, 1000), (40, 1000), (0, 160), (0, 4096), (7, 4096), (0, 20_000)] {
            let listener = try SceneListener(assets: TestPaths.repoRoot.appendingPathComponent("Assets"))
            let path = dir.appendingPathComponent("e\(batch).jsonl").path
            let events = try EventsWriter(path: path)
            let analyzer = Analyzer(hopMilliseconds: 100, listener: listener, spectrogram: SpectrogramStore(capacity: 64),
                                    scenes: SceneStore(), events: events)
            analyzer.batchHops = batch
            try analyzer.consume(audio, pushSize: pushSize)
            try analyzer.flush()
            texts.append(try String(contentsOfFile: path, encoding: .utf8))
            XCTAssertGreaterThan(analyzer.timings.tiledPatches, 0, "the demo starts out of quiet: onset patches")
        }
        XCTAssertEqual(texts[0].split(separator: "\n").count, 71)  // hops ending at 0.975 s + k * 0.1 s up to 8 s
        for (i, t) in texts.enumerated().dropFirst() { XCTAssertEqual(texts[0], t, "variant \(i)") }
        XCTAssertTrue(texts[0].contains("dog barking"))
    }
}

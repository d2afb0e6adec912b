import AudioInput
import Foundation
import Pipeline
import TestSupport
import XCTest

/// The listening stage on real single-source recordings held out from training (the dataset's
/// test split, one clip per class: Tests/ListeningTests/Fixtures/clips/clips.json).
final class ListeningEvaluationTests: XCTestCase {
    struct Clips: Decodable { struct Clip: Decodable { let `class`: String; let file: String }; let clips: [Clip] }

    func testSingleSourceClipsAreRecognised() throws {
        let dir = TestPaths.fixture("ListeningTests", "clips")
        let clips = try JSONDecoder().decode(Clips.self, from: Data(contentsOf: dir.appendingPathComponent("clips.json"))).clips
        XCTAssertGreaterThanOrEqual(clips.count, 40)
        let listener = try SceneListener(assets: TestPaths.repoRoot.appendingPathComponent("Assets"))
        var hits = 0, wrong = 0
        var report: [String] = []
        for c in clips {
            let audio = try FileSource(path: dir.appendingPathComponent(c.file).path).readAll()
            let hops = try OfflineAnalysis.run(audio, listener: listener)
            let heard = Set(hops.flatMap { $0.active.map(\.name) })
            let hit = heard.contains(c.class)
            hits += hit ? 1 : 0
            let others = heard.subtracting([c.class])
            wrong += others.count
            report.append("\(hit ? "ok  " : "MISS") \(c.class): heard \(heard.sorted())")
        }
        let recall = Double(hits) / Double(clips.count)
        let wrongPerClip = Double(wrong) / Double(clips.count)
        print(report.joined(separator: "\n"))
        print(String(format: "recall %.3f, wrong classes per clip %.2f over %d clips", recall, wrongPerClip, clips.count))
        // Guards against regressions at the level measured now. The listening issue's target
        // is recall >= 0.9. With the default presence source (the learned head on YAMNet
        // embeddings + the label mapping with the onset path, chosen on validation clips) these
        // plain clips measured recall 0.886 and 0.89 wrong classes per clip (0.86 without the
        // onset path; the mapping alone: 0.727 / 0.55); see
        // README, Listening quality. The bar below is a floor under the measurement, not the goal.
        XCTAssertGreaterThanOrEqual(recall, 0.85, report.joined(separator: "\n"))
        XCTAssertLessThanOrEqual(wrongPerClip, 1.0, report.joined(separator: "\n"))
    }
}

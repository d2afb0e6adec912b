import AudioInput
import Foundation
import Listening
import Pipeline
import TestSupport
import XCTest

/// The listening stage on real single-source recordings held out from training (the dataset's
/// test split, one clip per class: Tests/ListeningTests/Fixtures/clips/clips.json).
final class ListeningEvaluationTests: XCTestCase {
    struct Clips: Decodable { struct Clip: Decodable { let `class`: String; let file: String }; let clips: [Clip] }

    /// Recall, wrong classes per clip and a per-clip report for `listener` on the plain clips
    /// (a class counts as heard if it is active in any hop).
    func evaluate(_ listener: SceneListener) throws -> (recall: Double, wrongPerClip: Double, report: String) {
        let dir = TestPaths.fixture("ListeningTests", "clips")
        let clips = try JSONDecoder().decode(Clips.self, from: Data(contentsOf: dir.appendingPathComponent("clips.json"))).clips
        XCTAssertGreaterThanOrEqual(clips.count, 40)
        var hits = 0, wrong = 0
        var report: [String] = []
        for c in clips {
            let audio = try FileSource(path: dir.appendingPathComponent(c.file).path).readAll()
            let hops = try OfflineAnalysis.run(audio, listener: listener)
            let heard = Set(hops.flatMap { $0.active.map(\.name) })
            let hit = heard.contains(c.class)
            hits += hit ? 1 : 0
            wrong += heard.subtracting([c.class]).count
            report.append("\(hit ? "ok  " : "MISS") \(c.class): heard \(heard.sorted())")
        }
        return (Double(hits) / Double(clips.count), Double(wrong) / Double(clips.count), report.joined(separator: "\n"))
    }

    func testSingleSourceClipsAreRecognised() throws {
        let r = try evaluate(SceneListener(assets: TestPaths.repoRoot.appendingPathComponent("Assets")))
        print(r.report)
        print(String(format: "recall %.3f, wrong classes per clip %.2f", r.recall, r.wrongPerClip))
        // Guards against regressions at the level measured now. The listening issue's target
        // is recall >= 0.9. With the default presence source (the learned head on YAMNet
        // embeddings + the label mapping with the onset path, chosen on validation clips) these
        // plain clips measured recall 0.886 and 0.89 wrong classes per clip (0.86 without the
        // onset path; the mapping alone: 0.727 / 0.55); see
        // README, Listening quality. The bar below is a floor under the measurement, not the goal.
        XCTAssertGreaterThanOrEqual(r.recall, 0.85, r.report)
        XCTAssertLessThanOrEqual(r.wrongPerClip, 1.0, r.report)
    }

    /// `--sensitivity` moves along the trade-off it promises on the same clips: `low` names fewer
    /// wrong classes than `normal` and hears at most 0.03 less, `high` hears at least as much and
    /// names more (measured: recall 0.886 for all three; wrong classes per clip 0.80 / 0.89 / 1.36).
    func testSensitivityPresetsTradeWrongClassesForRecall() throws {
        let assets = TestPaths.repoRoot.appendingPathComponent("Assets")
        let r = try Dictionary(uniqueKeysWithValues: Sensitivity.allCases.map { s in
            (s, try evaluate(SceneListener(assets: assets, tracker: .learnedHead(sensitivity: s))))
        })
        for s in Sensitivity.allCases {
            print(String(format: "%@: recall %.3f, wrong classes per clip %.2f", s.rawValue, r[s]!.recall, r[s]!.wrongPerClip))
        }
        let (low, normal, high) = (r[.low]!, r[.normal]!, r[.high]!)
        XCTAssertGreaterThanOrEqual(low.recall, normal.recall - 0.03, low.report)
        XCTAssertLessThanOrEqual(low.wrongPerClip, normal.wrongPerClip - 0.05, low.report)
        XCTAssertGreaterThanOrEqual(high.recall, normal.recall, high.report)
        XCTAssertGreaterThanOrEqual(high.wrongPerClip, normal.wrongPerClip + 0.25, high.report)
    }
}

import Foundation
import Listening
import NeuralNet
import TestSupport
import XCTest

final class PresenceHeadTests: XCTestCase {
    let assets = TestPaths.repoRoot.appendingPathComponent("Assets")

    func vocabulary() throws -> ClassVocabulary {
        let labels = try YAMNet.loadClassNames(path: assets.appendingPathComponent("models/yamnet_classes.txt").path)
        return try ClassVocabulary(contentsOf: assets.appendingPathComponent("classes.json"), audioSetLabels: labels)
    }

    /// Parity with PyTorch on real YAMNet embeddings of 8 val-split training windows (fixture
    /// written by `training/avgas/presence.py export`): the head's probabilities and the combined
    /// "or" scores (with the same windows' label-mapping scores) within 1e-5.
    func testHeadMatchesPyTorch() throws {
        let voc = try vocabulary()
        let head = try PresenceHead(path: assets.appendingPathComponent("models/presence.safetensors").path,
                                    vocabulary: voc, embeddingSize: 1024)
        XCTAssertEqual(head.combine, .or)
        XCTAssertEqual(head.classes, voc.names)
        let f = try SafeTensorsFile(path: TestPaths.fixture("ListeningTests", "presence_golden.safetensors").path)
        let input = try f.floats("input"), mapping = try f.floats("mapping")
        let probs = try f.floats("probabilities"), combined = try f.floats("scores")
        let n = input.shape[0], c = voc.count
        XCTAssertEqual(input.shape, [n, 1024])
        XCTAssertEqual(probs.shape, [n, c])
        var maxP: Float = 0, maxS: Float = 0, spread: Float = 0
        for i in 0..<n {
            let x = Array(UnsafeBufferPointer(start: input.pointer + i * 1024, count: 1024))
            let p = head.probabilities(embedding: x)
            var s = Array(UnsafeBufferPointer(start: mapping.pointer + i * c, count: c))
            x.withUnsafeBufferPointer { e in s.withUnsafeMutableBufferPointer { head.scores(embedding: e, mapping: $0) } }
            for k in 0..<c {
                maxP = max(maxP, abs(p[k] - probs.pointer[i * c + k]))
                maxS = max(maxS, abs(s[k] - combined.pointer[i * c + k]))
                spread = max(spread, probs.pointer[i * c + k])
            }
        }
        XCTAssertLessThanOrEqual(maxP, 1e-5)
        XCTAssertLessThanOrEqual(maxS, 1e-5)
        XCTAssertGreaterThan(spread, 0.5, "the fixture should hold windows where some class is clearly present")
        print("presence head parity: probabilities \(maxP), combined scores \(maxS); \(head.flops) FLOP per window")
    }

    /// A head trained for another vocabulary is refused with a message naming the file.
    func testOtherVocabularyIsRefused() throws {
        let labels = try YAMNet.loadClassNames(path: assets.appendingPathComponent("models/yamnet_classes.txt").path)
        let json = #"{"version": 1, "classes": [{"name": "dog barking", "group": "animal", "layer": "ground", "audioset": [{"label": "Bark", "weight": 1.0}]}]}"#
        let small = try ClassVocabulary(json: Data(json.utf8), source: "test", audioSetLabels: labels)
        let path = assets.appendingPathComponent("models/presence.safetensors").path
        XCTAssertThrowsError(try PresenceHead(path: path, vocabulary: small, embeddingSize: 1024)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("presence.safetensors") && text.contains("other classes"), text)
        }
        XCTAssertThrowsError(try PresenceHead(path: path, vocabulary: try vocabulary(), embeddingSize: 512)) { error in
            XCTAssertTrue("\(error)".contains("512"), "\(error)")
        }
    }
}

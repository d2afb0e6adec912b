import Display
import Foundation
import Imagining
import Listening
import NeuralNet
import Pipeline
import TestSupport
import XCTest

/// The render loop's image side with the committed generator and exemplar bank: once the
/// per-class images are held, an unchanged scene reuses its composed image (no composing), and
/// what it shows is exactly what composing again would give; a new score composes again.
final class ImageryTests: XCTestCase {
    func testHeldImagesReuseTheComposedScene() throws {
        let root = TestPaths.repoRoot.appendingPathComponent("Assets")
        let model = try GeneratorModel(path: root.appendingPathComponent("models/generator.safetensors").path)
        let bank = try ExemplarBank(path: root.appendingPathComponent("models/exemplars.safetensors").path)
        let labels = try String(contentsOf: root.appendingPathComponent("models/yamnet_classes.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        let vocabulary = try ClassVocabulary(contentsOf: root.appendingPathComponent("classes.json"), audioSetLabels: labels)
        let imagery = Imagery(model: model, bank: bank, vocabulary: vocabulary, mix: .composed, mode: nil)

        // Two classes, each at the embedding of one of its exemplars.
        let d = bank.embeddings.count / bank.embeddings.shape[0]
        func embedding(_ i: Int) -> [Float] { Array(UnsafeBufferPointer(start: bank.embeddings.pointer + i * d, count: d)) }
        let second = try XCTUnwrap((0..<bank.count).first { bank.classIndex[$0] != bank.classIndex[0] })
        var scene = Scene()
        scene.active = [0, second].enumerated().map { k, i in
            let c = bank.classIndex[i]
            return ActiveClass(name: vocabulary.classes[c].name, index: c, score: 0.9 - 0.3 * Float(k), embedding: embedding(i))
        }
        var time = 0.0
        func frame() -> RGBImage? {
            time += 1.0 / 30
            return imagery.frame(scene: scene, time: time).mixed
        }
        for _ in 0..<30 { _ = frame() }            // the images refine in a few steps, then hold
        let composed = imagery.compositions
        XCTAssertGreaterThan(composed, 0)
        let a = try XCTUnwrap(frame()), b = try XCTUnwrap(frame())
        XCTAssertEqual(imagery.compositions, composed, "held images and unchanged scores: nothing to compose")
        XCTAssertEqual(a, b)
        // The reused image is what composing the current slots gives.
        let items = imagery.slots.snapshots.filter(\.active).compactMap { s in
            s.image.map { SceneComposer.Item(name: s.key, image: $0, score: s.score, layer: s.layer) }
        }
        XCTAssertEqual(items.count, 2)
        let fresh = SceneComposer.compose(items, width: imagery.composeSize, height: imagery.composeSize)
        XCTAssertEqual(a.pixels, fresh.rgb)
        // A new score changes the layout: composed again, once.
        scene.active[1].score = 0.4
        let c = try XCTUnwrap(frame())
        XCTAssertEqual(imagery.compositions, composed + 1)
        XCTAssertNotEqual(c, a)
        _ = frame()
        XCTAssertEqual(imagery.compositions, composed + 1)
    }
}

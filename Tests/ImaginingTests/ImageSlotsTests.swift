import Foundation
import Imagining
import NeuralNet
import TestSupport
import XCTest

/// ImageSlots with the committed generator and exemplar bank: in retrieval mode, a class whose
/// embedding keeps drifting stays anchored to a real exemplar, while re-noising the previous
/// estimate again and again (what pure mode does, and what retrieval mode did before) walks
/// away from it.
final class ImageSlotsTests: XCTestCase {
    private func load() throws -> (GeneratorModel, ExemplarBank) {
        let root = TestPaths.repoRoot.appendingPathComponent("Assets/models")
        return (try GeneratorModel(path: root.appendingPathComponent("generator.safetensors").path),
                try ExemplarBank(path: root.appendingPathComponent("exemplars.safetensors").path))
    }

    private func row(_ t: FloatTensor, _ i: Int) -> [Float] {
        let d = t.count / t.shape[0]
        return Array(UnsafeBufferPointer(start: t.pointer + i * d, count: d))
    }

    private func relativeDistance(_ a: [Float], _ b: [Float]) -> Double {
        var d: Double = 0, n: Double = 0
        for i in 0..<a.count { d += Double((a[i] - b[i]) * (a[i] - b[i])); n += Double(b[i] * b[i]) }
        return (d / max(n, 1e-12)).squareRoot()
    }

    /// Two exemplars of one class whose embeddings differ enough to count as a drift.
    private func driftingPair(_ bank: ExemplarBank, threshold: Double) -> (Int, Int)? {
        for i in 0..<bank.count {
            for j in (i + 1)..<bank.count where bank.classIndex[j] == bank.classIndex[i] {
                let a = row(bank.embeddings, i), b = row(bank.embeddings, j)
                var dot: Float = 0
                for k in 0..<a.count { dot += a[k] * b[k] }
                if Double(dot) < threshold - 0.05 { return (i, j) }
            }
        }
        return nil
    }

    func testRetrievalDriftStaysAnchoredToAnExemplar() throws {
        let (model, bank) = try load()
        let slots = ImageSlots(model: model, bank: bank, mode: .retrieval, seed: 7)
        let (a, b) = try XCTUnwrap(driftingPair(bank, threshold: slots.driftCosine))
        let cls = bank.classIndex[a]
        let embs = [row(bank.embeddings, a), row(bank.embeddings, b)]
        var anchored: [Double] = []
        for cycle in 0..<10 {
            let e = embs[cycle % 2]
            slots.update([ImageSlots.Request(key: "c", classIndex: cls, score: 0.9, layer: "middle", embedding: e)],
                         time: Double(cycle))
            while slots.advance() > 0 {}
            let st = try XCTUnwrap(slots.state("c"))
            let ex = try XCTUnwrap(st.exemplar, "retrieval mode keeps the exemplar it started from")
            let top = e.withUnsafeBufferPointer { bank.candidates($0.baseAddress!, classIndex: cls, topK: slots.retrievalTopK) }
            XCTAssertTrue(top.contains(ex), "the slot's exemplar is among the top-k of the current embedding")
            anchored.append(relativeDistance(st.estimate, row(bank.latents, ex)))
            XCTAssertEqual(slots.snapshot("c")?.step, slots.snapshot("c")?.steps)
        }

        // The old rule: every drift re-noises the previous estimate at renoiseStrength.
        var noise = NoiseSource(seed: 7)
        let z0 = row(bank.latents, a)
        var sampler = DenoisingSampler(model: model, embedding: embs[0], start: .latent(z0, strength: slots.retrievalStrength),
                                       steps: slots.steps, noise: &noise)
        while sampler.next() != nil {}
        for cycle in 1..<10 {
            sampler = DenoisingSampler(model: model, embedding: embs[cycle % 2],
                                       start: .latent(sampler.estimate, strength: slots.renoiseStrength),
                                       steps: slots.steps, noise: &noise)
            while sampler.next() != nil {}
        }
        let chained = relativeDistance(sampler.estimate, z0)
        let worst = anchored.max() ?? .infinity
        print("latent distance to the exemplar after 9 drifts: re-noising the estimate \(chained), anchored \(anchored)")
        XCTAssertLessThan(worst, 1.5 * anchored[0] + 0.05, "anchored images do not drift away over cycles: \(anchored)")
        XCTAssertLessThan(worst, chained, "re-noising the estimate 9 times ends farther from the exemplar (\(chained)) than any anchored refresh (\(anchored))")
    }

    func testPureModeHasNoExemplar() throws {
        let (model, bank) = try load()
        let slots = ImageSlots(model: model, bank: bank, mode: .pure, seed: 3)
        let e = row(bank.embeddings, 0)
        slots.update([ImageSlots.Request(key: "p", classIndex: bank.classIndex[0], score: 0.8, layer: "middle", embedding: e)], time: 0)
        while slots.advance() > 0 {}
        XCTAssertNil(try XCTUnwrap(slots.state("p")).exemplar)
        XCTAssertNotNil(slots.snapshot("p")?.image)
    }
}

import Foundation
import Imagining
import TestSupport
import XCTest

/// DenoisingSampler with the committed generator: where a re-noised start begins (x = t0 z +
/// (1 - t0) noise, t0 = 1 - strength), how many steps it takes (ceil(steps * strength)), and that
/// each step is the model's step from t_k to t_k+1 on the schedule t0 ... 1.
final class SamplerTests: XCTestCase {
    private func model() throws -> GeneratorModel {
        try GeneratorModel(path: TestPaths.repoRoot.appendingPathComponent("Assets/models/generator.safetensors").path)
    }

    func testLatentStartMixesLatentAndNoiseAndFollowsTheSchedule() throws {
        let m = try model()
        let n = m.latentCount
        let z = (0..<n).map { Float(sin(Double($0) * 0.37)) }
        let emb = (0..<m.embeddingSize).map { Float(cos(Double($0) * 0.11)) / 16 }
        let strength = 0.3, steps = 8
        // The noise the sampler draws first: the same seed, the same fill.
        var eps = [Float](repeating: 0, count: n)
        var probe = NoiseSource(seed: 42)
        eps.withUnsafeMutableBufferPointer { probe.fill($0.baseAddress!, count: n) }
        var noise = NoiseSource(seed: 42)
        let s = DenoisingSampler(model: m, embedding: emb, start: .latent(z, strength: strength), steps: steps, noise: &noise)

        XCTAssertEqual(s.stepCount, 3, "ceil(8 * 0.3) steps")
        let t0: Float = 0.7
        let x0 = (0..<n).map { Float(0.7) * z[$0] + Float(1 - 0.7) * eps[$0] }
        var startError: Float = 0
        for i in 0..<n { startError = max(startError, abs(s.estimate[i] - x0[i])) }
        XCTAssertLessThanOrEqual(startError, 1e-5, "the start is 0.7 z + 0.3 noise")

        // Step 0 is the model's step from t0 to t0 + (1 - t0) / 3.
        var xNext = [Float](repeating: 0, count: n), x1 = xNext
        x0.withUnsafeBufferPointer { xp in emb.withUnsafeBufferPointer { ep in
            xNext.withUnsafeMutableBufferPointer { np in x1.withUnsafeMutableBufferPointer { p1 in
                m.step(x: xp.baseAddress!, t: t0, tNext: t0 + (1 - t0) / 3, emb: ep.baseAddress!, xNext: np.baseAddress!, x1: p1.baseAddress!)
            } }
        } }
        XCTAssertEqual(s.next(), 0)
        var worst: Float = 0
        for i in 0..<n { worst = max(worst, abs(s.estimate[i] - x1[i])) }
        XCTAssertLessThanOrEqual(worst, 1e-5, "the first step runs from t0 = 1 - strength")
        XCTAssertEqual(s.next(), 1)
        XCTAssertEqual(s.next(), 2)
        XCTAssertNil(s.next())
        XCTAssertTrue(s.isFinished)

        // A fresh start takes all the steps.
        var noise2 = NoiseSource(seed: 1)
        XCTAssertEqual(DenoisingSampler(model: m, embedding: emb, start: .fresh, steps: steps, noise: &noise2).stepCount, steps)
    }
}

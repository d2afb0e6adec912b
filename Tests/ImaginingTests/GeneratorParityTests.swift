import Foundation
import Imagining
import NeuralNet
import TestSupport
import XCTest

/// The Swift generator (program interpreter) against PyTorch on the exported weights
/// (fixture written by training/generator/export.py): one student step from a fixed input
/// (batch of 2: t = 0 and t = 0.5, a real embedding and the unconditional zero embedding) and
/// the decoded image. Tolerance: max abs error 1e-3 on velocity, x_next, x1_hat and image.
final class GeneratorParityTests: XCTestCase {
    func testStudentStepAndDecoderMatchPyTorch() throws {
        let model = try GeneratorModel(path: TestPaths.repoRoot.appendingPathComponent("Assets/models/generator.safetensors").path)
        let f = try SafeTensorsFile(path: TestPaths.fixture("ImaginingTests", "generator_golden.safetensors").path)
        let x = try f.floats("x"), t = try f.floats("t"), tn = try f.floats("t_next"), emb = try f.floats("emb")
        let xNextRef = try f.floats("x_next"), x1Ref = try f.floats("x1_hat"), imageRef = try f.floats("image")
        let n = model.latentCount
        XCTAssertEqual(x.shape, [2] + model.latentShape)
        var worstStep: Float = 0, worstImage: Float = 0
        for b in 0..<2 {
            var xn = [Float](repeating: 0, count: n), x1 = xn
            xn.withUnsafeMutableBufferPointer { np in
                x1.withUnsafeMutableBufferPointer { p1 in
                    model.step(x: x.pointer + b * n, t: t.pointer[b], tNext: tn.pointer[b], emb: emb.pointer + b * model.embeddingSize,
                               xNext: np.baseAddress!, x1: p1.baseAddress!)
                }
            }
            for i in 0..<n {
                worstStep = max(worstStep, abs(xn[i] - xNextRef.pointer[b * n + i]), abs(x1[i] - x1Ref.pointer[b * n + i]))
            }
            // Decoder output in [0, 1] before quantisation, compared to PyTorch's.
            x1.withUnsafeBufferPointer { model.decoder.input("z").baseAddress!.update(from: $0.baseAddress!, count: n) }
            model.decoder.forward()
            let out = model.decoder.output
            for i in 0..<out.count { worstImage = max(worstImage, abs(out[i] - imageRef.pointer[b * out.count + i])) }
        }
        print("generator parity: step \(worstStep), image \(worstImage); \(model.flopsPerStep) FLOP per step")
        XCTAssertLessThanOrEqual(worstStep, 1e-3)
        XCTAssertLessThanOrEqual(worstImage, 1e-3)
        XCTAssertLessThanOrEqual(model.flopsPerStep, 500_000_000)
    }
}

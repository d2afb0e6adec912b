import Foundation
import NeuralNet
import TestSupport
import XCTest

final class SeparatorParityTests: XCTestCase {
    /// Parity with PyTorch on real YAMNet embeddings of test mixtures (fixture written by
    /// training/avgas/export.py). Tolerances (max abs error): presence logits 1e-3 (the issue's
    /// bound; logits reach magnitudes of ~10, float32 summation order alone moves them ~2e-4),
    /// unit-norm embeddings 1e-4.
    func testSeparatorAndAblationMatchPyTorch() throws {
        let fixture = TestPaths.fixture("ListeningTests", "separator_golden.safetensors")
        let sepPath = TestPaths.repoRoot.appendingPathComponent("Assets/models/separator.safetensors").path
        let ablPath = TestPaths.repoRoot.appendingPathComponent("Assets/models/separator_ablation.safetensors").path
        let f = try SafeTensorsFile(path: fixture.path)
        let sep = try GraphNetwork(path: sepPath)
        let abl = try GraphNetwork(path: ablPath)
        let input = try f.floats("input"), logits = try f.floats("presence_logits")
        let emb = try f.floats("embeddings"), ablEmb = try f.floats("ablation_embedding")
        let n = input.shape[0]
        var maxLogit: Float = 0, maxEmb: Float = 0, maxAbl: Float = 0
        for i in 0..<n {
            let x = UnsafeBufferPointer(start: input.pointer + i * 1024, count: 1024)
            sep.forward(x)
            let l = sep.output("presence_logits"), e = sep.output("embeddings")
            for j in 0..<l.count { maxLogit = max(maxLogit, abs(l[j] - logits.pointer[i * l.count + j])) }
            for j in 0..<e.count { maxEmb = max(maxEmb, abs(e[j] - emb.pointer[i * e.count + j])) }
            abl.forward(x)
            let a = abl.output("embedding")
            for j in 0..<a.count { maxAbl = max(maxAbl, abs(a[j] - ablEmb.pointer[i * a.count + j])) }
        }
        XCTAssertLessThanOrEqual(maxLogit, 1e-3)
        XCTAssertLessThanOrEqual(maxEmb, 1e-4)
        XCTAssertLessThanOrEqual(maxAbl, 1e-4)
        XCTAssertLessThan(sep.flops, 20_000_000)
        print("separator parity: logits \(maxLogit), embeddings \(maxEmb), ablation \(maxAbl); \(sep.flops) FLOP per hop")
    }
}

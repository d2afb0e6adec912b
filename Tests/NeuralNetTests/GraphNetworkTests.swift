import Foundation
import NeuralNet
import TestSupport
import XCTest

/// The avgas-graph-v1 interpreter (separator and ablation networks).
final class GraphNetworkTests: XCTestCase {
    /// A tiny graph with every op, checked against values computed by hand.
    func testEveryOpOnATinyGraph() throws {
        let arch = """
        {"format": "avgas-graph-v1", "name": "tiny", "input": {"name": "x", "shape": [2]},
         "ops": [
          {"op": "layernorm", "in": "x", "out": "n", "weight": "ln.w", "bias": "ln.b", "eps": 0.0},
          {"op": "linear", "in": "n", "out": "h", "weight": "fc.w", "bias": "fc.b"},
          {"op": "relu", "in": "h", "out": "h"},
          {"op": "mul", "in": "h", "param": "gate", "out": "g"},
          {"op": "add", "in": "g", "param": "bias2", "out": "g"},
          {"op": "linear", "in": "g", "out": "g", "weight": "fc2.w"},
          {"op": "add", "a": "g", "b": "g", "out": "d"},
          {"op": "l2norm", "in": "d", "out": "e", "eps": 1e-12}],
         "outputs": {"h": [3], "e": [2, 2]}}
        """
        let data = try SafeTensorsWriter.encode([
            ("ln.w", [2], [1, 1]), ("ln.b", [2], [0, 0]),
            ("fc.w", [3, 2], [1, 0, 0, 1, 1, 1]), ("fc.b", [3], [0.5, 0, -1]),
            ("gate", [2, 3], [1, 2, 3, -1, 0, 1]), ("bias2", [3], [0, 0, 1]),
            ("fc2.w", [2, 3], [1, 0, 0, 0, 1, 1]),
        ], metadata: ["architecture": arch])
        let url = TestPaths.makeTempDir().appendingPathComponent("tiny.safetensors")
        try data.write(to: url)
        let net = try GraphNetwork(path: url.path)
        XCTAssertEqual(net.shape(of: "e"), [2, 2])
        [Float(3), 1].withUnsafeBufferPointer { net.forward($0) }
        // layernorm([3, 1]) = [1, -1]; fc -> [1.5, -1, -1]; relu -> [1.5, 0, 0]
        XCTAssertEqual(Array(net.output("h")), [1.5, 0, 0])
        // gate: [[1.5, 0, 0], [-1.5, 0, 0]] + [0, 0, 1] -> [[1.5, 0, 1], [-1.5, 0, 1]]
        // fc2 (no bias): rows [1.5, 1] and [-1.5, 1]; doubled; l2norm -> / sqrt(3.25)
        let e = Array(net.output("e")), s = Float(3.25).squareRoot()
        let expected: [Float] = [1.5 / s, 1 / s, -1.5 / s, 1 / s]
        for (a, b) in zip(e, expected) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }

    func testMismatchedShapesAreRejectedWithTheFileName() throws {
        let arch = """
        {"format": "avgas-graph-v1", "name": "bad", "input": {"name": "x", "shape": [4]},
         "ops": [{"op": "linear", "in": "x", "out": "y", "weight": "w"}], "outputs": {"y": [2]}}
        """
        let data = try SafeTensorsWriter.encode([("w", [2, 3], [Float](repeating: 0, count: 6))], metadata: ["architecture": arch])
        let url = TestPaths.makeTempDir().appendingPathComponent("bad.safetensors")
        try data.write(to: url)
        XCTAssertThrowsError(try GraphNetwork(path: url.path)) { error in
            XCTAssertTrue("\(error)".contains("bad.safetensors"), "\(error)")
        }
    }
}

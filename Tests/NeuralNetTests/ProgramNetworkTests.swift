import Foundation
import NeuralNet
import TestSupport
import XCTest

/// The generator's program interpreter against independent direct implementations.
final class ProgramNetworkTests: XCTestCase {
    struct Rng { var s: UInt64; mutating func f() -> Float { s = s &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: s >> 11) % 2000) / 1000 - 1 } }

    /// Direct (loop) convolution, NCHW, zero padding k/2: the reference for the im2col path.
    func directConv(_ x: [Float], c: Int, h: Int, w: Int, weight: [Float], bias: [Float], cout: Int, k: Int, stride: Int) -> [Float] {
        let ho = (h + 2 * (k / 2) - k) / stride + 1, wo = (w + 2 * (k / 2) - k) / stride + 1
        var y = [Float](repeating: 0, count: cout * ho * wo)
        for o in 0..<cout { for oy in 0..<ho { for ox in 0..<wo {
            var acc = bias[o]
            for ci in 0..<c { for i in 0..<k { for j in 0..<k {
                let iy = oy * stride - k / 2 + i, ix = ox * stride - k / 2 + j
                if iy >= 0 && iy < h && ix >= 0 && ix < w { acc += weight[((o * c + ci) * k + i) * k + j] * x[(ci * h + iy) * w + ix] }
            } } }
            y[(o * ho + oy) * wo + ox] = acc
        } } }
        return y
    }

    func testProgramMatchesDirectImplementations() throws {
        var r = Rng(s: 42)
        let (C, H, W) = (4, 6, 6)
        func rand(_ n: Int) -> [Float] { (0..<n).map { _ in r.f() } }
        let tensors: [(name: String, shape: [Int], values: [Float])] = [
            ("net.c1.weight", [8, C, 3, 3], rand(8 * C * 9)), ("net.c1.bias", [8], rand(8)),
            ("net.gn.weight", [8], rand(8)), ("net.gn.bias", [8], rand(8)),
            ("net.fc.weight", [16, 6], rand(96)), ("net.fc.bias", [16], rand(16)),
            ("net.c2.weight", [8, 8, 3, 3], rand(8 * 8 * 9)), ("net.c2.bias", [8], rand(8)),
            ("net.c3.weight", [5, 12, 1, 1], rand(60)), ("net.c3.bias", [5], rand(5)),
        ]
        let program = """
        [{"op": "fourier", "in": ["t"], "out": "tf", "freqs": [1.0, 2.5, 4.0]},
         {"op": "linear", "in": ["tf"], "out": "s", "param": "fc"},
         {"op": "conv", "in": ["x"], "out": "a", "param": "c1", "k": 3, "stride": 1},
         {"op": "groupnorm", "in": ["a"], "out": "b", "param": "gn", "groups": 2, "eps": 1e-5},
         {"op": "silu", "in": ["b"], "out": "b2"},
         {"op": "film", "in": ["b2", "s"], "out": "f"},
         {"op": "conv", "in": ["f"], "out": "d", "param": "c2", "k": 3, "stride": 2},
         {"op": "up2", "in": ["d"], "out": "u"},
         {"op": "add", "in": ["u", "f"], "out": "e"},
         {"op": "concat", "in": ["e", "x"], "out": "cat"},
         {"op": "conv", "in": ["cat"], "out": "g", "param": "c3", "k": 1, "stride": 1},
         {"op": "sigmoid", "in": ["g"], "out": "out"}]
        """
        let data = try SafeTensorsWriter.encode(tensors, metadata: ["net.program": program, "net.output": "out"])
        let url = TestPaths.makeTempDir().appendingPathComponent("p.safetensors")
        try data.write(to: url)
        let net = try ProgramNetwork(file: SafeTensorsFile(path: url.path), net: "net", inputs: ["x": [C, H, W], "t": [1]])
        XCTAssertEqual(net.outputShape, [5, H, W])
        let x = rand(C * H * W)
        let t: Float = 0.3
        _ = net.input("x").update(fromContentsOf: x)
        net.input("t")[0] = t
        net.forward()

        // Reference, op by op.
        let T = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.values) })
        let freqs: [Float] = [1, 2.5, 4]
        let tf = freqs.map { sinf(2 * .pi * $0 * t) } + freqs.map { cosf(2 * .pi * $0 * t) }
        let fw = T["net.fc.weight"]!, fb = T["net.fc.bias"]!
        var s = [Float](repeating: 0, count: 16)
        for o in 0..<16 { var acc = fb[o]; for i in 0..<6 { acc += fw[o * 6 + i] * tf[i] }; s[o] = acc }
        let a = directConv(x, c: C, h: H, w: W, weight: T["net.c1.weight"]!, bias: T["net.c1.bias"]!, cout: 8, k: 3, stride: 1)
        var b = a
        for g in 0..<2 {
            let vals = Array(a[(g * 4 * 36)..<((g + 1) * 4 * 36)])
            let m = vals.reduce(0, +) / Float(vals.count)
            var v: Float = 0
            for q in vals { v += (q - m) * (q - m) }
            v /= Float(vals.count)
            for ch in (g * 4)..<((g + 1) * 4) { for i in 0..<36 {
                let norm: Float = (a[ch * 36 + i] - m) / (v + 1e-5).squareRoot()
                let gw: Float = T["net.gn.weight"]![ch], gb: Float = T["net.gn.bias"]![ch]
                b[ch * 36 + i] = norm * gw + gb
            } }
        }
        let b2 = b.map { $0 / (1 + expf(-$0)) }
        var f = b2
        for ch in 0..<8 { for i in 0..<36 { f[ch * 36 + i] = b2[ch * 36 + i] * (1 + s[ch]) + s[8 + ch] } }
        let d = directConv(f, c: 8, h: H, w: W, weight: T["net.c2.weight"]!, bias: T["net.c2.bias"]!, cout: 8, k: 3, stride: 2)
        var e = f
        for ch in 0..<8 { for yy in 0..<H { for xx in 0..<W { e[(ch * H + yy) * W + xx] += d[(ch * 3 + yy / 2) * 3 + xx / 2] } } }
        let cat = e + x
        let g = directConv(cat, c: 12, h: H, w: W, weight: T["net.c3.weight"]!, bias: T["net.c3.bias"]!, cout: 5, k: 1, stride: 1)
        let expected = g.map { 1 / (1 + expf(-$0)) }
        let got = Array(net.output)
        XCTAssertEqual(got.count, expected.count)
        var maxErr: Float = 0
        for (p, q) in zip(got, expected) { maxErr = max(maxErr, abs(p - q)) }
        XCTAssertLessThan(maxErr, 1e-5)
        XCTAssertGreaterThan(net.flops, 0)
    }

    /// The fused paths: conv + SiLU, then up2 + conv + sigmoid (with AVX-512: the direct planar
    /// kernel with an output-channel tail, and the 2x2 phase kernels of the upsampling conv)
    /// against the plain loops, op by op.
    func testFusedDirectAndUpsamplingConvolutions() throws {
        // Width 32: 32-pixel blocks; 48: 16-pixel blocks; 8 x 8: the panel product, then the
        // upsampling conv by im2col (too narrow for the planar kernels).
        for (height, width) in [(6, 32), (6, 48), (8, 8)] { try checkFusedConvolutions(height: height, width: width) }
    }

    func checkFusedConvolutions(height H: Int, width W: Int) throws {
        var r = Rng(s: 7)
        let C = 5
        func rand(_ n: Int) -> [Float] { (0..<n).map { _ in r.f() } }
        let tensors: [(name: String, shape: [Int], values: [Float])] = [
            ("net.c1.weight", [6, C, 3, 3], rand(6 * C * 9)), ("net.c1.bias", [6], rand(6)),
            ("net.c2.weight", [3, 6, 3, 3], rand(3 * 6 * 9)), ("net.c2.bias", [3], rand(3)),
        ]
        let program = """
        [{"op": "conv", "in": ["x"], "out": "a", "param": "c1", "k": 3, "stride": 1},
         {"op": "silu", "in": ["a"], "out": "a2"},
         {"op": "up2", "in": ["a2"], "out": "u"},
         {"op": "conv", "in": ["u"], "out": "b", "param": "c2", "k": 3, "stride": 1},
         {"op": "sigmoid", "in": ["b"], "out": "out"}]
        """
        let data = try SafeTensorsWriter.encode(tensors, metadata: ["net.program": program, "net.output": "out"])
        let url = TestPaths.makeTempDir().appendingPathComponent("f.safetensors")
        try data.write(to: url)
        let net = try ProgramNetwork(file: SafeTensorsFile(path: url.path), net: "net", inputs: ["x": [C, H, W]])
        XCTAssertEqual(net.outputShape, [3, 2 * H, 2 * W])
        XCTAssertEqual(net.stepLabels.map(\.op), ["conv+silu", "up2+conv+sigmoid"])
        let x = rand(C * H * W)
        _ = net.input("x").update(fromContentsOf: x)
        net.forward()

        let T = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.values) })
        let a = directConv(x, c: C, h: H, w: W, weight: T["net.c1.weight"]!, bias: T["net.c1.bias"]!, cout: 6, k: 3, stride: 1)
            .map { $0 / (1 + expf(-$0)) }
        var u = [Float](repeating: 0, count: 6 * 4 * H * W)
        for ch in 0..<6 { for yy in 0..<(2 * H) { for xx in 0..<(2 * W) { u[(ch * 2 * H + yy) * 2 * W + xx] = a[(ch * H + yy / 2) * W + xx / 2] } } }
        let expected = directConv(u, c: 6, h: 2 * H, w: 2 * W, weight: T["net.c2.weight"]!, bias: T["net.c2.bias"]!, cout: 3, k: 3, stride: 1)
            .map { 1 / (1 + expf(-$0)) }
        let got = Array(net.output)
        XCTAssertEqual(got.count, expected.count)
        var maxErr: Float = 0
        for (p, q) in zip(got, expected) { maxErr = max(maxErr, abs(p - q)) }
        XCTAssertLessThan(maxErr, 1e-5, "\(H) x \(W)")
    }

    func testMissingTensorNamesTheFile() throws {
        let program = #"[{"op": "conv", "in": ["x"], "out": "y", "param": "nope", "k": 3, "stride": 1}]"#
        let data = try SafeTensorsWriter.encode([("other", [1], [0])], metadata: ["n.program": program, "n.output": "y"])
        let url = TestPaths.makeTempDir().appendingPathComponent("m.safetensors")
        try data.write(to: url)
        XCTAssertThrowsError(try ProgramNetwork(file: SafeTensorsFile(path: url.path), net: "n", inputs: ["x": [2, 4, 4]])) {
            XCTAssertTrue("\($0)".contains("m.safetensors"), "\($0)")
        }
    }
}

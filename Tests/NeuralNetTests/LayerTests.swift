import Foundation
import TestSupport
import XCTest
@testable import NeuralNet

/// Every layer against a plain nested-loop reference on small odd shapes (channel tails,
/// asymmetric padding, strides), for every matrix kernel.
final class LayerTests: XCTestCase {
    var dir: URL!
    override func setUp() { dir = TestPaths.makeTempDir("layers") }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// Deterministic values in [-1, 1).
    func values(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2000) / 1000 - 1
        }
    }

    /// Stores tensors in a file and returns them as mapped `FloatTensor`s.
    func tensors(_ list: [(String, [Int])]) throws -> [String: FloatTensor] {
        let content = list.enumerated().map { i, t in (t.0, t.1, values(t.1.reduce(1, *), seed: UInt64(i + 1))) }
        let url = dir.appendingPathComponent("t\(UUID().uuidString).safetensors")
        try SafeTensorsWriter.encode(content).write(to: url)
        let f = try SafeTensorsFile(path: url.path)
        return try Dictionary(uniqueKeysWithValues: list.map { ($0.0, try f.floats($0.0)) })
    }

    func assertClose(_ a: [Float], _ b: [Float], tolerance: Float = 1e-5, _ what: String, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, line: line)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, "\(what): max difference \(worst)", line: line)
    }

    /// Reference convolution on HWC maps; `groups` = 1 (full) or C (depthwise).
    func referenceConv(_ x: [Float], _ s: FeatureShape, weight w: [Float], kernel: (Int, Int), cout: Int, depthwise: Bool,
                       stride: (Int, Int), pads: (Int, Int, Int, Int), bias: [Float], relu: Bool) -> ([Float], FeatureShape) {
        let ho = (s.height + pads.0 + pads.2 - kernel.0) / stride.0 + 1
        let wo = (s.width + pads.1 + pads.3 - kernel.1) / stride.1 + 1
        var y = [Float](repeating: 0, count: ho * wo * cout)
        for oy in 0..<ho { for ox in 0..<wo { for co in 0..<cout {
            var acc = Double(bias[co])
            for i in 0..<kernel.0 { for j in 0..<kernel.1 {
                let iy = oy * stride.0 - pads.0 + i, ix = ox * stride.1 - pads.1 + j
                guard iy >= 0, iy < s.height, ix >= 0, ix < s.width else { continue }
                if depthwise {
                    acc += Double(x[(iy * s.width + ix) * s.channels + co]) * Double(w[(i * kernel.1 + j) * cout + co])
                } else {
                    for ci in 0..<s.channels {
                        acc += Double(x[(iy * s.width + ix) * s.channels + ci]) * Double(w[((i * kernel.1 + j) * s.channels + ci) * cout + co])
                    }
                }
            } }
            y[(oy * wo + ox) * cout + co] = relu ? max(Float(acc), 0) : Float(acc)
        } } }
        return (y, FeatureShape(height: ho, width: wo, channels: cout))
    }

    func testConv2DStride2AsymmetricPadding() throws {
        let s = FeatureShape(height: 8, width: 6, channels: 3)
        let t = try tensors([("w", [3, 3, 3, 5]), ("b", [5])])
        let layer = Conv2D(weight: t["w"]!, bias: t["b"]!, stride: (2, 2), pads: (0, 0, 1, 1), activation: .relu)
        let x = values(s.count, seed: 99)
        let (ref, rs) = referenceConv(x, s, weight: Array(t["w"]!.buffer), kernel: (3, 3), cout: 5, depthwise: false,
                                      stride: (2, 2), pads: (0, 0, 1, 1), bias: Array(t["b"]!.buffer), relu: true)
        XCTAssertEqual(layer.outputShape(s), rs)
        XCTAssertEqual(rs, FeatureShape(height: 4, width: 3, channels: 5))  // pads [0, 0, 1, 1] on even sizes = TF "SAME"
        var y = [Float](repeating: .nan, count: rs.count)
        var scratch = [Float](repeating: .nan, count: layer.scratchCount(s))
        layer.forward(x, s, into: &y, scratch: &scratch)
        assertClose(y, ref, "conv2d")
        XCTAssertTrue(ref.contains(0) && ref.contains { $0 > 0 }, "the test data must exercise ReLU")
    }

    func testDepthwiseBothStridesWithChannelTail() throws {
        // 37 channels: 2 SIMD blocks of 16 + a tail of 5; 96 channels: 64 + 32 (AVX-512 generic
        // path); 48 channels on a 14 x 13 map: the AVX-512 3x3 path (interior and border pixels).
        for (shape, c) in [((5, 7), 37), ((5, 7), 96), ((14, 13), 48)] {
            for (stride, pads) in [((1, 1), (1, 1, 1, 1)), ((2, 2), (0, 0, 1, 1))] {
                let s = FeatureShape(height: shape.0, width: shape.1, channels: c)
                let t = try tensors([("w", [3, 3, c]), ("b", [c])])
                let x = values(s.count, seed: 7)
                let (ref, rs) = referenceConv(x, s, weight: Array(t["w"]!.buffer), kernel: (3, 3), cout: c, depthwise: true,
                                              stride: stride, pads: pads, bias: Array(t["b"]!.buffer), relu: true)
                for vectorized in NeuralNetRuntime.hasAVX512 ? [false, true] : [false] {
                    let layer = DepthwiseConv2D(weight: t["w"]!, bias: t["b"]!, stride: stride, pads: pads, activation: .relu,
                                                vectorized: vectorized)
                    XCTAssertEqual(layer.vectorized, vectorized)
                    XCTAssertEqual(layer.outputShape(s), rs)
                    var y = [Float](repeating: .nan, count: rs.count)
                    layer.forward(x, s, into: &y)
                    assertClose(y, ref, "depthwise \(s) stride \(stride) vectorized \(vectorized)")
                }
            }
        }
    }

    /// The AVX-512 product gives each row the same bits whatever the number of rows (12-, 6- and
    /// 1-row blocks): batches equal single rows.
    func testAVX512PointwiseRowsAreIndependentOfRowCount() throws {
        try XCTSkipUnless(NeuralNetRuntime.hasAVX512, "no AVX-512 on this CPU")
        let t = try tensors([("w", [40, 70]), ("b", [70])])
        let layer = PointwiseConv2D(weight: t["w"]!, bias: t["b"]!, activation: .relu, kernel: .avx512)
        let rows = 31  // 2 blocks of 12 + 6 + 1
        let x = values(rows * 40, seed: 21)
        var all = [Float](repeating: .nan, count: rows * 70)
        layer.forward(x, FeatureShape(height: rows, width: 1, channels: 40), into: &all)
        for r in 0..<rows {
            var one = [Float](repeating: .nan, count: 70)
            Array(x[(r * 40)..<((r + 1) * 40)]).withUnsafeBufferPointer {
                layer.forward($0.baseAddress!, FeatureShape(height: 1, width: 1, channels: 40), into: &one)
            }
            XCTAssertEqual(one, Array(all[(r * 70)..<((r + 1) * 70)]), "row \(r)")
        }
    }

    /// Zero skipping: inputs with whole zero channels (as after a ReLU) take the masked product
    /// (blocks of 8, 6 and 1 rows); it matches the reference, and each row equals itself alone.
    func testAVX512PointwiseSkipsZeroChannels() throws {
        try XCTSkipUnless(NeuralNetRuntime.hasAVX512, "no AVX-512 on this CPU")
        let (k, n) = (100, 45)
        let t = try tensors([("w", [k, n]), ("b", [n])])
        let layer = PointwiseConv2D(weight: t["w"]!, bias: t["b"]!, activation: .relu, kernel: .avx512)
        for rows in [1, 6, 8, 23, 96] {
            // Channel c is zero in every row when c % 3 != 0, and in odd rows when c % 2 == 0 as well.
            var x = values(rows * k, seed: UInt64(rows))
            for r in 0..<rows { for c in 0..<k where c % 3 != 0 || (r % 2 == 1 && c % 2 == 0) { x[r * k + c] = 0 } }
            let s = FeatureShape(height: rows, width: 1, channels: k)
            let (ref, _) = referenceConv(x, s, weight: Array(t["w"]!.buffer), kernel: (1, 1), cout: n, depthwise: false,
                                         stride: (1, 1), pads: (0, 0, 0, 0), bias: Array(t["b"]!.buffer), relu: true)
            var all = [Float](repeating: .nan, count: rows * n)
            layer.forward(x, s, into: &all)
            assertClose(all, ref, "masked product, \(rows) rows")
            for r in [0, rows - 1] {
                var one = [Float](repeating: .nan, count: n)
                Array(x[(r * k)..<((r + 1) * k)]).withUnsafeBufferPointer {
                    layer.forward($0.baseAddress!, FeatureShape(height: 1, width: 1, channels: k), into: &one)
                }
                XCTAssertEqual(one, Array(all[(r * n)..<((r + 1) * n)]), "\(rows) rows, row \(r)")
            }
        }
    }

    /// YAMNet's first layer shape (3x3, stride 2, one input channel, 32 outputs) takes the
    /// AVX-512 register-resident path.
    func testConv2DFirstLayerShape() throws {
        let s = FeatureShape(height: 10, width: 8, channels: 1)
        let t = try tensors([("w", [3, 3, 1, 32]), ("b", [32])])
        let x = values(s.count, seed: 5)
        let (ref, _) = referenceConv(x, s, weight: Array(t["w"]!.buffer), kernel: (3, 3), cout: 32, depthwise: false,
                                      stride: (2, 2), pads: (0, 0, 1, 1), bias: Array(t["b"]!.buffer), relu: true)
        let base = Conv2D(weight: t["w"]!, bias: t["b"]!, stride: (2, 2), pads: (0, 0, 1, 1), activation: .relu)
        assertEveryKernel(base, x, s, ref, "first-layer conv")
    }

    /// `base` run with every available GEMM kernel (scratch and output prefilled with NaN) must
    /// give `ref`.
    func assertEveryKernel(_ base: Conv2D, _ x: [Float], _ s: FeatureShape, _ ref: [Float], _ what: String,
                           line: UInt = #line) {
        for k in GemmKernel.available {
            let layer = base.with(kernel: k)
            var scratch = [Float](repeating: .nan, count: max(1, layer.scratchCount(s)))
            var y = [Float](repeating: .nan, count: ref.count)
            layer.forward(x, s, into: &y, scratch: &scratch)
            assertClose(y, ref, "\(what) \(k)", line: line)
        }
    }

    func testPointwiseEveryKernelWithRowAndColumnTails() throws {
        let s = FeatureShape(height: 7, width: 1, channels: 13)  // 7 rows: one block of 6 + 1; 21 columns: 16 + 5
        let t = try tensors([("w", [13, 21]), ("b", [21])])
        let x = values(s.count, seed: 3)
        let (ref, _) = referenceConv(x, s, weight: Array(t["w"]!.buffer), kernel: (1, 1), cout: 21, depthwise: false,
                                     stride: (1, 1), pads: (0, 0, 0, 0), bias: Array(t["b"]!.buffer), relu: false)
        for kernel in GemmKernel.available {
            let layer = PointwiseConv2D(weight: t["w"]!, bias: t["b"]!, activation: .none, kernel: kernel)
            var y = [Float](repeating: .nan, count: 7 * 21)
            layer.forward(x, s, into: &y)
            assertClose(y, ref, "pointwise \(kernel)")
        }
        let base = PointwiseConv2D(weight: t["w"]!, bias: t["b"]!, activation: .none)
        var a = x, b = [Float](repeating: 0, count: 7 * 21)
        let chosen = base.fastestKernel(for: s, input: &a, output: &b, runs: 2)
        XCTAssertTrue(GemmKernel.available.contains(chosen))
    }

    func testDenseAndGlobalAveragePool() throws {
        let t = try tensors([("w", [11, 19]), ("b", [11])])
        let x = values(19, seed: 5)
        let w = Array(t["w"]!.buffer), b = Array(t["b"]!.buffer)
        let ref = (0..<11).map { o in max(0, b[o] + (0..<19).reduce(Float(0)) { $0 + w[o * 19 + $1] * x[$1] }) }
        for vectorized in NeuralNetRuntime.hasAVX512 ? [false, true] : [false] {
            let layer = Dense(weight: t["w"]!, bias: t["b"]!, activation: .relu, vectorized: vectorized)
            XCTAssertEqual(layer.vectorized, vectorized)
            var y = [Float](repeating: .nan, count: 11)
            layer.forward(x, into: &y)
            assertClose(y, ref, "dense vectorized \(vectorized)")
            // Three rows at once: each row as alone.
            var y3 = [Float](repeating: .nan, count: 33)
            layer.forward(x + x.reversed() + x, rows: 3, into: &y3)
            XCTAssertEqual(Array(y3[0..<11]), y)
            XCTAssertEqual(Array(y3[22..<33]), y)
        }

        let s = FeatureShape(height: 3, width: 2, channels: 5)
        let m = values(s.count, seed: 11)
        var pooled = [Float](repeating: .nan, count: 5)
        globalAveragePool(m, s, into: &pooled)
        let refPool = (0..<5).map { c in (0..<6).reduce(Float(0)) { $0 + m[$1 * 5 + c] } / 6 }
        assertClose(pooled, refPool, "global average pool")
    }
}

final class Conv2DKernelTests: XCTestCase {
    func testConv2DEveryKernelMatchesOpenBLAS() throws {
        let dir = TestPaths.makeTempDir("conv")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("w.safetensors")
        let w: [Float] = (0..<(3 * 3 * 2 * 40)).map { i -> Float in Float((i * 37) % 23) / 23 - 0.5 }
        let b: [Float] = (0..<40).map { i -> Float in Float(i) / 80 - 0.2 }
        try SafeTensorsWriter.encode([("w", [3, 3, 2, 40], w), ("b", [40], b)]).write(to: url)
        let f = try SafeTensorsFile(path: url.path)
        let s = FeatureShape(height: 10, width: 9, channels: 2)
        let x: [Float] = (0..<s.count).map { i -> Float in Float((i * 13) % 17) / 17 - 0.4 }
        let base = Conv2D(weight: try f.floats("w"), bias: try f.floats("b"), stride: (2, 2), pads: (0, 0, 1, 1), activation: .relu)
        var scratch = [Float](repeating: 0, count: base.scratchCount(s))
        var ref = [Float](repeating: 0, count: base.outputShape(s).count)
        base.forward(x, s, into: &ref, scratch: &scratch)
        scratch = [Float](repeating: .nan, count: base.scratchCountOfAnyKernel(s))
        for k in GemmKernel.available {
            var y = [Float](repeating: .nan, count: ref.count)
            base.with(kernel: k).forward(x, s, into: &y, scratch: &scratch)
            let worst = zip(y, ref).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-5, "\(k)")
        }
    }
}

import Foundation
import TestSupport
import XCTest
@testable import NeuralNet

/// Padding sides and strides that differ between the two axes. YAMNet's pads are [1, 1, 1, 1]
/// or [0, 0, 1, 1] with equal strides, so a layer that takes the left pad for the top (or the
/// height stride for the width) would pass every YAMNet-shaped test; a converted model with
/// other pads would come out shifted.
extension LayerTests {
    func testConv2DAndDepthwiseWithDifferentPadsAndStridesPerSide() throws {
        let pads = (2, 0, 1, 2)        // top, left, bottom, right: top != left, bottom != right, 3 rows vs 2 columns
        let stride = (2, 1)
        for (s, cout) in [(FeatureShape(height: 9, width: 7, channels: 3), 5),   // im2col path
                          (FeatureShape(height: 11, width: 10, channels: 1), 32)] {  // AVX-512 first-layer path
            let t = try tensors([("w", [3, 3, s.channels, cout]), ("b", [cout])])
            let x = values(s.count, seed: 41)
            let (ref, rs) = referenceConv(x, s, weight: Array(t["w"]!.buffer), kernel: (3, 3), cout: cout, depthwise: false,
                                          stride: stride, pads: pads, bias: Array(t["b"]!.buffer), relu: false)
            let base = Conv2D(weight: t["w"]!, bias: t["b"]!, stride: stride, pads: pads, activation: .none)
            XCTAssertEqual(base.outputShape(s), rs)
            XCTAssertEqual(ref.count, rs.count)
            assertEveryKernel(base, x, s, ref, "conv2d \(s) pads \(pads) stride \(stride)")
        }
        let s = FeatureShape(height: 9, width: 8, channels: 37)
        let t = try tensors([("w", [3, 3, 37]), ("b", [37])])
        let x = values(s.count, seed: 43)
        let (ref, rs) = referenceConv(x, s, weight: Array(t["w"]!.buffer), kernel: (3, 3), cout: 37, depthwise: true,
                                      stride: stride, pads: pads, bias: Array(t["b"]!.buffer), relu: false)
        for vectorized in NeuralNetRuntime.hasAVX512 ? [false, true] : [false] {
            let layer = DepthwiseConv2D(weight: t["w"]!, bias: t["b"]!, stride: stride, pads: pads, activation: .none,
                                        vectorized: vectorized)
            XCTAssertEqual(layer.outputShape(s), rs)
            var y = [Float](repeating: .nan, count: rs.count)
            layer.forward(x, s, into: &y)
            assertClose(y, ref, "depthwise pads \(pads) stride \(stride) vectorized \(vectorized)")
        }
    }
}

extension SafeTensorsTests {
    /// A range that starts before the data section would read header bytes as weights.
    func testNegativeBeginOffsetIsRejected() throws {
        expect(try write("negbegin", header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, data: [0, 0, 0, 0])) {
            if case .invalidTensor = $0 { true } else { false }
        }
    }

    /// Zero-size tensors are legal and take no bytes: they overlap nothing, even when their
    /// offset lies inside (or at the start of) another tensor's range.
    func testEmptyTensorsOverlapNothing() throws {
        let url = dir.appendingPathComponent("empty.safetensors")
        try SafeTensorsWriter.encode([("a", [2], [1, 2]), ("zz", [0], []), ("b", [2], [3, 4])]).write(to: url)
        let f = try SafeTensorsFile(path: url.path)
        XCTAssertEqual(try f.info("zz").count, 0)
        XCTAssertEqual(Array(try f.floats("b").buffer), [3, 4])
        var header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]}}"#
        while header.utf8.count % 8 != 0 { header += " " }
        let inside = try SafeTensorsFile(path: try write("inside", header: header, data: [UInt8](repeating: 0, count: 8)))
        XCTAssertEqual(try inside.info("e").shape, [0, 3])
    }

    /// Element sizes of the 2-byte types (bf16 as well as f16).
    func testHalfPrecisionTensorSizes() throws {
        var header = #"{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"g":{"dtype":"BF16","shape":[3],"data_offsets":[6,12]}}"#
        while header.utf8.count % 8 != 0 { header += " " }
        let f = try SafeTensorsFile(path: try write("half", header: header, data: [UInt8](0..<12)))
        XCTAssertEqual(Array(try f.bytes("g")), [6, 7, 8, 9, 10, 11])
        XCTAssertEqual(DType.allCases.map(\.size), [8, 4, 2, 2, 8, 4, 2, 1, 8, 4, 2, 1, 1])
    }
}

extension GraphNetworkTests {
    func graph(_ arch: String, _ tensors: [(String, [Int], [Float])], _ name: String) throws -> String {
        let dir = TestPaths.makeTempDir()
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(name)
        try SafeTensorsWriter.encode(tensors, metadata: ["architecture": arch]).write(to: url)
        return url.path
    }

    /// `add` written in place over an operand that is broadcast: [3] + [2, 3] -> [2, 3] into the
    /// same name must read the operand before overwriting it.
    func testInPlaceBroadcastAdd() throws {
        let arch = """
        {"format": "avgas-graph-v1", "name": "bcast", "input": {"name": "v", "shape": [3]},
         "ops": [{"op": "add", "in": "v", "param": "m", "out": "v"}], "outputs": {"v": [2, 3]}}
        """
        let net = try GraphNetwork(path: try graph(arch, [("m", [2, 3], [10, 20, 30, 40, 50, 60])], "bcast.safetensors"))
        [Float(1), 2, 3].withUnsafeBufferPointer { net.forward($0) }
        XCTAssertEqual(Array(net.output("v")), [11, 22, 33, 41, 52, 63])
    }

    /// Output shapes in the metadata are checked, and empty shapes are refused.
    func testDeclaredOutputShapesAndEmptyShapesAreChecked() throws {
        let wrongOut = """
        {"format": "avgas-graph-v1", "name": "w", "input": {"name": "x", "shape": [3]},
         "ops": [{"op": "relu", "in": "x", "out": "y"}], "outputs": {"y": [4]}}
        """
        let empty = """
        {"format": "avgas-graph-v1", "name": "e", "input": {"name": "x", "shape": [0]},
         "ops": [{"op": "relu", "in": "x", "out": "y"}], "outputs": {"y": [0]}}
        """
        for (arch, name) in [(wrongOut, "wrongout.safetensors"), (empty, "empty.safetensors")] {
            let path = try graph(arch, [], name)
            XCTAssertThrowsError(try GraphNetwork(path: path)) { error in
                guard case NetworkError.unsupportedArchitecture(let f, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(f, path)
            }
        }
    }
}

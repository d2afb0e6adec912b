import Foundation
import NeuralNet
import TestSupport
import XCTest
@testable import Listening

/// Golden test: the Swift engine against onnxruntime on the float YAMNet graph
/// (fixtures made by tools/make_yamnet_fixtures.py from real recordings).
final class YAMNetTests: XCTestCase {
    static let weightsPath = TestPaths.repoRoot.appendingPathComponent("Assets/models/yamnet.safetensors").path

    /// OpenBLAS kernels on every golden patch (24 from 20 recordings): max |logit difference| <= 1e-3.
    func testParityWithOnnxRuntimeOnRealRecordings() throws {
        try checkParity(kernel: .openblas, patchLimit: nil)
    }

    /// The packed kernels (chosen at load when faster) on the first 2 patches: their SIMD code is
    /// slow in debug builds, and LayerTests checks them exactly on odd shapes.
    func testParityOfPackedKernels() throws {
        try checkParity(kernel: .packed, patchLimit: 2)
        try checkParity(kernel: .packedFMA, patchLimit: 2)
        try checkParity(kernel: .packedWideFMA, patchLimit: 2)
    }

    /// The AVX-512 kernels (the standard choice on AVX-512 CPUs; always built optimised) on every
    /// golden patch.
    func testParityOfAVX512Kernels() throws {
        try XCTSkipUnless(NeuralNetRuntime.hasAVX512, "no AVX-512 on this CPU")
        try checkParity(kernel: .avx512, patchLimit: nil)
    }

    /// A batch gives each patch exactly (bit for bit) the outputs it gets alone, with the
    /// standard kernels (what the offline analysis batches).
    func testBatchEqualsPatchByPatch() throws {
        let golden = try SafeTensorsFile(path: TestPaths.fixture("ListeningTests", "yamnet_golden.safetensors").path)
        let patches = try golden.floats("patches")
        let n = 5
        let net = try YAMNet(path: Self.weightsPath, maxBatch: 8)
        try net.forward(patches: UnsafeBufferPointer(start: patches.pointer, count: n * 6144), count: n)
        let batchLogits = (0..<n).map { Array(net.logits($0)) }, batchEmb = (0..<n).map { Array(net.embedding($0)) }
        for p in 0..<n {
            try net.forward(patch: UnsafeBufferPointer(start: patches.pointer + p * 6144, count: 6144))
            XCTAssertEqual(Array(net.logits), batchLogits[p], "patch \(p)")
            XCTAssertEqual(Array(net.embedding), batchEmb[p], "patch \(p)")
        }
        XCTAssertThrowsError(try net.forward(patches: UnsafeBufferPointer(start: patches.pointer, count: 9 * 6144), count: 9))
    }

    func checkParity(kernel: GemmKernel, patchLimit: Int?) throws {
        let golden = try SafeTensorsFile(path: TestPaths.fixture("ListeningTests", "yamnet_golden.safetensors").path)
        let patches = try golden.floats("patches")
        let total = patches.shape[0]
        XCTAssertGreaterThanOrEqual(total, 20, "the parity test needs at least 20 patches")
        XCTAssertEqual(patches.shape, [total, 96, 64])
        let n = min(total, patchLimit ?? total)
        let refLogits = try golden.floats("logits", shape: [total, 521])
        let refEmbeddings = try golden.floats("embeddings", shape: [total, 1024])

        let net = try YAMNet(path: Self.weightsPath, kernels: .fixed(kernel))
        XCTAssertEqual(net.pointwiseKernels, [GemmKernel](repeating: kernel, count: 13))
        XCTAssertEqual(net.convKernels, [kernel])
        XCTAssertEqual(net.embeddingSize, 1024)
        XCTAssertEqual(net.classCount, 521)
        XCTAssertEqual(net.patchCount, 96 * 64)
        var worstLogit: Float = 0, worstEmbedding: Float = 0
        var top1Agree = 0
        for p in 0..<n {
            try net.forward(patch: UnsafeBufferPointer(start: patches.pointer + p * 6144, count: 6144))
            var bestSwift = 0, bestRef = 0
            for k in 0..<521 {
                let r = refLogits.pointer[p * 521 + k]
                worstLogit = max(worstLogit, abs(net.logits[k] - r))
                if net.logits[k] > net.logits[bestSwift] { bestSwift = k }
                if r > refLogits.pointer[p * 521 + bestRef] { bestRef = k }
            }
            for k in 0..<1024 {
                worstEmbedding = max(worstEmbedding, abs(net.embedding[k] - refEmbeddings.pointer[p * 1024 + k]))
            }
            if bestSwift == bestRef { top1Agree += 1 }
        }
        print("YAMNet parity (\(kernel) kernel) over \(n) patches: max |logit diff| \(worstLogit), max |embedding diff| \(worstEmbedding)")
        XCTAssertLessThanOrEqual(worstLogit, 1e-3)
        XCTAssertLessThanOrEqual(worstEmbedding, 1e-3)
        XCTAssertEqual(top1Agree, n)
    }

    func testForwardIsRepeatableAndRejectsWrongPatchSize() throws {
        let net = try YAMNet(path: Self.weightsPath, kernels: .fixed(.openblas))
        let patch = (0..<6144).map { Float(sin(Double($0) * 0.01)) * 3 - 6 }
        let a = try net.run(patch)
        let b = try net.run(patch)
        XCTAssertEqual(a.logits, b.logits, "forward must not depend on workspace leftovers")
        XCTAssertEqual(a.embedding, b.embedding)
        XCTAssertThrowsError(try net.run([Float](repeating: 0, count: 6143))) { error in
            XCTAssertEqual(error as? NetworkError, .wrongBufferSize(what: "YAMNet input patch", expected: 6144, found: 6143))
        }
    }

    func testTruncatedWeightsFileGivesErrorNamingTheFile() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let full = try Data(contentsOf: URL(fileURLWithPath: Self.weightsPath))
        let cut = dir.appendingPathComponent("cut.safetensors")
        try full.prefix(full.count - 1000).write(to: cut)
        XCTAssertThrowsError(try YAMNet(path: cut.path, kernels: .fixed(.openblas))) { error in
            guard case SafeTensorsError.truncated(let file, _) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(file, cut.path)
            XCTAssertTrue("\(error)".contains(cut.path))
        }
        XCTAssertThrowsError(try YAMNet(path: dir.appendingPathComponent("missing.safetensors").path)) { error in
            guard case SafeTensorsError.cannotOpen = error else { return XCTFail("got \(error)") }
        }
    }

    func testWeightsOfAnotherNetworkAreRejected() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A well-formed file whose metadata is YAMNet's but with one tensor of the wrong shape.
        let real = try SafeTensorsFile(path: Self.weightsPath)
        var tensors: [(String, [Int], [Float])] = []
        for name in real.tensors.keys.sorted() {
            let t = try real.floats(name)
            tensors.append((name, t.shape, Array(t.buffer)))
        }
        let i = tensors.firstIndex { $0.0 == "layers.4.pointwise.weight" }!
        tensors[i] = (tensors[i].0, [tensors[i].1[1], tensors[i].1[0]], tensors[i].2)  // transposed shape
        let path = dir.appendingPathComponent("wrong.safetensors")
        try SafeTensorsWriter.encode(tensors, metadata: real.metadata).write(to: path)
        XCTAssertThrowsError(try YAMNet(path: path.path, kernels: .fixed(.openblas))) { error in
            guard case SafeTensorsError.unexpectedShape(let file, let tensor, _, _) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(file, path.path)
            XCTAssertEqual(tensor, "layers.4.pointwise.weight")
        }
        // Metadata that describes another network.
        var meta = real.metadata
        meta["architecture"] = meta["architecture"]!.replacingOccurrences(of: "\"network\":\"yamnet\"", with: "\"network\":\"resnet\"")
        try SafeTensorsWriter.encode(tensors, metadata: meta).write(to: path)
        XCTAssertThrowsError(try YAMNet(path: path.path, kernels: .fixed(.openblas))) { error in
            guard case NetworkError.unsupportedArchitecture(let file, _) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(file, path.path)
        }
        meta.removeValue(forKey: "architecture")
        try SafeTensorsWriter.encode(tensors, metadata: meta).write(to: path)
        XCTAssertThrowsError(try YAMNet(path: path.path, kernels: .fixed(.openblas))) { error in
            XCTAssertEqual(error as? SafeTensorsError, .invalidMetadata(file: path.path, key: "architecture", detail: "missing"))
        }
    }

    func testClassNamesFile() throws {
        let names = try YAMNet.loadClassNames(path: TestPaths.repoRoot.appendingPathComponent("Assets/models/yamnet_classes.txt").path)
        XCTAssertEqual(names.count, 521)
        XCTAssertEqual(names[0], "Speech")
        XCTAssertEqual(Set(names).count, 521)
    }
}

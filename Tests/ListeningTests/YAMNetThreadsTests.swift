import Foundation
import NeuralNet
import TestSupport
import XCTest
@testable import Listening

/// The intra-op split (`threads: 2`): the same logits and embeddings, bit for bit, as one thread,
/// on the committed parity fixture, with each kernel family (run also with AVGAS_NO_AVX512=1 for
/// the AVX2/OpenBLAS path's standard choice).
final class YAMNetThreadsTests: XCTestCase {
    static let weightsPath = TestPaths.repoRoot.appendingPathComponent("Assets/models/yamnet.safetensors").path

    func checkThreadsMatchOneThread(_ kernels: YAMNet.KernelChoice, patchLimit: Int?, threads: Int = 2) throws {
        let golden = try SafeTensorsFile(path: TestPaths.fixture("ListeningTests", "yamnet_golden.safetensors").path)
        let patches = try golden.floats("patches")
        let n = min(patches.shape[0], patchLimit ?? patches.shape[0])
        let one = try YAMNet(path: Self.weightsPath, kernels: kernels)
        let split = YAMNet(sharingWeightsOf: one, maxBatch: 4, threads: threads)
        XCTAssertEqual(split.threads, threads)
        for p in 0..<n {
            let patch = UnsafeBufferPointer(start: patches.pointer + p * 6144, count: 6144)
            try one.forward(patch: patch)
            try split.forward(patch: patch)
            XCTAssertEqual(Array(split.logits).map(\.bitPattern), Array(one.logits).map(\.bitPattern), "\(kernels) patch \(p)")
            XCTAssertEqual(Array(split.embedding).map(\.bitPattern), Array(one.embedding).map(\.bitPattern), "\(kernels) patch \(p)")
        }
        // A batch of 3 on the split network: each patch as alone on one thread.
        let b = min(3, n)
        try split.forward(patches: UnsafeBufferPointer(start: patches.pointer, count: b * 6144), count: b)
        for p in 0..<b {
            try one.forward(patch: UnsafeBufferPointer(start: patches.pointer + p * 6144, count: 6144))
            XCTAssertEqual(Array(split.logits(p)).map(\.bitPattern), Array(one.logits).map(\.bitPattern), "\(kernels) batch patch \(p)")
        }
    }

    /// The program's standard choice (AVX-512 kernels where the CPU has them; with
    /// AVGAS_NO_AVX512=1, OpenBLAS and the packed FMA kernel), every golden patch.
    func testTwoThreadsEqualOneThreadStandardKernels() throws {
        try checkThreadsMatchOneThread(.standard, patchLimit: nil)
        try checkThreadsMatchOneThread(.standard, patchLimit: 2, threads: 3)
        print("YAMNet split: \(try YAMNet(path: Self.weightsPath, threads: 2).splitLayers) layers split, AVX-512 \(NeuralNetRuntime.hasAVX512)")
    }

    /// Every kernel family (the packed kernels' SIMD code is slow in debug builds: 2 patches).
    func testTwoThreadsEqualOneThreadEveryKernel() throws {
        try checkThreadsMatchOneThread(.fixed(.openblas), patchLimit: 4)
        try checkThreadsMatchOneThread(.fixed(.packedFMA), patchLimit: 2)
        try checkThreadsMatchOneThread(.fixed(.packedWideFMA), patchLimit: 2)
        if NeuralNetRuntime.hasAVX512 { try checkThreadsMatchOneThread(.fixed(.avx512), patchLimit: nil) }
    }
}

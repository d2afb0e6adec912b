import Foundation
import Synchronization
import TestSupport
import XCTest
@testable import NeuralNet

/// The split layer forwards (ParallelLayers.swift): the parts of any split, run one after the
/// other, give bit-identical outputs to the whole layer; and the `ComputePool` barrier.
final class ParallelLayerTests: XCTestCase {
    var dir: URL!
    override func setUp() { dir = TestPaths.makeTempDir("parallel-layers") }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// Deterministic values in [-1, 1), about a third of them exactly zero when `zeros` (as after a ReLU).
    func values(_ n: Int, seed: UInt64, zeros: Bool = false) -> [Float] {
        var s = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<n).map { i in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            let v = Float(Int64(bitPattern: s >> 11) % 2000) / 1000 - 1
            return zeros && (i / 3) % 3 == 0 ? 0 : v
        }
    }

    func tensors(_ list: [(String, [Int])]) throws -> [String: FloatTensor] {
        let content = list.enumerated().map { i, t in (t.0, t.1, values(t.1.reduce(1, *), seed: UInt64(i + 1))) }
        let url = dir.appendingPathComponent("t\(UUID().uuidString).safetensors")
        try SafeTensorsWriter.encode(content).write(to: url)
        let f = try SafeTensorsFile(path: url.path)
        return try Dictionary(uniqueKeysWithValues: list.map { ($0.0, try f.floats($0.0)) })
    }

    /// Bit patterns (so -0 and +0 differ, and NaN compares).
    func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

    func testShareCoversEverythingOnce() {
        for count in [0, 1, 5, 6, 17, 1536] {
            for parts in 1...4 {
                let ranges = (0..<parts).map { ComputePool.share(count, part: $0, of: parts) }
                XCTAssertEqual(ranges.first?.lowerBound, 0)
                XCTAssertEqual(ranges.last?.upperBound, count)
                for i in 1..<parts { XCTAssertEqual(ranges[i - 1].upperBound, ranges[i].lowerBound) }
            }
        }
    }

    func testDepthwiseSplitsAreBitIdentical() throws {
        // 96 channels on 5 x 7: AVX-512 generic path (64 + 32); 48 channels on 14 x 13: the 3x3
        // path, split mid-row; 37 channels: channel tails.
        for (shape, c) in [((5, 7), 96), ((14, 13), 48), ((6, 5), 37), ((3, 2), 64)] {
            for (stride, pads) in [((1, 1), (1, 1, 1, 1)), ((2, 2), (0, 0, 1, 1))] {
                let s = FeatureShape(height: shape.0, width: shape.1, channels: c)
                let t = try tensors([("w", [3, 3, c]), ("b", [c])])
                let x = values(s.count, seed: 7)
                for vectorized in NeuralNetRuntime.hasAVX512 ? [false, true] : [false] {
                    let layer = DepthwiseConv2D(weight: t["w"]!, bias: t["b"]!, stride: stride, pads: pads, activation: .relu,
                                                vectorized: vectorized)
                    let n = layer.outputShape(s).count
                    var whole = [Float](repeating: .nan, count: n)
                    layer.forward(x, s, into: &whole)
                    for parts in [1, 2, 3, 5] {
                        var y = [Float](repeating: .nan, count: n)
                        for p in 0..<parts { layer.forward(x, s, into: &y, part: p, of: parts) }
                        XCTAssertEqual(bits(y), bits(whole), "depthwise \(s) stride \(stride) vectorized \(vectorized), \(parts) parts")
                    }
                }
            }
        }
    }

    func testConv2DSplitsAreBitIdentical() throws {
        // 3x3, 1 -> 32 (the AVX-512 padded-copy path) and 2 -> 40 (generic), each part with its own scratch.
        for (s, cout) in [(FeatureShape(height: 10, width: 8, channels: 1), 32), (FeatureShape(height: 9, width: 7, channels: 2), 40)] {
            let t = try tensors([("w", [3, 3, s.channels, cout]), ("b", [cout])])
            let x = values(s.count, seed: 5)
            let base = Conv2D(weight: t["w"]!, bias: t["b"]!, stride: (2, 2), pads: (0, 0, 1, 1), activation: .relu)
            for k in GemmKernel.available {
                let layer = base.with(kernel: k)
                let n = layer.outputShape(s).count, sc = max(1, layer.scratchCount(s))
                var scratch = [Float](repeating: .nan, count: sc)
                var whole = [Float](repeating: .nan, count: n)
                layer.forward(x, s, into: &whole, scratch: &scratch)
                for parts in [2, 3] {
                    var y = [Float](repeating: .nan, count: n)
                    var scratches = [Float](repeating: .nan, count: parts * sc)
                    scratches.withUnsafeMutableBufferPointer { sp in
                        for p in 0..<parts {
                            layer.forward(x, s, into: &y, scratch: sp.baseAddress! + p * sc, part: p, of: parts)
                        }
                    }
                    XCTAssertEqual(bits(y), bits(whole), "conv \(s) -> \(cout) \(k), \(parts) parts")
                }
            }
        }
    }

    func testPointwiseAndDenseSplitsAreBitIdentical() throws {
        // 70 columns: 32-column panels 32 + 32 + 6 (16-column: 4 + tail); 31 rows: 12/8/6/1-row
        // blocks; inputs with zeros: the zero-skipping product.
        let t = try tensors([("w", [40, 70]), ("b", [70]), ("d", [70, 40])])
        for zeros in [false, true] {
            let rows = 31
            let x = values(rows * 40, seed: 21, zeros: zeros)
            let s = FeatureShape(height: rows, width: 1, channels: 40)
            for kernel in GemmKernel.available {
                let layer = PointwiseConv2D(weight: t["w"]!, bias: t["b"]!, activation: .relu, kernel: kernel)
                var whole = [Float](repeating: .nan, count: rows * 70)
                layer.forward(x, s, into: &whole)
                for parts in [2, 3] {
                    var y = [Float](repeating: .nan, count: rows * 70)
                    for p in 0..<parts { layer.forward(x, s, into: &y, part: p, of: parts) }
                    XCTAssertEqual(bits(y), bits(whole), "pointwise \(kernel) zeros \(zeros), \(parts) parts")
                }
            }
            for vectorized in NeuralNetRuntime.hasAVX512 ? [false, true] : [false] {
                let dense = Dense(weight: t["d"]!, bias: t["b"]!, activation: .none, vectorized: vectorized)
                var whole = [Float](repeating: .nan, count: 3 * 70)
                dense.forward(x, rows: 3, into: &whole)
                for parts in [2, 3] {
                    var y = [Float](repeating: .nan, count: 3 * 70)
                    for p in 0..<parts { dense.forward(x, rows: 3, into: &y, part: p, of: parts) }
                    XCTAssertEqual(bits(y), bits(whole), "dense vectorized \(vectorized), \(parts) parts")
                }
            }
        }
        let s = FeatureShape(height: 3, width: 2, channels: 37)
        let m = values(s.count, seed: 11)
        var whole = [Float](repeating: .nan, count: 37)
        globalAveragePool(m, s, into: &whole)
        var y = [Float](repeating: .nan, count: 37)
        for p in 0..<2 { globalAveragePool(m, s, into: &y, part: p, of: 2) }
        XCTAssertEqual(bits(y), bits(whole), "global average pool")
    }

    /// The row split of large 1x1 layers (AVX-512, inside a pool: the zero-skip decision is summed
    /// across parts): bit-identical to the whole layer, with and without zero inputs, for row
    /// counts that are and are not multiples of 8.
    final class PointwiseJob: ComputePoolJob, @unchecked Sendable {  // buffers written by disjoint row shares
        unowned(unsafe) var pool: ComputePool!
        let layer: PointwiseConv2D
        let x: [Float]
        let s: FeatureShape
        let y: UnsafeMutablePointer<Float>
        init(layer: PointwiseConv2D, x: [Float], s: FeatureShape) {
            self.layer = layer; self.x = x; self.s = s
            y = .allocate(capacity: s.height * s.width * layer.outChannels)
            y.initialize(repeating: .nan, count: s.height * s.width * layer.outChannels)
        }
        deinit { y.deallocate() }
        func run(part: Int, of parts: Int) {
            x.withUnsafeBufferPointer { layer.forward($0.baseAddress!, s, into: y, part: part, of: parts, pool: pool) }
        }
    }

    func testPointwiseRowSplitInPoolIsBitIdentical() throws {
        try XCTSkipUnless(NeuralNetRuntime.hasAVX512, "no AVX-512 on this CPU")
        let t = try tensors([("w", [40, 70]), ("b", [70])])
        let layer = PointwiseConv2D(weight: t["w"]!, bias: t["b"]!, activation: .relu, kernel: .avx512)
        for rows in [7, 96, 100, 150] {
            for zeros in [false, true] {
                let s = FeatureShape(height: rows, width: 1, channels: 40)
                let x = values(rows * 40, seed: 21, zeros: zeros)
                var whole = [Float](repeating: .nan, count: rows * 70)
                layer.forward(x, s, into: &whole)
                for threads in [2, 3] {
                    let pool = ComputePool(threads: threads)
                    let job = PointwiseJob(layer: layer, x: x, s: s)
                    job.pool = pool
                    pool.run(job)
                    XCTAssertEqual(bits(Array(UnsafeBufferPointer(start: job.y, count: rows * 70))), bits(whole),
                                   "rows \(rows) zeros \(zeros) threads \(threads)")
                }
            }
        }
        for count in [7, 96, 100, 1536] {
            for parts in 2...3 {
                let r = (0..<parts).map { ComputePool.share(count, part: $0, of: parts, align: 8) }
                XCTAssertEqual(r.first?.lowerBound, 0); XCTAssertEqual(r.last?.upperBound, count)
                for i in 1..<parts { XCTAssertEqual(r[i - 1].upperBound, r[i].lowerBound); XCTAssertTrue(r[i].lowerBound % 8 == 0 || r[i].isEmpty) }
            }
        }
    }

    /// A job whose parts each add to a shared step counter, with a barrier between steps: after
    /// every barrier all parts see every part's additions of the previous step.
    final class CountingJob: ComputePoolJob, @unchecked Sendable {  // counters are atomics
        unowned(unsafe) var pool: ComputePool!
        let counter = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        let steps = 50
        func run(part: Int, of parts: Int) {
            for step in 0..<steps {
                counter.wrappingAdd(1, ordering: .relaxed)
                pool.barrier()
                if counter.load(ordering: .relaxed) < (step + 1) * parts { failures.wrappingAdd(1, ordering: .relaxed) }
                pool.barrier()
            }
        }
    }

    func testPoolBarrierOrdersSteps() {
        for threads in [1, 2, 3] {
            let pool = ComputePool(threads: threads)
            let job = CountingJob()
            job.pool = pool
            for run in 0..<200 {
                job.counter.store(0, ordering: .relaxed)
                pool.run(job)
                XCTAssertEqual(job.counter.load(ordering: .relaxed), job.steps * threads, "threads \(threads), run \(run)")
                if run % 50 == 0 { usleep(200) }  // let the workers block between some runs
            }
            XCTAssertEqual(job.failures.load(ordering: .relaxed), 0, "threads \(threads)")
        }
    }
}

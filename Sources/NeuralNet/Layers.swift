// Layers for batch-1 convolutional networks on channels-last (HWC) feature maps.
// Layouts (what tools/convert_yamnet.py writes):
//   feature map      [H, W, C]  (row-major: element (y, x, c) at (y * W + x) * C + c)
//   Conv2D           weight [kh, kw, cin, cout], bias [cout]   (im2col + sgemm, or direct with AVX-512)
//   DepthwiseConv2D  weight [kh, kw, C], bias [C]              (direct, SIMD over channels)
//   PointwiseConv2D  weight [cin, cout], bias [cout]           (one product: [HW, cin] x [cin, cout])
//   Dense            weight [out, in], bias [out]              (sgemv, or a packed product with AVX-512)
// With AVX-512 (`NeuralNetRuntime.hasAVX512`) the layers use the NeuralNetAVX512 kernels, with
// bias and activation fused into the store; a batch of N maps [N, H, W, C] is, for the 1x1
// layers, one map of height N * H.
// Padding is explicit [top, left, bottom, right] as in ONNX `pads` (TF "SAME" with stride 2 is [0, 0, 1, 1]).
import COpenBLAS
import Foundation
import NeuralNetAVX512

/// Geometry of an HWC feature map.
public struct FeatureShape: Sendable, Equatable, CustomStringConvertible {
    public var height: Int, width: Int, channels: Int
    public init(height: Int, width: Int, channels: Int) {
        self.height = height; self.width = width; self.channels = channels
    }
    public var count: Int { height * width * channels }
    public var description: String { "[\(height), \(width), \(channels)]" }
}

/// Activation applied after a layer's bias.
public enum Activation: String, Sendable, Codable {
    case none, relu
}

/// One layer of a convolutional network, as described in a weights file's architecture
/// metadata (tools/convert_yamnet.py writes these; JSON keys in snake_case).
public struct LayerSpec: Sendable, Codable, Equatable {
    /// Tensor name prefix: `<prefix>.weight`, `<prefix>.bias`.
    public var prefix: String
    /// `conv2d`, `depthwise_conv2d`, `pointwise_conv2d` or `dense`.
    public var kind: String
    public var kernel: [Int]?
    public var stride: [Int]?
    /// [top, left, bottom, right]
    public var pads: [Int]?
    public var inChannels: Int?
    public var outChannels: Int?
    public var activation: Activation
    /// The node of the source graph this layer mirrors (documentation and error messages).
    public var onnxNode: String?

    enum CodingKeys: String, CodingKey {
        case prefix, kind, kernel, stride, pads, activation
        case inChannels = "in_channels", outChannels = "out_channels", onnxNode = "onnx_node"
    }
}

/// Why a network could not be built from its weights file.
public enum NetworkError: Error, CustomStringConvertible, Equatable {
    /// The architecture metadata describes something this runtime cannot build.
    case unsupportedArchitecture(file: String, detail: String)
    /// The input or output buffers handed to `forward` have the wrong size.
    case wrongBufferSize(what: String, expected: Int, found: Int)

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let f, let d): "weights file \(f) describes an unsupported network: \(d)"
        case .wrongBufferSize(let w, let e, let f): "\(w) holds \(f) floats, expected \(e)"
        }
    }
}

/// Output size of a strided window over `n` samples with padding `p0 + p1`.
@inline(__always) func convOut(_ n: Int, kernel k: Int, stride s: Int, pad p0: Int, _ p1: Int) -> Int {
    (n + p0 + p1 - k) / s + 1
}

/// y[i, c] = act(y[i, c] + bias[c]) over `rows` rows of `channels`, in place (plain loops the
/// compiler vectorises).
func addBiasActivate(_ y: UnsafeMutablePointer<Float>, rows: Int, channels: Int,
                     bias: UnsafePointer<Float>, activation: Activation) {
    for r in 0..<rows {
        let row = y + r * channels
        if activation == .relu {
            for c in 0..<channels { row[c] = max(row[c] + bias[c], 0) }
        } else {
            for c in 0..<channels { row[c] += bias[c] }
        }
    }
}

/// Full 2-D convolution by im2col + sgemm: [H, W, cin] -> [Ho, Wo, cout].
/// Used for YAMNet's first layer (3x3, stride 2, cin = 1).
public struct Conv2D {
    public let kernelH: Int, kernelW: Int, strideH: Int, strideW: Int
    /// [top, left, bottom, right]
    public let pads: (Int, Int, Int, Int)
    public let inChannels: Int, outChannels: Int
    public let activation: Activation
    /// [kh, kw, cin, cout] = [K, cout] with K = kh * kw * cin, row-major.
    public let weight: FloatTensor
    /// [cout]
    public let bias: FloatTensor
    /// How the im2col matrix is multiplied by the weights.
    public let kernel: GemmKernel
    let packed: PackedMatrix?

    public init(weight: FloatTensor, bias: FloatTensor, stride: (Int, Int), pads: (Int, Int, Int, Int), activation: Activation,
                kernel: GemmKernel = .openblas) {
        self.weight = weight; self.bias = bias
        kernelH = weight.shape[0]; kernelW = weight.shape[1]
        inChannels = weight.shape[2]; outChannels = weight.shape[3]
        strideH = stride.0; strideW = stride.1
        self.pads = pads; self.activation = activation
        self.kernel = kernel
        precondition(kernel != .avx512 || NeuralNetRuntime.hasAVX512, "Conv2D: the AVX-512 kernel on a CPU without AVX-512")
        packed = kernel == .openblas || kernel == .avx512 ? nil
            : PackedMatrix(weight.pointer, rows: kernelH * kernelW * inChannels, columns: outChannels, panelWidth: kernel.panelWidth)
    }

    /// The same layer with another matrix kernel.
    public func with(kernel: GemmKernel) -> Conv2D {
        kernel == self.kernel ? self
            : Conv2D(weight: weight, bias: bias, stride: (strideH, strideW), pads: pads, activation: activation, kernel: kernel)
    }

    public func outputShape(_ x: FeatureShape) -> FeatureShape {
        FeatureShape(height: convOut(x.height, kernel: kernelH, stride: strideH, pad: pads.0, pads.2),
                     width: convOut(x.width, kernel: kernelW, stride: strideW, pad: pads.1, pads.3),
                     channels: outChannels)
    }

    /// Fastest of `runs` timed passes in nanoseconds (see `PointwiseConv2D.fastestTime`).
    public func fastestTime(for xs: FeatureShape, input: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
                            scratch: UnsafeMutablePointer<Float>, runs: Int = 5) -> UInt64 {
        forward(input, xs, into: output, scratch: scratch)
        var fastest = UInt64.max
        for _ in 0..<max(1, runs) {
            let t0 = monotonicNanoseconds()
            forward(input, xs, into: output, scratch: scratch)
            fastest = min(fastest, monotonicNanoseconds() - t0)
        }
        return fastest
    }

    /// Floats of scratch `forward` needs: the im2col matrix [Ho * Wo, K] (for the direct AVX-512
    /// convolution: a zero-padded copy of the input, or none).
    public func scratchCount(_ x: FeatureShape) -> Int {
        if kernel == .avx512 {
            return AVX512Kernels.convolutionScratchCount(height: x.height, width: x.width, inChannels: inChannels,
                                                         outChannels: outChannels, kernel: kernelH, kernelW, pads: pads)
        }
        let o = outputShape(x)
        return o.height * o.width * kernelH * kernelW * inChannels
    }

    /// The largest `scratchCount(x)` of any kernel (for a workspace shared by kernel trials).
    public func scratchCountOfAnyKernel(_ x: FeatureShape) -> Int {
        let o = outputShape(x)
        return max(o.height * o.width * kernelH * kernelW * inChannels,
                   AVX512Kernels.convolutionScratchCount(height: x.height, width: x.width, inChannels: inChannels,
                                                         outChannels: outChannels, kernel: kernelH, kernelW, pads: pads))
    }

    /// x [H, W, cin] -> y [Ho, Wo, cout]; `scratch` holds `scratchCount(x)` floats.
    public func forward(_ x: UnsafePointer<Float>, _ xs: FeatureShape, into y: UnsafeMutablePointer<Float>,
                        scratch col: UnsafeMutablePointer<Float>) {
        let o = outputShape(xs)
        if kernel == .avx512 {
            AVX512Kernels.convolution(x, height: xs.height, width: xs.width, inChannels: inChannels, weight: weight.pointer,
                                      bias: bias.pointer, outChannels: outChannels, kernel: kernelH, kernelW,
                                      stride: strideH, strideW, pads: pads,
                                      outHeight: o.height, outWidth: o.width, relu: activation == .relu, scratch: col, into: y)
            return
        }
        let k = kernelH * kernelW * inChannels
        // im2col: row (oy, ox) = the receptive field, ordered (i, j, c) to match the weight's [kh, kw, cin].
        for oy in 0..<o.height {
            for ox in 0..<o.width {
                var dst = col + (oy * o.width + ox) * k
                for i in 0..<kernelH {
                    let iy = oy * strideH - pads.0 + i
                    for j in 0..<kernelW {
                        let ix = ox * strideW - pads.1 + j
                        if iy >= 0, iy < xs.height, ix >= 0, ix < xs.width {
                            let src = x + (iy * xs.width + ix) * inChannels
                            for c in 0..<inChannels { dst[c] = src[c] }
                        } else {
                            for c in 0..<inChannels { dst[c] = 0 }
                        }
                        dst += inChannels
                    }
                }
            }
        }
        let m = o.height * o.width
        // y [m, cout] = col [m, K] x W [K, cout]
        if let packed {
            packed.multiply(col, rows: m, into: y, fused: kernel != .packed)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(outChannels), Int32(k),
                        1, col, Int32(k), weight.pointer, Int32(outChannels), 0, y, Int32(outChannels))
        }
        addBiasActivate(y, rows: m, channels: outChannels, bias: bias.pointer, activation: activation)
    }
}

/// 1x1 convolution, stride 1: one matrix product [H*W, cin] x [cin, cout], by OpenBLAS sgemm or
/// by a `PackedMatrix` (weights packed once; faster for the small maps of late layers when the
/// build targets AVX2/FMA). `GemmKernel` says which; `fastestKernel` measures.
public struct PointwiseConv2D {
    public let inChannels: Int, outChannels: Int
    public let activation: Activation
    /// [cin, cout]
    public let weight: FloatTensor
    /// [cout]
    public let bias: FloatTensor
    public let kernel: GemmKernel
    /// The packed copy of `weight` for the packed kernels (nil for `.openblas`).
    let packed: PackedMatrix?

    public init(weight: FloatTensor, bias: FloatTensor, activation: Activation, kernel: GemmKernel = .openblas) {
        self.weight = weight; self.bias = bias
        inChannels = weight.shape[0]; outChannels = weight.shape[1]
        self.activation = activation
        self.kernel = kernel
        precondition(kernel != .avx512 || NeuralNetRuntime.hasAVX512, "PointwiseConv2D: the AVX-512 kernel on a CPU without AVX-512")
        packed = kernel == .openblas ? nil
            : PackedMatrix(weight.pointer, rows: inChannels, columns: outChannels, panelWidth: kernel.panelWidth)
    }

    /// The same layer with another kernel.
    public func with(kernel: GemmKernel) -> PointwiseConv2D {
        kernel == self.kernel ? self : PointwiseConv2D(weight: weight, bias: bias, activation: activation, kernel: kernel)
    }

    public func outputShape(_ x: FeatureShape) -> FeatureShape {
        FeatureShape(height: x.height, width: x.width, channels: outChannels)
    }

    /// x [H, W, cin] -> y [H, W, cout] (a batch [N, H, W, cin]: pass height N * H).
    public func forward(_ x: UnsafePointer<Float>, _ xs: FeatureShape, into y: UnsafeMutablePointer<Float>) {
        let m = xs.height * xs.width
        if kernel == .avx512, let packed {
            packed.multiplyAVX512(x, rows: m, bias: bias.pointer, activation: activation, into: y)
            return
        }
        if let packed {
            packed.multiply(x, rows: m, into: y, fused: kernel != .packed)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(outChannels), Int32(inChannels),
                        1, x, Int32(inChannels), weight.pointer, Int32(outChannels), 0, y, Int32(outChannels))
        }
        addBiasActivate(y, rows: m, channels: outChannels, bias: bias.pointer, activation: activation)
    }

    /// Fastest of `runs` timed passes (after one warm-up) in nanoseconds on input geometry `xs`,
    /// using `input` (`xs.count` floats) and `output` (`outputShape(xs).count`) as scratch.
    public func fastestTime(for xs: FeatureShape, input: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
                            runs: Int = 5) -> UInt64 {
        forward(input, xs, into: output)
        var fastest = UInt64.max
        for _ in 0..<max(1, runs) {
            let t0 = monotonicNanoseconds()
            forward(input, xs, into: output)
            fastest = min(fastest, monotonicNanoseconds() - t0)
        }
        return fastest
    }

    /// The kernel with the smallest `fastestTime` among `candidates` (like FFTW's planner: the
    /// answer depends on the CPU, the build's target and the BLAS).
    public func fastestKernel(for xs: FeatureShape, input: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
                              candidates: [GemmKernel] = GemmKernel.available, runs: Int = 5) -> GemmKernel {
        let times = candidates.map { ($0, with(kernel: $0).fastestTime(for: xs, input: input, output: output, runs: runs)) }
        return times.min { $0.1 < $1.1 }?.0 ?? .openblas
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Depthwise convolution (one filter per channel), direct: for each output pixel, the output
/// row (C floats, in L1) starts at the bias and accumulates one contiguous channel loop per
/// valid kernel tap; activation is applied in place. The channel loops are plain loops over
/// contiguous memory, which the compiler vectorises (explicit SIMD types are very slow in debug
/// builds, where the tests run). With AVX-512 (`vectorized`), the NeuralNetAVX512 kernel keeps
/// 64 channels of the output pixel in registers across the taps (FMA) and fuses the activation.
public struct DepthwiseConv2D {
    public let kernelH: Int, kernelW: Int, strideH: Int, strideW: Int
    /// [top, left, bottom, right]
    public let pads: (Int, Int, Int, Int)
    public let channels: Int
    public let activation: Activation
    /// [kh, kw, C]
    public let weight: FloatTensor
    /// [C]
    public let bias: FloatTensor
    /// Whether `forward` uses the AVX-512 kernel.
    public let vectorized: Bool

    /// `vectorized` defaults to `NeuralNetRuntime.hasAVX512` (it is ignored without AVX-512).
    public init(weight: FloatTensor, bias: FloatTensor, stride: (Int, Int), pads: (Int, Int, Int, Int), activation: Activation,
                vectorized: Bool = NeuralNetRuntime.hasAVX512) {
        self.weight = weight; self.bias = bias
        kernelH = weight.shape[0]; kernelW = weight.shape[1]; channels = weight.shape[2]
        strideH = stride.0; strideW = stride.1
        self.pads = pads; self.activation = activation
        self.vectorized = vectorized && NeuralNetRuntime.hasAVX512
    }

    public func outputShape(_ x: FeatureShape) -> FeatureShape {
        FeatureShape(height: convOut(x.height, kernel: kernelH, stride: strideH, pad: pads.0, pads.2),
                     width: convOut(x.width, kernel: kernelW, stride: strideW, pad: pads.1, pads.3),
                     channels: channels)
    }

    /// x [H, W, C] -> y [Ho, Wo, C].
    public func forward(_ x: UnsafePointer<Float>, _ xs: FeatureShape, into y: UnsafeMutablePointer<Float>) {
        let o = outputShape(xs)
        if vectorized {
            AVX512Kernels.depthwise(x, height: xs.height, width: xs.width, channels: channels, weight: weight.pointer,
                                    bias: bias.pointer, kernel: kernelH, kernelW, stride: strideH, strideW,
                                    padTop: pads.0, padLeft: pads.1, outHeight: o.height, outWidth: o.width,
                                    relu: activation == .relu, into: y)
            return
        }
        let c = channels
        let w = weight.pointer, b = bias.pointer
        for oy in 0..<o.height {
            let iy0 = oy * strideH - pads.0
            let i0 = max(0, -iy0), i1 = min(kernelH, xs.height - iy0)     // valid kernel rows
            for ox in 0..<o.width {
                let ix0 = ox * strideW - pads.1
                let j0 = max(0, -ix0), j1 = min(kernelW, xs.width - ix0)  // valid kernel columns
                let out = y + (oy * o.width + ox) * c                     // [C]
                out.update(from: b, count: c)
                for i in i0..<i1 {
                    for j in j0..<j1 {
                        let xin = x + ((iy0 + i) * xs.width + ix0 + j) * c  // [C]
                        let tap = w + (i * kernelW + j) * c                 // [C]
                        for ch in 0..<c { out[ch] += xin[ch] * tap[ch] }
                    }
                }
                if activation == .relu { for ch in 0..<c { out[ch] = max(out[ch], 0) } }
            }
        }
    }
}

/// Mean over all positions: x [H, W, C] -> y [C].
public func globalAveragePool(_ x: UnsafePointer<Float>, _ xs: FeatureShape, into y: UnsafeMutablePointer<Float>) {
    let c = xs.channels, n = xs.height * xs.width
    y.update(repeating: 0, count: c)
    for p in 0..<n {
        let row = x + p * c
        for ch in 0..<c { y[ch] += row[ch] }
    }
    let scale = 1 / Float(n)
    for ch in 0..<c { y[ch] *= scale }
}

/// Fully connected layer: y [out] = act(W [out, in] x [in] + b [out]), by sgemv, or with
/// AVX-512 (`vectorized`) by the packed AVX-512 product on a transposed, packed copy of W
/// ([in, out] in 32-column panels), which also takes a batch of rows at once.
public struct Dense {
    public let inFeatures: Int, outFeatures: Int
    public let activation: Activation
    /// [out, in]
    public let weight: FloatTensor
    /// [out]
    public let bias: FloatTensor
    /// W transposed to [in, out] and packed (AVX-512 only, else nil).
    let packed: PackedMatrix?

    /// `vectorized` defaults to `NeuralNetRuntime.hasAVX512` (it is ignored without AVX-512).
    public init(weight: FloatTensor, bias: FloatTensor, activation: Activation, vectorized: Bool = NeuralNetRuntime.hasAVX512) {
        self.weight = weight; self.bias = bias
        outFeatures = weight.shape[0]; inFeatures = weight.shape[1]
        self.activation = activation
        if vectorized && NeuralNetRuntime.hasAVX512 {
            let (n, k) = (outFeatures, inFeatures)
            var t = [Float](repeating: 0, count: k * n)  // [in, out]
            for o in 0..<n { for i in 0..<k { t[i * n + o] = weight.pointer[o * k + i] } }
            packed = PackedMatrix(t, rows: k, columns: n, panelWidth: 32)
        } else {
            packed = nil
        }
    }

    /// Whether `forward` uses the AVX-512 kernel.
    public var vectorized: Bool { packed != nil }

    /// x [in] -> y [out].
    public func forward(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        forward(x, rows: 1, into: y)
    }

    /// x [rows, in] -> y [rows, out]; each row gives the same result as alone.
    public func forward(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        if let packed {
            packed.multiplyAVX512(x, rows: rows, bias: bias.pointer, activation: activation, into: y)
            return
        }
        for r in 0..<rows {
            let yr = y + r * outFeatures
            yr.update(from: bias.pointer, count: outFeatures)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(outFeatures), Int32(inFeatures),
                        1, weight.pointer, Int32(inFeatures), x + r * inFeatures, 1, 1, yr, 1)
            if activation == .relu { for i in 0..<outFeatures { yr[i] = max(yr[i], 0) } }
        }
    }
}

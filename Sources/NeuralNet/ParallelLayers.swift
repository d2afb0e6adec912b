// Layer forwards split across the threads of a `ComputePool`: `forward(..., part:, of:)` computes
// share `part` of `parts` of the layer's output, each element by exactly the operations of the
// whole-layer `forward` (so any split gives bit-identical outputs to one thread).
//
//   PointwiseConv2D, Dense   output columns, in whole weight panels (each part reads its own half of
//                            the weights: the late 1x1 layers are weight-bandwidth bound)
//   DepthwiseConv2D, Conv2D  output pixels (row-major), with the AVX-512 or the plain-loop kernels
//   globalAveragePool        channels
// Layers on OpenBLAS (`.openblas` pointwise and im2col convolutions, sgemv dense) are not split:
// part 0 computes them whole (OpenBLAS's results for a sub-matrix are not guaranteed to match
// its results for the whole product).
import NeuralNetAVX512

extension PointwiseConv2D {
    /// Whether `forward(_:_:into:part:of:)` splits the work (false: part 0 does it all).
    public var splits: Bool { packed != nil }

    /// Maps of at least this many positions are split by rows (pixels) with the AVX-512 kernel
    /// when the caller passes a `pool`: each part then reads only the pixels its part of the
    /// previous (depthwise) layer wrote, instead of half of them from the other core's cache.
    /// Smaller maps (weight-bound) are split by output columns.
    public static let rowSplitPositions = 96

    /// Share `part` of `parts` of `forward(x, xs, into: y)`, inside a job running on `pool`:
    /// rows `share(H * W, part, parts, align: 8)` for large maps on the AVX-512 kernel (its
    /// zero-skip decision summed across parts with `pool.sum`, a barrier), else as
    /// `forward(_:_:into:part:of:)`.
    public func forward(_ x: UnsafePointer<Float>, _ xs: FeatureShape, into y: UnsafeMutablePointer<Float>,
                        part: Int, of parts: Int, pool: ComputePool) {
        let m = xs.height * xs.width
        guard kernel == .avx512, let packed, m >= Self.rowSplitPositions, parts > 1 else {
            forward(x, xs, into: y, part: part, of: parts)
            return
        }
        let rows = ComputePool.share(m, part: part, of: parts, align: 8)
        packed.multiplyAVX512(x, rows: m, bias: bias.pointer, activation: activation, into: y, rowRange: rows) {
            let s = pool.sum($0, $1, part: part)
            return (s.0, s.1)
        }
    }

    /// Share `part` of `parts` of `forward(x, xs, into: y)`: the columns of panels
    /// `share(panels, part, parts)` (all of y for part 0 of an unsplit OpenBLAS layer).
    public func forward(_ x: UnsafePointer<Float>, _ xs: FeatureShape, into y: UnsafeMutablePointer<Float>,
                        part: Int, of parts: Int) {
        guard let packed else {
            if part == 0 { forward(x, xs, into: y) }
            return
        }
        let m = xs.height * xs.width
        let panels = ComputePool.share(packed.panelCount, part: part, of: parts)
        guard !panels.isEmpty else { return }
        if kernel == .avx512 {
            packed.multiplyAVX512(x, rows: m, bias: bias.pointer, activation: activation, into: y, panelRange: panels)
            return
        }
        packed.multiply(x, rows: m, into: y, fused: kernel != .packed, panelRange: panels)
        let pw = packed.panelWidth
        let columns = (panels.lowerBound * pw)..<min(panels.upperBound * pw, outChannels)
        addBiasActivate(y, rows: m, channels: outChannels, columns: columns, bias: bias.pointer, activation: activation)
    }
}

/// y[i, c] = act(y[i, c] + bias[c]) for c in `columns` only (the same operations per element
/// as `addBiasActivate` over all channels).
func addBiasActivate(_ y: UnsafeMutablePointer<Float>, rows: Int, channels: Int, columns: Range<Int>,
                     bias: UnsafePointer<Float>, activation: Activation) {
    for r in 0..<rows {
        let row = y + r * channels
        if activation == .relu {
            for c in columns { row[c] = max(row[c] + bias[c], 0) }
        } else {
            for c in columns { row[c] += bias[c] }
        }
    }
}

extension DepthwiseConv2D {
    /// Share `part` of `parts` of `forward(x, xs, into: y)`: output pixels
    /// `share(Ho * Wo, part, parts)` (row-major).
    public func forward(_ x: UnsafePointer<Float>, _ xs: FeatureShape, into y: UnsafeMutablePointer<Float>,
                        part: Int, of parts: Int) {
        let o = outputShape(xs)
        // Aligned like the row split of the next 1x1 layer (PointwiseConv2D.forward(...pool:)).
        let pixels = ComputePool.share(o.height * o.width, part: part, of: parts, align: 8)
        guard !pixels.isEmpty else { return }
        if vectorized {
            AVX512Kernels.depthwise(x, height: xs.height, width: xs.width, channels: channels, weight: weight.pointer,
                                    bias: bias.pointer, kernel: kernelH, kernelW, stride: strideH, strideW,
                                    padTop: pads.0, padLeft: pads.1, outHeight: o.height, outWidth: o.width,
                                    relu: activation == .relu, into: y, pixels: pixels)
            return
        }
        // The plain loop of `forward`, over this share's pixels.
        let c = channels
        let w = weight.pointer, b = bias.pointer
        for p in pixels {
            let oy = p / o.width, ox = p % o.width
            let iy0 = oy * strideH - pads.0
            let i0 = max(0, -iy0), i1 = min(kernelH, xs.height - iy0)     // valid kernel rows
            let ix0 = ox * strideW - pads.1
            let j0 = max(0, -ix0), j1 = min(kernelW, xs.width - ix0)      // valid kernel columns
            let out = y + p * c                                           // [C]
            out.update(from: b, count: c)
            for i in i0..<i1 {
                for j in j0..<j1 {
                    let xin = x + ((iy0 + i) * xs.width + ix0 + j) * c      // [C]
                    let tap = w + (i * kernelW + j) * c                     // [C]
                    for ch in 0..<c { out[ch] += xin[ch] * tap[ch] }
                }
            }
            if activation == .relu { for ch in 0..<c { out[ch] = max(out[ch], 0) } }
        }
    }
}

extension Conv2D {
    /// Whether `forward(_:_:into:scratch:part:of:)` splits the work (false: part 0 does it all).
    public var splits: Bool { kernel == .avx512 }

    /// Share `part` of `parts` of `forward(x, xs, into: y, scratch:)`: output pixels
    /// `share(Ho * Wo, part, parts)` with the direct AVX-512 convolution; each part needs its own
    /// `scratch` (`scratchCount(xs)` floats). The im2col kernels are not split (part 0 does it all).
    public func forward(_ x: UnsafePointer<Float>, _ xs: FeatureShape, into y: UnsafeMutablePointer<Float>,
                        scratch: UnsafeMutablePointer<Float>, part: Int, of parts: Int) {
        guard kernel == .avx512 else {
            if part == 0 { forward(x, xs, into: y, scratch: scratch) }
            return
        }
        let o = outputShape(xs)
        let pixels = ComputePool.share(o.height * o.width, part: part, of: parts, align: 8)
        guard !pixels.isEmpty else { return }
        AVX512Kernels.convolution(x, height: xs.height, width: xs.width, inChannels: inChannels, weight: weight.pointer,
                                  bias: bias.pointer, outChannels: outChannels, kernel: kernelH, kernelW,
                                  stride: strideH, strideW, pads: pads, outHeight: o.height, outWidth: o.width,
                                  relu: activation == .relu, scratch: scratch, into: y, pixels: pixels)
    }
}

extension Dense {
    /// Whether `forward(_:rows:into:part:of:)` splits the work (false: part 0 does it all).
    public var splits: Bool { packed != nil }

    /// Share `part` of `parts` of `forward(x, rows:, into: y)`: the output columns of panels
    /// `share(panels, part, parts)` with the AVX-512 product; the sgemv path is not split.
    public func forward(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, part: Int, of parts: Int) {
        guard let packed else {
            if part == 0 { forward(x, rows: rows, into: y) }
            return
        }
        let panels = ComputePool.share(packed.panelCount, part: part, of: parts)
        guard !panels.isEmpty else { return }
        packed.multiplyAVX512(x, rows: rows, bias: bias.pointer, activation: activation, into: y, panelRange: panels)
    }
}

/// Share `part` of `parts` of `globalAveragePool(x, xs, into: y)`: channels
/// `share(C, part, parts)`, each summed over positions in the same order.
public func globalAveragePool(_ x: UnsafePointer<Float>, _ xs: FeatureShape, into y: UnsafeMutablePointer<Float>,
                              part: Int, of parts: Int) {
    let c = xs.channels, n = xs.height * xs.width
    let channels = ComputePool.share(c, part: part, of: parts)
    for ch in channels { y[ch] = 0 }
    for p in 0..<n {
        let row = x + p * c
        for ch in channels { y[ch] += row[ch] }
    }
    let scale = 1 / Float(n)
    for ch in channels { y[ch] *= scale }
}

import COpenBLAS
import Foundation
import NeuralNetAVX512

/// A convolutional network described by its weights file as a *program*: the step list in
/// `__metadata__["<net>.program"]` (JSON) with its output buffer in `"<net>.output"`, written
/// by training/generator/arch.py (whose `ProgramNet` is the PyTorch interpreter of the same
/// rules). Used for the generator's latent denoiser and decoder. Batch 1, NCHW feature maps
/// ([C, H, W] here), vectors [D].
///
/// Ops: `fourier` (sin/cos of 2 pi f t), `linear`, `conv` (k 1|3, stride 1|2, zero padding
/// k/2), `groupnorm`, `silu`, `sigmoid`, `film` (h * (1 + s[:C]) + s[C:] per channel), `add`,
/// `concat` (channels), `up2` (nearest x2). Shapes are inferred once from the input shapes; all
/// buffers are allocated at load and `forward` allocates nothing.
///
/// Fusions, made at load when the intermediate buffer has no other reader: a `silu`/`sigmoid`
/// after a `conv` or `groupnorm` is applied in that step's store; an `up2` before a 3x3
/// stride-1 `conv` is folded into it. With AVX-512 (`NeuralNetRuntime.hasAVX512`), 3x3 stride-1
/// convolutions on maps whose width is a multiple of 16 run the direct planar kernels of
/// NeuralNetAVX512 (ConvKernels.swift; an upsampling conv as four 2x2 phase kernels on the
/// low-resolution map), SiLU/sigmoid a vectorised exponential; other convolutions, and every
/// convolution without AVX-512, run im2col + OpenBLAS sgemm.
public final class ProgramNetwork: @unchecked Sendable {
    struct StepSpec: Decodable {
        var op: String
        var `in`: [String]
        var out: String
        var param: String?
        var k: Int?
        var stride: Int?
        var groups: Int?
        var eps: Double?
        var freqs: [Double]?
    }

    private enum Step {
        case fourier(t: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, freqs: [Float])
        case linear(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, inF: Int, outF: Int, w: UnsafePointer<Float>, b: UnsafePointer<Float>)
        /// `h`, `w`: the map read (the low-resolution one when `up`, which upsamples it x2 first);
        /// `phase`: the phase weights of the direct upsampling kernel; `direct`: AVX-512 planar kernel;
        /// `withBias`: [cout, cin * 9 + 1] (the weights with the bias as a last column) for the
        /// AVX-512 panel product of small maps.
        case conv(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, cin: Int, h: Int, w: Int, cout: Int, k: Int, stride: Int,
                  weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, act: PlanarActivation, up: Bool,
                  phase: UnsafePointer<Float>?, direct: Bool, withBias: UnsafePointer<Float>?)
        case groupnorm(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, c: Int, hw: Int, groups: Int, eps: Float,
                       w: UnsafePointer<Float>, b: UnsafePointer<Float>, act: PlanarActivation)
        case silu(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int)
        case sigmoid(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int)
        case film(x: UnsafePointer<Float>, s: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, c: Int, hw: Int)
        case add(a: UnsafePointer<Float>, b: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int)
        case concat(parts: [(UnsafePointer<Float>, Int)], y: UnsafeMutablePointer<Float>)
        case up2(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, c: Int, h: Int, w: Int)
    }

    public let name: String
    public let file: SafeTensorsFile
    public let outputName: String
    /// Float operations of one forward pass (multiply-add counts two).
    public private(set) var flops = 0
    private var steps: [Step] = []
    /// One line per compiled step: op, parameter, output shape, float operations (profiling).
    public private(set) var stepLabels: [(op: String, detail: String, flops: Int)] = []
    private var buffers: [String: FloatBuffer] = [:]
    private var shapes: [String: [Int]] = [:]
    private let inputs: [String: [Int]]
    /// im2col matrix [cin * k * k, Ho * Wo] of the largest sgemm convolution.
    private var col: FloatBuffer
    /// Upsampled map [cin, 2h, 2w] of the largest fused upsampling conv run by im2col.
    private var upBuf: FloatBuffer
    /// Padded input [cin, H + 2, W + 32] of the largest direct convolution.
    private var padBuf: FloatBuffer
    /// Phase weights of the direct upsampling convolutions and weights-with-bias of the panel
    /// products (kept alive here).
    private var phaseWeights: [FloatBuffer] = []
    /// Zeros [Ho * Wo] of the largest panel product (its per-column bias).
    private var zeros: FloatBuffer
    private let vectorized = NeuralNetRuntime.hasAVX512

    /// Builds network `net` of `file` for batch-1 inputs of the given shapes (without the batch
    /// axis: `x` [C, H, W], `t` [1], `emb` [128]...). Tensors are looked up as `name` or `net.name`.
    public init(file: SafeTensorsFile, net: String, inputs: [String: [Int]]) throws {
        self.file = file
        name = net
        self.inputs = inputs
        col = FloatBuffer(count: 1)
        upBuf = FloatBuffer(count: 1)
        padBuf = FloatBuffer(count: 1)
        zeros = FloatBuffer(count: 1)
        func bad(_ d: String) -> NetworkError { .unsupportedArchitecture(file: file.path, detail: "\(net): \(d)") }
        let specs = try file.metadataJSON("\(net).program", as: [StepSpec].self)
        guard let out = file.metadata["\(net).output"] else { throw bad("metadata key '\(net).output' is missing") }
        outputName = out
        func tensor(_ n: String, _ shape: [Int]) throws -> UnsafePointer<Float> {
            let key = file.tensors[n] != nil ? n : "\(net).\(n)"
            return try file.floats(key, shape: shape).pointer
        }
        for (n, sh) in inputs where !GraphNetwork.isSane(sh.isEmpty ? [1] : sh) { throw bad("input '\(n)' shape \(sh) is not a small positive shape") }
        var shapes = inputs
        var maxCol = 1, maxUp = 1, maxPad = 1, maxZeros = 1
        // Readers of each buffer (the output counts as one), for the fusions.
        var readers: [String: [Int]] = [out: [-1]]
        for (i, s) in specs.enumerated() { for b in s.in { readers[b, default: []].append(i) } }
        func onlyReader(_ buffer: String) -> Int? {
            guard let r = readers[buffer], r.count == 1, r[0] >= 0 else { return nil }
            return r[0]
        }
        func fusedActivation(after i: Int) -> (PlanarActivation, String)? {
            guard let j = onlyReader(specs[i].out), specs[j].op == "silu" || specs[j].op == "sigmoid" else { return nil }
            return (specs[j].op == "silu" ? .silu : .sigmoid, specs[j].out)
        }
        var skipped = Set<Int>()
        // up2 outputs folded into their conv: buffer -> the low-resolution buffer.
        var folded: [String: String] = [:]
        for (n, s) in inputs { buffers[n] = FloatBuffer(count: max(1, s.reduce(1, *))) }
        var compiled: [Step] = []
        var labels: [(op: String, detail: String, flops: Int)] = []
        for (index, s) in specs.enumerated() where !skipped.contains(index) {
            let flopsBefore = flops
            var outName = s.out, label = s.op
            func input(_ i: Int) throws -> (UnsafePointer<Float>, [Int]) {
                guard i < s.in.count, let sh = shapes[s.in[i]], let b = buffers[s.in[i]] else {
                    throw bad("step '\(s.out)' reads '\(i < s.in.count ? s.in[i] : "?")' before it is written")
                }
                return (UnsafePointer(b.pointer), sh)
            }
            let outShape: [Int]
            var make: (UnsafeMutablePointer<Float>) throws -> Step
            switch s.op {
            case "fourier":
                let (t, _) = try input(0)
                guard let freqs = s.freqs else { throw bad("fourier without freqs") }
                outShape = [2 * freqs.count]
                make = { .fourier(t: t, y: $0, freqs: freqs.map(Float.init)) }
                flops += 4 * freqs.count
            case "linear":
                let (x, xs) = try input(0)
                guard let p = s.param, xs.count == 1 else { throw bad("linear '\(s.param ?? "?")' on \(xs)") }
                let wInfo = try file.info(file.tensors["\(p).weight"] != nil ? "\(p).weight" : "\(net).\(p).weight")
                guard wInfo.shape.count == 2, wInfo.shape[1] == xs[0] else { throw bad("linear '\(p)' weight \(wInfo.shape) vs input \(xs)") }
                let outF = wInfo.shape[0], inF = xs[0]
                let w = try tensor("\(p).weight", [outF, inF]), b = try tensor("\(p).bias", [outF])
                outShape = [outF]
                make = { .linear(x: x, y: $0, inF: inF, outF: outF, w: w, b: b) }
                flops += 2 * inF * outF
            case "conv":
                let up = folded[s.in[0]]
                let (x, low) = try up.map { (UnsafePointer(buffers[$0]!.pointer), shapes[$0]!) } ?? input(0)
                let xs = up == nil ? low : [low[0], 2 * low[1], 2 * low[2]]  // the map convolved
                guard let p = s.param, let k = s.k, let st = s.stride, xs.count == 3, k == 1 || k == 3, st == 1 || st == 2 else {
                    throw bad("conv '\(s.param ?? "?")' with k \(s.k ?? 0) stride \(s.stride ?? 0) on \(xs)")
                }
                let wKey = file.tensors["\(p).weight"] != nil ? "\(p).weight" : "\(net).\(p).weight"
                let cout = try file.info(wKey).shape.first ?? 0
                let w = try tensor("\(p).weight", [cout, xs[0], k, k]), b = try tensor("\(p).bias", [cout])
                let ho = (xs[1] + 2 * (k / 2) - k) / st + 1, wo = (xs[2] + 2 * (k / 2) - k) / st + 1
                outShape = [cout, ho, wo]
                guard cout >= 1, ho >= 1, wo >= 1, GraphNetwork.isSane([xs[0] * k * k, ho * wo]) else { throw bad("conv '\(p)' gives \(outShape)") }
                let direct = vectorized && k == 3 && st == 1 && AVX512Kernels.planarConvSupports(height: low[1], width: low[2])
                var phase: UnsafePointer<Float>?, withBias: UnsafePointer<Float>?
                // Small maps (8 x 8 here) whose rows tile 32-pixel panels: AVX-512 panel product.
                // (On the 16 x 16 maps the planar kernel is faster: 0.09 vs 0.13 ms for 48 -> 48
                // channels, measured side by side with avgas-bench live --ops.)
                let panels = vectorized && !direct && up == nil && k == 3 && st == 1 && wo <= 32 && 32 % wo == 0 && (ho * wo) % 32 == 0
                if panels {
                    let kk = xs[0] * 9 + 1
                    let wb = FloatBuffer(count: cout * kk)
                    for o in 0..<cout {
                        (wb.pointer + o * kk).update(from: w + o * (kk - 1), count: kk - 1)
                        wb.pointer[o * kk + kk - 1] = b[o]
                    }
                    phaseWeights.append(wb)
                    withBias = UnsafePointer(wb.pointer)
                    maxCol = max(maxCol, kk * ho * wo)
                    maxZeros = max(maxZeros, ho * wo)
                } else if direct {
                    maxPad = max(maxPad, AVX512Kernels.paddedCount(channels: low[0], height: low[1], width: low[2]))
                    if up != nil {
                        let pw = FloatBuffer(count: 16 * cout * xs[0])
                        AVX512Kernels.phaseWeights(w, outChannels: cout, inChannels: xs[0], into: pw.pointer)
                        phaseWeights.append(pw)
                        phase = UnsafePointer(pw.pointer)
                    }
                } else {
                    if up != nil { maxUp = max(maxUp, xs.reduce(1, *)) }
                    if !(k == 1 && st == 1) { maxCol = max(maxCol, xs[0] * k * k * ho * wo) }
                }
                var act = PlanarActivation.none
                if let (a, o) = fusedActivation(after: index) {
                    act = a; outName = o
                    skipped.insert(onlyReader(s.out)!)
                    label += a == .silu ? "+silu" : "+sigmoid"
                    flops += 4 * outShape.reduce(1, *)
                }
                if up != nil { label = "up2+" + label }
                let isUp = up != nil
                make = { [direct, phase, act, withBias] in
                    .conv(x: x, y: $0, cin: xs[0], h: low[1], w: low[2], cout: cout, k: k, stride: st, weight: w, bias: b,
                          act: act, up: isUp, phase: phase, direct: direct, withBias: withBias)
                }
                flops += 2 * cout * xs[0] * k * k * ho * wo
            case "groupnorm":
                let (x, xs) = try input(0)
                guard let p = s.param, let g = s.groups, xs.count == 3, g > 0, xs[0] % g == 0 else { throw bad("groupnorm on \(xs)") }
                let w = try tensor("\(p).weight", [xs[0]]), b = try tensor("\(p).bias", [xs[0]])
                outShape = xs
                var act = PlanarActivation.none
                if let (a, o) = fusedActivation(after: index) {
                    act = a; outName = o
                    skipped.insert(onlyReader(s.out)!)
                    label += a == .silu ? "+silu" : "+sigmoid"
                    flops += 4 * xs.reduce(1, *)
                }
                make = { [act] in .groupnorm(x: x, y: $0, c: xs[0], hw: xs[1] * xs[2], groups: g, eps: Float(s.eps ?? 1e-5), w: w, b: b, act: act) }
                flops += 8 * xs.reduce(1, *)
            case "silu", "sigmoid":
                let (x, xs) = try input(0)
                outShape = xs
                let n = xs.reduce(1, *)
                make = s.op == "silu" ? { .silu(x: x, y: $0, n: n) } : { .sigmoid(x: x, y: $0, n: n) }
                flops += 4 * n
            case "film":
                let (x, xs) = try input(0), (sv, ss) = try input(1)
                guard xs.count == 3, ss == [2 * xs[0]] else { throw bad("film of \(xs) by \(ss)") }
                outShape = xs
                make = { .film(x: x, s: sv, y: $0, c: xs[0], hw: xs[1] * xs[2]) }
                flops += 2 * xs.reduce(1, *)
            case "add":
                let (a, sa) = try input(0), (b, sb) = try input(1)
                guard sa == sb else { throw bad("add of \(sa) and \(sb)") }
                outShape = sa
                make = { .add(a: a, b: b, y: $0, n: sa.reduce(1, *)) }
                flops += sa.reduce(1, *)
            case "concat":
                guard !s.in.isEmpty else { throw bad("concat '\(s.out)' has no inputs") }
                var parts: [(UnsafePointer<Float>, Int)] = []
                var first: [Int]?
                var channels = 0
                for i in 0..<s.in.count {
                    let (p, sh) = try input(i)
                    if let f = first, Array(f.dropFirst()) != Array(sh.dropFirst()) { throw bad("concat of \(f) and \(sh)") }
                    first = first ?? sh
                    channels += sh[0]
                    parts.append((p, sh.reduce(1, *)))
                }
                outShape = [channels] + Array(first!.dropFirst())
                make = { .concat(parts: parts, y: $0) }
            case "up2":
                let (x, xs) = try input(0)
                guard xs.count == 3 else { throw bad("up2 on \(xs)") }
                outShape = [xs[0], 2 * xs[1], 2 * xs[2]]
                if let j = onlyReader(s.out), specs[j].op == "conv", specs[j].k == 3, specs[j].stride == 1, specs[j].in.first == s.out {
                    // Folded into step j: nothing to run here.
                    guard GraphNetwork.isSane(outShape) else { throw bad("step '\(s.out)' would produce shape \(outShape)") }
                    folded[s.out] = s.in[0]
                    shapes[s.out] = outShape
                    continue
                }
                make = { .up2(x: x, y: $0, c: xs[0], h: xs[1], w: xs[2]) }
            default:
                throw bad("unknown op '\(s.op)'")
            }
            guard GraphNetwork.isSane(outShape) else { throw bad("step '\(s.out)' would produce shape \(outShape)") }
            // Every step writes a fresh buffer (names are unique in these programs); reuse
            // by name only if the size fits.
            let count = outShape.reduce(1, *)
            if buffers[outName] == nil || buffers[outName]!.count < count { buffers[outName] = FloatBuffer(count: count) }
            shapes[outName] = outShape
            if outName != s.out { shapes[s.out] = outShape }
            compiled.append(try make(buffers[outName]!.pointer))
            let inShape = s.in.first.flatMap { folded[$0].flatMap { shapes[$0] } ?? shapes[$0] } ?? []
            labels.append((label, "\(s.param ?? s.out) \(inShape)->\(outShape)", flops - flopsBefore))
        }
        guard shapes[out] != nil else { throw bad("output buffer '\(out)' is never written") }
        steps = compiled
        stepLabels = labels
        self.shapes = shapes
        col = FloatBuffer(count: maxCol)
        upBuf = FloatBuffer(count: maxUp)
        padBuf = FloatBuffer(count: maxPad)
        zeros = FloatBuffer(count: maxZeros)
    }

    /// Shape of a buffer (the output's included).
    public func shape(of buffer: String) -> [Int]? { shapes[buffer] }
    public var outputShape: [Int] { shapes[outputName]! }

    /// Writable input buffer `name` (fill it, then call `forward`).
    public func input(_ name: String) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: buffers[name]!.pointer, count: max(1, inputs[name]!.reduce(1, *)))
    }

    /// The output after `forward`.
    public var output: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: buffers[outputName]!.pointer, count: outputShape.reduce(1, *))
    }

    public func forward() {
        for step in steps { run(step) }
    }

    /// Median wall time of each step over `repeats` forward passes (after one warm-up), in
    /// nanoseconds, in `stepLabels` order (benchmarks: `avgas-bench live --ops`).
    public func profile(repeats: Int) -> [Double] {
        forward()
        var times = [[UInt64]](repeating: [], count: steps.count)
        var ts = timespec()
        func now() -> UInt64 { clock_gettime(CLOCK_MONOTONIC, &ts); return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec) }
        for _ in 0..<max(1, repeats) {
            for (i, step) in steps.enumerated() {
                let t0 = now()
                run(step)
                times[i].append(now() - t0)
            }
        }
        return times.map { t in let s = t.sorted(); return Double(s[s.count / 2]) }
    }

    private func run(_ step: Step) {
        switch step {
        case .fourier(let t, let y, let freqs):
            let n = freqs.count
            for (i, f) in freqs.enumerated() {
                let a = 2 * Float.pi * f * t[0]
                y[i] = sinf(a); y[n + i] = cosf(a)
            }
        case .linear(let x, let y, let inF, let outF, let w, let b):
            y.update(from: b, count: outF)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(outF), Int32(inF), 1, w, Int32(inF), x, 1, 1, y, 1)
        case .conv(let x0, let y, let cin, let h0, let w0, let cout, let k, let stride, let weight, let bias, let act, let up, let phase,
                   let direct, let withBias):
            if let withBias {
                panelConv(x0, cin: cin, h: h0, w: w0, cout: cout, withBias: withBias, into: y)
                activate(y, count: cout * h0 * w0, act)
                return
            }
            if direct {
                if let phase {
                    AVX512Kernels.upsampleConv3x3(x0, inChannels: cin, height: h0, width: w0, phase: phase, bias: bias, outChannels: cout,
                                                  activation: act, padded: padBuf.pointer, into: y)
                } else {
                    AVX512Kernels.conv3x3(x0, inChannels: cin, height: h0, width: w0, weight: weight, bias: bias, outChannels: cout,
                                          activation: act, padded: padBuf.pointer, into: y)
                }
                return
            }
            var x = x0, h = h0, w = w0
            if up {
                Self.upsample(x0, c: cin, h: h0, w: w0, into: upBuf.pointer)
                x = UnsafePointer(upBuf.pointer); h = 2 * h0; w = 2 * w0
            }
            let ho = (h + 2 * (k / 2) - k) / stride + 1, wo = (w + 2 * (k / 2) - k) / stride + 1
            let n = ho * wo
            let src: UnsafePointer<Float>
            if k == 1 && stride == 1 {
                src = x  // [cin, H*W] is already the column matrix
            } else {
                // im2col: row (c, i, j) of [cin*k*k, Ho*Wo] matches weight [cout, cin, k, k].
                let c = col.pointer
                let pad = k / 2
                for ci in 0..<cin {
                    for i in 0..<k {
                        for j in 0..<k {
                            let row = c + ((ci * k + i) * k + j) * n
                            for oy in 0..<ho {
                                let iy = oy * stride - pad + i
                                let dst = row + oy * wo
                                if iy < 0 || iy >= h { for ox in 0..<wo { dst[ox] = 0 }; continue }
                                let srow = x + (ci * h + iy) * w
                                for ox in 0..<wo {
                                    let ix = ox * stride - pad + j
                                    dst[ox] = (ix >= 0 && ix < w) ? srow[ix] : 0
                                }
                            }
                        }
                    }
                }
                src = UnsafePointer(c)
            }
            let kk = cin * k * k
            for o in 0..<cout { let row = y + o * n; let bv = bias[o]; for p in 0..<n { row[p] = bv } }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cout), Int32(n), Int32(kk),
                        1, weight, Int32(kk), src, Int32(n), 1, y, Int32(n))
            activate(y, count: cout * n, act)
        case .groupnorm(let x, let y, let c, let hw, let groups, let eps, let w, let b, let act):
            let cg = c / groups
            for g in 0..<groups {
                let base = g * cg * hw, count = cg * hw
                // Sums in 16 lanes (then across them): mean, then the centred second moment.
                let xg = UnsafeRawPointer(x + base)
                let vecs = count / 16
                var acc = SIMD16<Float>()
                for i in 0..<vecs { acc += xg.loadUnaligned(fromByteOffset: i * 64, as: SIMD16<Float>.self) }
                var mean = acc.sum()
                for i in (vecs * 16)..<count { mean += x[base + i] }
                mean /= Float(count)
                let mv = SIMD16<Float>(repeating: mean)
                acc = SIMD16<Float>()
                for i in 0..<vecs { let d = xg.loadUnaligned(fromByteOffset: i * 64, as: SIMD16<Float>.self) - mv; acc.addProduct(d, d) }
                var v = acc.sum()
                for i in (vecs * 16)..<count { let d = x[base + i] - mean; v += d * d }
                let inv = 1 / (v / Float(count) + eps).squareRoot()
                for ch in 0..<cg {
                    let cc = g * cg + ch
                    let scale = inv * w[cc], shift = b[cc] - mean * inv * w[cc]
                    let off = cc * hw
                    for i in 0..<hw { y[off + i] = x[off + i] * scale + shift }
                }
            }
            activate(y, count: c * hw, act)
        case .silu(let x, let y, let n):
            if vectorized { AVX512Kernels.activate(x, count: n, .silu, into: y); return }
            for i in 0..<n { let v = x[i]; y[i] = v / (1 + expf(-v)) }
        case .sigmoid(let x, let y, let n):
            if vectorized { AVX512Kernels.activate(x, count: n, .sigmoid, into: y); return }
            for i in 0..<n { y[i] = 1 / (1 + expf(-x[i])) }
        case .film(let x, let s, let y, let c, let hw):
            for ch in 0..<c {
                let scale = 1 + s[ch], shift = s[c + ch]
                let off = ch * hw
                for i in 0..<hw { y[off + i] = x[off + i] * scale + shift }
            }
        case .add(let a, let b, let y, let n):
            for i in 0..<n { y[i] = a[i] + b[i] }
        case .concat(let parts, let y):
            var off = 0
            for (p, n) in parts { (y + off).update(from: p, count: n); off += n }
        case .up2(let x, let y, let c, let h, let w):
            Self.upsample(x, c: c, h: h, w: w, into: y)
        }
    }

    /// 3x3 stride-1 convolution of a small map as one AVX-512 panel product:
    /// y [cout, H*W] = withBias [cout, K] * cols [K, H*W], K = cin * 9 + 1, where `cols` (in `col`)
    /// is the im2col matrix written straight into 32-pixel panels ([H*W / 32, K, 32]; a panel
    /// holds 32 / W whole rows) with a last row of ones for the bias. Needs 32 % W == 0 and
    /// (H * W) % 32 == 0.
    private func panelConv(_ x: UnsafePointer<Float>, cin: Int, h: Int, w: Int, cout: Int, withBias: UnsafePointer<Float>,
                           into y: UnsafeMutablePointer<Float>) {
        let n = h * w, kk = cin * 9 + 1
        let rowsPerPanel = 32 / w
        let cp = col.pointer
        for j in 0..<(n / 32) {
            let panel = cp + j * kk * 32
            for ci in 0..<cin {
                let plane = x + ci * h * w
                for i in 0..<3 {
                    for r in 0..<rowsPerPanel {
                        let iy = j * rowsPerPanel + r - 1 + i
                        let d0 = panel + (ci * 9 + i * 3) * 32 + r * w  // taps (i, 0), (i, 1), (i, 2): 32 apart
                        guard iy >= 0 && iy < h else {
                            for t in 0..<w { d0[t] = 0; d0[32 + t] = 0; d0[64 + t] = 0 }
                            continue
                        }
                        let src = plane + iy * w
                        d0[0] = 0
                        for t in 1..<w { d0[t] = src[t - 1] }
                        for t in 0..<w { d0[32 + t] = src[t] }
                        for t in 0..<(w - 1) { d0[64 + t] = src[t + 1] }
                        d0[64 + w - 1] = 0
                    }
                }
            }
            (panel + (kk - 1) * 32).update(repeating: 1, count: 32)
        }
        AVX512Kernels.gemm(withBias, rows: cout, depth: kk, packed: UnsafePointer(cp), columns: n, bias: zeros.pointer,
                           relu: false, into: y)
    }

    /// Nearest x2: x [c, h, w] -> y [c, 2h, 2w].
    static func upsample(_ x: UnsafePointer<Float>, c: Int, h: Int, w: Int, into y: UnsafeMutablePointer<Float>) {
        let w2 = 2 * w
        for ch in 0..<c {
            for iy in 0..<h {
                let srow = x + (ch * h + iy) * w
                let d0 = y + (ch * 2 * h + 2 * iy) * w2
                for ix in 0..<w { let v = srow[ix]; d0[2 * ix] = v; d0[2 * ix + 1] = v }
                (d0 + w2).update(from: d0, count: w2)
            }
        }
    }

    /// Applies a fused activation in place (vectorised with AVX-512, else scalar `expf`).
    private func activate(_ y: UnsafeMutablePointer<Float>, count n: Int, _ act: PlanarActivation) {
        switch act {
        case .none: return
        case _ where vectorized: AVX512Kernels.activate(y, count: n, act)
        case .silu: for i in 0..<n { let v = y[i]; y[i] = v / (1 + expf(-v)) }
        case .sigmoid: for i in 0..<n { y[i] = 1 / (1 + expf(-y[i])) }
        }
    }
}

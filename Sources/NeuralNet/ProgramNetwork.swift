import COpenBLAS
import Foundation

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
        case conv(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, cin: Int, h: Int, w: Int, cout: Int, k: Int, stride: Int,
                  weight: UnsafePointer<Float>, bias: UnsafePointer<Float>)
        case groupnorm(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, c: Int, hw: Int, groups: Int, eps: Float,
                       w: UnsafePointer<Float>, b: UnsafePointer<Float>)
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
    private var col: FloatBuffer

    /// Builds network `net` of `file` for batch-1 inputs of the given shapes (without the batch
    /// axis: `x` [C, H, W], `t` [1], `emb` [128]...). Tensors are looked up as `name` or `net.name`.
    public init(file: SafeTensorsFile, net: String, inputs: [String: [Int]]) throws {
        self.file = file
        name = net
        self.inputs = inputs
        col = FloatBuffer(count: 1)
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
        var maxCol = 1
        for (n, s) in inputs { buffers[n] = FloatBuffer(count: max(1, s.reduce(1, *))) }
        var compiled: [Step] = []
        var labels: [(op: String, detail: String, flops: Int)] = []
        for s in specs {
            let flopsBefore = flops
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
                let (x, xs) = try input(0)
                guard let p = s.param, let k = s.k, let st = s.stride, xs.count == 3, k == 1 || k == 3, st == 1 || st == 2 else {
                    throw bad("conv '\(s.param ?? "?")' with k \(s.k ?? 0) stride \(s.stride ?? 0) on \(xs)")
                }
                let wKey = file.tensors["\(p).weight"] != nil ? "\(p).weight" : "\(net).\(p).weight"
                let cout = try file.info(wKey).shape.first ?? 0
                let w = try tensor("\(p).weight", [cout, xs[0], k, k]), b = try tensor("\(p).bias", [cout])
                let ho = (xs[1] + 2 * (k / 2) - k) / st + 1, wo = (xs[2] + 2 * (k / 2) - k) / st + 1
                outShape = [cout, ho, wo]
                guard cout >= 1, ho >= 1, wo >= 1, GraphNetwork.isSane([xs[0] * k * k, ho * wo]) else { throw bad("conv '\(p)' gives \(outShape)") }
                maxCol = max(maxCol, xs[0] * k * k * ho * wo)
                make = { .conv(x: x, y: $0, cin: xs[0], h: xs[1], w: xs[2], cout: cout, k: k, stride: st, weight: w, bias: b) }
                flops += 2 * cout * xs[0] * k * k * ho * wo
            case "groupnorm":
                let (x, xs) = try input(0)
                guard let p = s.param, let g = s.groups, xs.count == 3, g > 0, xs[0] % g == 0 else { throw bad("groupnorm on \(xs)") }
                let w = try tensor("\(p).weight", [xs[0]]), b = try tensor("\(p).bias", [xs[0]])
                outShape = xs
                make = { .groupnorm(x: x, y: $0, c: xs[0], hw: xs[1] * xs[2], groups: g, eps: Float(s.eps ?? 1e-5), w: w, b: b) }
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
                make = { .up2(x: x, y: $0, c: xs[0], h: xs[1], w: xs[2]) }
            default:
                throw bad("unknown op '\(s.op)'")
            }
            guard GraphNetwork.isSane(outShape) else { throw bad("step '\(s.out)' would produce shape \(outShape)") }
            // Every step writes a fresh buffer (names are unique in these programs); reuse
            // by name only if the size fits.
            let count = outShape.reduce(1, *)
            if buffers[s.out] == nil || buffers[s.out]!.count < count { buffers[s.out] = FloatBuffer(count: count) }
            shapes[s.out] = outShape
            compiled.append(try make(buffers[s.out]!.pointer))
            let inShape = s.in.first.flatMap { shapes[$0] } ?? []
            labels.append((s.op, "\(s.param ?? s.out) \(inShape)->\(outShape)", flops - flopsBefore))
        }
        guard shapes[out] != nil else { throw bad("output buffer '\(out)' is never written") }
        steps = compiled
        stepLabels = labels
        self.shapes = shapes
        col = FloatBuffer(count: maxCol)
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
        case .conv(let x, let y, let cin, let h, let w, let cout, let k, let stride, let weight, let bias):
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
        case .groupnorm(let x, let y, let c, let hw, let groups, let eps, let w, let b):
            let cg = c / groups
            for g in 0..<groups {
                let base = g * cg * hw, count = cg * hw
                var mean: Float = 0
                for i in 0..<count { mean += x[base + i] }
                mean /= Float(count)
                var v: Float = 0
                for i in 0..<count { let d = x[base + i] - mean; v += d * d }
                let inv = 1 / (v / Float(count) + eps).squareRoot()
                for ch in 0..<cg {
                    let cc = g * cg + ch
                    let scale = inv * w[cc], shift = b[cc] - mean * inv * w[cc]
                    let off = cc * hw
                    for i in 0..<hw { y[off + i] = x[off + i] * scale + shift }
                }
            }
        case .silu(let x, let y, let n):
            for i in 0..<n { let v = x[i]; y[i] = v / (1 + expf(-v)) }
        case .sigmoid(let x, let y, let n):
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
    }
}

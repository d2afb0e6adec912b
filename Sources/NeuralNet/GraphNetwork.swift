import COpenBLAS
import Foundation

/// A small feed-forward network described by its weights file: the "avgas-graph-v1" op list
/// in `__metadata__["architecture"]`, written by training/avgas/models.py (whose `run_graph`
/// is the numpy reference of the same rules). Used for the separator and its ablation.
///
/// Op semantics (values are float32 arrays, named; tensors come from the file):
/// - `linear`    out = in @ weight.T + bias over the last axis (row-wise on [K, in_f])
/// - `relu`      out = max(in, 0)
/// - `layernorm` (in - mean) / sqrt(var + eps) * weight + bias over the last axis (biased var)
/// - `add`       a + b, or in + param, numpy broadcasting (trailing axes aligned)
/// - `mul`       in * param, numpy broadcasting
/// - `l2norm`    in / max(||in||, eps) over the last axis
/// Shapes are inferred once at load, every buffer is allocated then, and `forward` allocates nothing.
public final class GraphNetwork: @unchecked Sendable {
    struct Op: Decodable {
        var op: String
        var `in`: String?
        var a: String?
        var b: String?
        var out: String
        var weight: String?
        var bias: String?
        var param: String?
        var eps: Double?
    }
    struct Graph: Decodable {
        struct Input: Decodable { var name: String; var shape: [Int] }
        var format: String
        var name: String
        var input: Input
        var ops: [Op]
        var outputs: [String: [Int]]
    }

    /// One compiled step, with its operand pointers and sizes resolved at load.
    private enum Step {
        case linear(x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, inF: Int, outF: Int,
                    w: UnsafePointer<Float>, b: UnsafePointer<Float>?)
        case relu(x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int)
        case layernorm(x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, n: Int,
                       w: UnsafePointer<Float>, b: UnsafePointer<Float>, eps: Float)
        case binary(mul: Bool, a: UnsafePointer<Float>, ai: [Int32], b: UnsafePointer<Float>, bi: [Int32],
                    y: UnsafeMutablePointer<Float>, n: Int)
        case l2norm(x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, n: Int, eps: Float)
        case copy(x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int)
    }

    public let name: String
    public let file: SafeTensorsFile
    public let inputShape: [Int]
    /// Float operations of one forward pass (multiply-add counts two).
    public private(set) var flops = 0
    private var steps: [Step] = []
    private var buffers: [String: FloatBuffer] = [:]
    private var shapes: [String: [Int]] = [:]
    private let inputName: String
    private var scratch: [FloatBuffer] = []

    public init(file: SafeTensorsFile) throws {
        self.file = file
        let g = try file.metadataJSON("architecture", as: Graph.self)
        func bad(_ d: String) -> NetworkError { .unsupportedArchitecture(file: file.path, detail: d) }
        guard g.format == "avgas-graph-v1" else { throw bad("graph format '\(g.format)', expected avgas-graph-v1") }
        name = g.name
        inputShape = g.input.shape
        inputName = g.input.name
        guard Self.isSane(g.input.shape) else { throw bad("input shape \(g.input.shape) is not a small positive shape") }
        for (n, s) in g.outputs where !Self.isSane(s) { throw bad("output '\(n)' shape \(s) is not a small positive shape") }
        var shapes: [String: [Int]] = [g.input.name: g.input.shape]
        // Pass 1: shapes, and the largest size each named value ever takes.
        var maxCount: [String: Int] = [g.input.name: g.input.shape.reduce(1, *)]
        func shape(_ n: String?) throws -> [Int] {
            guard let n, let s = shapes[n] else { throw bad("op reads value '\(n ?? "?")' before it is written") }
            return s
        }
        func tensorShape(_ n: String?) throws -> [Int] {
            guard let n else { throw bad("an op lacks a tensor name") }
            return try file.info(n).shape
        }
        var opShapes: [[Int]] = []
        for op in g.ops {
            let out: [Int]
            switch op.op {
            case "linear":
                let x = try shape(op.in), w = try tensorShape(op.weight)
                guard w.count == 2, x.last == w[1] else { throw bad("linear '\(op.weight ?? "")' \(w) does not fit input \(x)") }
                if let b = op.bias { guard try file.info(b).shape == [w[0]] else { throw bad("bias '\(b)' is not [\(w[0])]") } }
                out = Array(x.dropLast()) + [w[0]]
            case "relu", "l2norm":
                out = try shape(op.in)
            case "layernorm":
                let x = try shape(op.in)
                guard try tensorShape(op.weight) == [x.last ?? 0], try tensorShape(op.bias) == [x.last ?? 0] else {
                    throw bad("layernorm parameters do not match \(x)")
                }
                out = x
            case "add", "mul":
                let a = try op.a.map { try shape($0) } ?? shape(op.in)
                let b = try op.b.map { try shape($0) } ?? tensorShape(op.param)
                guard let s = Self.broadcast(a, b) else { throw bad("cannot broadcast \(a) with \(b) in '\(op.out)'") }
                out = s
            default:
                throw bad("unknown op '\(op.op)'")
            }
            guard Self.isSane(out) else { throw bad("op '\(op.out)' would produce shape \(out)") }
            shapes[op.out] = out
            maxCount[op.out] = max(maxCount[op.out] ?? 0, out.reduce(1, *))
            opShapes.append(out)
        }
        for (n, s) in g.outputs {
            guard shapes[n] == s else { throw bad("output '\(n)' has shape \(shapes[n] ?? []), metadata says \(s)") }
        }
        for (n, c) in maxCount { buffers[n] = FloatBuffer(count: c) }
        self.shapes = shapes
        // Pass 2: compile.
        var current: [String: [Int]] = [g.input.name: g.input.shape]
        for (op, out) in zip(g.ops, opShapes) {
            let y = buffers[op.out]!.pointer
            let n = out.reduce(1, *)
            switch op.op {
            case "linear":
                let xs = current[op.in!]!, w = try file.floats(op.weight!)
                let inF = xs.last!, outF = w.shape[0], rows = xs.reduce(1, *) / inF
                var x = buffers[op.in!]!.pointer
                if op.in == op.out {  // in place: read from a copy
                    let s = FloatBuffer(count: rows * inF); scratch.append(s)
                    steps.append(.copy(x: x, y: s.pointer, n: rows * inF)); x = s.pointer
                }
                let b = try op.bias.map { try file.floats($0).pointer }
                steps.append(.linear(x: x, y: y, rows: rows, inF: inF, outF: outF, w: w.pointer, b: b))
                flops += 2 * rows * inF * outF + (b == nil ? 0 : rows * outF)
            case "relu":
                steps.append(.relu(x: buffers[op.in!]!.pointer, y: y, n: n)); flops += n
            case "l2norm":
                let d = out.last!
                steps.append(.l2norm(x: buffers[op.in!]!.pointer, y: y, rows: n / d, n: d, eps: Float(op.eps ?? 1e-12))); flops += 3 * n
            case "layernorm":
                let d = out.last!
                steps.append(.layernorm(x: buffers[op.in!]!.pointer, y: y, rows: n / d, n: d,
                                        w: try file.floats(op.weight!).pointer, b: try file.floats(op.bias!).pointer,
                                        eps: Float(op.eps ?? 1e-5)))
                flops += 8 * n
            default:  // add, mul
                let (aPtr, aShape): (UnsafePointer<Float>, [Int]) = op.a.map { (UnsafePointer(buffers[$0]!.pointer), current[$0]!) }
                    ?? (UnsafePointer(buffers[op.in!]!.pointer), current[op.in!]!)
                let (bPtr, bShape): (UnsafePointer<Float>, [Int]) = try op.b.map { (UnsafePointer(buffers[$0]!.pointer), current[$0]!) }
                    ?? { let t = try file.floats(op.param!); return (t.pointer, t.shape) }()
                var aPtr2 = aPtr, bPtr2 = bPtr
                // Reading an operand that is also the output is safe elementwise only when the
                // operand is not broadcast; copy it otherwise.
                if UnsafePointer(y) == aPtr && aShape != out { let s = FloatBuffer(count: aShape.reduce(1, *)); scratch.append(s); steps.append(.copy(x: UnsafeMutablePointer(mutating: aPtr), y: s.pointer, n: s.count)); aPtr2 = UnsafePointer(s.pointer) }
                if UnsafePointer(y) == bPtr && bShape != out { let s = FloatBuffer(count: bShape.reduce(1, *)); scratch.append(s); steps.append(.copy(x: UnsafeMutablePointer(mutating: bPtr), y: s.pointer, n: s.count)); bPtr2 = UnsafePointer(s.pointer) }
                steps.append(.binary(mul: op.op == "mul", a: aPtr2, ai: Self.indexMap(aShape, out), b: bPtr2, bi: Self.indexMap(bShape, out), y: y, n: n))
                flops += n
            }
            current[op.out] = out
        }
    }

    /// Loads and builds the network in `path`; errors name the file and the problem.
    public convenience init(path: String) throws { try self.init(file: SafeTensorsFile(path: path)) }

    /// Largest buffer a graph may ask for (2^26 floats, 256 MB): these are small networks.
    static let maxElements = 1 << 26

    /// Every dimension at least 1, the element count within `maxElements` (no overflow).
    static func isSane(_ shape: [Int]) -> Bool {
        guard shape.count <= 8 else { return false }
        var n = 1
        for d in shape {
            guard d >= 1, d <= maxElements else { return false }
            let (m, o) = n.multipliedReportingOverflow(by: d)
            guard !o, m <= maxElements else { return false }
            n = m
        }
        return true
    }

    /// numpy broadcasting of two shapes, or nil.
    static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let n = max(a.count, b.count)
        let pa = [Int](repeating: 1, count: n - a.count) + a, pb = [Int](repeating: 1, count: n - b.count) + b
        var out: [Int] = []
        for (x, y) in zip(pa, pb) {
            if x == y || y == 1 { out.append(x) } else if x == 1 { out.append(y) } else { return nil }
        }
        return out
    }

    /// For each element of `out`, the flat index of the broadcast operand of shape `s`.
    static func indexMap(_ s: [Int], _ out: [Int]) -> [Int32] {
        let ps = [Int](repeating: 1, count: out.count - s.count) + s
        var strides = [Int](repeating: 0, count: out.count)
        var acc = 1
        for i in stride(from: out.count - 1, through: 0, by: -1) {
            strides[i] = ps[i] == 1 ? 0 : acc
            acc *= ps[i]
        }
        let total = out.reduce(1, *)
        var map = [Int32](repeating: 0, count: total)
        var idx = [Int](repeating: 0, count: out.count)
        for flat in 0..<total {
            var o = 0
            for d in 0..<out.count { o += idx[d] * strides[d] }
            map[flat] = Int32(o)
            var d = out.count - 1
            while d >= 0 { idx[d] += 1; if idx[d] < out[d] { break }; idx[d] = 0; d -= 1 }
        }
        return map
    }

    /// Shape of a named value (outputs included).
    public func shape(of value: String) -> [Int]? { shapes[value] }

    /// Runs the network on `input` (count = product of `inputShape`).
    public func forward(_ input: UnsafeBufferPointer<Float>) {
        let x = buffers[inputName]!
        precondition(input.count == inputShape.reduce(1, *), "GraphNetwork \(name): input has \(input.count) values")
        x.pointer.update(from: input.baseAddress!, count: input.count)
        for step in steps {
            switch step {
            case .copy(let x, let y, let n):
                y.update(from: x, count: n)
            case .linear(let x, let y, let rows, let inF, let outF, let w, let b):
                if rows == 1 {
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(outF), Int32(inF), 1, w, Int32(inF), x, 1, 0, y, 1)
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outF), Int32(inF),
                                1, x, Int32(inF), w, Int32(inF), 0, y, Int32(outF))
                }
                if let b {
                    for r in 0..<rows { let row = y + r * outF; for j in 0..<outF { row[j] += b[j] } }
                }
            case .relu(let x, let y, let n):
                for i in 0..<n { y[i] = max(x[i], 0) }
            case .layernorm(let x, let y, let rows, let n, let w, let b, let eps):
                for r in 0..<rows {
                    let xr = x + r * n, yr = y + r * n
                    var mean: Float = 0
                    for i in 0..<n { mean += xr[i] }
                    mean /= Float(n)
                    var v: Float = 0
                    for i in 0..<n { let d = xr[i] - mean; v += d * d }
                    let inv = 1 / (v / Float(n) + eps).squareRoot()
                    for i in 0..<n { yr[i] = (xr[i] - mean) * inv * w[i] + b[i] }
                }
            case .binary(let mul, let a, let ai, let b, let bi, let y, let n):
                ai.withUnsafeBufferPointer { ia in
                    bi.withUnsafeBufferPointer { ib in
                        if mul { for i in 0..<n { y[i] = a[Int(ia[i])] * b[Int(ib[i])] } }
                        else { for i in 0..<n { y[i] = a[Int(ia[i])] + b[Int(ib[i])] } }
                    }
                }
            case .l2norm(let x, let y, let rows, let n, let eps):
                for r in 0..<rows {
                    let xr = x + r * n, yr = y + r * n
                    var s: Float = 0
                    for i in 0..<n { s += xr[i] * xr[i] }
                    let inv = 1 / max(s.squareRoot(), eps)
                    for i in 0..<n { yr[i] = xr[i] * inv }
                }
            }
        }
    }

    /// The values of output (or any named value) `name` after `forward`.
    public func output(_ name: String) -> UnsafeBufferPointer<Float> {
        let n = shapes[name]!.reduce(1, *)
        return UnsafeBufferPointer(start: buffers[name]!.pointer, count: n)
    }
}

// A batch-1 matrix product with the weight matrix packed once at load time, for the pointwise
// (1x1) convolutions of small feature maps, where OpenBLAS's sgemm spends most of its time
// re-packing the weights on every call (its API has no pre-packed operand).
//
//   Y [M, N] = X [M, K] * W [K, N]       (row-major; M = pixels, K = cin, N = cout)
//   packed W: N / 16 panels, each [K, 16] contiguous (panel j holds columns 16 j ..< 16 j + 16);
//             the last panel is zero-padded when N is not a multiple of 16.
// The kernel keeps a 6 x 16 block of Y in registers (12 AVX2 registers) and streams one panel:
// per k, one 16-float load of W and six broadcasts of X (YAMNet's maps have 1536, 384, 96, 24
// and 6 pixels, all multiples of 6). Each weight is read once per 6 rows, and a
// panel (K * 64 bytes, at most 64 KB here) stays in L1/L2 across the row blocks.

import NeuralNetAVX512

/// How a product's multiply-add is computed. `fused` is one instruction with an FMA target
/// (e.g. built with `-Xswiftc -target-cpu -Xswiftc x86-64-v3`) but a libm call per lane without
/// one; `separate` is a multiply and an add. `PackedMatrix` measures and picks (see `GemmKernel`).
protocol MultiplyAdd { static func madd(_ acc: inout SIMD16<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) }
enum FusedMultiplyAdd: MultiplyAdd {
    @inline(__always) static func madd(_ acc: inout SIMD16<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) { acc.addProduct(a, b) }
}
enum SeparateMultiplyAdd: MultiplyAdd {
    @inline(__always) static func madd(_ acc: inout SIMD16<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) { acc += a * b }
}

/// Which implementation a `PointwiseConv2D` uses for its matrix product.
public enum GemmKernel: String, Sendable, CaseIterable {
    /// OpenBLAS `cblas_sgemm` on the weights in place.
    case openblas
    /// `PackedMatrix` with separate multiply and add.
    case packed
    /// `PackedMatrix` with fused multiply-add (fast only when the build targets an FMA CPU).
    case packedFMA
    /// `PackedMatrix` with 32-column panels and fused multiply-add: a 6 x 32 register block,
    /// which needs 32 vector registers' worth of accumulators (fast with an AVX-512 target).
    case packedWideFMA
    /// The AVX-512 kernels of the NeuralNetAVX512 target: `PackedMatrix` with 32-column panels,
    /// 12 x 32 register blocks and the bias and activation fused into the store; for `Conv2D`, a
    /// direct convolution (no im2col). Only on CPUs with AVX-512 (`NeuralNetRuntime.hasAVX512`).
    case avx512

    /// Columns per panel of the packed layout this kernel reads.
    var panelWidth: Int { self == .packedWideFMA || self == .avx512 ? 32 : 16 }

    /// The kernels this CPU can run (`.avx512` only with AVX-512).
    public static var available: [GemmKernel] {
        NeuralNetRuntime.hasAVX512 ? allCases : allCases.filter { $0 != .avx512 }
    }

    /// The fastest kernel on this project's machines for a matrix of `rows` rows (feature-map
    /// positions; measured with `avgas-bench backbone --layers`): the AVX-512 kernel where the
    /// CPU has it, else OpenBLAS for more than 64 rows and the packed FMA kernel below.
    public static func standard(rows: Int) -> GemmKernel {
        if NeuralNetRuntime.hasAVX512 { return .avx512 }
        return rows <= 64 ? .packedFMA : .openblas
    }
}

/// A [K, N] float matrix copied into 16- or 32-column panels, multiplied by small row blocks.
public final class PackedMatrix: @unchecked Sendable {  // immutable after init
    public let rows: Int      // K
    public let columns: Int   // N
    /// Columns per panel: 16 or 32.
    public let panelWidth: Int
    let panels: Int
    let storage: FloatBuffer  // [panels, K, panelWidth]

    /// Packs `w` ([K, N] row-major) into panels of `panelWidth` (16 or 32) columns.
    public init(_ w: UnsafePointer<Float>, rows k: Int, columns n: Int, panelWidth pw: Int = 16) {
        precondition(pw == 16 || pw == 32, "PackedMatrix: panel width \(pw)")
        rows = k; columns = n; panelWidth = pw
        panels = (n + pw - 1) / pw
        storage = FloatBuffer(count: panels * k * pw)
        for j in 0..<panels {
            let width = min(pw, n - pw * j)
            for r in 0..<k {
                let dst = storage.pointer + (j * k + r) * pw
                dst.update(from: w + r * n + pw * j, count: width)
                if width < pw { (dst + width).update(repeating: 0, count: pw - width) }
            }
        }
    }

    /// y [m, N] = act(x [m, K] * W + bias [N]) by the AVX-512 kernel (32-column panels only;
    /// call only when `NeuralNetRuntime.hasAVX512`). Rows are computed independently, each by
    /// the same operations whatever `m`: a batch gives the same rows as one row at a time.
    /// `panelRange` (nil: all) computes only those panels (a share of the columns for one thread;
    /// same operations per element).
    public func multiplyAVX512(_ x: UnsafePointer<Float>, rows m: Int, bias: UnsafePointer<Float>, activation: Activation,
                               into y: UnsafeMutablePointer<Float>, panelRange: Range<Int>? = nil) {
        precondition(panelWidth == 32 && NeuralNetRuntime.hasAVX512, "PackedMatrix.multiplyAVX512 needs 32-column panels and AVX-512")
        AVX512Kernels.gemm(x, rows: m, depth: rows, packed: storage.pointer, columns: columns, bias: bias,
                           relu: activation == .relu, into: y, panelRange: panelRange)
    }

    /// Rows `rowRange` of `multiplyAVX512(x, rows: m, ...)` (a share for one thread; see
    /// `AVX512Kernels.gemm(...rowRange:combine:)` for the alignment and `combine`).
    public func multiplyAVX512(_ x: UnsafePointer<Float>, rows m: Int, bias: UnsafePointer<Float>, activation: Activation,
                               into y: UnsafeMutablePointer<Float>, rowRange: Range<Int>,
                               combine: (_ set: Int, _ blocks: Int) -> (set: Int, blocks: Int)) {
        precondition(panelWidth == 32 && NeuralNetRuntime.hasAVX512, "PackedMatrix.multiplyAVX512 needs 32-column panels and AVX-512")
        AVX512Kernels.gemm(x, rows: m, depth: rows, packed: storage.pointer, columns: columns, bias: bias,
                           relu: activation == .relu, into: y, rowRange: rowRange, combine: combine)
    }

    /// Number of column panels (`panelWidth` columns each, the last zero-padded).
    public var panelCount: Int { panels }

    /// y [m, N] = x [m, K] * W (overwrites y). `panelRange` (nil: all) computes only the columns
    /// of those panels (a share for one thread; same operations per element).
    public func multiply(_ x: UnsafePointer<Float>, rows m: Int, into y: UnsafeMutablePointer<Float>, fused: Bool,
                         panelRange: Range<Int>? = nil) {
        let range = panelRange ?? 0..<panels
        if panelWidth == 32 {
            wideKernel(x, m, y, range)
        } else if fused {
            kernel(x, m, y, FusedMultiplyAdd.self, range)
        } else {
            kernel(x, m, y, SeparateMultiplyAdd.self, range)
        }
    }

    /// 6 x 32 blocks (two 16-float halves per row), fused multiply-add.
    private func wideKernel(_ x: UnsafePointer<Float>, _ m: Int, _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        let k = rows, n = columns
        let wr = UnsafeRawPointer(storage.pointer)
        for j in range {
            let panel = j * k * 32 * 4
            let col = 32 * j
            var r0 = 0
            while r0 < m {
                let rowsHere = min(6, m - r0)
                let x0 = x + r0 * k
                let x1 = x + min(r0 + 1, m - 1) * k
                let x2 = x + min(r0 + 2, m - 1) * k
                let x3 = x + min(r0 + 3, m - 1) * k
                let x4 = x + min(r0 + 4, m - 1) * k
                let x5 = x + min(r0 + 5, m - 1) * k
                var a0 = SIMD16<Float>(), b0 = SIMD16<Float>(), a1 = SIMD16<Float>(), b1 = SIMD16<Float>()
                var a2 = SIMD16<Float>(), b2 = SIMD16<Float>(), a3 = SIMD16<Float>(), b3 = SIMD16<Float>()
                var a4 = SIMD16<Float>(), b4 = SIMD16<Float>(), a5 = SIMD16<Float>(), b5 = SIMD16<Float>()
                for i in 0..<k {
                    let wa = wr.loadUnaligned(fromByteOffset: panel + i * 128, as: SIMD16<Float>.self)
                    let wb = wr.loadUnaligned(fromByteOffset: panel + i * 128 + 64, as: SIMD16<Float>.self)
                    var v = SIMD16<Float>(repeating: x0[i]); a0.addProduct(v, wa); b0.addProduct(v, wb)
                    v = SIMD16<Float>(repeating: x1[i]); a1.addProduct(v, wa); b1.addProduct(v, wb)
                    v = SIMD16<Float>(repeating: x2[i]); a2.addProduct(v, wa); b2.addProduct(v, wb)
                    v = SIMD16<Float>(repeating: x3[i]); a3.addProduct(v, wa); b3.addProduct(v, wb)
                    v = SIMD16<Float>(repeating: x4[i]); a4.addProduct(v, wa); b4.addProduct(v, wb)
                    v = SIMD16<Float>(repeating: x5[i]); a5.addProduct(v, wa); b5.addProduct(v, wb)
                }
                let width = min(32, n - col)
                for r in 0..<rowsHere {
                    let (a, b): (SIMD16<Float>, SIMD16<Float>)
                    switch r {
                    case 0: (a, b) = (a0, b0)
                    case 1: (a, b) = (a1, b1)
                    case 2: (a, b) = (a2, b2)
                    case 3: (a, b) = (a3, b3)
                    case 4: (a, b) = (a4, b4)
                    default: (a, b) = (a5, b5)
                    }
                    let row = y + (r0 + r) * n + col
                    if width == 32 {
                        UnsafeMutableRawPointer(row).storeBytes(of: a, as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(row + 16).storeBytes(of: b, as: SIMD16<Float>.self)
                    } else {
                        for c in 0..<width { row[c] = c < 16 ? a[c] : b[c - 16] }
                    }
                }
                r0 += 6
            }
        }
    }

    private func kernel<F: MultiplyAdd>(_ x: UnsafePointer<Float>, _ m: Int, _ y: UnsafeMutablePointer<Float>, _: F.Type,
                                        _ range: Range<Int>) {
        let k = rows, n = columns
        let wr = UnsafeRawPointer(storage.pointer)
        let yr = UnsafeMutableRawPointer(y)
        for j in range {
            let panel = j * k * 16 * 4             // byte offset of panel j
            let col = 16 * j
            let full = col + 16 <= n
            var r0 = 0
            while r0 < m {
                let rowsHere = min(6, m - r0)
                // Rows beyond m re-read the last row (harmless) and are not stored.
                let x0 = x + r0 * k
                let x1 = x + min(r0 + 1, m - 1) * k
                let x2 = x + min(r0 + 2, m - 1) * k
                let x3 = x + min(r0 + 3, m - 1) * k
                let x4 = x + min(r0 + 4, m - 1) * k
                let x5 = x + min(r0 + 5, m - 1) * k
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>()
                var a3 = SIMD16<Float>(), a4 = SIMD16<Float>(), a5 = SIMD16<Float>()
                for i in 0..<k {
                    let w = wr.loadUnaligned(fromByteOffset: panel + i * 64, as: SIMD16<Float>.self)
                    F.madd(&a0, SIMD16(repeating: x0[i]), w)
                    F.madd(&a1, SIMD16(repeating: x1[i]), w)
                    F.madd(&a2, SIMD16(repeating: x2[i]), w)
                    F.madd(&a3, SIMD16(repeating: x3[i]), w)
                    F.madd(&a4, SIMD16(repeating: x4[i]), w)
                    F.madd(&a5, SIMD16(repeating: x5[i]), w)
                }
                for r in 0..<rowsHere {
                    let a: SIMD16<Float>
                    switch r {
                    case 0: a = a0
                    case 1: a = a1
                    case 2: a = a2
                    case 3: a = a3
                    case 4: a = a4
                    default: a = a5
                    }
                    if full {
                        yr.storeBytes(of: a, toByteOffset: ((r0 + r) * n + col) * 4, as: SIMD16<Float>.self)
                    } else {
                        for c in 0..<(n - col) { y[(r0 + r) * n + col + c] = a[c] }
                    }
                }
                r0 += 6
            }
        }
    }
}

// AVX-512 kernels for the NeuralNet runtime's batch-1 (and small-batch) convolutional layers.
//
// This target is compiled for `skylake-avx512` (Package.swift), so `SIMD16<Float>` is one zmm
// register and `addProduct` one FMA. Nothing here may run on a CPU without AVX-512F/BW/DQ/VL:
// NeuralNet calls these functions only when `NeuralNetRuntime.hasAVX512` says the CPU (and the
// kernel's saved register state) supports them, and keeps its AVX2 code for other CPUs.
//
// Layouts (channels-last, as in NeuralNet/Layers.swift):
//   feature map        [H, W, C]           element (y, x, c) at (y * W + x) * C + c
//   packed matrix      [panels, K, 32]     panel j holds columns 32 j ..< 32 j + 32, zero-padded
//   depthwise weight   [kh, kw, C]
//   conv weight        [kh, kw, cin, cout]
//
// Every output element is computed by the same sequence of operations whatever the row block,
// batch size or thread that computes it (one FMA chain over k in increasing order from zero,
// then + bias, then the activation): a batch of patches gives bit-identical results to the
// patches one at a time.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The AVX-512 kernels. Call only when the CPU supports AVX-512F/BW/DQ/VL.
public enum AVX512Kernels {
    /// Columns per panel of the packed matrices `gemm` reads.
    public static let panelWidth = 32

    /// y [m, n] = act(x [m, k] * W [k, n] + bias [n]), W packed as [panels, k, 32]
    /// (`panels` = ceil(n / 32), zero-padded columns). Rows of x are `k` apart, rows of y `n`
    /// apart. `relu` applies max(., 0) after the bias. Allocates nothing.
    ///
    /// Loop order: panel outer (each 32-column panel is read from memory once and reused by
    /// every row block from L1/L2), 12-row blocks inner (a 12 x 32 block of y in 24 zmm
    /// registers; per k two panel loads and twelve broadcast FMAs pairs), then a 6-row block
    /// and single rows for the remainder.
    ///
    /// `panelRange` (nil: all) computes only those 32-column panels (columns 32 lo ..< min(32 hi, n)),
    /// for a product split across threads: each output element gets the same operations as in
    /// the whole product (the zero-skip masks depend on x only, so every part decides alike).
    public static func gemm(_ x: UnsafePointer<Float>, rows m: Int, depth k: Int,
                            packed w: UnsafePointer<Float>, columns n: Int,
                            bias: UnsafePointer<Float>, relu: Bool, into y: UnsafeMutablePointer<Float>,
                            panelRange: Range<Int>? = nil) {
        let panelsHere = panelRange ?? 0..<((n + 31) / 32)
        if skipZeros && k <= maskBits && (m / 8 + 6) * ((k + 63) / 64) <= maskWords {
            var masks = MaskStore()
            var done = false
            withUnsafeMutableBytes(of: &masks) { (raw: UnsafeMutableRawBufferPointer) in
                let mp = raw.baseAddress!.assumingMemoryBound(to: UInt64.self)
                if buildMasks(x, rows: m, depth: k, into: mp) {
                    sparseGemm(x, m, k, w, n, bias, relu, y, UnsafePointer(mp), panelsHere)
                    done = true
                }
            }
            if done { return }
        }
        denseGemm(x, m, k, w, n, bias, relu, y, panelsHere)
    }

    /// `gemm` without zero skipping (the plain 12/6/1-row loop) over panels `panelRange`.
    static func denseGemm(_ x: UnsafePointer<Float>, _ m: Int, _ k: Int, _ w: UnsafePointer<Float>, _ n: Int,
                          _ bias: UnsafePointer<Float>, _ relu: Bool, _ y: UnsafeMutablePointer<Float>,
                          _ panelRange: Range<Int>) {
        for j in panelRange {
            let panel = UnsafeRawPointer(w + j * k * 32)
            let col = 32 * j
            let width = min(32, n - col)
            let bRaw = UnsafeRawPointer(bias + col)
            // Bias of this panel (the tail panel reads only `width` values).
            let (b0, b1): (SIMD16<Float>, SIMD16<Float>)
            if width == 32 {
                b0 = bRaw.loadUnaligned(as: SIMD16<Float>.self)
                b1 = bRaw.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            } else {
                var t0 = SIMD16<Float>(), t1 = SIMD16<Float>()
                for c in 0..<width { if c < 16 { t0[c] = bias[col + c] } else { t1[c - 16] = bias[col + c] } }
                b0 = t0; b1 = t1
            }
            var r0 = 0
            while m - r0 >= 12 {
                block12(x + r0 * k, k, panel, y + r0 * n + col, n, width, b0, b1, relu)
                r0 += 12
            }
            if m - r0 >= 6 {
                block6(x + r0 * k, k, panel, y + r0 * n + col, n, width, b0, b1, relu)
                r0 += 6
            }
            while r0 < m {
                block1(x + r0 * k, k, panel, y + r0 * n + col, width, b0, b1, relu)
                r0 += 1
            }
        }
    }

    /// Rows `rowRange` of `gemm(x, rows: m, ...)`, for a product split by rows across threads:
    /// each part reads only its rows of x (which the previous layer's part for the same pixels
    /// wrote: no traffic between cores). `rowRange` starts at a multiple of 8 and ends at one or at
    /// m, so its zero-skip row blocks are exactly the whole product's; `combine` (called once by
    /// every part, with the same barrier) turns this part's (inputs set, blocks) into the sums
    /// over all parts, so every part takes the same masked-or-plain decision as the whole product.
    /// Bit-identical to the rows of the whole `gemm`.
    public static func gemm(_ x: UnsafePointer<Float>, rows m: Int, depth k: Int,
                            packed w: UnsafePointer<Float>, columns n: Int,
                            bias: UnsafePointer<Float>, relu: Bool, into y: UnsafeMutablePointer<Float>,
                            rowRange: Range<Int>, combine: (_ set: Int, _ blocks: Int) -> (set: Int, blocks: Int)) {
        precondition(rowRange.isEmpty || (rowRange.lowerBound % 8 == 0 && (rowRange.upperBound % 8 == 0 || rowRange.upperBound == m)),
                     "AVX512Kernels.gemm: row range \(rowRange) of \(m) not aligned to the 8-row blocks")
        let (r0, rows) = (rowRange.lowerBound, rowRange.count)
        let xp = x + r0 * k, yp = y + r0 * n
        if skipZeros && k <= maskBits && (m / 8 + 6) * ((k + 63) / 64) <= maskWords {
            var masks = MaskStore()
            var done = false
            withUnsafeMutableBytes(of: &masks) { (raw: UnsafeMutableRawBufferPointer) in
                let mp = raw.baseAddress!.assumingMemoryBound(to: UInt64.self)
                let mine = rows > 0 ? buildMaskCounts(xp, rows: rows, depth: k, into: mp) : (0, 0)
                let all = combine(mine.0, mine.1)
                if skipPays(set: all.set, blocks: all.blocks, depth: k) {
                    if rows > 0 { sparseGemm(xp, rows, k, w, n, bias, relu, yp, UnsafePointer(mp), 0..<((n + 31) / 32)) }
                    done = true
                }
            }
            if done { return }
        }
        if rows > 0 { denseGemm(xp, rows, k, w, n, bias, relu, yp, 0..<((n + 31) / 32)) }
    }

    // Zero skipping. After a ReLU, whole input channels are often zero over a small map (YAMNet,
    // measured on real recordings: about 70% of the 1024 channels entering its last 1x1 layer,
    // 40% entering the one before, 85% of the pooled embedding entering the classifier). For
    // products whose masks fit in `maskWords` (k <= 1024), each row block gets a k-bit mask of the inputs
    // that are non-zero in any of its rows, and the block's FMA loop visits only those k, in
    // increasing order (blocks of 8, 6 and 1 rows here). A skipped term is 0 * w added to the row's sum: skipping it changes at
    // most the sign of an exact zero, never a value (weights are finite).

    /// Whether `gemm` skips zero inputs (on unless the environment sets `AVGAS_NO_ZERO_SKIP=1`,
    /// to time the plain loop).
    public static let skipZeros: Bool = getenv("AVGAS_NO_ZERO_SKIP").map { String(cString: $0) != "1" } ?? true

    /// Bits per row-block mask (the largest k the masks cover).
    static let maskBits = 1024
    /// Words of mask storage: one mask of ceil(k / 64) words per row block (blocks of 8 rows,
    /// then a 6-row block and single rows); products needing more are not masked. Covers all
    /// of YAMNet's 1x1 layers per patch and in batches of up to 16 (e.g. 1536 x 32: 197 words;
    /// 384 x 512: 432 words).
    static let maskWords = 512
    /// `maskWords` words (4 KB), on the stack.
    struct MaskStore {
        var a = SIMD64<UInt64>(), b = SIMD64<UInt64>(), c = SIMD64<UInt64>(), d = SIMD64<UInt64>()
        var e = SIMD64<UInt64>(), f = SIMD64<UInt64>(), g = SIMD64<UInt64>(), h = SIMD64<UInt64>()
    }

    /// The row blocks of the masked product for m rows: (first row, rows) in order. Blocks of
    /// 8, not 12: with the index arithmetic of the masked loop, LLVM hoists the broadcasts of a
    /// 12-row block and spills accumulators; 8 rows (16 accumulators) stay in registers.
    @inline(__always)
    static func forEachBlock(_ m: Int, _ body: (Int, Int) -> Void) {
        var r0 = 0
        while m - r0 >= 8 { body(r0, 8); r0 += 8 }
        if m - r0 >= 6 { body(r0, 6); r0 += 6 }
        while r0 < m { body(r0, 1); r0 += 1 }
    }

    /// Fills one mask per row block (ceil(k / 64) words each: bit i of word w set when input w * 64 + i
    /// is non-zero in some row of the block). Returns whether skipping pays: at most 0.65 of the
    /// inputs set over all blocks (the masked loop of 8-row blocks costs about 1.3x the plain
    /// 12-row loop per input; measured with AVGAS_NO_ZERO_SKIP on YAMNet). Vectorised: the
    /// block's rows are OR-ed 16 inputs at a time, then each group folded into 16 bits.
    static func buildMasks(_ x: UnsafePointer<Float>, rows m: Int, depth k: Int, into masks: UnsafeMutablePointer<UInt64>) -> Bool {
        let (set, blocks) = buildMaskCounts(x, rows: m, depth: k, into: masks)
        return skipPays(set: set, blocks: blocks, depth: k)
    }

    /// Whether the masked product pays for `set` inputs set over `blocks` row-block masks of `k` bits.
    @inline(__always) static func skipPays(set: Int, blocks: Int, depth k: Int) -> Bool { set * 20 <= 13 * k * blocks }

    /// `buildMasks` without the decision: (inputs set over all blocks, blocks).
    static func buildMaskCounts(_ x: UnsafePointer<Float>, rows m: Int, depth k: Int,
                                into masks: UnsafeMutablePointer<UInt64>) -> (set: Int, blocks: Int) {
        var block = 0, set = 0
        let lanes = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        let magnitude = SIMD16<UInt32>(repeating: 0x7fff_ffff)
        let groups = k / 16
        let words = (k + 63) / 64
        var store = OrStore()
        withUnsafeMutableBytes(of: &store) { raw in
            let acc = raw.baseAddress!  // [groups] SIMD16<UInt32>: the block's rows OR-ed
            forEachBlock(m) { r0, rows in
                let mask = masks + block * words
                for word in 0..<words { mask[word] = 0 }
                let xb = UnsafeRawPointer(x + r0 * k)
                // Rows outer: plain vector ORs (no reduction inside the row loop).
                for g in 0..<groups {
                    acc.storeBytes(of: xb.loadUnaligned(fromByteOffset: g &* 64, as: SIMD16<UInt32>.self),
                                   toByteOffset: g &* 64, as: SIMD16<UInt32>.self)
                }
                var row = xb
                for _ in 1..<max(1, rows) {
                    row += k &* 4
                    for g in 0..<groups {
                        let a = acc.load(fromByteOffset: g &* 64, as: SIMD16<UInt32>.self)
                        acc.storeBytes(of: a | row.loadUnaligned(fromByteOffset: g &* 64, as: SIMD16<UInt32>.self),
                                       toByteOffset: g &* 64, as: SIMD16<UInt32>.self)
                    }
                }
                for g in 0..<groups {
                    // Lane i contributes bit i when its OR-ed magnitude is non-zero: (v | -v) has
                    // the top bit set exactly for v != 0 (integer lane arithmetic, which LLVM keeps
                    // in vectors; `replacing(with:where:)` here compiled to a per-lane loop).
                    let v = acc.load(fromByteOffset: g &* 64, as: SIMD16<UInt32>.self) & magnitude
                    let on = (v | (SIMD16<UInt32>() &- v)) &>> 31
                    let bits = UInt64((on &<< lanes).wrappedSum())
                    mask[g >> 2] |= bits << UInt64((g & 3) &* 16)
                }
                for i in (groups * 16)..<k {  // inputs beyond a multiple of 16
                    var any: UInt32 = 0
                    for r in 0..<rows { any |= xb.load(fromByteOffset: (r * k + i) * 4, as: UInt32.self) }
                    if any & 0x7fff_ffff != 0 { mask[i >> 6] |= 1 << UInt64(i & 63) }
                }
                for word in 0..<((k + 63) / 64) { set += mask[word].nonzeroBitCount }
                block += 1
            }
        }
        return (set, block)
    }

    /// Scratch for `buildMasks`: 64 vectors of 16 OR-ed inputs (4 KB, on the stack).
    struct OrStore {
        var a = SIMD64<UInt32>(), b = SIMD64<UInt32>(), c = SIMD64<UInt32>(), d = SIMD64<UInt32>()
        var e = SIMD64<UInt32>(), f = SIMD64<UInt32>(), g = SIMD64<UInt32>(), h = SIMD64<UInt32>()
        var i = SIMD64<UInt32>(), j = SIMD64<UInt32>(), k = SIMD64<UInt32>(), l = SIMD64<UInt32>()
        var m = SIMD64<UInt32>(), n = SIMD64<UInt32>(), o = SIMD64<UInt32>(), p = SIMD64<UInt32>()
    }

    /// `gemm` over the masked inputs only (same blocks, same order per row).
    static func sparseGemm(_ x: UnsafePointer<Float>, _ m: Int, _ k: Int, _ w: UnsafePointer<Float>, _ n: Int,
                           _ bias: UnsafePointer<Float>, _ relu: Bool, _ y: UnsafeMutablePointer<Float>,
                           _ masks: UnsafePointer<UInt64>, _ panelRange: Range<Int>) {
        let words = (k + 63) / 64
        for j in panelRange {
            let panel = UnsafeRawPointer(w + j * k * 32)
            let col = 32 * j
            let width = min(32, n - col)
            var b0 = SIMD16<Float>(), b1 = SIMD16<Float>()
            for c in 0..<width { if c < 16 { b0[c] = bias[col + c] } else { b1[c - 16] = bias[col + c] } }
            var block = 0
            forEachBlock(m) { r0, rows in
                let mask = masks + block * words
                switch rows {
                case 8: sparse8(x + r0 * k, k, panel, y + r0 * n + col, n, width, b0, b1, relu, mask, words)
                case 6: sparse6(x + r0 * k, k, panel, y + r0 * n + col, n, width, b0, b1, relu, mask, words)
                default: sparse1(x + r0 * k, panel, y + r0 * n + col, width, b0, b1, relu, mask, words)
                }
                block += 1
            }
        }
    }

    @inline(never)
    static func sparse8(_ x: UnsafePointer<Float>, _ k: Int, _ panel: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>,
                        _ n: Int, _ width: Int, _ b0: SIMD16<Float>, _ b1: SIMD16<Float>, _ relu: Bool,
                        _ mask: UnsafePointer<UInt64>, _ words: Int) {
        var a0 = SIMD16<Float>(), c0 = SIMD16<Float>(), a1 = SIMD16<Float>(), c1 = SIMD16<Float>()
        var a2 = SIMD16<Float>(), c2 = SIMD16<Float>(), a3 = SIMD16<Float>(), c3 = SIMD16<Float>()
        var a4 = SIMD16<Float>(), c4 = SIMD16<Float>(), a5 = SIMD16<Float>(), c5 = SIMD16<Float>()
        var a6 = SIMD16<Float>(), c6 = SIMD16<Float>(), a7 = SIMD16<Float>(), c7 = SIMD16<Float>()
        let x0 = x, x1 = x + k, x2 = x + 2 * k, x3 = x + 3 * k, x4 = x + 4 * k, x5 = x + 5 * k
        let x6 = x + 6 * k, x7 = x + 7 * k
        for word in 0..<words {
            var bits = mask[word]
            while bits != 0 {
                let i = word &* 64 &+ bits.trailingZeroBitCount
                bits &= bits &- 1
                let wa = panel.loadUnaligned(fromByteOffset: i &* 128, as: SIMD16<Float>.self)
                let wb = panel.loadUnaligned(fromByteOffset: i &* 128 &+ 64, as: SIMD16<Float>.self)
                var v = SIMD16<Float>(repeating: x0[i]); a0.addProduct(v, wa); c0.addProduct(v, wb)
                v = SIMD16<Float>(repeating: x1[i]); a1.addProduct(v, wa); c1.addProduct(v, wb)
                v = SIMD16<Float>(repeating: x2[i]); a2.addProduct(v, wa); c2.addProduct(v, wb)
                v = SIMD16<Float>(repeating: x3[i]); a3.addProduct(v, wa); c3.addProduct(v, wb)
                v = SIMD16<Float>(repeating: x4[i]); a4.addProduct(v, wa); c4.addProduct(v, wb)
                v = SIMD16<Float>(repeating: x5[i]); a5.addProduct(v, wa); c5.addProduct(v, wb)
                v = SIMD16<Float>(repeating: x6[i]); a6.addProduct(v, wa); c6.addProduct(v, wb)
                v = SIMD16<Float>(repeating: x7[i]); a7.addProduct(v, wa); c7.addProduct(v, wb)
            }
        }
        finish(a0, c0, b0, b1, relu, y, width)
        finish(a1, c1, b0, b1, relu, y + n, width)
        finish(a2, c2, b0, b1, relu, y + 2 * n, width)
        finish(a3, c3, b0, b1, relu, y + 3 * n, width)
        finish(a4, c4, b0, b1, relu, y + 4 * n, width)
        finish(a5, c5, b0, b1, relu, y + 5 * n, width)
        finish(a6, c6, b0, b1, relu, y + 6 * n, width)
        finish(a7, c7, b0, b1, relu, y + 7 * n, width)
    }

    @inline(never)
    static func sparse6(_ x: UnsafePointer<Float>, _ k: Int, _ panel: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>,
                        _ n: Int, _ width: Int, _ b0: SIMD16<Float>, _ b1: SIMD16<Float>, _ relu: Bool,
                        _ mask: UnsafePointer<UInt64>, _ words: Int) {
        var a0 = SIMD16<Float>(), c0 = SIMD16<Float>(), a1 = SIMD16<Float>(), c1 = SIMD16<Float>()
        var a2 = SIMD16<Float>(), c2 = SIMD16<Float>(), a3 = SIMD16<Float>(), c3 = SIMD16<Float>()
        var a4 = SIMD16<Float>(), c4 = SIMD16<Float>(), a5 = SIMD16<Float>(), c5 = SIMD16<Float>()
        let x0 = x, x1 = x + k, x2 = x + 2 * k, x3 = x + 3 * k, x4 = x + 4 * k, x5 = x + 5 * k
        for word in 0..<words {
            var bits = mask[word]
            while bits != 0 {
                let i = word &* 64 &+ bits.trailingZeroBitCount
                bits &= bits &- 1
                let wa = panel.loadUnaligned(fromByteOffset: i &* 128, as: SIMD16<Float>.self)
                let wb = panel.loadUnaligned(fromByteOffset: i &* 128 &+ 64, as: SIMD16<Float>.self)
                var v = SIMD16<Float>(repeating: x0[i]); a0.addProduct(v, wa); c0.addProduct(v, wb)
                v = SIMD16<Float>(repeating: x1[i]); a1.addProduct(v, wa); c1.addProduct(v, wb)
                v = SIMD16<Float>(repeating: x2[i]); a2.addProduct(v, wa); c2.addProduct(v, wb)
                v = SIMD16<Float>(repeating: x3[i]); a3.addProduct(v, wa); c3.addProduct(v, wb)
                v = SIMD16<Float>(repeating: x4[i]); a4.addProduct(v, wa); c4.addProduct(v, wb)
                v = SIMD16<Float>(repeating: x5[i]); a5.addProduct(v, wa); c5.addProduct(v, wb)
            }
        }
        finish(a0, c0, b0, b1, relu, y, width)
        finish(a1, c1, b0, b1, relu, y + n, width)
        finish(a2, c2, b0, b1, relu, y + 2 * n, width)
        finish(a3, c3, b0, b1, relu, y + 3 * n, width)
        finish(a4, c4, b0, b1, relu, y + 4 * n, width)
        finish(a5, c5, b0, b1, relu, y + 5 * n, width)
    }

    @inline(never)
    static func sparse1(_ x: UnsafePointer<Float>, _ panel: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>,
                        _ width: Int, _ b0: SIMD16<Float>, _ b1: SIMD16<Float>, _ relu: Bool,
                        _ mask: UnsafePointer<UInt64>, _ words: Int) {
        var a0 = SIMD16<Float>(), c0 = SIMD16<Float>()
        for word in 0..<words {
            var bits = mask[word]
            while bits != 0 {
                let i = word &* 64 &+ bits.trailingZeroBitCount
                bits &= bits &- 1
                let v = SIMD16<Float>(repeating: x[i])
                a0.addProduct(v, panel.loadUnaligned(fromByteOffset: i &* 128, as: SIMD16<Float>.self))
                c0.addProduct(v, panel.loadUnaligned(fromByteOffset: i &* 128 &+ 64, as: SIMD16<Float>.self))
            }
        }
        finish(a0, c0, b0, b1, relu, y, width)
    }

    @inline(__always)
    static func finish(_ a: SIMD16<Float>, _ b: SIMD16<Float>, _ b0: SIMD16<Float>, _ b1: SIMD16<Float>, _ relu: Bool,
                       _ out: UnsafeMutablePointer<Float>, _ width: Int) {
        var u = a + b0, v = b + b1
        if relu {
            u = u.replacing(with: 0, where: u .< 0)
            v = v.replacing(with: 0, where: v .< 0)
        }
        if width == 32 {
            UnsafeMutableRawPointer(out).storeBytes(of: u, as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(out).storeBytes(of: v, toByteOffset: 64, as: SIMD16<Float>.self)
        } else {
            for c in 0..<width { out[c] = c < 16 ? u[c] : v[c - 16] }
        }
    }

    @inline(never)
    static func block12(_ x: UnsafePointer<Float>, _ k: Int, _ panel: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>,
                        _ n: Int, _ width: Int, _ b0: SIMD16<Float>, _ b1: SIMD16<Float>, _ relu: Bool) {
        var a0 = SIMD16<Float>(), c0 = SIMD16<Float>(), a1 = SIMD16<Float>(), c1 = SIMD16<Float>()
        var a2 = SIMD16<Float>(), c2 = SIMD16<Float>(), a3 = SIMD16<Float>(), c3 = SIMD16<Float>()
        var a4 = SIMD16<Float>(), c4 = SIMD16<Float>(), a5 = SIMD16<Float>(), c5 = SIMD16<Float>()
        var a6 = SIMD16<Float>(), c6 = SIMD16<Float>(), a7 = SIMD16<Float>(), c7 = SIMD16<Float>()
        var a8 = SIMD16<Float>(), c8 = SIMD16<Float>(), a9 = SIMD16<Float>(), c9 = SIMD16<Float>()
        var a10 = SIMD16<Float>(), c10 = SIMD16<Float>(), a11 = SIMD16<Float>(), c11 = SIMD16<Float>()
        let x0 = x, x1 = x + k, x2 = x + 2 * k, x3 = x + 3 * k, x4 = x + 4 * k, x5 = x + 5 * k
        let x6 = x + 6 * k, x7 = x + 7 * k, x8 = x + 8 * k, x9 = x + 9 * k, x10 = x + 10 * k, x11 = x + 11 * k
        var p = panel
        for i in 0..<k {
            let wa = p.loadUnaligned(as: SIMD16<Float>.self)
            let wb = p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            p += 128
            var v = SIMD16<Float>(repeating: x0[i]); a0.addProduct(v, wa); c0.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x1[i]); a1.addProduct(v, wa); c1.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x2[i]); a2.addProduct(v, wa); c2.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x3[i]); a3.addProduct(v, wa); c3.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x4[i]); a4.addProduct(v, wa); c4.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x5[i]); a5.addProduct(v, wa); c5.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x6[i]); a6.addProduct(v, wa); c6.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x7[i]); a7.addProduct(v, wa); c7.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x8[i]); a8.addProduct(v, wa); c8.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x9[i]); a9.addProduct(v, wa); c9.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x10[i]); a10.addProduct(v, wa); c10.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x11[i]); a11.addProduct(v, wa); c11.addProduct(v, wb)
        }
        finish(a0, c0, b0, b1, relu, y, width)
        finish(a1, c1, b0, b1, relu, y + n, width)
        finish(a2, c2, b0, b1, relu, y + 2 * n, width)
        finish(a3, c3, b0, b1, relu, y + 3 * n, width)
        finish(a4, c4, b0, b1, relu, y + 4 * n, width)
        finish(a5, c5, b0, b1, relu, y + 5 * n, width)
        finish(a6, c6, b0, b1, relu, y + 6 * n, width)
        finish(a7, c7, b0, b1, relu, y + 7 * n, width)
        finish(a8, c8, b0, b1, relu, y + 8 * n, width)
        finish(a9, c9, b0, b1, relu, y + 9 * n, width)
        finish(a10, c10, b0, b1, relu, y + 10 * n, width)
        finish(a11, c11, b0, b1, relu, y + 11 * n, width)
    }

    @inline(never)
    static func block6(_ x: UnsafePointer<Float>, _ k: Int, _ panel: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>,
                       _ n: Int, _ width: Int, _ b0: SIMD16<Float>, _ b1: SIMD16<Float>, _ relu: Bool) {
        var a0 = SIMD16<Float>(), c0 = SIMD16<Float>(), a1 = SIMD16<Float>(), c1 = SIMD16<Float>()
        var a2 = SIMD16<Float>(), c2 = SIMD16<Float>(), a3 = SIMD16<Float>(), c3 = SIMD16<Float>()
        var a4 = SIMD16<Float>(), c4 = SIMD16<Float>(), a5 = SIMD16<Float>(), c5 = SIMD16<Float>()
        let x0 = x, x1 = x + k, x2 = x + 2 * k, x3 = x + 3 * k, x4 = x + 4 * k, x5 = x + 5 * k
        var p = panel
        for i in 0..<k {
            let wa = p.loadUnaligned(as: SIMD16<Float>.self)
            let wb = p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            p += 128
            var v = SIMD16<Float>(repeating: x0[i]); a0.addProduct(v, wa); c0.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x1[i]); a1.addProduct(v, wa); c1.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x2[i]); a2.addProduct(v, wa); c2.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x3[i]); a3.addProduct(v, wa); c3.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x4[i]); a4.addProduct(v, wa); c4.addProduct(v, wb)
            v = SIMD16<Float>(repeating: x5[i]); a5.addProduct(v, wa); c5.addProduct(v, wb)
        }
        finish(a0, c0, b0, b1, relu, y, width)
        finish(a1, c1, b0, b1, relu, y + n, width)
        finish(a2, c2, b0, b1, relu, y + 2 * n, width)
        finish(a3, c3, b0, b1, relu, y + 3 * n, width)
        finish(a4, c4, b0, b1, relu, y + 4 * n, width)
        finish(a5, c5, b0, b1, relu, y + 5 * n, width)
    }

    /// One row; four accumulator pairs over k (k split in four interleaved chains would change
    /// the summation order, so the chain stays single: same result as the 12- and 6-row blocks).
    @inline(never)
    static func block1(_ x: UnsafePointer<Float>, _ k: Int, _ panel: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>,
                       _ width: Int, _ b0: SIMD16<Float>, _ b1: SIMD16<Float>, _ relu: Bool) {
        var a0 = SIMD16<Float>(), c0 = SIMD16<Float>()
        var p = panel
        for i in 0..<k {
            let v = SIMD16<Float>(repeating: x[i])
            a0.addProduct(v, p.loadUnaligned(as: SIMD16<Float>.self))
            c0.addProduct(v, p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
            p += 128
        }
        finish(a0, c0, b0, b1, relu, y, width)
    }

    /// Depthwise convolution, direct: x [H, W, C] -> y [Ho, Wo, C] with weight [kh, kw, C] and
    /// bias [C]; pads [top, left, (bottom, right implied by ho, wo)]. For each output pixel and
    /// each group of 64 (then 16, then single) channels, the accumulators start at the bias,
    /// take one FMA per valid tap in (i, j) order, and are stored once after the activation.
    /// `pixels` (nil: all) computes only those output pixels (row-major indices oy * wo + ox),
    /// each by the same operations as in the whole map (for a layer split across threads).
    public static func depthwise(_ x: UnsafePointer<Float>, height h: Int, width w: Int, channels c: Int,
                                 weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                 kernel kh: Int, _ kw: Int, stride sh: Int, _ sw: Int, padTop pt: Int, padLeft pl: Int,
                                 outHeight ho: Int, outWidth wo: Int, relu: Bool, into y: UnsafeMutablePointer<Float>,
                                 pixels: Range<Int>? = nil) {
        let pixels = pixels ?? 0..<(ho * wo)
        // The 3x3 path pays off where most pixels are interior (measured: maps of more than
        // 96 output pixels); small maps take the generic loop, 64 channels per pass.
        if kh == 3, kw == 3, c % 16 == 0, ho * wo > 96 {
            depthwise3x3(x, h, w, c, weight, bias, sh, sw, pt, pl, ho, wo, relu, y, pixels)
            return
        }
        let wr = UnsafeRawPointer(weight), br = UnsafeRawPointer(bias)
        forEachRow(of: pixels, width: wo) { oy, oxs in
            let iy0 = oy * sh - pt
            let i0 = max(0, -iy0), i1 = min(kh, h - iy0)
            for ox in oxs {
                let ix0 = ox * sw - pl
                let j0 = max(0, -ix0), j1 = min(kw, w - ix0)
                let out = UnsafeMutableRawPointer(y + (oy * wo + ox) * c)
                let base = UnsafeRawPointer(x + (iy0 * w + ix0) * c)  // tap (0, 0), maybe outside the map
                var ch = 0
                while c - ch >= 64 {
                    let o = ch * 4
                    var s0 = br.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
                    var s1 = br.loadUnaligned(fromByteOffset: o + 64, as: SIMD16<Float>.self)
                    var s2 = br.loadUnaligned(fromByteOffset: o + 128, as: SIMD16<Float>.self)
                    var s3 = br.loadUnaligned(fromByteOffset: o + 192, as: SIMD16<Float>.self)
                    for i in i0..<i1 {
                        for j in j0..<j1 {
                            let xo = ((i * w + j) * c) * 4 + o, wo4 = ((i * kw + j) * c) * 4 + o
                            s0.addProduct(base.loadUnaligned(fromByteOffset: xo, as: SIMD16<Float>.self),
                                          wr.loadUnaligned(fromByteOffset: wo4, as: SIMD16<Float>.self))
                            s1.addProduct(base.loadUnaligned(fromByteOffset: xo + 64, as: SIMD16<Float>.self),
                                          wr.loadUnaligned(fromByteOffset: wo4 + 64, as: SIMD16<Float>.self))
                            s2.addProduct(base.loadUnaligned(fromByteOffset: xo + 128, as: SIMD16<Float>.self),
                                          wr.loadUnaligned(fromByteOffset: wo4 + 128, as: SIMD16<Float>.self))
                            s3.addProduct(base.loadUnaligned(fromByteOffset: xo + 192, as: SIMD16<Float>.self),
                                          wr.loadUnaligned(fromByteOffset: wo4 + 192, as: SIMD16<Float>.self))
                        }
                    }
                    if relu {
                        s0 = s0.replacing(with: 0, where: s0 .< 0); s1 = s1.replacing(with: 0, where: s1 .< 0)
                        s2 = s2.replacing(with: 0, where: s2 .< 0); s3 = s3.replacing(with: 0, where: s3 .< 0)
                    }
                    out.storeBytes(of: s0, toByteOffset: o, as: SIMD16<Float>.self)
                    out.storeBytes(of: s1, toByteOffset: o + 64, as: SIMD16<Float>.self)
                    out.storeBytes(of: s2, toByteOffset: o + 128, as: SIMD16<Float>.self)
                    out.storeBytes(of: s3, toByteOffset: o + 192, as: SIMD16<Float>.self)
                    ch += 64
                }
                while c - ch >= 16 {
                    let o = ch * 4
                    var s0 = br.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
                    for i in i0..<i1 {
                        for j in j0..<j1 {
                            s0.addProduct(base.loadUnaligned(fromByteOffset: ((i * w + j) * c) * 4 + o, as: SIMD16<Float>.self),
                                          wr.loadUnaligned(fromByteOffset: ((i * kw + j) * c) * 4 + o, as: SIMD16<Float>.self))
                        }
                    }
                    if relu { s0 = s0.replacing(with: 0, where: s0 .< 0) }
                    out.storeBytes(of: s0, toByteOffset: o, as: SIMD16<Float>.self)
                    ch += 16
                }
                while ch < c {
                    var s = bias[ch]
                    for i in i0..<i1 {
                        for j in j0..<j1 {
                            let xv = base.load(fromByteOffset: (((i * w + j) * c) + ch) * 4, as: Float.self)
                            s = s.addingProduct(xv, weight[(i * kw + j) * c + ch])
                        }
                    }
                    out.storeBytes(of: relu ? max(s, 0) : s, toByteOffset: ch * 4, as: Float.self)
                    ch += 1
                }
            }
        }
    }

    /// Calls `body(oy, ox range)` for each output row that `pixels` (row-major indices into a map
    /// `width` wide) touches, in order.
    @inline(__always)
    static func forEachRow(of pixels: Range<Int>, width wo: Int, _ body: (Int, Range<Int>) -> Void) {
        guard !pixels.isEmpty, wo > 0 else { return }
        for oy in (pixels.lowerBound / wo)...((pixels.upperBound - 1) / wo) {
            let row = oy * wo
            body(oy, max(pixels.lowerBound - row, 0)..<min(pixels.upperBound - row, wo))
        }
    }

    /// 3x3 depthwise, C a multiple of 16: one group of 16 channels at a time, its nine taps and
    /// bias held in registers while the group walks every output pixel; interior pixels take
    /// nine unrolled FMAs, border pixels only their valid taps (same (i, j) order).
    static func depthwise3x3(_ x: UnsafePointer<Float>, _ h: Int, _ w: Int, _ c: Int,
                             _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, _ sh: Int, _ sw: Int,
                             _ pt: Int, _ pl: Int, _ ho: Int, _ wo: Int, _ relu: Bool, _ y: UnsafeMutablePointer<Float>,
                             _ pixels: Range<Int>) {
        let wr = UnsafeRawPointer(weight)
        let row = w * c * 4, px = c * 4  // bytes between input rows, pixels
        // Output rows/columns whose 3x3 window lies inside the map.
        let oyLo = min(ho, (pt + sh - 1) / sh), oyHi = max(oyLo, min(ho, (h - 3 + pt) / sh + 1))
        let oxLo = min(wo, (pl + sw - 1) / sw), oxHi = max(oxLo, min(wo, (w - 3 + pl) / sw + 1))
        for g in stride(from: 0, to: c, by: 16) {
            let o = g * 4
            let bv = UnsafeRawPointer(bias).loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            let w0 = wr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self)
            let w1 = wr.loadUnaligned(fromByteOffset: px + o, as: SIMD16<Float>.self)
            let w2 = wr.loadUnaligned(fromByteOffset: 2 * px + o, as: SIMD16<Float>.self)
            let w3 = wr.loadUnaligned(fromByteOffset: 3 * px + o, as: SIMD16<Float>.self)
            let w4 = wr.loadUnaligned(fromByteOffset: 4 * px + o, as: SIMD16<Float>.self)
            let w5 = wr.loadUnaligned(fromByteOffset: 5 * px + o, as: SIMD16<Float>.self)
            let w6 = wr.loadUnaligned(fromByteOffset: 6 * px + o, as: SIMD16<Float>.self)
            let w7 = wr.loadUnaligned(fromByteOffset: 7 * px + o, as: SIMD16<Float>.self)
            let w8 = wr.loadUnaligned(fromByteOffset: 8 * px + o, as: SIMD16<Float>.self)
            @inline(__always) func store(_ v: SIMD16<Float>, _ oy: Int, _ ox: Int) {
                var s = v
                if relu { s = s.replacing(with: 0, where: s .< 0) }
                UnsafeMutableRawPointer(y + (oy * wo + ox) * c).storeBytes(of: s, toByteOffset: o, as: SIMD16<Float>.self)
            }
            // Border pixel: valid taps only.
            @inline(__always) func border(_ oy: Int, _ ox: Int) {
                let iy0 = oy * sh - pt, ix0 = ox * sw - pl
                var s = bv
                for i in max(0, -iy0)..<min(3, h - iy0) {
                    for j in max(0, -ix0)..<min(3, w - ix0) {
                        let xv = UnsafeRawPointer(x).loadUnaligned(fromByteOffset: (iy0 + i) * row + (ix0 + j) * px + o,
                                                                   as: SIMD16<Float>.self)
                        s.addProduct(xv, wr.loadUnaligned(fromByteOffset: (i * 3 + j) * px + o, as: SIMD16<Float>.self))
                    }
                }
                store(s, oy, ox)
            }
            forEachRow(of: pixels, width: wo) { oy, oxs in
                guard oy >= oyLo && oy < oyHi else {
                    for ox in oxs { border(oy, ox) }
                    return
                }
                // Interior columns of this row's share: [a, b).
                let a = min(max(oxs.lowerBound, oxLo), oxs.upperBound), b = max(min(oxs.upperBound, oxHi), a)
                for ox in oxs.lowerBound..<a { border(oy, ox) }
                let iy0 = oy * sh - pt
                var p = UnsafeRawPointer(x) + iy0 * row + (a * sw - pl) * px + o
                let step = sw * px
                for ox in a..<b {
                    var s = bv
                    s.addProduct(p.loadUnaligned(as: SIMD16<Float>.self), w0)
                    s.addProduct(p.loadUnaligned(fromByteOffset: px, as: SIMD16<Float>.self), w1)
                    s.addProduct(p.loadUnaligned(fromByteOffset: 2 * px, as: SIMD16<Float>.self), w2)
                    s.addProduct(p.loadUnaligned(fromByteOffset: row, as: SIMD16<Float>.self), w3)
                    s.addProduct(p.loadUnaligned(fromByteOffset: row + px, as: SIMD16<Float>.self), w4)
                    s.addProduct(p.loadUnaligned(fromByteOffset: row + 2 * px, as: SIMD16<Float>.self), w5)
                    s.addProduct(p.loadUnaligned(fromByteOffset: 2 * row, as: SIMD16<Float>.self), w6)
                    s.addProduct(p.loadUnaligned(fromByteOffset: 2 * row + px, as: SIMD16<Float>.self), w7)
                    s.addProduct(p.loadUnaligned(fromByteOffset: 2 * row + 2 * px, as: SIMD16<Float>.self), w8)
                    store(s, oy, ox)
                    p += step
                }
                for ox in b..<oxs.upperBound { border(oy, ox) }
            }
        }
    }

    /// Floats of scratch `convolution` needs: a zero-padded copy of the input for the 3x3,
    /// one-input-channel, 32-output-channel case (YAMNet's first layer), else none.
    public static func convolutionScratchCount(height h: Int, width w: Int, inChannels cin: Int, outChannels cout: Int,
                                               kernel kh: Int, _ kw: Int, pads: (Int, Int, Int, Int)) -> Int {
        kh == 3 && kw == 3 && cin == 1 && cout == 32 ? (h + pads.0 + pads.2) * (w + pads.1 + pads.3) : 0
    }

    /// Full convolution, direct, for few input channels (YAMNet's first layer: 3x3, cin 1):
    /// x [H, W, cin] -> y [Ho, Wo, cout], weight [kh, kw, cin, cout], bias [cout]. For each
    /// output pixel and group of 32 (then 16, then single) output channels, the accumulators
    /// start at the bias and take one broadcast FMA per valid tap and input channel.
    /// `pixels` (nil: all) computes only those output pixels (row-major indices oy * wo + ox), each
    /// by the same operations (for a layer split across threads: give each part its own scratch).
    public static func convolution(_ x: UnsafePointer<Float>, height h: Int, width w: Int, inChannels cin: Int,
                                   weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, outChannels cout: Int,
                                   kernel kh: Int, _ kw: Int, stride sh: Int, _ sw: Int,
                                   pads: (Int, Int, Int, Int), outHeight ho: Int, outWidth wo: Int, relu: Bool,
                                   scratch: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>,
                                   pixels: Range<Int>? = nil) {
        let pixels = pixels ?? 0..<(ho * wo)
        let (pt, pl) = (pads.0, pads.1)
        let wr = UnsafeRawPointer(weight), br = UnsafeRawPointer(bias)
        if convolutionScratchCount(height: h, width: w, inChannels: cin, outChannels: cout, kernel: kh, kw, pads: pads) > 0 {
            // 3x3, cin 1, cout 32: the 18 weight vectors stay in registers; the input is copied
            // into a zero-padded map (scratch [h + pt + pb, w + pl + pr]) so every pixel takes all
            // nine taps (a zero tap adds nothing).
            // Only the padded rows this share reads ([sh * first row, sh * last row + 3)) are written.
            let wp = w + pl + pads.3, hp = h + pt + pads.2
            guard !pixels.isEmpty else { return }
            let pr0 = min(hp, pixels.lowerBound / wo * sh), pr1 = min(hp, (pixels.upperBound - 1) / wo * sh + 3)
            (scratch + pr0 * wp).update(repeating: 0, count: (pr1 - pr0) * wp)
            for r in max(0, pr0 - pt)..<max(max(0, pr0 - pt), min(h, pr1 - pt)) {
                (scratch + (r + pt) * wp + pl).update(from: x + r * w, count: w)
            }
            let b0 = br.loadUnaligned(as: SIMD16<Float>.self), b1 = br.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            @inline(__always) func wv(_ t: Int, _ half: Int) -> SIMD16<Float> {
                wr.loadUnaligned(fromByteOffset: t * 128 + half * 64, as: SIMD16<Float>.self)
            }
            let a0 = wv(0, 0), c0 = wv(0, 1), a1 = wv(1, 0), c1 = wv(1, 1), a2 = wv(2, 0), c2 = wv(2, 1)
            let a3 = wv(3, 0), c3 = wv(3, 1), a4 = wv(4, 0), c4 = wv(4, 1), a5 = wv(5, 0), c5 = wv(5, 1)
            let a6 = wv(6, 0), c6 = wv(6, 1), a7 = wv(7, 0), c7 = wv(7, 1), a8 = wv(8, 0), c8 = wv(8, 1)
            forEachRow(of: pixels, width: wo) { oy, oxs in
                let r0 = scratch + oy * sh * wp, r1 = r0 + wp, r2 = r1 + wp
                var out = UnsafeMutableRawPointer(y + (oy * wo + oxs.lowerBound) * 32)
                for ox in oxs {
                    let q = ox * sw
                    var s = b0, t = b1
                    var v = SIMD16<Float>(repeating: r0[q]); s.addProduct(v, a0); t.addProduct(v, c0)
                    v = SIMD16<Float>(repeating: r0[q + 1]); s.addProduct(v, a1); t.addProduct(v, c1)
                    v = SIMD16<Float>(repeating: r0[q + 2]); s.addProduct(v, a2); t.addProduct(v, c2)
                    v = SIMD16<Float>(repeating: r1[q]); s.addProduct(v, a3); t.addProduct(v, c3)
                    v = SIMD16<Float>(repeating: r1[q + 1]); s.addProduct(v, a4); t.addProduct(v, c4)
                    v = SIMD16<Float>(repeating: r1[q + 2]); s.addProduct(v, a5); t.addProduct(v, c5)
                    v = SIMD16<Float>(repeating: r2[q]); s.addProduct(v, a6); t.addProduct(v, c6)
                    v = SIMD16<Float>(repeating: r2[q + 1]); s.addProduct(v, a7); t.addProduct(v, c7)
                    v = SIMD16<Float>(repeating: r2[q + 2]); s.addProduct(v, a8); t.addProduct(v, c8)
                    if relu { s = s.replacing(with: 0, where: s .< 0); t = t.replacing(with: 0, where: t .< 0) }
                    out.storeBytes(of: s, as: SIMD16<Float>.self)
                    out.storeBytes(of: t, toByteOffset: 64, as: SIMD16<Float>.self)
                    out += 128
                }
            }
            return
        }
        forEachRow(of: pixels, width: wo) { oy, oxs in
            let iy0 = oy * sh - pt
            let i0 = max(0, -iy0), i1 = min(kh, h - iy0)
            for ox in oxs {
                let ix0 = ox * sw - pl
                let j0 = max(0, -ix0), j1 = min(kw, w - ix0)
                let out = UnsafeMutableRawPointer(y + (oy * wo + ox) * cout)
                var co = 0
                while cout - co >= 32 {
                    var s0 = br.loadUnaligned(fromByteOffset: co * 4, as: SIMD16<Float>.self)
                    var s1 = br.loadUnaligned(fromByteOffset: co * 4 + 64, as: SIMD16<Float>.self)
                    for i in i0..<i1 {
                        for j in j0..<j1 {
                            let src = x + ((iy0 + i) * w + ix0 + j) * cin
                            for ci in 0..<cin {
                                let v = SIMD16<Float>(repeating: src[ci])
                                let o = (((i * kw + j) * cin + ci) * cout + co) * 4
                                s0.addProduct(v, wr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self))
                                s1.addProduct(v, wr.loadUnaligned(fromByteOffset: o + 64, as: SIMD16<Float>.self))
                            }
                        }
                    }
                    if relu { s0 = s0.replacing(with: 0, where: s0 .< 0); s1 = s1.replacing(with: 0, where: s1 .< 0) }
                    out.storeBytes(of: s0, toByteOffset: co * 4, as: SIMD16<Float>.self)
                    out.storeBytes(of: s1, toByteOffset: co * 4 + 64, as: SIMD16<Float>.self)
                    co += 32
                }
                while cout - co >= 16 {
                    var s0 = br.loadUnaligned(fromByteOffset: co * 4, as: SIMD16<Float>.self)
                    for i in i0..<i1 {
                        for j in j0..<j1 {
                            let src = x + ((iy0 + i) * w + ix0 + j) * cin
                            for ci in 0..<cin {
                                s0.addProduct(SIMD16<Float>(repeating: src[ci]),
                                              wr.loadUnaligned(fromByteOffset: (((i * kw + j) * cin + ci) * cout + co) * 4,
                                                               as: SIMD16<Float>.self))
                            }
                        }
                    }
                    if relu { s0 = s0.replacing(with: 0, where: s0 .< 0) }
                    out.storeBytes(of: s0, toByteOffset: co * 4, as: SIMD16<Float>.self)
                    co += 16
                }
                while co < cout {
                    var s = bias[co]
                    for i in i0..<i1 {
                        for j in j0..<j1 {
                            let src = x + ((iy0 + i) * w + ix0 + j) * cin
                            for ci in 0..<cin { s = s.addingProduct(src[ci], weight[((i * kw + j) * cin + ci) * cout + co]) }
                        }
                    }
                    out.storeBytes(of: relu ? max(s, 0) : s, toByteOffset: co * 4, as: Float.self)
                    co += 1
                }
            }
        }
    }
}

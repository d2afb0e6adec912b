// AVX-512 kernels for planar (channel-major, NCHW at batch 1) feature maps: the generator's
// programs (NeuralNet/ProgramNetwork.swift). Like Kernels.swift, call only when
// `NeuralNetRuntime.hasAVX512` says the CPU supports AVX-512F/BW/DQ/VL.
//
// Layouts:
//   feature map     [C, H, W]             element (c, y, x) at (c * H + y) * W + x
//   padded map      [C, H + 2, W + 32]    row y of channel c at (c * (H + 2) + y + 1) * (W + 32) + 16;
//                                         one zero row above and below, 16 zero columns left and right,
//                                         so every tap of a 3x3 window is a plain (unaligned) load
//   conv weight     [cout, cin, 3, 3]     (PyTorch's)
//   phase weight    [2, 2, cout, cin, 2, 2]: nearest x2 upsampling followed by a 3x3 convolution
//                   (zero padding 1), folded into one 2x2 kernel per output phase (p, q) = (row
//                   parity, column parity) that reads the low-resolution map directly:
//                   output (2a + p, 2b + q) = bias + sum over ci, r, s of
//                   K[p][q][co][ci][r][s] * x[ci, a - 1 + p + r, b - 1 + q + s]
//                   (`phaseWeights` builds K; 4 taps per output instead of 9).
//
// Output rows are vectorised along x (blocks of 16 or 32 pixels); four (plain) or two (phase)
// output channels and two output rows are accumulated in registers, so each input vector
// loaded feeds 8 or more FMAs. Every output element is one FMA chain from the bias over
// (ci, r, s) in increasing order, then the activation.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Activation fused into a planar convolution's store (or applied by `activate`).
public enum PlanarActivation: Int, Sendable {
    case none, silu, sigmoid
}

extension AVX512Kernels {
    /// Floats of a padded map [C, H + 2, W + 32] (see the layout notes above).
    public static func paddedCount(channels c: Int, height h: Int, width w: Int) -> Int { c * (h + 2) * (w + 32) }

    /// Whether `conv3x3` / `upsampleConv3x3` take maps of this geometry: width a multiple of 16
    /// and height even (the input map's, low-resolution for the upsampling kernel).
    public static func planarConvSupports(height h: Int, width w: Int) -> Bool { w >= 16 && w % 16 == 0 && h >= 2 && h % 2 == 0 }

    /// Copies x [C, H, W] into the padded layout `p` (`paddedCount` floats), zeroing the borders.
    public static func pad(_ x: UnsafePointer<Float>, channels c: Int, height h: Int, width w: Int, into p: UnsafeMutablePointer<Float>) {
        let wp = w + 32
        for ch in 0..<c {
            let plane = p + ch * (h + 2) * wp
            plane.update(repeating: 0, count: wp)                       // row -1
            (plane + (h + 1) * wp).update(repeating: 0, count: wp)      // row H
            for y in 0..<h {
                let row = plane + (y + 1) * wp
                row.update(repeating: 0, count: 16)
                (row + 16).update(from: x + (ch * h + y) * w, count: w)
                (row + 16 + w).update(repeating: 0, count: 16)
            }
        }
    }

    /// The phase weights [2, 2, cout, cin, 2, 2] of nearest x2 upsampling + 3x3 convolution
    /// `w` [cout, cin, 3, 3] (see the layout notes), written to `k` (16 * cout * cin floats).
    public static func phaseWeights(_ w: UnsafePointer<Float>, outChannels cout: Int, inChannels cin: Int,
                                    into k: UnsafeMutablePointer<Float>) {
        // Original kernel rows (columns) folded into tap r (s) of phase p (q).
        let taps: [[[Int]]] = [[[0], [1, 2]], [[0, 1], [2]]]
        for p in 0..<2 {
            for q in 0..<2 {
                for co in 0..<cout {
                    for ci in 0..<cin {
                        let src = w + (co * cin + ci) * 9
                        let dst = k + (((p * 2 + q) * cout + co) * cin + ci) * 4
                        for r in 0..<2 {
                            for s in 0..<2 {
                                var sum: Float = 0
                                for i in taps[p][r] { for j in taps[q][s] { sum += src[i * 3 + j] } }
                                dst[r * 2 + s] = sum
                            }
                        }
                    }
                }
            }
        }
    }

    /// 3x3 convolution, stride 1, zero padding 1: x [cin, H, W] -> y [cout, H, W], with bias and
    /// activation fused. Needs `planarConvSupports(height: H, width: W)`; `padded` holds
    /// `paddedCount(channels: cin, height: H, width: W)` floats. Allocates nothing.
    public static func conv3x3(_ x: UnsafePointer<Float>, inChannels cin: Int, height h: Int, width w: Int,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, outChannels cout: Int,
                               activation: PlanarActivation, padded: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        precondition(planarConvSupports(height: h, width: w), "conv3x3: map \(h)x\(w)")
        pad(x, channels: cin, height: h, width: w, into: padded)
        // 32 pixels per block where the width allows (two zmm: a `PixelPair`; SIMD32<Float> was
        // compiled to scalar code), else 16. Measured side by side (avgas-bench live --ops): the
        // decoder's 64- and 128-wide layers 1.1-1.3x faster than with 16-pixel blocks. (Eight
        // channels x 16 pixels, also 16 accumulators, was slower on the 16-wide maps: 89 vs 115
        // GFLOP/s.)
        if w % 32 == 0 {
            conv3x3Rows(PixelPair.self, UnsafePointer(padded), cin, h, w, weight, bias, cout, activation, y)
        } else {
            conv3x3Rows(SIMD16<Float>.self, UnsafePointer(padded), cin, h, w, weight, bias, cout, activation, y)
        }
    }

    /// Two output rows (y0, y0 + 1) x four output channels x one vector of pixels per block.
    @inline(__always)
    static func conv3x3Rows<V: PixelVector>(_: V.Type, _ xp: UnsafePointer<Float>, _ cin: Int, _ h: Int, _ w: Int,
                                     _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, _ cout: Int,
                                     _ act: PlanarActivation, _ y: UnsafeMutablePointer<Float>) {
        let lanes = V.lanes
        let wp = w + 32
        let plane = (h + 2) * wp
        let rowBytes = wp * 4
        for y0 in stride(from: 0, to: h, by: 2) {
            for co in stride(from: 0, to: cout, by: 4) {
                // A tail block repeats the last channel (same values, stored twice).
                let c0 = co, c1 = min(co + 1, cout - 1), c2 = min(co + 2, cout - 1), c3 = min(co + 3, cout - 1)
                for xb in stride(from: 0, to: w, by: lanes) {
                    var a0 = V(repeating: bias[c0]), a1 = V(repeating: bias[c1]), a2 = V(repeating: bias[c2]), a3 = V(repeating: bias[c3])
                    var b0 = a0, b1 = a1, b2 = a2, b3 = a3
                    for ci in 0..<cin {
                        // Padded row y0 is input row y0 - 1.
                        let base = UnsafeRawPointer(xp + ci * plane + y0 * wp + 16 + xb)
                        let w0 = weight + (c0 * cin + ci) * 9, w1 = weight + (c1 * cin + ci) * 9
                        let w2 = weight + (c2 * cin + ci) * 9, w3 = weight + (c3 * cin + ci) * 9
                        @inline(__always) func row(_ r: Int) {
                            let p = base + r * rowBytes
                            let l = V(p, -4)
                            let m = V(p, 0)
                            let rr = V(p, 4)
                            @inline(__always) func taps(_ acc: inout V, _ wk: UnsafePointer<Float>, _ kr: Int) {
                                acc.fma(l, wk[kr * 3])
                                acc.fma(m, wk[kr * 3 + 1])
                                acc.fma(rr, wk[kr * 3 + 2])
                            }
                            if r < 3 { taps(&a0, w0, r); taps(&a1, w1, r); taps(&a2, w2, r); taps(&a3, w3, r) }
                            if r > 0 { taps(&b0, w0, r - 1); taps(&b1, w1, r - 1); taps(&b2, w2, r - 1); taps(&b3, w3, r - 1) }
                        }
                        row(0); row(1); row(2); row(3)
                    }
                    @inline(__always) func put(_ v: V, _ c: Int, _ r: Int) {
                        v.store(to: y + (c * h + y0 + r) * w + xb)
                    }
                    put(a0, c0, 0); put(a1, c1, 0); put(a2, c2, 0); put(a3, c3, 0)
                    put(b0, c0, 1); put(b1, c1, 1); put(b2, c2, 1); put(b3, c3, 1)
                }
            }
            if act != .none {
                for c in 0..<cout { activate(y + (c * h + y0) * w, count: 2 * w, act) }
            }
        }
    }

    /// Nearest x2 upsampling followed by a 3x3 convolution (stride 1, zero padding 1), without
    /// forming the upsampled map: x [cin, h, w] -> y [cout, 2h, 2w], `phase` the phase weights
    /// (`phaseWeights`), bias and activation fused. Needs `planarConvSupports(height: h, width: w)`;
    /// `padded` holds `paddedCount(channels: cin, height: h, width: w)` floats. Allocates nothing.
    public static func upsampleConv3x3(_ x: UnsafePointer<Float>, inChannels cin: Int, height h: Int, width w: Int,
                                       phase: UnsafePointer<Float>, bias: UnsafePointer<Float>, outChannels cout: Int,
                                       activation: PlanarActivation, padded: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        precondition(planarConvSupports(height: h, width: w), "upsampleConv3x3: map \(h)x\(w)")
        pad(x, channels: cin, height: h, width: w, into: padded)
        if w % 32 == 0 {
            upsampleRows(PixelPair.self, UnsafePointer(padded), cin, h, w, phase, bias, cout, activation, y)
        } else {
            upsampleRows(SIMD16<Float>.self, UnsafePointer(padded), cin, h, w, phase, bias, cout, activation, y)
        }
    }

    /// One low-resolution row a (output rows 2a, 2a + 1) x two output channels x both column
    /// phases x one vector of low-resolution pixels per block: 8 accumulators.
    @inline(__always)
    static func upsampleRows<V: PixelVector>(_: V.Type, _ xp: UnsafePointer<Float>, _ cin: Int, _ h: Int, _ w: Int,
                                      _ phase: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, _ cout: Int,
                                      _ act: PlanarActivation, _ y: UnsafeMutablePointer<Float>) {
        let lanes = V.lanes
        let wp = w + 32
        let plane = (h + 2) * wp
        let rowBytes = wp * 4
        let (ho, wo) = (2 * h, 2 * w)
        let phaseStride = cout * cin * 4  // floats between phases (p, q)
        for a in 0..<h {
            for co in stride(from: 0, to: cout, by: 2) {
                let c0 = co, c1 = min(co + 1, cout - 1)
                for xb in stride(from: 0, to: w, by: lanes) {
                    // e: even output columns, o: odd; 0/1: output row 2a / 2a + 1; last digit: channel.
                    var e00 = V(repeating: bias[c0]), e01 = V(repeating: bias[c1])
                    var o00 = e00, o01 = e01, e10 = e00, e11 = e01, o10 = e00, o11 = e01
                    for ci in 0..<cin {
                        // Padded row a is input row a - 1.
                        let base = UnsafeRawPointer(xp + ci * plane + a * wp + 16 + xb)
                        let k0 = phase + (c0 * cin + ci) * 4, k1 = phase + (c1 * cin + ci) * 4
                        @inline(__always) func row(_ r: Int) {
                            let p = base + r * rowBytes
                            let l = V(p, -4)
                            let m = V(p, 0)
                            let rr = V(p, 4)
                            // Phase (p, q) weights of channel block k at tap row t.
                            @inline(__always) func taps(_ ev: inout V, _ od: inout V, _ k: UnsafePointer<Float>, _ pr: Int, _ t: Int) {
                                let ke = k + (pr * 2) * phaseStride + t * 2, ko = k + (pr * 2 + 1) * phaseStride + t * 2
                                ev.fma(l, ke[0])
                                ev.fma(m, ke[1])
                                od.fma(m, ko[0])
                                od.fma(rr, ko[1])
                            }
                            // Output row 2a (p = 0) reads padded rows a, a + 1 as taps 0, 1;
                            // output row 2a + 1 (p = 1) reads padded rows a + 1, a + 2.
                            if r < 2 { taps(&e00, &o00, k0, 0, r); taps(&e01, &o01, k1, 0, r) }
                            if r > 0 { taps(&e10, &o10, k0, 1, r - 1); taps(&e11, &o11, k1, 1, r - 1) }
                        }
                        row(0); row(1); row(2)
                    }
                    @inline(__always) func put(_ ev: V, _ od: V, _ c: Int, _ r: Int) {
                        let out = y + (c * ho + 2 * a + r) * wo + 2 * xb
                        V.interleave(ev, od, into: out)
                    }
                    put(e00, o00, c0, 0); put(e01, o01, c1, 0)
                    put(e10, o10, c0, 1); put(e11, o11, c1, 1)
                }
            }
            if act != .none {
                for c in 0..<cout { activate(y + (c * ho + 2 * a) * wo, count: 2 * wo, act) }
            }
        }
    }

    /// e^x per lane (|relative error| about 2e-7 where the result is a normal float): x clamped
    /// to [-87.3, 88], x = k ln 2 + r with |r| <= ln 2 / 2, e^r by its degree-7 Taylor polynomial,
    /// 2^k from the exponent bits.
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        // Comparisons and blends (`clamped` compiles to a per-lane loop with NaN rules).
        let lo = SIMD16<Float>(repeating: -87.3), hi = SIMD16<Float>(repeating: 88)
        var xc = x.replacing(with: lo, where: x .< lo)
        xc = xc.replacing(with: hi, where: xc .> hi)
        // Round x / ln 2 to an integer with the 1.5 * 2^23 trick: the low mantissa bits of t hold k.
        let magic = SIMD16<Float>(repeating: 12_582_912)
        var t = magic
        t.addProduct(xc, SIMD16(repeating: 1.442_695_04))
        let k = t - magic
        var r = xc
        r.addProduct(k, SIMD16(repeating: -0.693_359_375))      // ln 2, high part (exact in 9 bits)
        r.addProduct(k, SIMD16(repeating: 2.121_944_4e-4))      // ln 2, low part
        var p = SIMD16<Float>(repeating: 1.0 / 5040)
        p = p * r + SIMD16(repeating: 1.0 / 720)
        p = p * r + SIMD16(repeating: 1.0 / 120)
        p = p * r + SIMD16(repeating: 1.0 / 24)
        p = p * r + SIMD16(repeating: 1.0 / 6)
        p = p * r + SIMD16(repeating: 0.5)
        p = p * r + SIMD16(repeating: 1)
        p = p * r + SIMD16(repeating: 1)
        let ki = unsafeBitCast(t, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
        let scale = unsafeBitCast((ki &+ 127) &<< 23, to: SIMD16<Float>.self)
        return p * scale
    }

    /// In place over `count` floats: SiLU x / (1 + e^-x), or the logistic sigmoid 1 / (1 + e^-x).
    public static func activate(_ p: UnsafeMutablePointer<Float>, count n: Int, _ act: PlanarActivation) {
        activate(UnsafePointer(p), count: n, act, into: p)
    }

    /// y = act(x) over `count` floats (`y` may be `x`).
    public static func activate(_ x: UnsafePointer<Float>, count n: Int, _ act: PlanarActivation, into y: UnsafeMutablePointer<Float>) {
        guard act != .none else {
            if UnsafePointer(y) != x { y.update(from: x, count: n) }
            return
        }
        let one = SIMD16<Float>(repeating: 1)
        let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
        var i = 0
        while n - i >= 16 {
            let v = xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            let s = one / (one + exp(-v))
            yr.storeBytes(of: act == .silu ? v * s : s, toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        while i < n {
            let v = x[i]
            let s = 1 / (1 + expf(-v))
            y[i] = act == .silu ? v * s : s
            i += 1
        }
    }
}

/// A block of contiguous pixels the planar kernels keep in registers: 16 (one zmm) or 32 (two).
protocol PixelVector {
    static var lanes: Int { get }
    init(repeating v: Float)
    /// Loads `lanes` floats at `p + byteOffset` (unaligned).
    init(_ p: UnsafeRawPointer, _ byteOffset: Int)
    /// self += x * w (w broadcast), one FMA per zmm.
    mutating func fma(_ x: Self, _ w: Float)
    func store(to p: UnsafeMutablePointer<Float>)
    /// out[2 i] = even[i], out[2 i + 1] = odd[i] for every lane i.
    static func interleave(_ even: Self, _ odd: Self, into out: UnsafeMutablePointer<Float>)
}

extension SIMD16: PixelVector where Scalar == Float {
    static var lanes: Int { 16 }
    @inline(__always) init(_ p: UnsafeRawPointer, _ byteOffset: Int) { self = p.loadUnaligned(fromByteOffset: byteOffset, as: SIMD16<Float>.self) }
    @inline(__always) mutating func fma(_ x: SIMD16<Float>, _ w: Float) { addProduct(x, SIMD16(repeating: w)) }
    @inline(__always) func store(to p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: self, as: SIMD16<Float>.self) }
    @inline(__always) static func interleave(_ even: SIMD16<Float>, _ odd: SIMD16<Float>, into out: UnsafeMutablePointer<Float>) {
        var t = SIMD32<Float>()
        t.evenHalf = even
        t.oddHalf = odd
        UnsafeMutableRawPointer(out).storeBytes(of: t, as: SIMD32<Float>.self)
    }
}

/// 32 contiguous pixels as two zmm registers.
struct PixelPair: PixelVector {
    var a: SIMD16<Float>, b: SIMD16<Float>
    static var lanes: Int { 32 }
    @inline(__always) init(repeating v: Float) { a = SIMD16(repeating: v); b = a }
    @inline(__always) init(_ p: UnsafeRawPointer, _ byteOffset: Int) {
        a = p.loadUnaligned(fromByteOffset: byteOffset, as: SIMD16<Float>.self)
        b = p.loadUnaligned(fromByteOffset: byteOffset + 64, as: SIMD16<Float>.self)
    }
    @inline(__always) mutating func fma(_ x: PixelPair, _ w: Float) {
        let v = SIMD16<Float>(repeating: w)
        a.addProduct(x.a, v); b.addProduct(x.b, v)
    }
    @inline(__always) func store(to p: UnsafeMutablePointer<Float>) { a.store(to: p); b.store(to: p + 16) }
    @inline(__always) static func interleave(_ even: PixelPair, _ odd: PixelPair, into out: UnsafeMutablePointer<Float>) {
        SIMD16<Float>.interleave(even.a, odd.a, into: out)
        SIMD16<Float>.interleave(even.b, odd.b, into: out + 32)
    }
}

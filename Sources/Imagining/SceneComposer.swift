import Foundation

/// The composed mixed image: a scene laid out from the per-class images, following the rules
/// of training/generator/compose.py (the Python reference; the same rules, step by step):
///
/// 1. Background grey (200, 200, 200).
/// 2. Placement order: layer rank (sky 0, middle 1, ground 2; any other layer name counts as
///    middle), then score descending, then name.
/// 3. Item i of n: side S = H * BASE[n] * (0.75 + 0.25 score / max score), BASE = 0.92, 0.64,
///    0.54, then 0.48 for 4 or more; centre x = W (i + 0.5) / n, centre y = H * (0.30 sky,
///    0.50 middle, 0.68 ground), clamped inside the canvas; corners and side rounded like
///    Python's round (exact halves to the even neighbour).
/// 4. The image is resized bilinearly to the box.
/// 5. Soft mask: colour distance from the grey, clamp((d - 0.04) / 0.12), blurred twice with a
///    3x3 box (edge clamp), times a feathered ellipse clamp((1 - r) / 0.35).
/// 6. Items are painted in ascending score (ties: reverse placement order).
public enum SceneComposer {
    public struct Item {
        public var name: String
        public var image: GeneratedImage
        public var score: Float
        public var layer: String
        public init(name: String, image: GeneratedImage, score: Float, layer: String) {
            self.name = name; self.image = image; self.score = score; self.layer = layer
        }
    }

    static let background: Float = 200.0 / 255.0
    // An unknown layer name counts as "middle", as compose.py's LAYER_RANK.get(layer, 1) and
    // LAYER_Y.get(layer, 0.5) do (classes.json is checked against the three names, so only a
    // caller's own item can have one).
    static func layerRank(_ l: String) -> Int { l == "sky" ? 0 : (l == "ground" ? 2 : 1) }
    static func layerY(_ l: String) -> Float { l == "sky" ? 0.30 : (l == "ground" ? 0.68 : 0.50) }

    public static func compose(_ items: [Item], width: Int, height: Int) -> GeneratedImage {
        let W = Float(width), H = Float(height)
        var out = [Float](repeating: background, count: width * height * 3)
        let n = items.count
        guard n > 0 else { return quantise(out, width, height) }
        let placed = items.enumerated().sorted {
            let (a, b) = ($0.element, $1.element)
            if layerRank(a.layer) != layerRank(b.layer) { return layerRank(a.layer) < layerRank(b.layer) }
            if a.score != b.score { return a.score > b.score }
            return a.name < b.name
        }.map(\.element)
        let base: Float = n == 1 ? 0.92 : n == 2 ? 0.64 : n == 3 ? 0.54 : 0.48
        let maxScore = max(1e-6, placed.map(\.score).max()!)
        struct Box { var x0: Int; var y0: Int; var side: Int; var order: Int }
        var boxes: [Box] = []
        for (i, it) in placed.enumerated() {
            let S = H * base * (0.75 + 0.25 * it.score / maxScore)
            var cx = W * (Float(i) + 0.5) / Float(n)
            var cy = H * layerY(it.layer)
            cx = S > W ? W / 2 : min(max(cx, S / 2), W - S / 2)
            cy = S > H ? H / 2 : min(max(cy, S / 2), H - S / 2)
            // Python's round(): exact halves go to the even neighbour
            boxes.append(Box(x0: Int((cx - S / 2).rounded(.toNearestOrEven)), y0: Int((cy - S / 2).rounded(.toNearestOrEven)),
                             side: Int(S.rounded(.toNearestOrEven)), order: i))
        }
        // Paint order: ascending score; ties reverse placement order.
        let paint = boxes.indices.sorted {
            let (a, b) = (placed[$0], placed[$1])
            if a.score != b.score { return a.score < b.score }
            return boxes[$0].order > boxes[$1].order
        }
        for idx in paint {
            let it = placed[idx], box = boxes[idx]
            let side = box.side
            guard side > 0 else { continue }
            let img = resize(it.image, side)                      // [side][side][3] in 0...1
            var a = [Float](repeating: 0, count: side * side)     // [side][side] mask
            img.withUnsafeBufferPointer { ib in
                a.withUnsafeMutableBufferPointer { ab in
                    let im = ib.baseAddress!, am = ab.baseAddress!
                    for p in 0..<(side * side) {
                        let d = max(abs(im[p * 3] - background), abs(im[p * 3 + 1] - background), abs(im[p * 3 + 2] - background))
                        am[p] = min(1, max(0, (d - 0.04) / 0.12))
                    }
                }
            }
            a = blur3(blur3(a, side), side)
            // Canvas rows and columns the box covers.
            let yLo = max(0, -box.y0), yHi = min(side, height - box.y0)
            let xLo = max(0, -box.x0), xHi = min(side, width - box.x0)
            guard yLo < yHi, xLo < xHi else { continue }
            img.withUnsafeBufferPointer { ib in
                a.withUnsafeBufferPointer { ab in
                    out.withUnsafeMutableBufferPointer { ob in
                        let im = ib.baseAddress!, am = ab.baseAddress!, o = ob.baseAddress!
                        let half = Float(side) / 2
                        for y in yLo..<yHi {
                            let v = (Float(y) + 0.5 - half) / half
                            let Y = box.y0 + y
                            for x in xLo..<xHi {
                                let u = (Float(x) + 0.5 - half) / half
                                let vig = min(1, max(0, (1 - (u * u + v * v).squareRoot()) / 0.35))
                                let alpha = am[y * side + x] * vig
                                guard alpha > 0 else { continue }
                                let q = (Y * width + box.x0 + x) * 3, s = (y * side + x) * 3
                                o[q] = o[q] * (1 - alpha) + im[s] * alpha
                                o[q + 1] = o[q + 1] * (1 - alpha) + im[s + 1] * alpha
                                o[q + 2] = o[q + 2] * (1 - alpha) + im[s + 2] * alpha
                            }
                        }
                    }
                }
            }
        }
        return quantise(out, width, height)
    }

    /// Bilinear resize to side x side, source coordinate (i + 0.5) h / side - 0.5 clamped.
    static func resize(_ im: GeneratedImage, _ side: Int) -> [Float] {
        var out = [Float](repeating: 0, count: side * side * 3)
        let h = im.height, w = im.width
        im.rgb.withUnsafeBufferPointer { sb in
            out.withUnsafeMutableBufferPointer { ob in
                let src = sb.baseAddress!, dst = ob.baseAddress!
                for y in 0..<side {
                    let fy = min(max((Float(y) + 0.5) * Float(h) / Float(side) - 0.5, 0), Float(h - 1))
                    let y0 = Int(fy), y1 = min(h - 1, y0 + 1), ty = fy - Float(y0)
                    for x in 0..<side {
                        let fx = min(max((Float(x) + 0.5) * Float(w) / Float(side) - 0.5, 0), Float(w - 1))
                        let x0 = Int(fx), x1 = min(w - 1, x0 + 1), tx = fx - Float(x0)
                        for c in 0..<3 {
                            let p00 = Float(src[(y0 * w + x0) * 3 + c]), p01 = Float(src[(y0 * w + x1) * 3 + c])
                            let p10 = Float(src[(y1 * w + x0) * 3 + c]), p11 = Float(src[(y1 * w + x1) * 3 + c])
                            dst[(y * side + x) * 3 + c] = ((p00 * (1 - tx) + p01 * tx) * (1 - ty) + (p10 * (1 - tx) + p11 * tx) * ty) / 255
                        }
                    }
                }
            }
        }
        return out
    }

    /// 3x3 box blur with edge clamping.
    static func blur3(_ a: [Float], _ side: Int) -> [Float] {
        var out = a
        a.withUnsafeBufferPointer { ab in
            out.withUnsafeMutableBufferPointer { ob in
                let src = ab.baseAddress!, dst = ob.baseAddress!
                for y in 0..<side {
                    let r0 = src + max(y - 1, 0) * side, r1 = src + y * side, r2 = src + min(y + 1, side - 1) * side
                    for x in 0..<side {
                        let xm = max(x - 1, 0), xp = min(x + 1, side - 1)
                        // Same summation order as the 3x3 loop (dy outer, dx inner).
                        var s: Float = 0
                        s += r0[xm]; s += r0[x]; s += r0[xp]
                        s += r1[xm]; s += r1[x]; s += r1[xp]
                        s += r2[xm]; s += r2[x]; s += r2[xp]
                        dst[y * side + x] = s / 9
                    }
                }
            }
        }
        return out
    }

    static func quantise(_ f: [Float], _ w: Int, _ h: Int) -> GeneratedImage {
        GeneratedImage(width: w, height: h, rgb: f.map { UInt8(max(0, min(255, $0 * 255 + 0.5))) })
    }
}

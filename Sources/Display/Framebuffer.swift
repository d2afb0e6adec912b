/// An RGB image of `width x height` pixels (3 bytes per pixel, row-major), as produced by
/// the generator and shown by the display.
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]  // [height][width][3]
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3)
        self.width = width; self.height = height; self.pixels = pixels
    }
}

/// A colour, 8 bits per channel.
public struct Color: Sendable, Equatable {
    public var r: UInt8, g: UInt8, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }
    /// As an opaque ARGB8888 pixel.
    @inlinable public var argb: UInt32 { 0xFF00_0000 | UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b) }
    public init(argb p: UInt32) { self.init(UInt8((p >> 16) & 0xFF), UInt8((p >> 8) & 0xFF), UInt8(p & 0xFF)) }

    public static let black = Color(0, 0, 0)
    public static let white = Color(255, 255, 255)
    public static let background = Color(14, 16, 22)
    public static let panel = Color(28, 31, 40)
    public static let text = Color(226, 230, 238)
    public static let dimText = Color(140, 146, 160)
    public static let accent = Color(255, 176, 64)
    public static let good = Color(90, 210, 120)
    public static let warn = Color(240, 80, 70)
}

/// The software framebuffer every frame is drawn into, window or headless alike, so PNG
/// frames, screenshots and the window show identical pixels. ARGB8888, row-major.
public struct Framebuffer: Sendable {
    public private(set) var width: Int
    public private(set) var height: Int
    public var pixels: [UInt32]  // [height][width], 0xAARRGGBB

    public init(width: Int, height: Int, fill: Color = .background) {
        self.width = width; self.height = height
        pixels = [UInt32](repeating: fill.argb, count: width * height)
    }

    public func pixel(x: Int, y: Int) -> Color { Color(argb: pixels[y * width + x]) }

    public mutating func resize(width: Int, height: Int) {
        guard width != self.width || height != self.height else { return }
        self.width = width; self.height = height
        pixels = [UInt32](repeating: Color.background.argb, count: width * height)
    }

    public mutating func fill(_ c: Color) {
        let v = c.argb
        pixels.withUnsafeMutableBufferPointer { p in p.update(repeating: v) }
    }

    /// Fills the rectangle clipped to the framebuffer.
    public mutating func fillRect(x: Int, y: Int, w: Int, h: Int, _ c: Color) {
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + w), y1 = min(height, y + h)
        guard x1 > x0, y1 > y0 else { return }
        let v = c.argb
        let stride = width
        pixels.withUnsafeMutableBufferPointer { p in
            for yy in y0..<y1 {
                let row = p.baseAddress! + yy * stride
                for xx in x0..<x1 { row[xx] = v }
            }
        }
    }

    /// Copies `src` with its top-left at (x, y), clipped to the framebuffer.
    public mutating func copy(_ src: Framebuffer, x: Int, y: Int) {
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + src.width), y1 = min(height, y + src.height)
        guard x1 > x0, y1 > y0 else { return }
        let stride = width
        src.pixels.withUnsafeBufferPointer { s in
            pixels.withUnsafeMutableBufferPointer { p in
                for yy in y0..<y1 {
                    (p.baseAddress! + yy * stride + x0).update(from: s.baseAddress! + (yy - y) * src.width + (x0 - x), count: x1 - x0)
                }
            }
        }
    }

    /// Blends `c` over the rectangle with opacity `alpha` (0...1).
    public mutating func blendRect(x: Int, y: Int, w: Int, h: Int, _ c: Color, alpha: Float) {
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + w), y1 = min(height, y + h)
        guard x1 > x0, y1 > y0 else { return }
        let a = UInt32(max(0, min(1, alpha)) * 256)
        let stride = width
        pixels.withUnsafeMutableBufferPointer { p in
            for yy in y0..<y1 {
                let row = p.baseAddress! + yy * stride
                for xx in x0..<x1 { row[xx] = Framebuffer.mix(row[xx], c.argb, a) }
            }
        }
    }

    /// Outline of a rectangle, `t` pixels thick.
    public mutating func strokeRect(x: Int, y: Int, w: Int, h: Int, t: Int = 1, _ c: Color) {
        fillRect(x: x, y: y, w: w, h: t, c)
        fillRect(x: x, y: y + h - t, w: w, h: t, c)
        fillRect(x: x, y: y, w: t, h: h, c)
        fillRect(x: x + w - t, y: y, w: t, h: h, c)
    }

    /// Draws `image` scaled (bilinear) into the rectangle, with opacity `alpha`.
    ///
    /// Fixed point and separable: the source position of every destination column (two byte
    /// offsets and an 8-bit weight) is computed once per call; each source row pair a destination
    /// row needs is interpolated horizontally once (planar R, G, B rows of 16.8 fixed point,
    /// reused by every destination row between the same two source rows, about 8 rows for the
    /// mixed image at 4K), and each destination pixel is one vertical blend of those rows.
    public mutating func drawImage(_ image: RGBImage, x: Int, y: Int, w: Int, h: Int, alpha: Float = 1) {
        guard w > 0, h > 0, image.width > 0, image.height > 0 else { return }
        let a = UInt32(max(0, min(1, alpha)) * 256)
        let sx = Float(image.width) / Float(w), sy = Float(image.height) / Float(h)
        let iw = image.width, ih = image.height
        let stride = width
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + w), y1 = min(height, y + h)
        guard x1 > x0, y1 > y0 else { return }
        let n = x1 - x0
        // [3n] column table, then two horizontally interpolated rows as [3][n] planes each.
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 9 * n) { buf in
            let cols = buf.baseAddress!, rowA = cols + 3 * n, rowB = rowA + 3 * n
            for k in 0..<n {
                let fx = max(0, (Float(x0 + k - x) + 0.5) * sx - 0.5)
                let ix = min(iw - 1, Int(fx)), ix1 = min(iw - 1, ix + 1)
                cols[3 * k] = Int32(ix * 3)
                cols[3 * k + 1] = Int32(ix1 * 3)
                cols[3 * k + 2] = Int32(min(256, Int((fx - Float(ix)) * 256 + 0.5)))
            }
            image.pixels.withUnsafeBufferPointer { src in
                /// Source row `r` interpolated across: planes[c * n + k] = left * (256 - wx) + right * wx.
                func horizontal(_ r: Int, into planes: UnsafeMutablePointer<Int32>) {
                    let line = src.baseAddress! + r * iw * 3
                    for k in 0..<n {
                        let o0 = Int(cols[3 * k]), o1 = Int(cols[3 * k + 1])
                        let wx = cols[3 * k + 2], vx = 256 - wx
                        planes[k] = Int32(line[o0]) * vx + Int32(line[o1]) * wx
                        planes[n + k] = Int32(line[o0 + 1]) * vx + Int32(line[o1 + 1]) * wx
                        planes[2 * n + k] = Int32(line[o0 + 2]) * vx + Int32(line[o1 + 2]) * wx
                    }
                }
                var top = rowA, bottom = rowB
                var topRow = -1, bottomRow = -1
                pixels.withUnsafeMutableBufferPointer { dst in
                    for yy in y0..<y1 {
                        let fy = max(0, (Float(yy - y) + 0.5) * sy - 0.5)
                        let iy = min(ih - 1, Int(fy)), iy1 = min(ih - 1, iy + 1)
                        let wy = Int32(min(256, Int((fy - Float(iy)) * 256 + 0.5))), vy = 256 - wy
                        if iy != topRow {
                            if iy == bottomRow { swap(&top, &bottom); swap(&topRow, &bottomRow) } else { horizontal(iy, into: top); topRow = iy }
                        }
                        if iy1 != bottomRow {
                            if iy1 == topRow { bottom.update(from: top, count: 3 * n) } else { horizontal(iy1, into: bottom) }
                            bottomRow = iy1
                        }
                        let row = dst.baseAddress! + yy * stride + x0
                        // [0, 255 * 65536]: +32768 rounds, >> 16 back to 8 bits.
                        @inline(__always) func pixel(_ k: Int) -> UInt32 {
                            let r = UInt32((top[k] * vy + bottom[k] * wy + 32768) >> 16)
                            let g = UInt32((top[n + k] * vy + bottom[n + k] * wy + 32768) >> 16)
                            let b = UInt32((top[2 * n + k] * vy + bottom[2 * n + k] * wy + 32768) >> 16)
                            return 0xFF00_0000 | r << 16 | g << 8 | b
                        }
                        if a >= 256 {       // opaque: a branch-free loop the compiler can vectorise
                            for k in 0..<n { row[k] = pixel(k) }
                        } else {
                            for k in 0..<n { row[k] = Framebuffer.mix(row[k], pixel(k), a) }
                        }
                    }
                }
            }
        }
    }

    /// Blends an 8-bit coverage mask (text glyphs) in colour `c` at (x, y).
    public mutating func blendMask(_ mask: [UInt8], maskWidth: Int, maskHeight: Int, x: Int, y: Int, _ c: Color) {
        let v = c.argb
        let stride = width
        for my in 0..<maskHeight {
            let yy = y + my
            guard yy >= 0 && yy < height else { continue }
            for mx in 0..<maskWidth {
                let xx = x + mx
                guard xx >= 0 && xx < width else { continue }
                let cov = UInt32(mask[my * maskWidth + mx])
                if cov == 0 { continue }
                pixels[yy * stride + xx] = Framebuffer.mix(pixels[yy * stride + xx], v, cov + (cov >> 7))
            }
        }
    }

    /// (dst * (256 - a) + src * a) / 256 per channel, opaque result.
    @inlinable static func mix(_ dst: UInt32, _ src: UInt32, _ a: UInt32) -> UInt32 {
        let ia = 256 - a
        let rb = (((dst & 0xFF00FF) * ia + (src & 0xFF00FF) * a) >> 8) & 0xFF00FF
        let g = (((dst & 0x00FF00) * ia + (src & 0x00FF00) * a) >> 8) & 0x00FF00
        return 0xFF00_0000 | rb | g
    }
}

/// A perceptual dark-to-bright colour ramp for spectrograms (anchors chosen by eye:
/// near-black blue, purple, red-orange, yellow, pale yellow), precomputed to 256 entries.
public enum Colormap {
    public static let table: [UInt32] = {
        let anchors: [(Float, Float, Float)] = [(4, 4, 18), (60, 16, 110), (180, 40, 90), (240, 120, 30), (252, 220, 90), (252, 252, 200)]
        return (0..<256).map { i in
            let t = Float(i) / 255 * Float(anchors.count - 1)
            let k = min(anchors.count - 2, Int(t)), f = t - Float(k)
            let (a, b) = (anchors[k], anchors[k + 1])
            return Color(UInt8(a.0 + (b.0 - a.0) * f), UInt8(a.1 + (b.1 - a.1) * f), UInt8(a.2 + (b.2 - a.2) * f)).argb
        }
    }()

    /// Colour for `v` in 0...1.
    @inlinable public static func color(_ v: Float) -> UInt32 {
        table[Int(max(0, min(1, v)) * 255)]
    }
}

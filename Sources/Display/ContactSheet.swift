/// A grid of small frames, one per second of stream time, written at the end of a run
/// (`--contact-sheet FILE.png`), so a whole run can be judged at a glance. Memory is bounded
/// for long and live runs: when `maxThumbs` frames are held, every other one is dropped and
/// the interval doubles (1 s, 2 s, 4 s...), so the sheet always spans the whole run evenly.
public final class ContactSheet {
    public let thumbWidth: Int
    public let thumbHeight: Int
    public let columns: Int
    public let maxThumbs: Int
    private var thumbs: [(time: Double, fb: Framebuffer)] = []
    /// Seconds of stream time between thumbnails.
    public private(set) var interval = 1.0
    private var nextTime = 0.0

    public init(thumbWidth: Int = 320, aspect: Double = 9.0 / 16.0, columns: Int = 6, maxThumbs: Int = 120) {
        self.thumbWidth = thumbWidth
        self.thumbHeight = Int(Double(thumbWidth) * aspect)
        self.columns = columns
        self.maxThumbs = max(2, maxThumbs)
    }

    public var count: Int { thumbs.count }
    /// Stream times of the thumbnails held.
    public var times: [Double] { thumbs.map(\.time) }

    /// Whether a frame at stream time `time` is due.
    public func wants(_ time: Double) -> Bool { time >= nextTime }

    /// Adds a downscaled copy of `fb` (area-averaged) labelled with `time`.
    public func add(_ fb: Framebuffer, time: Double) {
        var t = Framebuffer(width: thumbWidth, height: thumbHeight)
        for y in 0..<thumbHeight {
            let y0 = y * fb.height / thumbHeight, y1 = max(y0 + 1, (y + 1) * fb.height / thumbHeight)
            for x in 0..<thumbWidth {
                let x0 = x * fb.width / thumbWidth, x1 = max(x0 + 1, (x + 1) * fb.width / thumbWidth)
                var r = 0, g = 0, b = 0, n = 0
                var yy = y0
                while yy < y1 {
                    var xx = x0
                    while xx < x1 {
                        let p = fb.pixels[yy * fb.width + xx]
                        r += Int((p >> 16) & 0xFF); g += Int((p >> 8) & 0xFF); b += Int(p & 0xFF); n += 1
                        xx += 1
                    }
                    yy += 1
                }
                t.pixels[y * thumbWidth + x] = Color(UInt8(r / n), UInt8(g / n), UInt8(b / n)).argb
            }
        }
        thumbs.append((time, t))
        // Thin by time, not position: keep the first thumbnail of each new, twice as long
        // interval (stream time can jump when live analysis skips ahead).
        while thumbs.count >= maxThumbs {
            interval *= 2
            var kept: [(time: Double, fb: Framebuffer)] = []
            for th in thumbs where kept.last.map({ ($0.time / interval).rounded(.down) != (th.time / interval).rounded(.down) }) ?? true {
                kept.append(th)
            }
            thumbs = kept
        }
        nextTime = ((time / interval).rounded(.down) + 1) * interval
    }

    /// Lays the thumbnails out in a grid with their times and writes a PNG.
    public func write(to path: String, text: TextRenderer) throws(ImageWriteError) {
        let rows = max(1, (thumbs.count + columns - 1) / columns)
        let pad = 6, label = 18
        var sheet = Framebuffer(width: columns * (thumbWidth + pad) + pad, height: rows * (thumbHeight + pad + label) + pad)
        for (i, th) in thumbs.enumerated() {
            let x = pad + (i % columns) * (thumbWidth + pad)
            let y = pad + (i / columns) * (thumbHeight + pad + label)
            for yy in 0..<thumbHeight {
                for xx in 0..<thumbWidth { sheet.pixels[(y + label + yy) * sheet.width + x + xx] = th.fb.pixels[yy * thumbWidth + xx] }
            }
            text.draw(String(format: "%.0f s", th.time), x: x + 2, y: y + 1, size: 12, color: .text, into: &sheet)
        }
        try PNGWriter.write(sheet, to: path)
    }
}

/// Everything one frame shows. Plain values, so the display knows nothing of the models.
public struct FrameModel: Sendable {
    /// One class card beside the main image.
    public struct ClassCard: Sendable, Equatable {
        public var name: String
        /// Smoothed confidence, 0...1.
        public var score: Float
        /// On/off transition: 1 fully shown, fading towards 0 after the class stops.
        public var presence: Float
        /// The class's current image (nil until the generator has one).
        public var image: RGBImage?
        public init(name: String, score: Float, presence: Float = 1, image: RGBImage? = nil) {
            self.name = name; self.score = score; self.presence = presence; self.image = image
        }
    }

    /// Seconds of stream time this frame shows.
    public var streamTime: Double = 0
    /// Newest log-mel frames, oldest first: [spectrogramFrames][bands].
    public var spectrogram: [Float] = []
    public var spectrogramFrames = 0
    public var bands = 64
    /// Input level of the newest audio, dBFS (RMS) and peak.
    public var levelDB: Float = -120
    public var peakDB: Float = -120
    public var classes: [ClassCard] = []
    /// The mixed image of the whole scene (nil: the spectrogram fills the main area).
    public var mixed: RGBImage?
    /// Caption of the mixed image ("composed scene", "paper-style").
    public var mixedCaption: String = ""
    /// A status line shown prominently (e.g. "no input: microphone unplugged, retrying").
    public var status: String?
    /// Lines of the optional diagnostics overlay (nil: hidden).
    public var overlay: [String]?
    /// A short message about a setting the user just changed (e.g. "sensitivity high: ..."),
    /// drawn in a neutral banner near the bottom of the main area (nil: none).
    public var notice: String?

    public init() {}
}

/// Draws a `FrameModel` into a framebuffer. The layout follows the framebuffer size:
/// a side panel of class cards on the right; the main area shows the mixed image (or, until
/// images exist, the scrolling spectrogram); a spectrogram strip and level meter along the bottom.
public final class FrameRenderer {
    public let text: TextRenderer
    /// The mixed image scaled to its square, kept while the image and the square's side are
    /// unchanged (held images: most frames), so such a frame copies rows instead of rescaling
    /// (at 3840x2160 the square is 4.6 M pixels). The frame's pixels are the same either way.
    private var scaledMixed: (image: RGBImage, side: Int, pixels: Framebuffer)?
    public init(text: TextRenderer = TextRenderer()) { self.text = text }

    /// Rectangles of the layout for a framebuffer size (also used by tests).
    public struct Layout: Equatable {
        public var main: (x: Int, y: Int, w: Int, h: Int)
        public var panel: (x: Int, y: Int, w: Int, h: Int)
        public var strip: (x: Int, y: Int, w: Int, h: Int)
        public var meter: (x: Int, y: Int, w: Int, h: Int)
        public static func == (a: Layout, b: Layout) -> Bool {
            a.main == b.main && a.panel == b.panel && a.strip == b.strip && a.meter == b.meter
        }
    }

    public static func layout(width: Int, height: Int) -> Layout {
        let panelW = max(160, min(340, width / 4))
        let stripH = max(48, height / 6)
        let meterW = max(10, width / 80)
        let mainW = width - panelW
        return Layout(main: (0, 0, mainW, height - stripH),
                      panel: (mainW, 0, panelW, height),
                      strip: (meterW, height - stripH, mainW - meterW, stripH),
                      meter: (0, height - stripH, meterW, stripH))
    }

    public func render(_ m: FrameModel, into fb: inout Framebuffer) {
        fb.fill(.background)
        let L = Self.layout(width: fb.width, height: fb.height)
        let fontSize = max(11, fb.height / 48)
        // Main area: the mixed image when there is one, else the spectrogram large.
        if let mixed = m.mixed {
            let side = min(L.main.w, L.main.h) - 16
            let x = L.main.x + (L.main.w - side) / 2, y = L.main.y + (L.main.h - side) / 2
            if side > 0 {
                if scaledMixed == nil || scaledMixed!.side != side || scaledMixed!.image != mixed {
                    // Reuse the square's storage when only the image changed (taken out of
                    // scaledMixed first, so it is uniquely referenced and not copied).
                    var square = scaledMixed?.side == side ? scaledMixed!.pixels : Framebuffer(width: side, height: side)
                    scaledMixed = nil
                    square.drawImage(mixed, x: 0, y: 0, w: side, h: side)
                    scaledMixed = (mixed, side, square)
                }
                fb.copy(scaledMixed!.pixels, x: x, y: y)
            }
            if !m.mixedCaption.isEmpty {
                text.draw(m.mixedCaption, x: x + 8, y: y + 6, size: fontSize, color: .text, into: &fb)
            }
        } else {
            drawSpectrogram(m, x: L.main.x + 8, y: L.main.y + 8, w: L.main.w - 16, h: L.main.h - 16, into: &fb)
        }
        drawSpectrogram(m, x: L.strip.x, y: L.strip.y, w: L.strip.w, h: L.strip.h, into: &fb)
        drawMeter(m, L.meter, into: &fb)
        drawPanel(m, L.panel, fontSize: fontSize, into: &fb)
        text.draw(String(format: "%.1f s", m.streamTime), x: L.strip.x + 6, y: L.strip.y + 4, size: fontSize, color: .text, into: &fb)
        if let status = m.status {
            let h = fontSize * 2
            fb.blendRect(x: L.main.x, y: L.main.y + L.main.h / 2 - h / 2, w: L.main.w, h: h, .warn, alpha: 0.85)
            text.draw(status, x: L.main.x + 12, y: L.main.y + L.main.h / 2 - fontSize / 2 - 2, size: fontSize, color: .white, into: &fb, maxWidth: L.main.w - 24)
        }
        if let notice = m.notice {
            let h = fontSize * 2
            let y = L.main.y + L.main.h - h - 12
            fb.blendRect(x: L.main.x, y: y, w: L.main.w, h: h, .black, alpha: 0.75)
            text.draw(notice, x: L.main.x + 12, y: y + h / 2 - fontSize / 2 - 2, size: fontSize, color: .white, into: &fb, maxWidth: L.main.w - 24)
        }
        if let lines = m.overlay {
            let lh = fontSize + 4
            fb.blendRect(x: 8, y: 8, w: min(L.main.w - 16, 460), h: lh * lines.count + 8, .black, alpha: 0.7)
            for (i, line) in lines.enumerated() {
                text.draw(line, x: 14, y: 12 + i * lh, size: fontSize, color: .good, into: &fb)
            }
        }
    }

    /// Log-mel frames as columns, newest at the right; low frequencies at the bottom.
    func drawSpectrogram(_ m: FrameModel, x: Int, y: Int, w: Int, h: Int, into fb: inout Framebuffer) {
        guard w > 0, h > 0 else { return }
        fb.fillRect(x: x, y: y, w: w, h: h, .black)
        let n = m.spectrogramFrames, bands = m.bands
        guard n > 0, bands > 0, m.spectrogram.count >= n * bands else { return }
        // One column per frame when it fits; otherwise stretch the newest `w` frames.
        let shown = min(n, w)
        let colW = max(1, w / max(1, shown))
        let usedW = colW * shown
        let x0 = x + w - usedW
        let width = fb.width
        // Columns actually inside the framebuffer; rows showing the same band as the row above
        // are copies of it (a 120-pixel strip of 64 bands colours each band about twice).
        let lo = max(x0, 0), hi = min(x0 + usedW, width)
        m.spectrogram.withUnsafeBufferPointer { s in
            fb.pixels.withUnsafeMutableBufferPointer { p in
                var previous = -1
                for row in 0..<h {
                    let band = min(bands - 1, (h - 1 - row) * bands / h)
                    let line = p.baseAddress! + (y + row) * width
                    if band == previous, hi > lo {
                        (line + lo).update(from: line - width + lo, count: hi - lo)
                        continue
                    }
                    previous = band
                    for c in 0..<shown {
                        // log(mel + 1e-6) spans -13.8 (digital silence) to about +3 (loud);
                        // real rooms sit around -8 and up, so the ramp covers -8...+4.
                        let v = (s[(n - shown + c) * bands + band] + 8) / 12
                        let col = Colormap.color(v)
                        let cx = x0 + c * colW
                        for k in 0..<colW where cx + k >= 0 && cx + k < width { line[cx + k] = col }
                    }
                }
            }
        }
    }

    func drawMeter(_ m: FrameModel, _ r: (x: Int, y: Int, w: Int, h: Int), into fb: inout Framebuffer) {
        fb.fillRect(x: r.x, y: r.y, w: r.w, h: r.h, .panel)
        // -60 dBFS .. 0 dBFS mapped to the meter height.
        let level = max(0, min(1, (m.levelDB + 60) / 60))
        let peak = max(0, min(1, (m.peakDB + 60) / 60))
        let lh = Int(Float(r.h - 4) * level)
        let color: Color = m.peakDB > -1 ? .warn : (m.levelDB > -12 ? .accent : .good)
        fb.fillRect(x: r.x + 2, y: r.y + r.h - 2 - lh, w: r.w - 4, h: lh, color)
        let py = r.y + r.h - 2 - Int(Float(r.h - 4) * peak)
        fb.fillRect(x: r.x + 1, y: py, w: r.w - 2, h: 2, .white)
    }

    func drawPanel(_ m: FrameModel, _ r: (x: Int, y: Int, w: Int, h: Int), fontSize: Int, into fb: inout Framebuffer) {
        fb.fillRect(x: r.x, y: r.y, w: r.w, h: r.h, .panel)
        text.draw("hearing", x: r.x + 10, y: r.y + 8, size: fontSize, color: .dimText, into: &fb)
        let top = r.y + fontSize + 18
        let slots = max(1, min(6, (r.h - top) / max(1, (r.w / 3 + 12))))
        let cardH = min((r.h - top) / max(1, slots), r.w / 3 + 24)
        for (i, card) in m.classes.prefix(slots).enumerated() {
            let y = top + i * cardH
            let a = max(0, min(1, card.presence))
            let thumb = cardH - 14
            fb.blendRect(x: r.x + 6, y: y, w: r.w - 12, h: cardH - 6, Color(44, 48, 60), alpha: a)
            if let img = card.image {
                fb.drawImage(img, x: r.x + 10, y: y + 4, w: thumb, h: thumb, alpha: a)
            } else {
                fb.blendRect(x: r.x + 10, y: y + 4, w: thumb, h: thumb, Color(60, 64, 80), alpha: a)
            }
            let tx = r.x + 18 + thumb
            let tw = r.w - (tx - r.x) - 12
            let textColor = Color(UInt8(Float(Color.text.r) * a), UInt8(Float(Color.text.g) * a), UInt8(Float(Color.text.b) * a))
            text.draw(card.name, x: tx, y: y + 6, size: fontSize, color: textColor, into: &fb, maxWidth: tw)
            // Confidence bar.
            let by = y + 10 + fontSize + 6
            fb.fillRect(x: tx, y: by, w: tw, h: 8, Color(20, 22, 28))
            fb.blendRect(x: tx, y: by, w: Int(Float(tw) * max(0, min(1, card.score))), h: 8, .accent, alpha: a)
            text.draw(String(format: "%.2f", card.score), x: tx, y: by + 12, size: max(9, fontSize - 3), color: .dimText, into: &fb)
        }
    }
}

import Display
import Foundation
import TestSupport
import XCTest

/// SDL tests stay in XCTest: on Linux, Swift Testing does not run on the main thread.
final class DisplayTests: XCTestCase {
    func model(frames: Int = 200) -> FrameModel {
        var m = FrameModel()
        m.streamTime = 12.5
        m.spectrogramFrames = frames
        // A rising ramp over time, louder in low bands: a known picture.
        m.spectrogram = (0..<(frames * 64)).map { i in Float(i / 64) / Float(frames) * 10 - 8 + Float(64 - i % 64) / 64 * 2 }
        m.levelDB = -6
        m.peakDB = -3
        m.classes = [.init(name: "dog barking", score: 0.8), .init(name: "raining", score: 0.4, presence: 0.5)]
        return m
    }

    /// The layout draws what the model says, where the layout says.
    func testFrameRendererDrawsPanelsMeterAndCards() {
        var fb = Framebuffer(width: 640, height: 360)
        let renderer = FrameRenderer()
        renderer.render(model(), into: &fb)
        let L = FrameRenderer.layout(width: 640, height: 360)
        // Side panel background colour at its lower edge (no cards there).
        XCTAssertEqual(fb.pixel(x: L.panel.x + L.panel.w - 3, y: L.panel.y + L.panel.h - 3), .panel)
        // The spectrogram's newest column (right edge) is brighter than its oldest one (left).
        func luma(_ c: Color) -> Int { Int(c.r) + Int(c.g) + Int(c.b) }
        let y = L.main.y + L.main.h / 2
        XCTAssertGreaterThan(luma(fb.pixel(x: L.main.x + L.main.w - 10, y: y)), luma(fb.pixel(x: L.main.x + 10, y: y)) + 50)
        // The level meter at -6 dBFS fills 90% of its height, in the "loud" colour.
        let meterY = L.meter.y + L.meter.h - 2 - Int(Float(L.meter.h - 4) * 0.7)
        XCTAssertEqual(fb.pixel(x: L.meter.x + L.meter.w / 2, y: meterY), .accent)
        // The first card's confidence bar is drawn in the accent colour.
        var accentInPanel = 0
        for yy in 0..<L.panel.h / 2 { for xx in L.panel.x..<(L.panel.x + L.panel.w) where fb.pixel(x: xx, y: yy) == .accent { accentInPanel += 1 } }
        XCTAssertGreaterThan(accentInPanel, 100)
        // Text was rendered (bright glyph pixels inside the panel header).
        var bright = 0
        for yy in 4..<24 { for xx in L.panel.x..<(L.panel.x + 120) where luma(fb.pixel(x: xx, y: yy)) > 300 { bright += 1 } }
        XCTAssertGreaterThan(bright, 10)
    }

    /// A notice (a setting just changed) darkens a banner near the bottom of the main area and
    /// writes white text in it; the rest of the frame is drawn as without it.
    func testNoticeBanner() {
        let renderer = FrameRenderer()
        var plain = Framebuffer(width: 640, height: 360), noticed = plain
        renderer.render(model(), into: &plain)
        var m = model()
        m.notice = "sensitivity high: shows more classes, and more wrong ones"
        renderer.render(m, into: &noticed)
        let L = FrameRenderer.layout(width: 640, height: 360)
        func luma(_ c: Color) -> Int { Int(c.r) + Int(c.g) + Int(c.b) }
        var changed = 0, white = 0, changedOutside = 0
        for y in 0..<360 { for x in 0..<640 {
            let (a, b) = (plain.pixel(x: x, y: y), noticed.pixel(x: x, y: y))
            guard a != b else { continue }
            let inBanner = x >= L.main.x && x < L.main.x + L.main.w && y >= L.main.y + L.main.h / 2 && y < L.main.y + L.main.h
            if inBanner { changed += 1; if luma(b) > 600 { white += 1 } } else { changedOutside += 1 }
        } }
        XCTAssertEqual(changedOutside, 0)
        XCTAssertGreaterThan(changed, L.main.w * 10)   // a banner at least 10 rows high
        XCTAssertGreaterThan(white, 50)                // and text in it
    }

    /// Every pixel of the spectrogram strip is the colour of its frame and band (rows of one band
    /// are copies of the row above: the copy must equal the formula), oldest frames dropped when
    /// more frames exist than columns.
    func testSpectrogramStripIsExactPerPixel() {
        for frames in [200, 2000] {
            var fb = Framebuffer(width: 640, height: 360)
            let m = model(frames: frames)
            FrameRenderer().render(m, into: &fb)
            let L = FrameRenderer.layout(width: 640, height: 360)
            let shown = min(frames, L.strip.w), colW = max(1, L.strip.w / shown)
            let x0 = L.strip.x + L.strip.w - colW * shown
            var mismatches = 0
            for row in 30..<L.strip.h {          // below the time label
                let band = min(63, (L.strip.h - 1 - row) * 64 / L.strip.h)
                for c in 0..<shown {
                    let v = (m.spectrogram[(frames - shown + c) * 64 + band] + 8) / 12
                    for k in 0..<colW where fb.pixels[(L.strip.y + row) * 640 + x0 + c * colW + k] != Colormap.color(v) { mismatches += 1 }
                }
            }
            XCTAssertEqual(mismatches, 0, "\(frames) frames")
        }
    }

    /// The renderer keeps the mixed image scaled while it is unchanged: frames drawn from the
    /// kept copy equal a fresh renderer's, and a new image (or a new size) is scaled again.
    func testKeptScaledMixedImageDrawsTheSameFrames() {
        func image(_ seed: UInt8) -> RGBImage {
            RGBImage(width: 16, height: 16, pixels: (0..<(16 * 16 * 3)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) })
        }
        let kept = FrameRenderer()
        for (mixed, size) in [(image(1), (640, 360)), (image(1), (640, 360)), (image(9), (640, 360)), (image(9), (800, 600))] {
            var m = model()
            m.mixed = mixed
            var a = Framebuffer(width: size.0, height: size.1), b = Framebuffer(width: size.0, height: size.1)
            kept.render(m, into: &a)
            FrameRenderer().render(m, into: &b)
            XCTAssertEqual(a.pixels, b.pixels)
        }
    }

    /// `copy` places a framebuffer and clips it at every edge.
    func testCopyClips() {
        var src = Framebuffer(width: 3, height: 3)
        for i in 0..<9 { src.pixels[i] = 0xFF00_0000 | UInt32(i + 1) }
        for (x, y) in [(-1, -1), (3, 3), (1, 1), (-5, 0)] {
            var fb = Framebuffer(width: 5, height: 5, fill: .black)
            fb.copy(src, x: x, y: y)
            for yy in 0..<5 {
                for xx in 0..<5 {
                    let (sx, sy) = (xx - x, yy - y)
                    let want = (0..<3).contains(sx) && (0..<3).contains(sy) ? src.pixels[sy * 3 + sx] : Color.black.argb
                    XCTAssertEqual(fb.pixels[yy * 5 + xx], want, "copy at (\(x), \(y)), pixel (\(xx), \(yy))")
                }
            }
        }
    }

    /// Offscreen SDL window: what the renderer shows reads back pixel-exact.
    func testOffscreenWindowReadBack() throws {
        setenv("SDL_VIDEODRIVER", "offscreen", 1)
        defer { unsetenv("SDL_VIDEODRIVER") }
        let window = try Window(title: "test", width: 320, height: 200, allowOffscreen: true, softwareRenderer: true)
        XCTAssertEqual(window.videoDriver, "offscreen")
        let (w, h) = window.drawableSize
        var fb = Framebuffer(width: w, height: h)
        FrameRenderer().render(model(), into: &fb)
        window.present(fb)
        let back = try XCTUnwrap(window.readPixels())
        XCTAssertEqual(back.count, fb.pixels.count)
        XCTAssertEqual(back, fb.pixels)
    }

    func testNoDisplayIsReported() {
        let saved = ProcessInfo.processInfo.environment["DISPLAY"]
        unsetenv("DISPLAY"); unsetenv("SDL_VIDEODRIVER")
        defer { if let saved { setenv("DISPLAY", saved, 1) } }
        guard ProcessInfo.processInfo.environment["WAYLAND_DISPLAY"] == nil else { return }
        XCTAssertThrowsError(try Window(title: "x", width: 100, height: 100)) {
            XCTAssertEqual($0 as? DisplayError, .noDisplay)
        }
    }

    func testPNGRoundTripAndAtomicWrite() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var fb = Framebuffer(width: 96, height: 64)
        FrameRenderer().render(model(frames: 50), into: &fb)
        let path = dir.appendingPathComponent("f.png").path
        try PNGWriter.write(fb, to: path)
        let back = try XCTUnwrap(PNGWriter.read(path))
        XCTAssertEqual(back.width, 96); XCTAssertEqual(back.height, 64)
        for i in stride(from: 0, to: 96 * 64, by: 37) {
            XCTAssertEqual(Color(back.pixels[i * 3], back.pixels[i * 3 + 1], back.pixels[i * 3 + 2]), Color(argb: fb.pixels[i]))
        }
        // No temporary file is left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["f.png"])
        XCTAssertThrowsError(try PNGWriter.write(fb, to: "/proc/nope/f.png"))
    }

    func testImagesScaleIntoRectangles() {
        var fb = Framebuffer(width: 40, height: 40, fill: .black)
        let red = RGBImage(width: 2, height: 2, pixels: [255, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0])
        fb.drawImage(red, x: 10, y: 10, w: 20, h: 20)
        XCTAssertEqual(fb.pixel(x: 20, y: 20), Color(255, 0, 0))
        XCTAssertEqual(fb.pixel(x: 5, y: 5), .black)
        fb.drawImage(red, x: 0, y: 0, w: 5, h: 5, alpha: 0.5)
        XCTAssertEqual(Int(fb.pixel(x: 2, y: 2).r), 127, accuracy: 2)
    }

    /// The fixed-point bilinear scaler against the float formula (pixel centres aligned, edges
    /// clamped) on a 3x2 gradient drawn at 7x5, partly outside the framebuffer: within 1 of
    /// the float value per channel, nothing drawn outside the rectangle.
    func testBilinearScalingMatchesTheFloatFormula() {
        let src: [UInt8] = [0, 10, 250, 100, 60, 200, 255, 128, 0,
                            30, 255, 5, 90, 0, 17, 200, 220, 240]
        let image = RGBImage(width: 3, height: 2, pixels: src)
        // Past the right and bottom edges, then past the left and top ones.
        for (x, y, w, h) in [(3, 2, 7, 5), (-2, -1, 7, 5)] {
            var fb = Framebuffer(width: 9, height: 6, fill: .black)
            fb.drawImage(image, x: x, y: y, w: w, h: h)
            let sx = 3.0 / Double(w), sy = 2.0 / Double(h)
            for yy in 0..<6 {
                for xx in 0..<9 {
                    let got = fb.pixel(x: xx, y: yy)
                    guard xx >= x, yy >= y, xx < x + w, yy < y + h else { XCTAssertEqual(got, .black); continue }
                    let fx = max(0, (Double(xx - x) + 0.5) * sx - 0.5), fy = max(0, (Double(yy - y) + 0.5) * sy - 0.5)
                    let ix = min(2, Int(fx)), iy = min(1, Int(fy)), ix1 = min(2, ix + 1), iy1 = min(1, iy + 1)
                    let tx = fx - Double(ix), ty = fy - Double(iy)
                    func v(_ c: Int) -> Double {
                        func p(_ i: Int, _ j: Int) -> Double { Double(src[(j * 3 + i) * 3 + c]) }
                        return (p(ix, iy) * (1 - tx) + p(ix1, iy) * tx) * (1 - ty) + (p(ix, iy1) * (1 - tx) + p(ix1, iy1) * tx) * ty
                    }
                    XCTAssertEqual(Double(got.r), v(0), accuracy: 1.0, "(\(xx), \(yy))")
                    XCTAssertEqual(Double(got.g), v(1), accuracy: 1.0, "(\(xx), \(yy))")
                    XCTAssertEqual(Double(got.b), v(2), accuracy: 1.0, "(\(xx), \(yy))")
                }
            }
        }
    }
}

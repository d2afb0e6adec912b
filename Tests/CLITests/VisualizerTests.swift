import Display
import Foundation
import TestSupport
import XCTest

/// The live visualizer end to end: separator + generator images in the real binary's frames.
final class VisualizerTests: XCTestCase {
    let demo = TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path

    /// Frames at 4 s (dog barking) and 12 s (violin over rain): the side panel's thumbnails
    /// and the mixed image differ, the thumbnails hold generated images (not the empty
    /// placeholder), and the events name the classes of the demo's timeline.
    func testThumbnailsFollowTheClasses() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let frames = dir.appendingPathComponent("f").path
        let events = dir.appendingPathComponent("e.jsonl").path
        let r = try Binary.run("avgas-live", ["--input", demo, "--headless", "--frames", frames, "--fps", "1", "--duration", "13",
                                              "--size", "640x360", "--events", events], timeout: 900)
        XCTAssertEqual(r.status, 0, r.stderr)
        let a = try XCTUnwrap(PNGWriter.read("\(frames)/frame_000004.png"))
        let b = try XCTUnwrap(PNGWriter.read("\(frames)/frame_000012.png"))
        let L = FrameRenderer.layout(width: 640, height: 360)
        func region(_ img: RGBImage, _ x0: Int, _ y0: Int, _ w: Int, _ h: Int) -> [Int] {
            var out: [Int] = []
            for y in y0..<(y0 + h) { for x in x0..<(x0 + w) { for c in 0..<3 { out.append(Int(img.pixels[(y * img.width + x) * 3 + c])) } } }
            return out
        }
        // First card's thumbnail square.
        let top = 11 + 18 + 4
        let thumbA = region(a, L.panel.x + 12, top + 2, 40, 40), thumbB = region(b, L.panel.x + 12, top + 2, 40, 40)
        let diff = zip(thumbA, thumbB).map { abs($0 - $1) }.reduce(0, +) / thumbA.count
        XCTAssertGreaterThan(diff, 10, "the first thumbnail did not change between 4 s and 12 s")
        // A generated thumbnail has texture: many distinct values, unlike the flat placeholder.
        XCTAssertGreaterThan(Set(thumbA).count, 40)
        // The mixed image (main area centre) is an image, not the background.
        let mixed = region(a, L.main.w / 2 - 20, L.main.h / 2 - 20, 40, 40)
        XCTAssertGreaterThan(Set(mixed).count, 40)
        let text = try String(contentsOfFile: events, encoding: .utf8)
        XCTAssertTrue(text.contains("\"dog barking\""))
    }

    /// Missing or corrupt separator/generator weights: one line naming the file, exit 78, and
    /// nothing half-started (no frames written).
    func testBrokenImageWeightsStopTheStart() throws {
        let src = TestPaths.repoRoot.appendingPathComponent("Assets")
        for (file, damage) in [("generator.safetensors", "missing"), ("separator.safetensors", "truncated"),
                               ("exemplars.safetensors", "garbage")] {
            let dir = TestPaths.makeTempDir()
            defer { try? FileManager.default.removeItem(at: dir) }
            let assets = dir.appendingPathComponent("Assets")
            try FileManager.default.copyItem(at: src, to: assets)
            let target = assets.appendingPathComponent("models/\(file)")
            switch damage {
            case "missing": try FileManager.default.removeItem(at: target)
            case "truncated":
                let d = try Data(contentsOf: target)
                try d.prefix(d.count / 2).write(to: target)
            default: try Data("not a weights file at all".utf8).write(to: target)
            }
            let frames = dir.appendingPathComponent("frames").path
            let r = try Binary.run("avgas-live", ["--input", demo, "--headless", "--frames", frames, "--assets", assets.path], timeout: 120)
            XCTAssertEqual(r.status, 78, "\(file) \(damage): \(r.stderr)")
            XCTAssertEqual(r.stderrLines.count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(file), r.stderr)
            XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: frames))?.count ?? 0, 0)
        }
    }
}

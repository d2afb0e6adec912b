import Display
import Foundation
import TestSupport
import XCTest

/// What --record writes, decoded back with ffmpeg: colours in the right channels, the picture
/// the right way round, a framebuffer of another size (a resized window) scaled to the
/// recording, odd sizes made even (yuv420p), and the frame rate asked for. H.264 is lossy, so
/// colours are checked at the centres of large flat quadrants with a tolerance of 40 of 255.
final class VideoRecorderTests: XCTestCase {
    var dir: URL!
    var ffmpeg = "", ffprobe = ""
    override func setUpWithError() throws {
        // the ffmpeg the recorder runs (found on PATH), and the ffprobe beside it
        guard let f = VideoRecorder.ffmpegPath(),
              FileManager.default.isExecutableFile(atPath: (f as NSString).deletingLastPathComponent + "/ffprobe") else {
            throw XCTSkip("ffmpeg / ffprobe are not installed")
        }
        ffmpeg = f
        ffprobe = (f as NSString).deletingLastPathComponent + "/ffprobe"
        dir = TestPaths.makeTempDir("video")
    }
    override func tearDown() { if let dir { try? FileManager.default.removeItem(at: dir) } }

    static let quadrants: [(UInt8, UInt8, UInt8)] = [(230, 20, 20), (20, 200, 40), (30, 40, 220), (240, 240, 240)]

    /// Red top-left, green top-right, blue bottom-left, white bottom-right.
    func quadrantFrame(_ w: Int, _ h: Int) -> Framebuffer {
        var fb = Framebuffer(width: w, height: h)
        for (k, c) in Self.quadrants.enumerated() {
            fb.fillRect(x: (k % 2) * w / 2, y: (k / 2) * h / 2, w: w / 2, h: h / 2, Color(c.0, c.1, c.2))
        }
        return fb
    }

    func probe(_ path: String) throws -> (width: Int, height: Int, frames: Int, rate: String) {
        let r = try Binary.run(ffprobe, ["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                                                     "stream=width,height,nb_read_frames,r_frame_rate", "-of", "json", path], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let s = try XCTUnwrap((obj["streams"] as? [[String: Any]])?.first)
        return (s["width"] as? Int ?? 0, s["height"] as? Int ?? 0, Int(s["nb_read_frames"] as? String ?? "") ?? 0,
                s["r_frame_rate"] as? String ?? "")
    }

    /// The first frame as RGB bytes.
    func firstFrame(_ path: String) throws -> [UInt8] {
        let raw = dir.appendingPathComponent("first.rgb").path
        let r = try Binary.run(ffmpeg, ["-v", "error", "-y", "-i", path, "-frames:v", "1", "-f", "rawvideo",
                                                    "-pix_fmt", "rgb24", raw], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        return Array(try Data(contentsOf: URL(fileURLWithPath: raw)))
    }

    func assertQuadrants(_ rgb: [UInt8], _ w: Int, _ h: Int, _ what: String, line: UInt = #line) {
        XCTAssertEqual(rgb.count, w * h * 3, what, line: line)
        guard rgb.count == w * h * 3 else { return }
        for (k, c) in Self.quadrants.enumerated() {
            let x = (k % 2) * w / 2 + w / 4, y = (k / 2) * h / 2 + h / 4
            let p = (y * w + x) * 3
            let got = (Int(rgb[p]), Int(rgb[p + 1]), Int(rgb[p + 2]))
            let ok = abs(got.0 - Int(c.0)) <= 40 && abs(got.1 - Int(c.1)) <= 40 && abs(got.2 - Int(c.2)) <= 40
            XCTAssertTrue(ok, "\(what): quadrant \(k) at (\(x), \(y)) is \(got), drawn as \(c)", line: line)
        }
    }

    func testColoursOrientationAndFrameRate() throws {
        let out = dir.appendingPathComponent("q.mp4").path
        let rec = try VideoRecorder(path: out, width: 64, height: 48, fps: 12.5)
        for _ in 0..<5 { try rec.write(quadrantFrame(64, 48)) }
        XCTAssertTrue(try rec.finish())
        let p = try probe(out)
        XCTAssertEqual(p.width, 64); XCTAssertEqual(p.height, 48)
        XCTAssertEqual(p.frames, 5)
        XCTAssertEqual(p.rate, "25/2")
        assertQuadrants(try firstFrame(out), 64, 48, "same size")
    }

    func testResizedFramebufferIsScaledToTheRecording() throws {
        let out = dir.appendingPathComponent("scaled.mp4").path
        let rec = try VideoRecorder(path: out, width: 64, height: 48, fps: 10)
        for _ in 0..<3 { try rec.write(quadrantFrame(160, 90)) }   // the window grew (and changed aspect)
        XCTAssertTrue(try rec.finish())
        let p = try probe(out)
        XCTAssertEqual(p.width, 64); XCTAssertEqual(p.height, 48); XCTAssertEqual(p.frames, 3)
        assertQuadrants(try firstFrame(out), 64, 48, "scaled down")
    }

    func testOddSizeIsRecordedEven() throws {
        let out = dir.appendingPathComponent("odd.mp4").path
        let rec = try VideoRecorder(path: out, width: 65, height: 49, fps: 10)
        XCTAssertEqual(rec.width, 64); XCTAssertEqual(rec.height, 48)
        for _ in 0..<2 { try rec.write(quadrantFrame(65, 49)) }
        XCTAssertTrue(try rec.finish())
        let p = try probe(out)
        XCTAssertEqual(p.width, 64); XCTAssertEqual(p.height, 48); XCTAssertEqual(p.frames, 2)
        assertQuadrants(try firstFrame(out), 64, 48, "odd size")
    }
}

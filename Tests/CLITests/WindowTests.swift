import Display
import Foundation
import TestSupport
import XCTest

/// A real X11 window under Xvfb, screenshotted from outside with ImageMagick's `import`.
final class WindowTests: XCTestCase {
    /// Runs the real program on the demo in a window under Xvfb (1280x720) and screenshots the
    /// whole screen `at` seconds after start; returns the screenshot path in `dir`.
    func screenshot(extra: [String], duration: Double, at: Double, in dir: URL) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/xvfb-run"),
              FileManager.default.isExecutableFile(atPath: "/usr/bin/import") else {
            throw XCTSkip("xvfb-run or ImageMagick import missing (make test installs them)")
        }
        let shot = dir.appendingPathComponent("shot.png").path
        let demo = TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path
        let script = """
        "\(Binary.path("avgas-live"))" --input "\(demo)" --duration \(duration) --size 1280x720 --quiet \(extra.joined(separator: " ")) &
        pid=$!
        sleep \(at)
        import -window root "\(shot)"
        wait $pid
        """
        let r = try Binary.run("/usr/bin/xvfb-run", ["-a", "-s", "-screen 0 1280x720x24", "sh", "-c", script],
                               removing: ["SDL_VIDEODRIVER"], timeout: 180)
        XCTAssertEqual(r.status, 0, r.stderr)
        return shot
    }

    func testRealWindowUnderXvfbShowsSpectrogramAndCards() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let shot = try screenshot(extra: ["--no-images"], duration: 6, at: 4.5, in: dir)
        // Convert to raw RGB with ImageMagick to inspect pixels.
        let rgb = dir.appendingPathComponent("shot.rgb").path
        let c = try Binary.run("/usr/bin/convert", [shot, "-depth", "8", "rgb:\(rgb)"], timeout: 60)
        XCTAssertEqual(c.status, 0, c.stderr)
        let px = try Data(contentsOf: URL(fileURLWithPath: rgb))
        XCTAssertEqual(px.count, 1280 * 720 * 3)
        func color(_ x: Int, _ y: Int) -> (Int, Int, Int) {
            let i = (y * 1280 + x) * 3
            return (Int(px[i]), Int(px[i + 1]), Int(px[i + 2]))
        }
        // Right side panel (x >= 960 at 1280 wide): mostly the panel colour (28, 31, 40).
        var panel = 0, total = 0
        for y in stride(from: 0, to: 720, by: 4) { for x in stride(from: 965, to: 1280, by: 4) {
            total += 1; if color(x, y) == (28, 31, 40) { panel += 1 }
        } }
        XCTAssertGreaterThan(Double(panel) / Double(total), 0.4)
        // Main area: a spectrogram, i.e. many distinct colours, not a blank window.
        var distinct = Set<Int>()
        for y in stride(from: 20, to: 580, by: 5) { for x in stride(from: 20, to: 940, by: 5) {
            let (r, g, b) = color(x, y); distinct.insert(r << 16 | g << 8 | b)
        } }
        XCTAssertGreaterThan(distinct.count, 50)
        // At 4.5 s the dog is heard: a card with an orange confidence bar (255, 176, 64).
        var accent = 0
        for y in 0..<360 { for x in 960..<1280 where color(x, y) == (255, 176, 64) { accent += 1 } }
        XCTAssertGreaterThan(accent, 50)
    }

    /// With images: the window shows the composed mixed image (its grey canvas) and a
    /// thumbnail holding a generated image in the first class card.
    func testRealWindowShowsMixedImageAndThumbnail() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let shot = try screenshot(extra: [], duration: 7, at: 5.5, in: dir)
        let img = try XCTUnwrap(PNGWriter.read(shot))
        XCTAssertEqual(img.width, 1280)
        func px(_ x: Int, _ y: Int) -> [UInt8] { Array(img.pixels[((y * 1280 + x) * 3)..<((y * 1280 + x) * 3 + 3)]) }
        // The composed scene's grey canvas fills much of the main area.
        var grey = 0, total = 0
        for y in stride(from: 20, to: 580, by: 4) { for x in stride(from: 200, to: 760, by: 4) {
            total += 1; if px(x, y) == [200, 200, 200] { grey += 1 }
        } }
        XCTAssertGreaterThan(Double(grey) / Double(total), 0.2)
        // The first card's thumbnail holds an image (many distinct colours).
        var colours = Set<[UInt8]>()
        for y in 40..<140 { for x in 972..<1080 { colours.insert(px(x, y)) } }
        XCTAssertGreaterThan(colours.count, 100)
    }

    /// Key V in a real window (pressed through XTEST by xdotool) cycles the sensitivity
    /// normal -> high -> low and says so; with a presence source that has none, it says that.
    /// This checks the render thread's side; SensitivityTests checks that the analyzer follows
    /// a change (the hand-off between them is `SensitivityRequest`, an atomic mailbox).
    func testKeyVCyclesTheSensitivity() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/xvfb-run"),
              FileManager.default.isExecutableFile(atPath: "/usr/bin/xdotool") else {
            throw XCTSkip("xvfb-run or xdotool missing (make test installs them)")
        }
        let demo = TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path
        for (presence, says) in [("head", ["sensitivity high: shows more classes", "sensitivity low: fewer false classes"]),
                                 ("yamnet", ["sensitivity applies to --presence head only"])] {
            let script = """
            "\(Binary.path("avgas-live"))" --input "\(demo)" --duration 5 --size 640x360 --quiet --no-images --presence \(presence) &
            pid=$!
            xdotool search --sync --name '^avgas-live$' windowfocus --sync key v
            sleep 0.3
            xdotool key v
            wait $pid
            """
            let r = try Binary.run("/usr/bin/xvfb-run", ["-a", "-s", "-screen 0 1280x720x24", "sh", "-c", script],
                                   removing: ["SDL_VIDEODRIVER"], timeout: 120)
            XCTAssertEqual(r.status, 0, r.stderr)
            for line in says { XCTAssertTrue(r.stderr.contains("avgas-live: \(line)"), "\(presence): \(r.stderr)") }
            XCTAssertEqual(r.stderrLines.count, 2, r.stderr)
        }
    }

    /// The X server goes away while a window records: Xlib's own exit (status 1, two lines of
    /// its own, the video left as a .part file) is replaced by one line, status 69, and the
    /// video recorded so far finalised and playable at its path.
    func testDisplayGoingAwayKeepsTheRecording() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/Xvfb"), VideoRecorder.ffmpegPath() != nil else {
            throw XCTSkip("Xvfb or ffmpeg missing (make test installs them)")
        }
        let dir = TestPaths.makeTempDir("avgas-xgone")
        defer { try? FileManager.default.removeItem(at: dir) }
        let display = ":\(200 + Int(getpid() % 500))"
        let xvfb = Process()
        xvfb.executableURL = URL(fileURLWithPath: "/usr/bin/Xvfb")
        xvfb.arguments = [display, "-screen", "0", "1280x720x24", "-nolisten", "tcp"]
        xvfb.standardError = FileHandle.nullDevice
        try xvfb.run()
        defer { if xvfb.isRunning { xvfb.terminate() } }
        usleep(1_000_000)
        let video = dir.appendingPathComponent("show.mp4").path
        let errFile = dir.appendingPathComponent("stderr.txt")
        XCTAssertTrue(FileManager.default.createFile(atPath: errFile.path, contents: nil))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Binary.path("avgas-live"))
        p.arguments = ["--input", TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path,
                       "--record", video, "--size", "640x360", "--no-images", "--quiet"]
        var env = ProcessInfo.processInfo.environment
        env["DISPLAY"] = display
        env.removeValue(forKey: "SDL_VIDEODRIVER")
        p.environment = env
        p.standardError = try FileHandle(forWritingTo: errFile)
        try p.run()
        usleep(3_000_000)
        XCTAssertTrue(p.isRunning)
        xvfb.terminate()
        xvfb.waitUntilExit()
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        let err = (try? String(contentsOf: errFile, encoding: .utf8)) ?? ""
        XCTAssertEqual(p.terminationStatus, 69, err)
        XCTAssertEqual(err.split(separator: "\n").count, 1, err)
        XCTAssertTrue(err.contains("the display went away") && err.contains(video), err)
        XCTAssertNotNil(try OutputTests.probeFrames(video), "the video is not playable")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("show.part.mp4").path))
    }
}

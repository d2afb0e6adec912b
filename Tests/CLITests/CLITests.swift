import Foundation
import TestSupport
import XCTest

/// The real `avgas-live` binary, run as a user runs it.
final class CLITests: XCTestCase {
    let demo = TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path

    /// `--help` is a contract: snapshot it (AVGAS_UPDATE_SNAPSHOTS=1 rewrites the snapshot).
    func testHelpSnapshot() throws {
        let r = try Binary.run("avgas-live", ["--help"], environment: ["COLUMNS": "100"])
        XCTAssertEqual(r.status, 0)
        let snapshot = TestPaths.fixture("CLITests", "help.txt")
        if ProcessInfo.processInfo.environment["AVGAS_UPDATE_SNAPSHOTS"] == "1" {
            try r.stdout.write(to: snapshot, atomically: true, encoding: .utf8)
        }
        XCTAssertEqual(r.stdout, try String(contentsOf: snapshot, encoding: .utf8))
        for option in ["--device", "--list-devices", "--input", "--realtime", "--headless", "--frames", "--fps",
                       "--events", "--no-images", "--hop-ms", "--fullscreen", "--display"] {
            XCTAssertTrue(r.stdout.contains(option), option)
        }
    }

    /// `--list-devices` exits 0 and says what it found; the `null` PCM (endless silence, read as
    /// fast as it can be) is not offered as a capture device.
    func testListDevices() throws {
        let r = try Binary.run("avgas-live", ["--list-devices"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("no sound card") || r.stdout.contains("Sound cards:"), r.stdout)
        XCTAssertFalse(r.stdout.split(separator: "\n").contains { $0.hasPrefix("  null\t") }, r.stdout)
    }

    /// Each user mistake: one clear line on stderr naming the problem, its own exit status.
    func testErrorTable() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let empty = dir.appendingPathComponent("empty.wav").path
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data()), "could not create a test fixture file")
        let text = dir.appendingPathComponent("notes.wav").path
        try "not audio at all\n".write(toFile: text, atomically: true, encoding: .utf8)
        let aFile = dir.appendingPathComponent("plain").path
        XCTAssertTrue(FileManager.default.createFile(atPath: aFile, contents: Data("x".utf8)), "could not create a test fixture file")
        let fifo = dir.appendingPathComponent("pipe").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let cases: [(args: [String], status: Int32, says: String)] = [
            (["--headless"], 69, "no sound card"),
            (["--headless", "--device", "nosuch"], 69, "unknown capture device 'nosuch'"),
            ([], 69, "no sound card"),
            (["--input", demo, "--no-images"], 69, "no display"),
            (["--input", dir.appendingPathComponent("missing.wav").path, "--headless"], 66, "does not exist"),
            (["--input", dir.path, "--headless"], 66, "is a directory"),
            (["--input", empty, "--headless"], 66, "is empty"),
            (["--input", text, "--headless"], 65, "not an audio file"),
            (["--input", demo, "--headless", "--frames", aFile], 73, "not a directory"),
            (["--input", demo, "--headless", "--frames", "/proc/avgas/frames"], 73, "cannot create --frames"),
            (["--input", demo, "--headless", "--events", dir.path], 73, "is a directory"),
            (["--input", demo, "--headless", "--events", "/proc/avgas/e.jsonl"], 73, "cannot write --events"),
            (["--input", demo, "--headless", "--frames", aFile + "/sub"], 73, "is not a directory"),
            (["--input", demo, "--headless", "--contact-sheet", fifo], 73, "not a regular file"),
            (["--input", fifo, "--headless"], 66, "not a regular file"),
            (["--input", demo, "--headless", "--fps", "-1"], 64, "--fps must be"),
            (["--input", demo, "--headless", "--fps", "1e-15"], 64, "--fps must be"),
            (["--input", demo, "--headless", "--no-images", "--duration", "1e15"], 64, "--duration must be"),
            (["--input", demo, "--headless", "--events", ""], 64, "--events needs a name"),
            (["--input", demo, "--headless", "--no-images", "--presence", "separator"], 64, "needs the separator"),
            (["--input", demo, "--headless", "--no-images", "--sensitivity", "loud"], 64, "--sensitivity must be"),
            (["--input", demo, "--headless", "--no-images", "--sensitivity", "high", "--presence", "yamnet"], 64, "applies to --presence head only"),
            (["--input", demo, "--headless", "--no-images", "--ignore", "dog barkin"], 64, "did you mean 'dog barking'?"),
            (["--input", demo, "--headless", "--no-images", "--only", "Raining"], 64, "did you mean 'raining'?"),
            (["--input", demo, "--headless", "--no-images", "--only", "raining", "--ignore", "raining"], 64, "leave no class"),
            (["--headless", "--device", "nosuch", "--ignore", "dog barkin"], 64, "did you mean 'dog barking'?"),   // before the device
            (["--list-classes", "--assets", dir.path], 78, "classes.json"),
            (["--input", demo, "--headless", "--record", dir.path], 73, "is a directory"),
            (["--input", demo, "--headless", "--record", "/nonexistent/dir/v.mp4"], 73, "does not exist"),
            (["--input", demo, "--headless", "--contact-sheet", "/nonexistent/dir/s.png"], 73, "--contact-sheet"),
            (["--fps=-5"], 64, "--fps must be"),
            (["--hop-ms", "0"], 64, "--hop-ms must be"),
            (["--hop-ms", "15"], 64, "--hop-ms must be"),           // not a multiple of 10 (would silently run at 10 ms)
            (["--size", "4096x4096"], 64, "--size must look like"), // each side in range, but more than 3840x2160 pixels
            (["--threads", "17"], 64, "--threads must be"),
            (["--size", "big"], 64, "--size must look like"),
            (["--size", "8192x8192"], 64, "--size must look like"),
            (["--bogus"], 64, "Unknown option"),
            (["--input", demo, "--headless", "--assets", dir.path], 78, "yamnet.safetensors"),
        ]
        for c in cases {
            let r = try Binary.run("avgas-live", c.args, removing: ["DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"], timeout: 60)
            XCTAssertEqual(r.status, c.status, "\(c.args): \(r.stderr)")
            XCTAssertEqual(r.stderrLines.count, 1, "\(c.args) printed: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(c.says), "\(c.args): expected '\(c.says)' in: \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("avgas-live: error: "), r.stderr)
        }
    }

    /// `--list-classes` prints the vocabulary, one exact name per line.
    func testListClasses() throws {
        let r = try Binary.run("avgas-live", ["--list-classes"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let names = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(names.count, 46)
        for name in ["dog barking", "bird chirping, tweeting", "playing violin, fiddle", "raining", "helicopter"] {
            XCTAssertTrue(names.contains(name), name)
        }
    }

    /// `--ignore` and `--only` filter what is reported: the demo's dog is heard by default and never
    /// with `--ignore "dog barking"`; with `--only raining --only helicopter` nothing else is reported,
    /// and both are.
    func testIgnoreAndOnlyFilterTheEvents() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        func heard(_ extra: [String]) throws -> Set<String> {
            let events = dir.appendingPathComponent("e.jsonl").path
            let r = try Binary.run("avgas-live", ["--input", demo, "--headless", "--no-images", "--quiet", "--events", events] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            var names = Set<String>()
            for line in try String(contentsOfFile: events, encoding: .utf8).split(separator: "\n") {
                let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                for a in try XCTUnwrap(obj["active"] as? [[String: Any]]) { names.insert(try XCTUnwrap(a["class"] as? String)) }
            }
            return names
        }
        let all = try heard([])
        XCTAssertTrue(all.contains("dog barking"), "\(all)")
        let ignored = try heard(["--ignore", "dog barking"])
        XCTAssertFalse(ignored.contains("dog barking"), "\(ignored)")
        XCTAssertTrue(ignored.contains("raining"), "\(ignored)")
        XCTAssertEqual(try heard(["--only", "raining", "--only", "helicopter"]), ["raining", "helicopter"])
    }

    /// `--sensitivity` reaches the tracker: over the demo's 30 s, `high` reports more active
    /// class-hops than `normal`, and `low` fewer (measured 561 / 385 / 337).
    func testSensitivityChangesTheEvents() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var activeHops: [String: Int] = [:]
        for s in ["low", "normal", "high"] {
            let events = dir.appendingPathComponent("\(s).jsonl").path
            let r = try Binary.run("avgas-live", ["--input", demo, "--headless", "--no-images", "--quiet",
                                                  "--events", events, "--sensitivity", s])
            XCTAssertEqual(r.status, 0, r.stderr)
            activeHops[s] = try String(contentsOfFile: events, encoding: .utf8).split(separator: "\n").map { line in
                let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                return try XCTUnwrap(obj["active"] as? [Any]).count
            }.reduce(0, +)
        }
        XCTAssertGreaterThan(activeHops["high"]!, activeHops["normal"]!, "\(activeHops)")
        XCTAssertLessThan(activeHops["low"]!, activeHops["normal"]!, "\(activeHops)")
    }

    /// The demo, headless: the expected number of PNG frames, each decodes at the right size,
    /// and events are valid JSON lines with increasing stream time.
    func testDemoHeadlessWritesFramesAndEvents() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let frames = dir.appendingPathComponent("frames").path
        let events = dir.appendingPathComponent("events.jsonl").path
        let r = try Binary.run("avgas-live", ["--input", demo, "--headless", "--frames", frames, "--fps", "10",
                                              "--duration", "3", "--size", "640x360", "--events", events, "--no-images"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let files = try FileManager.default.contentsOfDirectory(atPath: frames).filter { $0.hasSuffix(".png") }.sorted()
        XCTAssertEqual(files.count, 31)  // t = 0.0, 0.1, ... 3.0
        guard files.count == 31 else { return }
        XCTAssertEqual(files.first, "frame_000000.png")
        for f in [files[0], files[15], files[30]] {
            let png = try XCTUnwrap(Binary.decodePNGSize("\(frames)/\(f)"), f)
            XCTAssertEqual(png.width, 640); XCTAssertEqual(png.height, 360)
        }
        let lines = try String(contentsOfFile: events, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 21)  // hops end at 0.975 s + k * 0.1 s up to 3 s
        var last = -1.0
        for l in lines {
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any])
            let t = try XCTUnwrap(obj["t"] as? Double)
            XCTAssertGreaterThan(t, last); last = t
            XCTAssertNotNil(obj["active"] as? [Any])
        }
        // The dog in the demo (1.5 s onwards) is heard within the first 3 s.
        XCTAssertTrue(lines.contains { $0.contains("\"dog barking\"") })
    }

    /// Live capture through the real ALSA path: a `file` plugin device defined in ~/.asoundrc.
    func testLiveCaptureThroughALSAFilePlugin() throws {
        // The demo's samples as raw float32 (the WAV is 16-bit 16 kHz mono).
        let wav = try Data(contentsOf: URL(fileURLWithPath: demo))
        let pcm16 = wav.subdata(in: 44..<wav.count)
        var floats = [Float](repeating: 0, count: pcm16.count / 2)
        pcm16.withUnsafeBytes { raw in
            for i in 0..<floats.count { floats[i] = Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))) / 32768 }
        }
        let device = try ALSAFileDevice(name: "democap", samples: floats)
        defer { device.remove() }
        let home = device.home
        let events = home.appendingPathComponent("e.jsonl").path
        let r = try Binary.run("avgas-live", ["--device", "democap", "--headless", "--duration", "2.5", "--events", events, "--no-images"],
                               environment: ["HOME": home.path], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try String(contentsOfFile: events, encoding: .utf8).split(separator: "\n")
        XCTAssertGreaterThanOrEqual(lines.count, 1)
        // The file plugin has no real-time pacing: it delivers audio far faster than real time,
        // so the analysis falls behind, skips ahead to the newest audio and says how much.
        XCTAssertTrue(r.stderr.contains("analysis skipped"), r.stderr)
    }
}

final class OutputTests: XCTestCase {
    let demo = TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path

    static func probeFrames(_ path: String) throws -> Int? {
        let r = try Binary.run("/usr/bin/ffprobe", ["-v", "error", "-count_frames", "-select_streams", "v:0",
                                                     "-show_entries", "stream=nb_read_frames,width,height", "-of", "csv=p=0", path], timeout: 60)
        guard r.status == 0 else { return nil }
        let parts = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",")
        return parts.count == 3 ? Int(parts[2]) : nil
    }

    /// --record writes a playable H.264 file with one frame per rendered frame; the contact
    /// sheet is a PNG grid of one frame per second.
    func testRecordAndContactSheet() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/ffprobe") else { throw XCTSkip("ffmpeg missing (make test installs it)") }
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let video = dir.appendingPathComponent("v.mp4").path
        let sheet = dir.appendingPathComponent("sheet.png").path
        let r = try Binary.run("avgas-live", ["--input", demo, "--headless", "--duration", "3", "--fps", "10", "--size", "320x180",
                                              "--record", video, "--contact-sheet", sheet, "--no-images"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Self.probeFrames(video), 31)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("v.part.mp4").path))
        let size = try XCTUnwrap(Binary.decodePNGSize(sheet))
        XCTAssertEqual(size.width, 6 * (320 + 6) + 6)  // 4 thumbnails (0..3 s) on one row of 6
    }

    /// SIGINT and SIGTERM stop a paced run cleanly: the video is finalised and playable, the
    /// events file is valid JSON lines up to its last line, and the exit status is 0.
    func testSignalsFinaliseOutputs() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/ffprobe") else { throw XCTSkip("ffmpeg missing (make test installs it)") }
        for sig in [SIGINT, SIGTERM] {
            let dir = TestPaths.makeTempDir()
            defer { try? FileManager.default.removeItem(at: dir) }
            let video = dir.appendingPathComponent("v.mp4").path
            let events = dir.appendingPathComponent("e.jsonl").path
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Binary.path("avgas-live"))
            p.arguments = ["--input", demo, "--headless", "--realtime", "--fps", "10", "--size", "320x180",
                           "--record", video, "--events", events, "--quiet", "--no-images"]
            p.standardError = FileHandle.nullDevice
            try p.run()
            // Signal once the run is well under way (start-up time varies with machine load).
            let deadline = Date().addingTimeInterval(180)
            while Date() < deadline, p.isRunning,
                  ((try? String(contentsOfFile: events, encoding: .utf8))?.split(separator: "\n").count ?? 0) < 5 {
                usleep(100_000)
            }
            kill(p.processIdentifier, sig)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, "signal \(sig)")
            XCTAssertEqual(p.terminationReason, .exit)
            let frames = try XCTUnwrap(try Self.probeFrames(video), "video not playable after signal \(sig)")
            XCTAssertGreaterThan(frames, 5)
            let lines = try String(contentsOfFile: events, encoding: .utf8).split(separator: "\n")
            XCTAssertGreaterThan(lines.count, 3)
            for l in lines { XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(l.utf8)), String(l)) }
        }
    }
}

extension Binary {
    /// Width and height from a PNG's IHDR, after checking the signature (the Display tests
    /// decode pixels; here the point is that the CLI wrote valid files).
    static func decodePNGSize(_ path: String) -> (width: Int, height: Int)? {
        guard let d = FileManager.default.contents(atPath: path), d.count > 33,
              Array(d[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A],
              String(decoding: d[12..<16], as: UTF8.self) == "IHDR" else { return nil }
        func u32(_ o: Int) -> Int { Int(d[o]) << 24 | Int(d[o + 1]) << 16 | Int(d[o + 2]) << 8 | Int(d[o + 3]) }
        // IEND must close the file: a truncated PNG fails here.
        guard String(decoding: d[(d.count - 8)..<(d.count - 4)], as: UTF8.self) == "IEND" else { return nil }
        return (u32(16), u32(20))
    }
}

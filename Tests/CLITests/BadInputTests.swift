import Foundation
import TestSupport
import XCTest

/// Headers and raw bytes for deliberately broken inputs (the tests make their own files).
enum BrokenWAV {
    /// A RIFF/WAVE file with every header field chosen by the caller; `claimedDataBytes`
    /// defaults to the real data length.
    static func make(formatTag: UInt16 = 1, channels: UInt16 = 1, sampleRate: UInt32 = 16_000, bits: UInt16 = 16,
                     data: Data, claimedDataBytes: UInt32? = nil) -> Data {
        var d = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        let blockAlign = UInt16(truncatingIfNeeded: Int(channels) * Int(bits) / 8)
        d.append(contentsOf: Array("RIFF".utf8)); u32(UInt32(36 + data.count)); d.append(contentsOf: Array("WAVE".utf8))
        d.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(formatTag); u16(channels); u32(sampleRate)
        u32(UInt32(truncatingIfNeeded: UInt64(sampleRate) * UInt64(blockAlign))); u16(blockAlign); u16(bits)
        d.append(contentsOf: Array("data".utf8)); u32(claimedDataBytes ?? UInt32(data.count))
        d.append(data)
        return d
    }

    /// 16-bit mono PCM of a 440 Hz tone.
    static func tone(seconds: Double, rate: Int = 16_000) -> Data {
        var d = Data()
        for i in 0..<Int(seconds * Double(rate)) {
            let v = Int16(8000 * sin(2 * Double.pi * 440 * Double(i) / Double(rate)))
            withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) }
        }
        return d
    }
}

/// The bad-input table of issue 8 that `CLITests.testErrorTable` does not already cover, each
/// case run through the real binary: one clear stderr line, the documented exit status
/// (README: 65 not audio / absurd header, 74 I/O error while running, 78 weights), no crash.
final class BadInputTests: XCTestCase {
    let demo = TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path
    var dir: URL!

    override func setUp() { dir = TestPaths.makeTempDir("avgas-bad") }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// Runs avgas-live and checks the one-line error contract.
    func expectError(_ args: [String], status: Int32, says: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try Binary.run("avgas-live", args, removing: ["DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"], timeout: 120)
        XCTAssertEqual(r.status, status, "\(args): \(r.stderr)", file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, "\(args) printed: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("avgas-live: error: "), r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.contains(says), "\(args): expected '\(says)' in: \(r.stderr)", file: file, line: line)
    }

    /// Unsupported codecs and absurd headers: refused with 65 before any analysis.
    func testUndecodableAndAbsurdHeadersAreRefusedWith65() throws {
        let tone = BrokenWAV.tone(seconds: 1)
        let cases: [(name: String, bytes: Data, says: String)] = [
            ("codec-unknown.wav", BrokenWAV.make(formatTag: 0x1234, data: tone), "is not an audio file libsndfile can decode"),
            ("codec-mp3-in-wav.wav", BrokenWAV.make(formatTag: 0x0055, data: tone), "is not an audio file libsndfile can decode"),
            ("png-named.ogg", Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) + Data(count: 2000), "is not an audio file"),
            ("zero-channels.wav", BrokenWAV.make(channels: 0, data: tone), "Channel count is zero"),
            ("rate-0.wav", BrokenWAV.make(sampleRate: 0, data: tone), "is not an audio file"),
            ("rate-4GHz.wav", BrokenWAV.make(sampleRate: 4_000_000_000, data: tone), "is not an audio file"),
            ("rate-1Hz.wav", BrokenWAV.make(sampleRate: 1, data: tone), "sample rate of 1 Hz"),
            ("rate-2MHz.wav", BrokenWAV.make(sampleRate: 2_000_000, data: tone), "sample rate of 2000000 Hz"),
            ("1000-channels.wav", BrokenWAV.make(channels: 1000, data: Data(count: 2000 * 32)), "1000"),
        ]
        for c in cases {
            try c.bytes.write(to: dir.appendingPathComponent(c.name))
            try expectError(["--input", path(c.name), "--headless", "--no-images"], status: 65, says: c.says)
        }
    }

    /// A truncated WAV (its header announces ten times the data present) is analysed for what
    /// is there: libsndfile clamps the length to the file, the run ends normally at the real end.
    func testTruncatedWAVIsAnalysedForWhatIsThere() throws {
        let tone = BrokenWAV.tone(seconds: 2)
        try BrokenWAV.make(data: tone, claimedDataBytes: UInt32(tone.count * 10)).write(to: dir.appendingPathComponent("trunc.wav"))
        // And one cut in the middle of a sample frame.
        try BrokenWAV.make(data: tone.prefix(tone.count - 1), claimedDataBytes: UInt32(tone.count)).write(to: dir.appendingPathComponent("odd.wav"))
        for name in ["trunc.wav", "odd.wav"] {
            let events = path("\(name).jsonl")
            let r = try Binary.run("avgas-live", ["--input", path(name), "--headless", "--no-images", "--events", events], timeout: 120)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("2.0 s of audio"), r.stderr)
            let lines = try String(contentsOfFile: events, encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, 11)  // hops at 0.96 + k * 0.1 s up to 2.0 s: the data present, not the claim
        }
    }

    /// Peak resident memory (kB) of one run, measured by GNU time.
    func peakRSS(_ args: [String]) throws -> (kB: Int, result: Binary.Result) {
        let r = try Binary.run("/usr/bin/time", ["-v", Binary.path("avgas-live")] + args, timeout: 600)
        let line = r.stderr.split(separator: "\n").first { $0.contains("Maximum resident set size") }
        let kB = line.flatMap { Int($0.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)) } ?? -1
        return (kB, r)
    }

    /// A 20-minute file is streamed: peak memory stays under 150 MB and within 20 MB of a
    /// 2-minute file's (the decoder reads blocks; nothing grows with the input's length).
    func testHugeFileIsStreamedWithFlatMemory() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/time") else { throw XCTSkip("GNU time missing") }
        func sparseWAV(_ name: String, minutes: Int) throws -> String {
            let bytes = minutes * 60 * 16_000 * 2
            let header = BrokenWAV.make(data: Data(), claimedDataBytes: UInt32(bytes))
            var h = header
            h.replaceSubrange(4..<8, with: withUnsafeBytes(of: UInt32(36 + bytes).littleEndian) { Data($0) })
            let p = path(name)
            try h.write(to: URL(fileURLWithPath: p))
            XCTAssertEqual(truncate(p, off_t(h.count + bytes)), 0)  // sparse: silence, written instantly
            return p
        }
        let small = try sparseWAV("2min.wav", minutes: 2), huge = try sparseWAV("20min.wav", minutes: 20)
        // The longest hop keeps the debug-build run short; the front end still sees every sample.
        let args = ["--headless", "--no-images", "--hop-ms", "2000"]
        let a = try peakRSS(["--input", small] + args)
        let b = try peakRSS(["--input", huge] + args)
        XCTAssertEqual(a.result.status, 0, a.result.stderr)
        XCTAssertEqual(b.result.status, 0, b.result.stderr)
        XCTAssertTrue(b.result.stderr.contains("1200.0 s of audio"), b.result.stderr)
        print("peak RSS: 2 min \(a.kB / 1024) MB, 20 min \(b.kB / 1024) MB")
        XCTAssertGreaterThan(b.kB, 0)
        XCTAssertLessThan(b.kB, 150 * 1024, "20-minute file peaked at \(b.kB / 1024) MB")
        XCTAssertLessThan(b.kB - a.kB, 20 * 1024, "memory grows with input length: \(a.kB / 1024) -> \(b.kB / 1024) MB")
    }

    /// Disk full while writing, simulated with a file-size limit (`ulimit -f`: writes past it
    /// fail with EFBIG, as a full quota does, and the kernel sends SIGXFSZ, which the program
    /// ignores). It must stop with one line naming the output and exit 74, not die of the signal.
    func testWriteFailureWhileRunningExits74() throws {
        func limited(_ kB: Int, _ args: [String]) throws -> Binary.Result {
            try Binary.run("/bin/bash", ["-c", "ulimit -f \(kB); exec \"$0\" \"$@\"", Binary.path("avgas-live")] + args, timeout: 300)
        }
        // PNG frames: the first 640x360 frame is larger than 4 kB.
        let frames = path("frames")
        var r = try limited(4, ["--input", demo, "--headless", "--no-images", "--frames", frames, "--size", "640x360", "--fps", "5", "--quiet"])
        XCTAssertEqual(r.status, 74, r.stderr)
        XCTAssertEqual(r.stderrLines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("avgas-live: error: cannot write image"), r.stderr)
        XCTAssertTrue(r.stderr.contains("File too large"), r.stderr)
        // No partial frame is left: every PNG present decodes, no temporary files remain.
        let left = (try? FileManager.default.contentsOfDirectory(atPath: frames)) ?? []
        XCTAssertFalse(left.contains { $0.contains(".tmp") }, "\(left)")
        for f in left { XCTAssertNotNil(Binary.decodePNGSize("\(frames)/\(f)"), f) }

        // Events: about 50 lines fit in 2 kB, then the write fails.
        let events = path("e.jsonl")
        r = try limited(2, ["--input", demo, "--headless", "--no-images", "--events", events, "--quiet"])
        XCTAssertEqual(r.status, 74, r.stderr)
        XCTAssertEqual(r.stderrLines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("writing events to '\(events)' failed: File too large"), r.stderr)
        let text = try String(contentsOfFile: events, encoding: .utf8)
        let lines = text.split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 10)
        // The line cut at the limit is truncated away: every line is whole, valid JSON.
        XCTAssertTrue(text.hasSuffix("\n"), "last line cut: \(text.suffix(60))")
        for l in lines { XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(l.utf8)), String(l)) }
    }

    /// Nothing the user has is destroyed by a run's outputs: an events file is not truncated
    /// when the run cannot start; no output may be the input recording; the frames folder loses
    /// only the frames of an earlier run.
    func testOutputsNeverDestroyWhatTheUserHas() throws {
        let events = path("old.jsonl")
        try "{\"t\": 1.0, \"active\": []}\n".write(toFile: events, atomically: true, encoding: .utf8)
        try expectError(["--input", path("missing.wav"), "--headless", "--no-images", "--events", events], status: 66, says: "does not exist")
        try expectError(["--input", demo, "--headless", "--no-images", "--events", events, "--assets", dir.path], status: 78, says: "yamnet")
        XCTAssertEqual(try String(contentsOfFile: events, encoding: .utf8), "{\"t\": 1.0, \"active\": []}\n")

        let mine = path("mine.wav")
        try FileManager.default.copyItem(atPath: demo, toPath: mine)
        let original = try Data(contentsOf: URL(fileURLWithPath: mine))
        for option in ["--events", "--record", "--contact-sheet"] {
            try expectError(["--input", mine, "--headless", "--no-images", option, mine], status: 64, says: "is the input recording")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: mine)), original)

        // One writer per events file: a second run on a file being written is refused and the
        // first run's lines stay whole.
        let shared = path("shared.jsonl")
        let first = Process()
        first.executableURL = URL(fileURLWithPath: Binary.path("avgas-live"))
        first.arguments = ["--input", demo, "--headless", "--no-images", "--realtime", "--duration", "4", "--events", shared, "--quiet"]
        first.standardError = FileHandle.nullDevice
        try first.run()
        let until = Date().addingTimeInterval(30)
        while Date() < until, ((try? String(contentsOfFile: shared, encoding: .utf8)) ?? "").isEmpty { usleep(50_000) }
        try expectError(["--input", demo, "--headless", "--no-images", "--events", shared], status: 73, says: "being written by another avgas-live run")
        first.waitUntilExit()
        XCTAssertEqual(first.terminationStatus, 0)
        let lines = try String(contentsOfFile: shared, encoding: .utf8).split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 20)
        // Pipes and devices are not locked: /dev/null locked by someone else is still fine.
        let devnull = open("/dev/null", O_WRONLY)
        XCTAssertEqual(flock(devnull, LOCK_EX), 0)
        let r0 = try Binary.run("avgas-live", ["--input", demo, "--headless", "--no-images", "--duration", "2", "--events", "/dev/null", "--quiet"])
        XCTAssertEqual(r0.status, 0, r0.stderr)
        close(devnull)
        for l in lines { XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(l.utf8)), String(l)) }

        let frames = path("frames")
        try FileManager.default.createDirectory(atPath: frames, withIntermediateDirectories: true)
        for name in ["frame_000099.png", "notes.txt", "frame_12.png"] {
            XCTAssertTrue(FileManager.default.createFile(atPath: "\(frames)/\(name)", contents: Data("x".utf8)))
        }
        let r = try Binary.run("avgas-live", ["--input", demo, "--headless", "--no-images", "--frames", frames, "--fps", "1",
                                              "--duration", "3", "--size", "160x90", "--quiet"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: frames).sorted(),
                       ["frame_000000.png", "frame_000001.png", "frame_000002.png", "frame_000003.png", "frame_12.png", "notes.txt"])
    }

    /// Model weights missing, truncated, corrupted or for another network: exit 78, one line
    /// naming the file. Assets are copied to a temporary folder and broken there.
    func testBrokenWeightsExit78NamingTheFile() throws {
        let real = TestPaths.repoRoot.appendingPathComponent("Assets")
        let weights = try Data(contentsOf: real.appendingPathComponent("models/yamnet.safetensors"))
        let tiny = try Data(contentsOf: TestPaths.repoRoot.appendingPathComponent("Tests/Fuzz/corpus/safetensors/seed-graph.safetensors"))
        var badHeader = weights
        badHeader.replaceSubrange(8..<40, with: Data(repeating: UInt8(ascii: "X"), count: 32))
        var hugeLength = weights
        hugeLength.replaceSubrange(0..<8, with: Data(repeating: 0xFF, count: 8))
        var badJSON = weights
        badJSON.replaceSubrange(20..<24, with: Data("\"\"\"\"".utf8))
        let classes = try Data(contentsOf: real.appendingPathComponent("classes.json"))
        let labels = try String(contentsOf: real.appendingPathComponent("models/yamnet_classes.txt"), encoding: .utf8)
        enum Damage { case weights(Data?), directory, classes(Data), labels(String) }
        let cases: [(name: String, damage: Damage, says: String)] = [
            ("missing", .weights(nil), "yamnet.safetensors"),
            ("empty", .weights(Data()), "yamnet.safetensors is truncated"),
            ("truncated", .weights(weights.prefix(weights.count / 2)), "yamnet.safetensors is truncated"),
            ("header cut", .weights(weights.prefix(100)), "yamnet.safetensors is truncated"),
            ("corrupted header", .weights(badHeader), "yamnet.safetensors has an invalid safetensors header"),
            ("corrupted JSON", .weights(badJSON), "yamnet.safetensors"),
            ("absurd header length", .weights(hugeLength), "yamnet.safetensors is truncated"),
            ("another network", .weights(tiny), "yamnet.safetensors"),
            ("a directory", .directory, "yamnet.safetensors"),
            ("classes.json not JSON", .classes(Data("{\"version\": 1, \"classes\": [".utf8)), "classes.json"),
            ("label list short", .labels(labels.split(separator: "\n").dropLast(5).joined(separator: "\n")), "yamnet_classes.txt"),
        ]
        for c in cases {
            let assets = dir.appendingPathComponent("assets-\(c.name.replacingOccurrences(of: " ", with: "-"))")
            let models = assets.appendingPathComponent("models")
            try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
            try classes.write(to: assets.appendingPathComponent("classes.json"))
            try labels.write(to: models.appendingPathComponent("yamnet_classes.txt"), atomically: false, encoding: .utf8)
            let w = models.appendingPathComponent("yamnet.safetensors")
            switch c.damage {
            case .weights(let d): if let d { try d.write(to: w) }
            case .directory: try FileManager.default.createDirectory(at: w, withIntermediateDirectories: true)
            case .classes(let d): try weights.write(to: w); try d.write(to: assets.appendingPathComponent("classes.json"))
            case .labels(let s): try weights.write(to: w); try s.write(to: models.appendingPathComponent("yamnet_classes.txt"), atomically: false, encoding: .utf8)
            }
            try expectError(["--input", demo, "--headless", "--no-images", "--assets", assets.path], status: 78, says: c.says)
            try? FileManager.default.removeItem(at: assets)
        }
    }
}

/// Weights whose header metadata asks for sizes the program cannot honour: one line naming the
/// file, exit 78, at start-up (a code review reproduced traps and an out-of-bounds read with
/// each of these before they were checked).
final class WeightsMetadataTests: XCTestCase {
    let demo = TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path

    /// Rewrites a safetensors header through `edit` (the tensor bytes stay as they are).
    static func rewriteHeader(_ url: URL, _ edit: (inout [String: Any]) -> Void) throws {
        let data = try Data(contentsOf: url)
        let n = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var header = try XCTUnwrap(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any])
        edit(&header)
        var json = try JSONSerialization.data(withJSONObject: header)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(data.subdata(in: (8 + n)..<data.count))
        try out.write(to: url)
    }

    /// Edits a JSON-encoded metadata entry of a safetensors header.
    static func editMetadata(_ header: inout [String: Any], _ key: String, _ edit: (inout [String: Any]) -> Void) {
        var meta = header["__metadata__"] as? [String: String] ?? [:]
        var obj = (try? JSONSerialization.jsonObject(with: Data((meta[key] ?? "{}").utf8))) as? [String: Any] ?? [:]
        edit(&obj)
        meta[key] = String(data: try! JSONSerialization.data(withJSONObject: obj), encoding: .utf8)
        header["__metadata__"] = meta
    }

    func testOutOfRangeMetadataExits78() throws {
        let real = TestPaths.repoRoot.appendingPathComponent("Assets")
        let dir = TestPaths.makeTempDir("avgas-meta")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cases: [(name: String, file: String, images: Bool, edit: (inout [String: Any]) -> Void, says: String)] = [
            ("patch 960 frames", "yamnet", false, { Self.editMetadata(&$0, "architecture") { a in
                var i = a["input"] as! [String: Any]; i["height"] = 960; a["input"] = i } }, "log-mel patches"),
            ("patch 2^40", "yamnet", false, { Self.editMetadata(&$0, "architecture") { a in
                var i = a["input"] as! [String: Any]; i["height"] = 1 << 40; i["width"] = 1 << 40; a["input"] = i } }, "each 1 to 1024"),
            ("steps 2^63-1", "generator", true, { Self.editMetadata(&$0, "defaults") { $0["steps"] = Int.max } }, "sampling defaults out of range"),
            ("strength 0", "generator", true, { Self.editMetadata(&$0, "defaults") { $0["retrieval_strength"] = 0.0 } }, "sampling defaults out of range"),
            ("top-k 0", "generator", true, { Self.editMetadata(&$0, "defaults") { $0["retrieval_top_k"] = 0 } }, "sampling defaults out of range"),
            ("scalar latents", "exemplars", true, { h in
                var l = h["latents"] as! [String: Any]; l["shape"] = [Int](); l["data_offsets"] = [0, 4]; h["latents"] = l }, "do not agree"),
            ("1-D embeddings", "exemplars", true, { h in
                var e = h["embeddings"] as! [String: Any]; e["shape"] = [168]; e["data_offsets"] = [1_376_256, 1_376_928]; h["embeddings"] = e }, "do not agree"),
        ]
        for c in cases {
            let assets = dir.appendingPathComponent(c.name.replacingOccurrences(of: " ", with: "-"))
            try FileManager.default.copyItem(at: real, to: assets)
            try Self.rewriteHeader(assets.appendingPathComponent("models/\(c.file).safetensors"), c.edit)
            let args = ["--input", demo, "--headless", "--assets", assets.path, "--duration", "2"] + (c.images ? [] : ["--no-images"])
            let r = try Binary.run("avgas-live", args, timeout: 120)
            XCTAssertEqual(r.status, 78, "\(c.name): \(r.stderr)")
            XCTAssertEqual(r.stderrLines.count, 1, "\(c.name): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("\(c.file).safetensors") && r.stderr.contains(c.says), "\(c.name): \(r.stderr)")
            try? FileManager.default.removeItem(at: assets)
        }
    }
}

/// Nothing the user made is lost when the program dies without warning.
final class CrashSafetyTests: XCTestCase {
    let demo = TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path

    /// SIGKILL (no handler runs, as in a crash of the renderer): the events file holds only
    /// complete lines, each valid JSON, because every line is written and flushed in one go.
    func testEventsSurviveSIGKILL() throws {
        let dir = TestPaths.makeTempDir("avgas-kill")
        defer { try? FileManager.default.removeItem(at: dir) }
        let events = dir.appendingPathComponent("e.jsonl").path
        let frames = dir.appendingPathComponent("frames").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Binary.path("avgas-live"))
        p.arguments = ["--input", demo, "--headless", "--realtime", "--no-images", "--events", events,
                       "--frames", frames, "--size", "320x180", "--fps", "10", "--quiet"]
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, p.isRunning,
              ((try? String(contentsOfFile: events, encoding: .utf8))?.split(separator: "\n").count ?? 0) < 8 {
            usleep(50_000)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        let text = try String(contentsOfFile: events, encoding: .utf8)
        XCTAssertTrue(text.hasSuffix("\n"), "last line cut: \(text.suffix(80))")
        let lines = text.split(separator: "\n")
        XCTAssertGreaterThanOrEqual(lines.count, 8)
        var last = -1.0
        for l in lines {
            let obj = try XCTUnwrap(try? JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any], String(l))
            let t = try XCTUnwrap(obj["t"] as? Double)
            XCTAssertGreaterThan(t, last); last = t
        }
        // Frames: every PNG visible is complete (temporary file + rename), no temporaries
        // other than at most the one being written at the moment of the kill.
        let files = (try? FileManager.default.contentsOfDirectory(atPath: frames)) ?? []
        XCTAssertGreaterThan(files.filter { $0.hasSuffix(".png") }.count, 3)
        XCTAssertLessThanOrEqual(files.filter { $0.contains(".tmp-") }.count, 1, "\(files)")
        for f in files where f.hasSuffix(".png") { XCTAssertNotNil(Binary.decodePNGSize("\(frames)/\(f)"), f) }
    }
}

/// Overload: live capture through the ALSA `file` plugin delivers audio far faster than real
/// time, so analysis cannot keep up; it must skip ahead, say so, and keep producing events.
final class OverloadTests: XCTestCase {
    func testAnalysisSkipsAheadAndKeepsProducingEvents() throws {
        let device = try ALSAFileDevice(name: "fastcap", samples: ALSAFileDevice.tone())
        defer { device.remove() }
        let home = device.home
        let events = home.appendingPathComponent("e.jsonl").path
        let r = try Binary.run("avgas-live", ["--device", "fastcap", "--headless", "--no-images", "--duration", "30", "--events", events],
                               environment: ["HOME": home.path], timeout: 180)
        XCTAssertEqual(r.status, 0, r.stderr)
        // Reported: "analysis skipped X s" with X a large part of the 30 s.
        let skipped = r.stderr.split(separator: "\n").first { $0.contains("analysis skipped") }
        let x = skipped.flatMap { $0.split(separator: " ").drop { $0 != "skipped" }.dropFirst().first.flatMap { Double($0) } } ?? 0
        XCTAssertGreaterThan(x, 5, r.stderr)
        // Recovered: events keep coming after skips, with strictly increasing stream time that
        // reaches the end of the run.
        let lines = try String(contentsOfFile: events, encoding: .utf8).split(separator: "\n")
        var times: [Double] = []
        for l in lines {
            let obj = try XCTUnwrap(try? JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any], String(l))
            times.append(try XCTUnwrap(obj["t"] as? Double))
        }
        XCTAssertGreaterThan(times.count, 10)
        XCTAssertEqual(zip(times, times.dropFirst()).filter { $0.1 <= $0.0 }.count, 0, "stream time went backwards")
        XCTAssertGreaterThan(zip(times, times.dropFirst()).filter { $0.1 - $0.0 > 0.5 }.count, 0, "no skip visible")
        XCTAssertGreaterThan(times.last ?? 0, 25)
    }
}

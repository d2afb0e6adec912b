import Display
import Foundation
import TestSupport
import XCTest

/// Output paths are checked before a run starts, and nothing the user already has is replaced
/// by accident: a directory, a pipe or device, the input recording itself; a recording stopped
/// before its first frame leaves the path as it was.
final class OutputPathTests: XCTestCase {
    var dir: URL!
    override func setUp() { dir = TestPaths.makeTempDir("avgas-outpath") }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }
    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func problem(_ p: String, input: String? = nil, allowSpecial: Bool = false) -> OutputPath.Problem? {
        do { try OutputPath.check(p, input: input, allowSpecial: allowSpecial); return nil } catch { return error }
    }

    func testCheckRefusesWhatMustNotBeReplaced() throws {
        let fifo = path("pipe")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let input = path("in.wav")
        XCTAssertTrue(FileManager.default.createFile(atPath: input, contents: Data("RIFF".utf8)))
        let link = path("link.wav")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: input)

        XCTAssertNil(problem(path("new.jsonl")))                    // a new file in a writable folder
        XCTAssertNil(problem(input))                                // an existing regular file may be replaced...
        XCTAssertEqual(problem(input, input: input), .sameAsInput)  // ...unless it is the input
        XCTAssertEqual(problem(link, input: input), .sameAsInput)   // also through a link
        XCTAssertEqual(problem(dir.path), .isDirectory)
        XCTAssertEqual(problem(fifo), .notRegularFile)
        XCTAssertNil(problem(fifo, allowSpecial: true))             // events may stream into a pipe
        XCTAssertEqual(problem(""), .empty)
        guard case .cannotCreate(let why)? = problem(path("missing/x.png")) else { return XCTFail("missing folder accepted") }
        XCTAssertTrue(why.contains("does not exist"), why)
        // The probe leaves nothing behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["in.wav", "link.wav", "pipe"])
        // mkdir -p, with the system's reason when a parent is a file.
        try OutputPath.makeDirectories(path("a/b/c"))
        var isDir: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("a/b/c"), isDirectory: &isDir) && isDir.boolValue)
        XCTAssertThrowsError(try OutputPath.makeDirectories(path("in.wav/sub"))) {
            XCTAssertTrue("\($0)".contains("is not a directory"), "\($0)")
        }
    }

    /// A PNG is never renamed over a pipe or device.
    func testPNGWriterRefusesAPipe() throws {
        let fifo = path("pipe.png")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        XCTAssertThrowsError(try PNGWriter.write(Framebuffer(width: 8, height: 8), to: fifo))
        var st = stat()
        XCTAssertEqual(stat(fifo, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFIFO)
    }

    /// A recording finished before its first frame does not replace the file at its path and
    /// leaves no temporary file; one with frames does replace it.
    func testRecordingWithoutFramesKeepsTheOldFile() throws {
        guard VideoRecorder.ffmpegPath() != nil else { throw XCTSkip("ffmpeg is not installed") }
        let out = path("show.mp4")
        let old = Data("an earlier video".utf8)
        try old.write(to: URL(fileURLWithPath: out))
        let empty = try VideoRecorder(path: out, width: 64, height: 64, fps: 10)
        XCTAssertFalse(try empty.finish())
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), old)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["show.mp4"])

        let rec = try VideoRecorder(path: out, width: 64, height: 64, fps: 10)
        for _ in 0..<3 { try rec.write(Framebuffer(width: 64, height: 64)) }
        XCTAssertTrue(try rec.finish())
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: out)), old)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["show.mp4"])
    }

    /// The contact sheet holds at most `maxThumbs` frames: past that every other one is dropped
    /// and the interval doubles, so a long run is covered evenly from start to end.
    func testContactSheetStaysBoundedAndEven() {
        let sheet = ContactSheet(thumbWidth: 16, maxThumbs: 8)
        let fb = Framebuffer(width: 64, height: 36)
        for k in 0...1000 {                              // 100 s at 10 frames per second
            let t = Double(k) / 10
            if sheet.wants(t) { sheet.add(fb, time: t) }
        }
        XCTAssertLessThan(sheet.count, 8)
        XCTAssertEqual(sheet.interval, 16)
        XCTAssertEqual(sheet.times, [0, 16, 32, 48, 64, 80, 96])
        let short = ContactSheet(thumbWidth: 16)
        for k in 0..<30 where short.wants(Double(k)) { short.add(fb, time: Double(k)) }
        XCTAssertEqual(short.count, 30)                  // a short run: one per second, as before
    }

    /// Thinning keeps one thumbnail per doubled interval of stream time, also when the times
    /// jump (live analysis skipping ahead), not every other one by position.
    func testContactSheetThinsByTime() {
        let sheet = ContactSheet(thumbWidth: 16, maxThumbs: 8)
        let fb = Framebuffer(width: 64, height: 36)
        for t in [0.0, 1, 2, 3, 5, 6, 7, 9] where sheet.wants(t) { sheet.add(fb, time: t) }
        XCTAssertEqual(sheet.interval, 2)
        XCTAssertEqual(sheet.times, [0, 2, 5, 6, 9])     // one per 2-s bucket: [0,2) [2,4) [4,6) [6,8) [8,10)
    }
}

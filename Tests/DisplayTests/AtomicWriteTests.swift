import Display
import Foundation
import TestSupport
import XCTest

/// PNG writes (frames, screenshots, contact sheets) are atomic: a write that fails part way
/// leaves no partial file visible, and an existing file at the path keeps its old content.
final class AtomicWriteTests: XCTestCase {
    /// Noise compresses badly, so the PNG is far larger than the size limit below.
    func noisyFrame(seed: UInt32) -> Framebuffer {
        var fb = Framebuffer(width: 320, height: 180)
        var s = seed
        for y in 0..<180 { for x in 0..<320 {
            s = s &* 1_664_525 &+ 1_013_904_223
            fb.fillRect(x: x, y: y, w: 1, h: 1, Color(argb: s))
        } }
        return fb
    }

    /// The write fails with EFBIG half way (a per-process file-size limit stands in for a full
    /// disk). The previous screenshot at the path is untouched, no temporary file remains, and
    /// the error names the path and the real reason.
    func testFailedWriteLeavesOldFileAndNoTemporary() throws {
        let dir = TestPaths.makeTempDir("avgas-atomic")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("shot.png").path
        let first = noisyFrame(seed: 1)
        try PNGWriter.write(first, to: path)
        let before = try XCTUnwrap(PNGWriter.read(path))

        var old = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &old)
        let oldHandler = signal(SIGXFSZ, SIG_IGN)
        var small = old
        small.rlim_cur = 16 * 1024
        XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &small), 0)
        var thrown: Error?
        do { try PNGWriter.write(noisyFrame(seed: 2), to: path) } catch { thrown = error }
        setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &old)
        signal(SIGXFSZ, oldHandler)

        let e = try XCTUnwrap(thrown as? ImageWriteError, "the write did not fail")
        XCTAssertTrue(e.description.contains(path), e.description)
        XCTAssertTrue(e.description.contains("File too large"), e.description)
        XCTAssertEqual(PNGWriter.read(path), before, "the old file changed")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["shot.png"])
    }

    /// A write into a folder that cannot be written: nothing appears there.
    func testUnwritableFolderLeavesNothing() throws {
        guard getuid() != 0 else { throw XCTSkip("root ignores directory permissions") }
        let dir = TestPaths.makeTempDir("avgas-atomic-ro")
        defer { chmod(dir.path, 0o755); try? FileManager.default.removeItem(at: dir) }
        chmod(dir.path, 0o555)
        XCTAssertThrowsError(try PNGWriter.write(noisyFrame(seed: 3), to: dir.appendingPathComponent("x.png").path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }
}

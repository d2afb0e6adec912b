@testable import AudioInput
import Foundation
import TestSupport
import XCTest

/// Real ALSA capture through alsa-lib's `file` plugin: no sound card needed, the whole
/// capture path (open, hw params, period reads, conversion, ring) runs for real.
final class ALSACaptureTests: XCTestCase {
    static func fileDeviceConfig(infile: String) -> String {
        """
        pcm.filecap {
            type file
            slave { pcm { type null } }
            file "/dev/null"
            infile "\(infile)"
            format "raw"
        }
        """
    }

    func testCapturesKnownSignalSampleExact() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A known signal: distinct float values, raw little-endian float32 at 16 kHz mono.
        let count = 16_000
        let signal = (0..<count).map { Float(($0 * 37) % 20_011) / 20_011 - 0.5 }
        let raw = dir.appendingPathComponent("in.raw")
        try signal.withUnsafeBufferPointer { try Data(buffer: $0).write(to: raw) }
        var config = ALSACapture.Configuration(device: "filecap")
        config.configText = Self.fileDeviceConfig(infile: raw.path)
        let capture = ALSACapture(config)
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: 1 << 16)
        defer { storage.deallocate() }
        let ring = SampleRing(storage: storage)
        try capture.start(into: ring)
        // The file plugin has no pacing and no end of file: wait for enough, then stop.
        let deadline = Date().addingTimeInterval(10)
        while ring.availableToRead < count && Date() < deadline { usleep(1000) }
        capture.stop()
        var out = [Float](repeating: 0, count: count)
        XCTAssertEqual(out.withUnsafeMutableBufferPointer { ring.read(into: $0) }, count)
        XCTAssertEqual(out, signal)
        XCTAssertEqual(capture.stats.xruns.load(ordering: .relaxed), 0)
    }

    func testInjectedOverrunsAreRecoveredAndCounted() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let raw = dir.appendingPathComponent("in.raw")
        try [Float](repeating: 0.25, count: 8000).withUnsafeBufferPointer { try Data(buffer: $0).write(to: raw) }
        var config = ALSACapture.Configuration(device: "filecap")
        config.configText = Self.fileDeviceConfig(infile: raw.path)
        let capture = ALSACapture(config)
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: 1 << 14)
        defer { storage.deallocate() }
        let ring = SampleRing(storage: storage)
        capture.faults.injectXruns(3)
        try capture.start(into: ring)
        let deadline = Date().addingTimeInterval(10)
        while ring.availableToRead < 4000 && Date() < deadline { usleep(1000) }
        capture.stop()
        XCTAssertEqual(capture.stats.xruns.load(ordering: .relaxed), 3)
        XCTAssertGreaterThanOrEqual(ring.availableToRead, 4000)
    }

    func testUnknownDeviceIsReported() {
        var config = ALSACapture.Configuration(device: "nosuchdevice")
        config.configText = Self.fileDeviceConfig(infile: "/dev/null")
        let capture = ALSACapture(config)
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: 1024)
        defer { storage.deallocate() }
        XCTAssertThrowsError(try capture.start(into: SampleRing(storage: storage))) {
            XCTAssertEqual($0 as? AudioInputError, .unknownDevice("nosuchdevice"))
        }
    }

    /// Errors that need hardware to provoke (busy device, unsupported formats) map to their
    /// user-facing lines; the mapping is what the CLI prints.
    func testOpenErrorsMapToUserMessages() {
        XCTAssertEqual(ALSACapture.openError(-EBUSY, device: "hw:1", hasLocalConfig: false), .deviceBusy("hw:1"))
        XCTAssertTrue(AudioInputError.deviceBusy("hw:1").description.contains("busy"))
        XCTAssertEqual(ALSACapture.openError(-ENOENT, device: "mydev", hasLocalConfig: true), .unknownDevice("mydev"))
        XCTAssertTrue(AudioInputError.unsupportedFormat(device: "hw:1", detail: "x").description.contains("plughw"))
    }
}

import AudioInput
import Foundation
import TestSupport
import XCTest

/// Downmixing averages every channel (the existing stereo test has the same signal in both
/// channels, so reading one channel would pass it), and a WAV header with no samples is
/// refused as empty rather than analysed as nothing.
final class FileSourceChannelTests: XCTestCase {
    func testDownmixIsTheMeanOfAllChannels() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // 16 kHz (no resampling), three different channels: a ramp, silence, a square wave;
        // 10000 frames = two full 4096-frame blocks and a partial one.
        let frames = 10_000
        var interleaved: [Float] = []
        var expected: [Float] = []
        for i in 0..<frames {
            let a = Float(i % 200) / 200 - 0.5, b: Float = 0, c: Float = (i / 50) % 2 == 0 ? 0.75 : -0.75
            interleaved += [a, b, c]
            expected.append((a + b + c) / 3)
        }
        let url = dir.appendingPathComponent("three.wav")
        try TestWAV.write(url, samples: interleaved, sampleRate: 16_000, channels: 3, float: true)
        let source = try FileSource(path: url.path)
        XCTAssertEqual(source.sourceChannels, 3)
        let out = try source.readAll()
        XCTAssertEqual(out.count, frames)
        let worst = zip(out, expected).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThanOrEqual(worst, 1e-6)
        // Only the right channel carries sound: it must not vanish.
        let right = dir.appendingPathComponent("right.wav")
        try TestWAV.write(right, samples: (0..<4000).flatMap { i in [Float(0), i % 2 == 0 ? 0.5 : -0.5] },
                          sampleRate: 16_000, channels: 2, float: true)
        let r = try FileSource(path: right.path).readAll()
        XCTAssertEqual(r.count, 4000)
        XCTAssertEqual(r.first ?? 0, 0.25, accuracy: 1e-6)
        XCTAssertEqual(r.map { abs($0) }.max() ?? 0, 0.25, accuracy: 1e-6)
    }

    func testHeaderWithoutSamplesIsEmpty() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("header-only.wav")
        try TestWAV.write(url, samples: [], sampleRate: 16_000, channels: 1)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int, 44)
        XCTAssertThrowsError(try FileSource(path: url.path)) {
            XCTAssertEqual($0 as? AudioInputError, .fileEmpty(url.path))
        }
    }
}

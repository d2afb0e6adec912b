import AudioInput
import Foundation
import TestSupport
import XCTest

final class FileSourceTests: XCTestCase {
    /// A 44.1 kHz stereo file comes out as 16 kHz mono, of the right length, tone intact.
    func testResamplesAndDownmixes() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("tone.wav")
        try TestWAV.write(url, samples: TestWAV.tone(hz: 1000, seconds: 2, sampleRate: 44_100, channels: 2),
                          sampleRate: 44_100, channels: 2)
        let source = try FileSource(path: url.path)
        XCTAssertEqual(source.sourceRate, 44_100)
        XCTAssertEqual(source.sourceChannels, 2)
        let out = try source.readAll()
        XCTAssertEqual(Double(out.count), 32_000, accuracy: 16)
        // Frequency from positive-going zero crossings over the middle second.
        let mid = Array(out[8_000..<24_000])
        var crossings = 0
        for i in 1..<mid.count where mid[i - 1] < 0 && mid[i] >= 0 { crossings += 1 }
        XCTAssertEqual(Double(crossings), 1000, accuracy: 2)
        let rms = (mid.map { $0 * $0 }.reduce(0, +) / Float(mid.count)).squareRoot()
        XCTAssertEqual(rms, Float(0.5 / 2.0.squareRoot()), accuracy: 0.01)
    }

    /// The file producer goes through the ring without losing a sample, even when the ring
    /// is much smaller than the file (it waits while the ring is full).
    func testProducerThroughSmallRingIsLossless() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("ramp.wav")
        let ramp = (0..<48_000).map { Float(($0 % 2000) - 1000) / 1000 }
        try TestWAV.write(url, samples: ramp, sampleRate: 16_000, channels: 1, float: true)
        let source = try FileSource(path: url.path)
        let expected = try source.readAll()
        XCTAssertEqual(expected, ramp)
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: 1024)
        defer { storage.deallocate() }
        let ring = SampleRing(storage: storage)
        try source.start(into: ring)
        var got: [Float] = []
        var chunk = [Float](repeating: 0, count: 300)
        while !(source.stats.finished.load(ordering: .acquiring) && ring.availableToRead == 0) {
            let n = chunk.withUnsafeMutableBufferPointer { ring.read(into: $0) }
            got += chunk[0..<n]
            if n == 0 { usleep(100) }
        }
        source.stop()
        XCTAssertEqual(got, ramp)
        XCTAssertEqual(source.stats.droppedSamples.load(ordering: .relaxed), 0)
    }

    func testErrorsNameTheProblem() throws {
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try FileSource(path: dir.appendingPathComponent("nope.wav").path)) {
            XCTAssertEqual($0 as? AudioInputError, .fileMissing(dir.appendingPathComponent("nope.wav").path))
        }
        XCTAssertThrowsError(try FileSource(path: dir.path)) {
            XCTAssertEqual($0 as? AudioInputError, .fileIsDirectory(dir.path))
        }
        let empty = dir.appendingPathComponent("empty.wav")
        XCTAssertTrue(FileManager.default.createFile(atPath: empty.path, contents: Data()), "could not create a test fixture file")
        XCTAssertThrowsError(try FileSource(path: empty.path)) {
            XCTAssertEqual($0 as? AudioInputError, .fileEmpty(empty.path))
        }
        let text = dir.appendingPathComponent("notes.wav")
        try "these are not samples\n".write(to: text, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try FileSource(path: text.path)) { error in
            guard case .notAudio(let p, _)? = error as? AudioInputError else { return XCTFail("\(error)") }
            XCTAssertEqual(p, text.path)
        }
    }
}

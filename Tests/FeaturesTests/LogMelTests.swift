import Features
import Foundation
import TestSupport
import XCTest

final class LogMelTests: XCTestCase {
    /// Golden test: Swift (FFTW) against tools/frontend.py (numpy) on a real recording.
    func testMatchesNumpyReferenceOnRealAudio() throws {
        let audio = try TestWAV.readF32(TestPaths.fixture("FeaturesTests", "wolf_16k.f32"))
        let expected = try TestWAV.readF32(TestPaths.fixture("FeaturesTests", "wolf_logmel.f32"))
        let frames = LogMelFrameComputer().frames(of: audio)
        XCTAssertEqual(frames.count * 64, expected.count)
        var maxErr: Float = 0
        for (f, row) in frames.enumerated() {
            for b in 0..<64 { maxErr = max(maxErr, abs(row[b] - expected[f * 64 + b])) }
        }
        XCTAssertLessThanOrEqual(maxErr, 1e-4, "max abs log-mel error \(maxErr)")
        // The recording is not silence: the fixture exercises the whole dynamic range.
        XCTAssertGreaterThan(expected.max()! - expected.min()!, 10)
    }

    /// Streaming in arbitrary chunk sizes gives exactly the batch frames.
    func testStreamingEqualsBatch() throws {
        let audio = try TestWAV.readF32(TestPaths.fixture("FeaturesTests", "wolf_16k.f32"))
        let batch = LogMelFrameComputer().frames(of: audio)
        let stream = LogMelStream(historyFrames: 256)
        var rng = SystemRandomNumberGenerator()
        var offset = 0
        while offset < audio.count {
            let n = min(audio.count - offset, Int.random(in: 1...3000, using: &rng))
            stream.push(Array(audio[offset..<(offset + n)]))
            offset += n
        }
        XCTAssertEqual(stream.framesProduced, batch.count)
        var row = [Float](repeating: 0, count: 64)
        for f in max(0, batch.count - 256)..<batch.count {
            row.withUnsafeMutableBufferPointer { stream.frame(f, into: $0.baseAddress!) }
            XCTAssertEqual(row, batch[f], "frame \(f)")
        }
    }

    /// Frames appear only when their 400-sample window is complete (no padding).
    func testFrameCountFollowsWindowAndHop() {
        let stream = LogMelStream()
        XCTAssertEqual(stream.push([Float](repeating: 0.1, count: 399)), 0)
        XCTAssertEqual(stream.push([Float](repeating: 0.1, count: 1)), 1)
        XCTAssertEqual(stream.push([Float](repeating: 0.1, count: 159)), 0)
        XCTAssertEqual(stream.push([Float](repeating: 0.1, count: 1)), 1)
        let c = LogMelConfiguration()
        XCTAssertEqual(c.patchSamples, 15_600)
    }

    /// A pure tone lights up the mel band that contains its frequency.
    func testToneLandsInTheRightBand() {
        let tone = TestWAV.tone(hz: 1000, seconds: 0.1, sampleRate: 16_000)
        let frame = LogMelFrameComputer().frames(of: tone)[2]
        let peak = frame.indices.max { frame[$0] < frame[$1] }!
        // Band centres are equally spaced in HTK mel between 125 and 7500 Hz.
        let lo = hertzToMel(125), hi = hertzToMel(7500)
        let centre = { (b: Int) in lo + (hi - lo) * Double(b + 1) / 65 }
        let nearest = (0..<64).min { abs(centre($0) - hertzToMel(1000)) < abs(centre($1) - hertzToMel(1000)) }!
        XCTAssertLessThanOrEqual(abs(peak - nearest), 1)
    }
}

import Foundation

/// Minimal RIFF/WAVE writer for tests (16-bit PCM or 32-bit float), so test inputs are made
/// by the tests themselves rather than committed.
public enum TestWAV {
    /// Writes interleaved `samples` ([frames * channels]) as a WAV file.
    public static func write(_ url: URL, samples: [Float], sampleRate: Int, channels: Int, float: Bool = false) throws {
        var d = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        let bytesPerSample = float ? 4 : 2
        let dataBytes = samples.count * bytesPerSample
        d.append(contentsOf: Array("RIFF".utf8)); u32(UInt32(36 + dataBytes)); d.append(contentsOf: Array("WAVE".utf8))
        d.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(float ? 3 : 1); u16(UInt16(channels))
        u32(UInt32(sampleRate)); u32(UInt32(sampleRate * channels * bytesPerSample))
        u16(UInt16(channels * bytesPerSample)); u16(UInt16(bytesPerSample * 8))
        d.append(contentsOf: Array("data".utf8)); u32(UInt32(dataBytes))
        for s in samples {
            if float {
                withUnsafeBytes(of: s.bitPattern.littleEndian) { d.append(contentsOf: $0) }
            } else {
                let v = Int16(max(-32768, min(32767, (s * 32767).rounded())))
                withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) }
            }
        }
        try d.write(to: url)
    }

    /// A sine of `hz` at `amplitude`, `seconds` long, duplicated into `channels` channels.
    public static func tone(hz: Double, seconds: Double, sampleRate: Int, channels: Int = 1, amplitude: Float = 0.5) -> [Float] {
        let n = Int(seconds * Double(sampleRate))
        var out = [Float](); out.reserveCapacity(n * channels)
        for i in 0..<n {
            let v = amplitude * Float(sin(2 * Double.pi * hz * Double(i) / Double(sampleRate)))
            for _ in 0..<channels { out.append(v) }
        }
        return out
    }

    /// Reads a little-endian float32 raw file.
    public static func readF32(_ url: URL) throws -> [Float] {
        let d = try Data(contentsOf: url)
        return d.withUnsafeBytes { raw in
            (0..<(d.count / 4)).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self).littleEndian) }
        }
    }
}

import Foundation

/// A real ALSA capture device without a sound card: alsa-lib's `file` plugin reading raw
/// float32 samples, defined in a `.asoundrc` inside a fresh HOME. Run the program with
/// `HOME` set to `home` and `--device <name>`. The plugin has no pacing and no end of file.
public struct ALSAFileDevice {
    public let home: URL
    public let name: String

    /// Writes `samples` (16 kHz mono) and the device definition into a new temporary HOME.
    public init(name: String, samples: [Float]) throws {
        home = TestPaths.makeTempDir("avgas-\(name)")
        self.name = name
        let raw = home.appendingPathComponent("\(name).raw")
        try samples.withUnsafeBufferPointer { try Data(buffer: $0).write(to: raw) }
        try """
        pcm.\(name) {
            type file
            slave.pcm "null"
            file "/dev/null"
            infile "\(raw.path)"
            format "raw"
        }
        """.write(to: home.appendingPathComponent(".asoundrc"), atomically: true, encoding: .utf8)
    }

    /// A 0.3-amplitude tone, two seconds long: enough for the plugin to loop over.
    public static func tone() -> [Float] { (0..<32_000).map { Float(sin(Double($0) * 0.17)) * 0.3 } }

    public func remove() { try? FileManager.default.removeItem(at: home) }
}

// The parsers of our own file formats, driven by arbitrary bytes. One source of truth for
// two builds:
//  * `make fuzz` compiles this file with `-D AVGAS_FUZZING` together with fuzz/<target>.swift
//    (the libFuzzer entry points) and swiftc-built NeuralNet/Listening modules instrumented
//    with -sanitize=fuzzer,address (see mk/robustness.mk);
//  * `make test` runs `FuzzCorpusTests` below, which replays every committed input in
//    Tests/Fuzz/corpus/<target>/ through the same harness: each must be rejected with an
//    error or accepted, never crash.
import Foundation
import Listening
import NeuralNet

/// One entry point per fuzz target. Each takes the raw input bytes and returns normally
/// whatever they contain (a thrown parse error is a correct outcome, a trap is a finding).
public enum FuzzHarness {
    public static let targets = ["safetensors", "graph", "program", "vocabulary"]

    public static func run(_ target: String, _ data: Data) {
        switch target {
        case "safetensors": safetensors(data)
        case "graph": graph(data)
        case "program": program(data)
        case "vocabulary": vocabulary(data)
        default: preconditionFailure("unknown fuzz target \(target)")
        }
    }

    /// A private scratch file per process: the reader maps files, so inputs go through disk
    /// (tmpfs when /dev/shm exists).
    static let scratchPath: String = {
        let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        return "\(dir)/avgas-fuzz-\(getpid()).safetensors"
    }()

    static func withFile(_ data: Data, _ body: (String) throws -> Void) {
        let fd = open(scratchPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return }
        data.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = write(fd, b.baseAddress! + off, b.count - off)
                if n <= 0 { break }
                off += n
            }
        }
        close(fd)
        try? body(scratchPath)
    }

    /// safetensors: the whole file is the input. Whatever opens is then used the way the
    /// networks use it: every tensor read (as float32 when it is one), every metadata key
    /// decoded, and both network builders run over it.
    static func safetensors(_ data: Data) {
        withFile(data) { path in
            let file = try SafeTensorsFile(path: path)
            var sum: Float = 0
            for (name, info) in file.tensors {
                let raw = try file.bytes(name)
                if let first = raw.first { sum += Float(first) }
                if info.dtype == .f32, let t = try? file.floats(name) {
                    for v in t.buffer { sum += v }
                }
            }
            for key in file.metadata.keys { _ = try? file.metadataJSON(key, as: [String: String].self) }
            _ = try? GraphNetwork(file: file)
            _ = try? ProgramNetwork(file: file, net: "net", inputs: ["x": [2, 4, 4], "t": [1]])
            if sum.isNaN { _ = 0 }  // keep the reads
        }
    }

    /// Fixed tensors the graph and program inputs may refer to (shapes the seeds use).
    static let tensors: [(name: String, shape: [Int], values: [Float])] = [
        ("ln.w", [2], [1, 1]), ("ln.b", [2], [0, 0]),
        ("fc.w", [3, 2], [1, 0, 0, 1, 1, 1]), ("fc.b", [3], [0.5, 0, -1]),
        ("gate", [2, 3], [1, 2, 3, -1, 0, 1]), ("bias2", [3], [0, 0, 1]),
        ("fc2.w", [2, 3], [1, 0, 0, 0, 1, 1]),
        ("net.c1.weight", [4, 2, 3, 3], [Float](repeating: 0.01, count: 72)), ("net.c1.bias", [4], [0, 0, 0, 0]),
        ("net.gn.weight", [4], [1, 1, 1, 1]), ("net.gn.bias", [4], [0, 0, 0, 0]),
        ("net.fc.weight", [8, 6], [Float](repeating: 0.1, count: 48)), ("net.fc.bias", [8], [Float](repeating: 0, count: 8)),
        ("net.c2.weight", [4, 4, 3, 3], [Float](repeating: 0.01, count: 144)), ("net.c2.bias", [4], [0, 0, 0, 0]),
        ("net.c3.weight", [3, 6, 1, 1], [Float](repeating: 0.1, count: 18)), ("net.c3.bias", [3], [0, 0, 0]),
    ]

    /// Graph metadata (avgas-graph-v1): the input is the `architecture` JSON; the network is
    /// built and, when it builds, run once.
    static func graph(_ data: Data) {
        guard let text = String(data: data, encoding: .utf8),
              let file = try? SafeTensorsWriter.encode(tensors, metadata: ["architecture": text]) else { return }
        withFile(file) { path in
            let net = try GraphNetwork(path: path)
            let n = net.inputShape.reduce(1, *)
            guard net.inputShape.allSatisfy({ $0 > 0 }), n <= 1 << 16 else { return }
            let x = [Float](repeating: 0.5, count: n)
            x.withUnsafeBufferPointer { net.forward($0) }
        }
    }

    /// Program metadata (the generator's networks): the input is the `net.program` JSON, with
    /// output "out"; built for x [2, 4, 4] and t [1], and run once when it builds.
    static func program(_ data: Data) {
        guard let text = String(data: data, encoding: .utf8),
              let file = try? SafeTensorsWriter.encode(tensors, metadata: ["net.program": text, "net.output": "out"]) else { return }
        withFile(file) { path in
            let net = try ProgramNetwork(file: SafeTensorsFile(path: path), net: "net", inputs: ["x": [2, 4, 4], "t": [1]])
            net.forward()
        }
    }

    /// The YAMNet label list the vocabulary is checked against (the real one when present).
    static let labels: [String] = {
        var dir = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { dir.deleteLastPathComponent() }  // file, ListeningTests, Tests
        let path = dir.appendingPathComponent("Assets/models/yamnet_classes.txt").path
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "Speech\nDog\nBark\nRain\nMusic\n"
        return text.split(separator: "\n").map(String.init)
    }()

    /// classes.json: parsed and validated; when valid, the score mapping runs on fixed logits.
    static func vocabulary(_ data: Data) {
        guard let v = try? ClassVocabulary(json: data, source: "fuzz.json", audioSetLabels: labels) else { return }
        let logits = [Float](repeating: 0.3, count: v.audioSetCount)
        var scores = [Float](repeating: 0, count: v.count)
        logits.withUnsafeBufferPointer { l in scores.withUnsafeMutableBufferPointer { v.scores(fromLogits: l, into: $0) } }
    }
}

#if !AVGAS_FUZZING
import TestSupport
import XCTest

/// Replays every committed fuzz input (seeds and any crash inputs ever found) through the
/// harness the fuzzers run: none may crash.
final class FuzzCorpusTests: XCTestCase {
    func testCommittedCorpusReplaysWithoutCrashing() throws {
        let root = TestPaths.repoRoot.appendingPathComponent("Tests/Fuzz/corpus")
        var replayed: [String: Int] = [:]
        for target in FuzzHarness.targets {
            let dir = root.appendingPathComponent(target)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            for name in names.sorted() where !name.hasPrefix(".") {
                let data = try Data(contentsOf: dir.appendingPathComponent(name))
                FuzzHarness.run(target, data)
                replayed[target, default: 0] += 1
            }
        }
        // Every target has at least its seeds committed.
        for target in FuzzHarness.targets {
            XCTAssertGreaterThan(replayed[target] ?? 0, 0, "no corpus for \(target) in \(root.path)")
        }
    }
}
#endif

import Foundation
import TestSupport
import XCTest
@testable import NeuralNet

/// The reader must accept what the writers produce and turn every kind of damage into a typed
/// error naming the file, never a crash.
final class SafeTensorsTests: XCTestCase {
    var dir: URL!

    override func setUp() { dir = TestPaths.makeTempDir("safetensors") }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// Writes `u64 length | header | data`; `length` overrides the declared header length.
    func write(_ name: String, header: String, data: [UInt8] = [], length: UInt64? = nil) throws -> String {
        var bytes = [UInt8]()
        withUnsafeBytes(of: (length ?? UInt64(header.utf8.count)).littleEndian) { bytes += $0 }
        bytes += Array(header.utf8) + data
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    func expect(_ path: String, _ check: (SafeTensorsError) -> Bool, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensorsFile(path: path), file: file, line: line) { error in
            guard let e = error as? SafeTensorsError else { return XCTFail("not a SafeTensorsError: \(error)", file: file, line: line) }
            XCTAssertTrue(check(e), "unexpected error: \(e)", file: file, line: line)
            XCTAssertEqual(e.file, path, file: file, line: line)
            XCTAssertTrue(e.description.contains(path), "description must name the file: \(e)", file: file, line: line)
        }
    }

    func testRoundTripWithSwiftWriter() throws {
        let a: [Float] = [1, -2, 3.5, 4, 5, 6]
        let b: [Float] = [0.25]
        let url = dir.appendingPathComponent("ok.safetensors")
        try SafeTensorsWriter.encode([("a", [2, 3], a), ("b", [1], b), ("empty", [0, 4], [])],
                                     metadata: ["k": "v", "arch": "{\"x\":1}"]).write(to: url)
        let f = try SafeTensorsFile(path: url.path)
        XCTAssertEqual(f.metadata, ["k": "v", "arch": "{\"x\":1}"])
        XCTAssertEqual(Set(f.tensors.keys), ["a", "b", "empty"])
        XCTAssertEqual(Array(try f.floats("a", shape: [2, 3]).buffer), a)
        XCTAssertEqual(Array(try f.floats("b").buffer), b)
        XCTAssertEqual(try f.floats("empty").count, 0)
        struct Arch: Decodable { var x: Int }
        XCTAssertEqual(try f.metadataJSON("arch", as: Arch.self).x, 1)
        XCTAssertThrowsError(try f.metadataJSON("k", as: Arch.self)) { error in
            guard case SafeTensorsError.invalidMetadata(let file, "k", _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, url.path)
        }
        XCTAssertEqual(try f.floats("a").shape, [2, 3])
        XCTAssertThrowsError(try f.floats("a", shape: [3, 2])) { error in
            XCTAssertEqual(error as? SafeTensorsError, .unexpectedShape(file: url.path, tensor: "a", expected: [3, 2], found: [2, 3]))
        }
        XCTAssertThrowsError(try f.floats("c")) { error in
            XCTAssertEqual(error as? SafeTensorsError, .missingTensor(file: url.path, tensor: "c"))
        }
    }

    func testReadsThePythonWrittenYAMNetFile() throws {
        let f = try SafeTensorsFile(path: TestPaths.repoRoot.appendingPathComponent("Assets/models/yamnet.safetensors").path)
        XCTAssertEqual(f.tensors.count, 56)  // 27 conv layers + classifier, weight and bias each
        XCTAssertEqual(f.metadata["format"], "avgas-nn/1")
        XCTAssertEqual(try f.floats("classifier.weight").shape, [521, 1024])
        XCTAssertEqual(try f.floats("layers.0.conv.weight").shape, [3, 3, 1, 32])
        XCTAssertEqual(f.tensors.values.reduce(0) { $0 + $1.count }, 3_729_481)
    }

    func testTruncatedFiles() throws {
        let zero = dir.appendingPathComponent("zero").path
        XCTAssertTrue(FileManager.default.createFile(atPath: zero, contents: Data()), "could not create a test fixture file")
        expect(zero) { if case .truncated = $0 { true } else { false } }
        let five = dir.appendingPathComponent("five").path
        XCTAssertTrue(FileManager.default.createFile(atPath: five, contents: Data([1, 2, 3, 4, 5])), "could not create a test fixture file")
        expect(five) { if case .truncated = $0 { true } else { false } }
        expect(try write("long", header: "{}", length: 1000)) { if case .truncated = $0 { true } else { false } }
        expect(try write("huge", header: "{}", length: UInt64.max)) { if case .truncated = $0 { true } else { false } }
        // Data section shorter than the tensor's range.
        expect(try write("shortdata", header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [UInt8](repeating: 0, count: 12))) {
            if case .truncated = $0 { true } else { false }
        }
        // A real file cut in the middle of its data.
        let url = dir.appendingPathComponent("cut.safetensors")
        let full = try SafeTensorsWriter.encode([("a", [100], [Float](repeating: 1, count: 100))])
        try full.prefix(full.count - 7).write(to: url)
        expect(url.path) { if case .truncated = $0 { true } else { false } }
    }

    func testInvalidHeaders() throws {
        func invalidHeader(_ e: SafeTensorsError) -> Bool { if case .invalidHeader = e { true } else { false } }
        expect(try write("notjson", header: "{not json"), invalidHeader)
        expect(try write("notobject", header: "[1, 2, 3]"), invalidHeader)
        expect(try write("tiny", header: "{"), invalidHeader)
        expect(try write("metadata", header: #"{"__metadata__":{"a":1}}"#), invalidHeader)
        expect(try write("floatshape", header: #"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), invalidHeader)
        expect(try write("nokey", header: #"{"a":{"dtype":"F32","shape":[1]}}"#, data: [0, 0, 0, 0]), invalidHeader)
        expect(try write("utf8", header: "{\"\u{FFFF}\u{0}", data: []), invalidHeader)
    }

    func testInvalidTensors() throws {
        func invalidTensor(_ e: SafeTensorsError) -> Bool { if case .invalidTensor = e { true } else { false } }
        let four = [UInt8](repeating: 0, count: 16)
        expect(try write("dtype", header: #"{"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}"#, data: four), invalidTensor)
        expect(try write("bytes", header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: four), invalidTensor)
        expect(try write("neg", header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: four), invalidTensor)
        expect(try write("three", header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, data: four), invalidTensor)
        expect(try write("backwards", header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, data: four), invalidTensor)
        expect(try write("overflow", header: #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#, data: four), invalidTensor)
        expect(try write("overlap", header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: four)) {
            if case .overlappingTensors = $0 { true } else { false }
        }
    }

    func testWrongDTypeAndMisalignedFloats() throws {
        // U8 [1] at 0..1, then F32 [1] at 1..5: valid file, but the float is not 4-byte aligned.
        var header = #"{"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"f":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}}"#
        while header.utf8.count % 8 != 0 { header += " " }  // data section 8-aligned, so "f" sits at 8k + 1
        let path = try write("mis", header: header, data: [7, 0, 0, 128, 63])
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(Array(try f.bytes("b")), [7])
        XCTAssertThrowsError(try f.floats("b")) { error in
            XCTAssertEqual(error as? SafeTensorsError, .unexpectedDType(file: path, tensor: "b", expected: .f32, found: .u8))
        }
        XCTAssertThrowsError(try f.floats("f")) { error in
            guard case SafeTensorsError.invalidTensor(_, "f", let detail) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(detail.contains("aligned"), detail)
        }
    }

    func testCannotOpen() {
        expect(dir.appendingPathComponent("does-not-exist").path) { if case .cannotOpen = $0 { true } else { false } }
        expect(dir.path) { if case .cannotOpen = $0 { true } else { false } }
    }

    func testRuntimeThreadsAndCoreName() {
        NeuralNetRuntime.setThreads(1)
        XCTAssertEqual(NeuralNetRuntime.threads, 1)
        NeuralNetRuntime.setThreads(2)
        XCTAssertEqual(NeuralNetRuntime.threads, 2)
        NeuralNetRuntime.setThreads(1)
        XCTAssertFalse(NeuralNetRuntime.coreName.isEmpty)
        // Advice only when OpenBLAS runs a generic core, and then a core OpenBLAS knows.
        if let advice = NeuralNetRuntime.recommendedCoreType {
            XCTAssertTrue(["SkylakeX", "Haswell"].contains(advice))
            XCTAssertTrue(NeuralNetRuntime.coreTypeWarning!.contains(advice))
        } else {
            XCTAssertNil(NeuralNetRuntime.coreTypeWarning)
        }
    }
}

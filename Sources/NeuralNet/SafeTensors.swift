// safetensors reader over a memory-mapped file, validating everything before any tensor is used.
// The Python writer is tools/safetensors_io.py; the format:
//   u64 little-endian N | N bytes of JSON header | data section (tensors' raw little-endian bytes)
//   header = {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}}
//   offsets are relative to the data section.
import Foundation

/// Element types of the safetensors format.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
    case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f64, .i64, .u64: 8
        case .f32, .i32, .u32: 4
        case .f16, .bf16, .i16, .u16: 2
        case .i8, .u8, .bool: 1
        }
    }
}

/// Why a weights file could not be used. Every case names the file; `description` is one
/// sentence a user can act on.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(file: String, reason: String)
    case truncated(file: String, detail: String)
    case invalidHeader(file: String, detail: String)
    case invalidTensor(file: String, tensor: String, detail: String)
    case overlappingTensors(file: String, first: String, second: String)
    case missingTensor(file: String, tensor: String)
    case unexpectedDType(file: String, tensor: String, expected: DType, found: DType)
    case unexpectedShape(file: String, tensor: String, expected: [Int], found: [Int])
    case invalidMetadata(file: String, key: String, detail: String)

    /// The file the error is about.
    public var file: String {
        switch self {
        case .cannotOpen(let f, _), .truncated(let f, _), .invalidHeader(let f, _),
             .invalidTensor(let f, _, _), .overlappingTensors(let f, _, _), .missingTensor(let f, _),
             .unexpectedDType(let f, _, _, _), .unexpectedShape(let f, _, _, _), .invalidMetadata(let f, _, _):
            f
        }
    }

    public var description: String {
        switch self {
        case .cannotOpen(let f, let r): "cannot open weights file \(f): \(r)"
        case .truncated(let f, let d): "weights file \(f) is truncated: \(d)"
        case .invalidHeader(let f, let d): "weights file \(f) has an invalid safetensors header: \(d)"
        case .invalidTensor(let f, let t, let d): "weights file \(f): tensor '\(t)' is invalid: \(d)"
        case .overlappingTensors(let f, let a, let b):
            "weights file \(f) is corrupted: the byte ranges of tensors '\(a)' and '\(b)' overlap"
        case .missingTensor(let f, let t): "weights file \(f) has no tensor '\(t)' (wrong or outdated file?)"
        case .unexpectedDType(let f, let t, let e, let x):
            "weights file \(f): tensor '\(t)' is \(x.rawValue), expected \(e.rawValue)"
        case .unexpectedShape(let f, let t, let e, let x):
            "weights file \(f): tensor '\(t)' has shape \(x), expected \(e) (weights for another network?)"
        case .invalidMetadata(let f, let k, let d): "weights file \(f): metadata '\(k)' is invalid: \(d)"
        }
    }
}

/// A read-only memory mapping of a whole file. Immutable after `init`, so sharing it between
/// threads is safe; the mapping lives as long as the object.
final class MappedFile: @unchecked Sendable {
    let base: UnsafeRawPointer
    let size: Int

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw SafeTensorsError.cannotOpen(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw SafeTensorsError.cannotOpen(file: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError.cannotOpen(file: path, reason: "not a regular file")
        }
        let size = Int(st.st_size)
        guard size >= 8 else {
            throw SafeTensorsError.truncated(file: path, detail: "it is \(size) bytes, shorter than the 8-byte header length")
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw SafeTensorsError.cannotOpen(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        self.base = UnsafeRawPointer(p)
        self.size = size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }
}

/// Where one tensor sits in a safetensors file.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range within the file (not the data section).
    public let fileRange: Range<Int>
    /// Number of elements (product of `shape`; 1 for a scalar).
    public var count: Int { shape.reduce(1, *) }
}

/// A float32 tensor viewed in place in mapped memory. Keeps its file mapped while alive.
public struct FloatTensor: @unchecked Sendable {
    public let name: String
    public let shape: [Int]
    /// `count` floats, read-only, valid while this value (or its file) exists.
    public let pointer: UnsafePointer<Float>
    public var count: Int { shape.reduce(1, *) }
    let owner: SafeTensorsFile

    /// The values as a buffer (no copy).
    public var buffer: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: pointer, count: count) }
}

/// A validated, memory-mapped safetensors file.
///
/// Opening checks the header length, the JSON, every dtype, every shape against its byte range,
/// that every range lies inside the file and that no two ranges overlap. Any problem throws a
/// `SafeTensorsError` naming the file; nothing is read from the data section before that.
///
/// ```swift
/// let file = try SafeTensorsFile(path: "Assets/models/yamnet.safetensors")
/// let w = try file.floats("classifier.weight", shape: [521, 1024])
/// let arch = file.metadata["architecture"]
/// ```
public final class SafeTensorsFile: @unchecked Sendable {
    /// The path the file was opened from (used in every error).
    public let path: String
    /// `__metadata__` (string to string); empty when absent.
    public let metadata: [String: String]
    /// Every tensor, by name.
    public let tensors: [String: TensorInfo]
    private let mapping: MappedFile

    /// The largest header accepted (the reference implementation's limit).
    public static let maxHeaderBytes = 100_000_000

    public init(path: String) throws {
        self.path = path
        let m = try MappedFile(path: path)
        mapping = m
        let n64 = UInt64(littleEndian: m.base.loadUnaligned(as: UInt64.self))
        guard n64 <= UInt64(m.size - 8) else {
            throw SafeTensorsError.truncated(file: path,
                detail: "the header claims \(n64) bytes but only \(m.size - 8) follow the length field")
        }
        let n = Int(n64)
        guard n >= 2 else { throw SafeTensorsError.invalidHeader(file: path, detail: "header length \(n) is too small for a JSON object") }
        guard n <= Self.maxHeaderBytes else {
            throw SafeTensorsError.invalidHeader(file: path, detail: "header length \(n) exceeds \(Self.maxHeaderBytes) bytes")
        }
        let headerBytes = Data(bytes: m.base + 8, count: n)
        let dataStart = 8 + n
        let dataSize = m.size - dataStart
        let raw = try Self.decodeHeader(headerBytes, path: path)
        metadata = raw.metadata

        var infos: [String: TensorInfo] = [:]
        for (name, entry) in raw.tensors {
            guard let dtype = DType(rawValue: entry.dtype) else {
                throw SafeTensorsError.invalidTensor(file: path, tensor: name, detail: "unknown dtype '\(entry.dtype)'")
            }
            guard entry.dataOffsets.count == 2 else {
                throw SafeTensorsError.invalidTensor(file: path, tensor: name,
                    detail: "data_offsets has \(entry.dataOffsets.count) values, expected 2")
            }
            let (b, e) = (entry.dataOffsets[0], entry.dataOffsets[1])
            guard b >= 0, e >= b else {
                throw SafeTensorsError.invalidTensor(file: path, tensor: name, detail: "data_offsets [\(b), \(e)] are not an ascending range")
            }
            var elements = 1
            for d in entry.shape {
                guard d >= 0 else {
                    throw SafeTensorsError.invalidTensor(file: path, tensor: name, detail: "negative dimension in shape \(entry.shape)")
                }
                let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else {
                    throw SafeTensorsError.invalidTensor(file: path, tensor: name, detail: "shape \(entry.shape) overflows")
                }
                elements = p
            }
            let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, bytes == e - b else {
                throw SafeTensorsError.invalidTensor(file: path, tensor: name,
                    detail: "shape \(entry.shape) of \(dtype.rawValue) needs \(bytes) bytes but data_offsets span \(e - b)")
            }
            guard e <= dataSize else {
                throw SafeTensorsError.truncated(file: path,
                    detail: "tensor '\(name)' ends at data byte \(e) but the data section has \(dataSize) bytes")
            }
            infos[name] = TensorInfo(name: name, dtype: dtype, shape: entry.shape, fileRange: (dataStart + b)..<(dataStart + e))
        }
        // Non-overlapping: sorted by start, each non-empty range must begin at or after the previous end.
        let ordered = infos.values.filter { !$0.fileRange.isEmpty }
            .sorted { ($0.fileRange.lowerBound, $0.name) < ($1.fileRange.lowerBound, $1.name) }
        for (a, b) in zip(ordered, ordered.dropFirst()) where b.fileRange.lowerBound < a.fileRange.upperBound {
            throw SafeTensorsError.overlappingTensors(file: path, first: a.name, second: b.name)
        }
        tensors = infos
    }

    /// The description of tensor `name`, or `missingTensor`.
    public func info(_ name: String) throws -> TensorInfo {
        guard let i = tensors[name] else { throw SafeTensorsError.missingTensor(file: path, tensor: name) }
        return i
    }

    /// The raw bytes of tensor `name` (any dtype), in mapped memory.
    public func bytes(_ name: String) throws -> UnsafeRawBufferPointer {
        let i = try info(name)
        return UnsafeRawBufferPointer(start: mapping.base + i.fileRange.lowerBound, count: i.fileRange.count)
    }

    /// Float32 tensor `name`, checked against `shape` when given (pass nil to accept any shape).
    public func floats(_ name: String, shape: [Int]? = nil) throws -> FloatTensor {
        let i = try info(name)
        guard i.dtype == .f32 else {
            throw SafeTensorsError.unexpectedDType(file: path, tensor: name, expected: .f32, found: i.dtype)
        }
        if let shape, shape != i.shape {
            throw SafeTensorsError.unexpectedShape(file: path, tensor: name, expected: shape, found: i.shape)
        }
        let p = mapping.base + i.fileRange.lowerBound
        guard Int(bitPattern: p) % MemoryLayout<Float>.alignment == 0 else {
            throw SafeTensorsError.invalidTensor(file: path, tensor: name,
                detail: "its data starts at file byte \(i.fileRange.lowerBound), not aligned to 4 bytes")
        }
        return FloatTensor(name: name, shape: i.shape, pointer: p.assumingMemoryBound(to: Float.self), owner: self)
    }

    /// Metadata value `key` decoded as JSON into `T` (e.g. an architecture description).
    public func metadataJSON<T: Decodable>(_ key: String, as type: T.Type) throws -> T {
        guard let text = metadata[key] else {
            throw SafeTensorsError.invalidMetadata(file: path, key: key, detail: "missing")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(text.utf8))
        } catch let e as DecodingError {
            throw SafeTensorsError.invalidMetadata(file: path, key: key, detail: describe(e))
        } catch {
            throw SafeTensorsError.invalidMetadata(file: path, key: key, detail: "\(error)")
        }
    }

    // MARK: header JSON

    private struct Entry: Decodable {
        let dtype: String
        let shape: [Int]
        let dataOffsets: [Int]
        enum CodingKeys: String, CodingKey { case dtype, shape, dataOffsets = "data_offsets" }
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// The header: `__metadata__` (string to string) and one entry per tensor.
    private struct Header: Decodable {
        var metadata: [String: String] = [:]
        var tensors: [String: Entry] = [:]
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: AnyKey.self)
            for key in c.allKeys {
                if key.stringValue == "__metadata__" {
                    metadata = try c.decode([String: String].self, forKey: key)
                } else {
                    tensors[key.stringValue] = try c.decode(Entry.self, forKey: key)
                }
            }
        }
    }

    private static func decodeHeader(_ bytes: Data, path: String) throws -> Header {
        guard bytes.first == UInt8(ascii: "{") else {
            throw SafeTensorsError.invalidHeader(file: path, detail: "it does not start with '{' (not a safetensors file?)")
        }
        do {
            return try JSONDecoder().decode(Header.self, from: bytes)
        } catch let e as DecodingError {
            throw SafeTensorsError.invalidHeader(file: path, detail: describe(e))
        } catch {
            throw SafeTensorsError.invalidHeader(file: path, detail: "\(error)")
        }
    }
}

/// One line for a decoding error: where and what.
func describe(_ e: DecodingError) -> String {
    func at(_ c: DecodingError.Context) -> String {
        let p = c.codingPath.map(\.stringValue).joined(separator: ".")
        return p.isEmpty ? "" : " at '\(p)'"
    }
    switch e {
    case .typeMismatch(let t, let c): return "wrong type\(at(c)), expected \(t)"
    case .valueNotFound(let t, let c): return "missing value\(at(c)), expected \(t)"
    case .keyNotFound(let k, let c): return "missing key '\(k.stringValue)'\(at(c))"
    case .dataCorrupted(let c): return "not valid JSON\(at(c)): \(c.debugDescription)"
    @unknown default: return "\(e)"
    }
}

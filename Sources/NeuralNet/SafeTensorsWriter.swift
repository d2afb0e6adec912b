// safetensors writer for float32 tensors (the Swift twin of tools/safetensors_io.py's `save`):
// used by tests to build valid and deliberately broken files, and by tools that export weights.
import Foundation

/// Encodes float32 tensors and string metadata as a safetensors file image.
public enum SafeTensorsWriter {
    /// Tensors are laid out in the given order with no gaps; the JSON header is padded with
    /// spaces to a multiple of 8 bytes so that the data section stays aligned.
    public static func encode(_ tensors: [(name: String, shape: [Int], values: [Float])],
                              metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for t in tensors {
            let bytes = t.values.count * 4
            header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        json.append(contentsOf: [UInt8](repeating: UInt8(ascii: " "), count: (8 - json.count % 8) % 8))
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors {
            if UInt32(1).littleEndian == 1 {  // little-endian host: the bytes are already in file order
                t.values.withUnsafeBytes { out.append(contentsOf: $0) }
            } else {
                for v in t.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
            }
        }
        return out
    }
}

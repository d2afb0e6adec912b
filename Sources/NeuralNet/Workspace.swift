// Buffers allocated once per network.
import Foundation

/// A fixed-size float buffer, zero-initialised, freed with its owner. Not thread-safe: one
/// network, one thread at a time.
///
/// Buffers of 1 MiB or more (packed weights, large feature maps) are 2 MiB-aligned and asked to
/// use transparent huge pages (`MADV_HUGEPAGE`; this kernel's THP mode is "madvise"): streaming
/// 15 MB of weights per patch through 4 KiB pages costs thousands of TLB misses. Smaller buffers
/// are 64-byte aligned (a cache line).
public final class FloatBuffer {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    static let hugeThreshold = 1 << 20
    static let hugePage = 2 << 20

    public init(count: Int) {
        self.count = max(count, 1)
        let bytes = self.count * MemoryLayout<Float>.stride
        var raw: UnsafeMutableRawPointer?
        if bytes >= Self.hugeThreshold {
            let rounded = (bytes + Self.hugePage - 1) / Self.hugePage * Self.hugePage
            if posix_memalign(&raw, Self.hugePage, rounded) == 0, let raw {
                _ = madvise(raw, rounded, MADV_HUGEPAGE)  // advice only: failure leaves 4 KiB pages
            }
        }
        if raw == nil, posix_memalign(&raw, 64, bytes) != 0 { raw = nil }
        guard let raw else { fatalError("FloatBuffer: out of memory allocating \(bytes) bytes") }
        pointer = raw.bindMemory(to: Float.self, capacity: self.count)
        pointer.initialize(repeating: 0, count: self.count)
    }

    deinit { free(pointer) }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

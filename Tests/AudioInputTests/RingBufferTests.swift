import AudioInput
import Foundation
import XCTest

final class RingBufferTests: XCTestCase {
    /// Every layout of a small ring: each start offset, each fill level, each read size.
    func testEveryWrapAroundLayout() {
        let capacity = 8
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: capacity)
        defer { storage.deallocate() }
        for start in 0..<(2 * capacity) {
            for fill in 0...capacity {
                for readSize in 1...capacity {
                    storage.initialize(repeating: -1)
                    let ring = SampleRing(storage: storage, startingAt: start)
                    let input = (0..<fill).map { Float(100 + $0) }
                    XCTAssertEqual(ring.write(input), fill)
                    XCTAssertEqual(ring.availableToRead, fill)
                    XCTAssertEqual(ring.availableToWrite, capacity - fill)
                    // The two-region view covers the data in order, split where storage wraps.
                    let (a, b) = ring.readableRegions()
                    XCTAssertEqual(Array(a) + Array(b), input)
                    let offset = start % capacity
                    XCTAssertEqual(a.count, min(fill, capacity - offset))
                    // A full ring refuses more.
                    if fill == capacity { XCTAssertEqual(ring.write([1]), 0) }
                    var out: [Float] = []
                    var chunk = [Float](repeating: 0, count: readSize)
                    while true {
                        let n = chunk.withUnsafeMutableBufferPointer { ring.read(into: $0) }
                        if n == 0 { break }
                        out += chunk[0..<n]
                    }
                    XCTAssertEqual(out, input, "start \(start) fill \(fill) read \(readSize)")
                    XCTAssertEqual(ring.availableToRead, 0)
                    XCTAssertEqual(ring.totalRead, start + fill)
                }
            }
        }
    }

    /// Writes that wrap, interleaved with reads, preserve order.
    func testPartialWritesWrap() {
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: 4)
        defer { storage.deallocate() }
        let ring = SampleRing(storage: storage, startingAt: 3)
        XCTAssertEqual(ring.write([1, 2, 3, 4, 5, 6]), 4)
        var two = [Float](repeating: 0, count: 2)
        XCTAssertEqual(two.withUnsafeMutableBufferPointer { ring.read(into: $0) }, 2)
        XCTAssertEqual(two, [1, 2])
        XCTAssertEqual(ring.write([7, 8, 9]), 2)
        var all = [Float](repeating: 0, count: 8)
        XCTAssertEqual(all.withUnsafeMutableBufferPointer { ring.read(into: $0) }, 4)
        XCTAssertEqual(Array(all[0..<4]), [3, 4, 7, 8])
    }

    /// Skipping ahead keeps only the newest samples and reports what it dropped.
    func testSkipKeepsNewest() {
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: 16)
        defer { storage.deallocate() }
        let ring = SampleRing(storage: storage, startingAt: 13)
        ring.write((0..<10).map(Float.init))
        XCTAssertEqual(ring.skip(keepingNewest: 3), 7)
        var out = [Float](repeating: 0, count: 8)
        XCTAssertEqual(out.withUnsafeMutableBufferPointer { ring.read(into: $0) }, 3)
        XCTAssertEqual(Array(out[0..<3]), [7, 8, 9])
        XCTAssertEqual(ring.skip(keepingNewest: 3), 0)
    }

    /// Two threads, two million samples in random chunk sizes: every sample arrives, in order.
    func testTwoThreadStress() {
        let capacity = 1 << 10
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: capacity)
        defer { storage.deallocate() }
        let ring = SampleRing(storage: storage)
        let total = 2_000_000  // exactly representable in Float (< 2^24)
        let producer = Thread {
            var next = 0
            var chunk = [Float](repeating: 0, count: 700)
            var rng = SystemRandomNumberGenerator()
            while next < total {
                let n = min(total - next, Int.random(in: 1...700, using: &rng))
                for i in 0..<n { chunk[i] = Float(next + i) }
                var done = 0
                while done < n {
                    done += chunk.withUnsafeBufferPointer { ring.write(UnsafeBufferPointer(rebasing: $0[done..<n])) }
                }
                next += n
            }
        }
        producer.start()
        var expected = 0
        var mismatches = 0
        var chunk = [Float](repeating: 0, count: 513)
        var rng = SystemRandomNumberGenerator()
        while expected < total {
            let want = Int.random(in: 1...513, using: &rng)
            let n = chunk.withUnsafeMutableBufferPointer { ring.read(into: UnsafeMutableBufferPointer(rebasing: $0[0..<want])) }
            for i in 0..<n where chunk[i] != Float(expected + i) { mismatches += 1 }
            expected += n
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertEqual(expected, total)
        XCTAssertEqual(ring.totalWritten, total)
    }
}

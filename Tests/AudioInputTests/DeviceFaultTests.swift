import AudioInput
import Foundation
import TestSupport
import XCTest

/// Device faults on the real capture path: alsa-lib's `file` plugin device (real open, hw
/// params, period reads, conversion, ring) with the capture loop's fault injector standing in
/// for the hardware misbehaving (an overrun, an unplugged device).
final class DeviceFaultTests: XCTestCase {
    private var dir: URL!
    private var storage: UnsafeMutableBufferPointer<Float>!
    private var ring: SampleRing!

    override func setUp() {
        dir = TestPaths.makeTempDir("avgas-fault")
        storage = .allocate(capacity: 1 << 15)
        storage.initialize(repeating: 0)
        ring = SampleRing(storage: storage)
    }

    override func tearDown() {
        storage.deallocate()
        try? FileManager.default.removeItem(at: dir)
    }

    /// A capture of a raw float file through the file plugin. `reopenInterval` is short so the
    /// device-lost cycle runs in a test's time.
    private func makeCapture(reopenInterval: Double = 0.2) throws -> ALSACapture {
        let raw = dir.appendingPathComponent("in.raw")
        let signal = (0..<16_000).map { Float(sin(Double($0) * 0.05)) * 0.5 }
        try signal.withUnsafeBufferPointer { try Data(buffer: $0).write(to: raw) }
        var config = ALSACapture.Configuration(device: "filecap")
        config.configText = ALSACaptureTests.fileDeviceConfig(infile: raw.path)
        config.reopenInterval = reopenInterval
        return ALSACapture(config)
    }

    /// Drains the ring on a consumer thread, like the analysis thread, until stopped. Returns
    /// the longest time one `read` call took (the consumer must never be blocked).
    private final class Drain: @unchecked Sendable {
        let stopFlag = NSLock()
        var stopped = false
        var longestRead = 0.0
        var consumed = 0
        let done = DispatchSemaphore(value: 0)
        func start(_ ring: SampleRing) {
            let t = Thread { [self] in
                let chunk = UnsafeMutableBufferPointer<Float>.allocate(capacity: 4096)
                defer { chunk.deallocate(); done.signal() }
                while true {
                    stopFlag.lock(); let s = stopped; stopFlag.unlock()
                    if s { return }
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    let n = ring.read(into: chunk)
                    let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                    stopFlag.lock(); longestRead = max(longestRead, dt); consumed += n; stopFlag.unlock()
                    if n == 0 { usleep(200) }
                }
            }
            t.start()
        }
        func stop() { stopFlag.lock(); stopped = true; stopFlag.unlock(); done.wait() }
        var snapshot: (longest: Double, consumed: Int) { stopFlag.lock(); defer { stopFlag.unlock() }; return (longestRead, consumed) }
    }

    private func wait(_ seconds: Double, until condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(500)
        }
        return condition()
    }

    /// An overrun in the middle of a run: recovered (snd_pcm_recover + prepare + start) and
    /// counted, and the next period is delivered well within 100 ms of the injection.
    func testInjectedOverrunIsRecoveredWithin100msAndCounted() throws {
        let capture = try makeCapture()
        let drain = Drain()
        drain.start(ring)
        try capture.start(into: ring)
        defer { capture.stop(); drain.stop() }
        let stats = capture.stats
        XCTAssertTrue(wait(10) { stats.producedSamples.load(ordering: .relaxed) > 16_000 }, "capture never started delivering")
        var recoveries: [Double] = []
        for i in 1...5 {
            let before = stats.producedSamples.load(ordering: .relaxed)
            let t0 = DispatchTime.now().uptimeNanoseconds
            capture.faults.injectXruns(1)
            // Recovered: counted, then a new period arrives.
            XCTAssertTrue(wait(2) { stats.xruns.load(ordering: .relaxed) == i }, "overrun \(i) not counted")
            XCTAssertTrue(wait(2) { stats.producedSamples.load(ordering: .relaxed) > before + 160 }, "no audio after overrun \(i)")
            recoveries.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        XCTAssertEqual(stats.xruns.load(ordering: .relaxed), 5)
        XCTAssertEqual(stats.state, .running)
        // The median must meet the 100 ms budget; the worst case gets slack because this
        // 2-core machine is shared (a descheduled capture thread is not a slow recovery).
        let sorted = recoveries.sorted()
        let median = sorted[sorted.count / 2], worst = sorted.last!
        print(String(format: "overrun recovery (injection to next delivered period): median %.2f ms, worst %.2f ms of %d",
                     median * 1000, worst * 1000, sorted.count))
        XCTAssertLessThan(median, 0.1, "overrun recovery took \(median) s (median)")
        XCTAssertLessThan(worst, 0.5, "overrun recovery took \(worst) s (worst)")
        XCTAssertTrue(wait(5) { stats.producedSamples.load(ordering: .relaxed) > 64_000 }, "samples stopped flowing")
    }

    /// A read error that persists (device unplugged): the capture marks the device lost,
    /// delivers nothing, keeps failing to reopen while it is gone (no flapping back to
    /// running), and when it comes back reopens by itself and audio flows again. The consumer
    /// is never blocked meanwhile.
    func testLostDeviceIsReportedThenReopenedByItself() throws {
        let capture = try makeCapture(reopenInterval: 0.2)
        let drain = Drain()
        drain.start(ring)
        try capture.start(into: ring)
        defer { capture.stop(); drain.stop() }
        let stats = capture.stats
        XCTAssertTrue(wait(10) { stats.producedSamples.load(ordering: .relaxed) > 16_000 })
        XCTAssertEqual(stats.state, .running)

        capture.faults.setDeviceGone(true)
        XCTAssertTrue(wait(2) { stats.state == .lost }, "device never reported lost")
        let producedWhenLost = stats.producedSamples.load(ordering: .relaxed)
        // Several reopen intervals with the device still gone: it stays lost, nothing arrives.
        var states = Set<Int>()
        let end = Date().addingTimeInterval(1.0)
        while Date() < end { states.insert(stats.deviceState.load(ordering: .relaxed)); usleep(1000) }
        XCTAssertEqual(states, [DeviceState.lost.rawValue], "state flapped while the device was gone")
        XCTAssertEqual(stats.producedSamples.load(ordering: .relaxed), producedWhenLost)
        XCTAssertEqual(stats.reopens.load(ordering: .relaxed), 0, "reopened a device that is still gone")

        capture.faults.setDeviceGone(false)
        XCTAssertTrue(wait(3) { stats.reopens.load(ordering: .relaxed) >= 1 }, "never reopened")
        XCTAssertTrue(wait(2) { stats.state == .running })
        XCTAssertTrue(wait(5) { stats.producedSamples.load(ordering: .relaxed) > producedWhenLost + 16_000 }, "no audio after reopening")
        // The consumer kept reading all along, never waiting on the capture side. (It polls the
        // ring, so it may be a period or two behind the producer at this instant: wait for it.
        // Asserting at once failed once under AddressSanitizer: 31,040 read of 32,000+ produced.)
        XCTAssertTrue(wait(2) { drain.snapshot.consumed > 32_000 }, "the consumer stopped reading: \(drain.snapshot.consumed)")
        let s = drain.snapshot
        XCTAssertLessThan(s.longest, 0.05, "a ring read took \(s.longest) s")
    }

    /// The device is gone and comes back twice: each loss is reported and each return reopens.
    func testRepeatedLossesEachReopen() throws {
        let capture = try makeCapture(reopenInterval: 0.1)
        try capture.start(into: ring)
        defer { capture.stop() }
        let drain = Drain()
        drain.start(ring)
        defer { drain.stop() }
        let stats = capture.stats
        for round in 1...2 {
            capture.faults.setDeviceGone(true)
            XCTAssertTrue(wait(2) { stats.state == .lost }, "round \(round): not lost")
            capture.faults.setDeviceGone(false)
            XCTAssertTrue(wait(3) { stats.reopens.load(ordering: .relaxed) == round && stats.state == .running }, "round \(round): not reopened")
        }
        let before = stats.producedSamples.load(ordering: .relaxed)
        XCTAssertTrue(wait(5) { stats.producedSamples.load(ordering: .relaxed) > before + 8000 })
    }

    /// Stopping while the device is lost returns promptly (the retry loop checks for stop).
    func testStopWhileLostReturnsPromptly() throws {
        let capture = try makeCapture(reopenInterval: 5)
        try capture.start(into: ring)
        capture.faults.setDeviceGone(true)
        XCTAssertTrue(wait(2) { capture.stats.state == .lost })
        let t0 = Date()
        capture.stop()
        XCTAssertLessThan(Date().timeIntervalSince(t0), 0.5)
        XCTAssertEqual(capture.stats.state, .stopped)
    }
}

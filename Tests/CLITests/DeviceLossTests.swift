import Foundation
import TestSupport
import XCTest

/// Device unplugged mid-run (Runner test hook AVGAS_TEST_DEVICE_GONE drives the capture fault injector).
final class DeviceLossTests: XCTestCase {
    let demo = TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path

    /// The capture device vanishes 1.5 s into a live run and comes back 2.5 s later: the
    /// program says so once, keeps running, reopens the device by itself, says it resumed,
    /// and events keep coming; SIGINT then stops it normally.
    func testLiveRunSurvivesUnpluggedDevice() throws {
        let device = try ALSAFileDevice(name: "unplugcap", samples: ALSAFileDevice.tone())
        defer { device.remove() }
        let home = device.home
        let events = home.appendingPathComponent("e.jsonl").path
        let errFile = home.appendingPathComponent("stderr.txt")
        XCTAssertTrue(FileManager.default.createFile(atPath: errFile.path, contents: nil), "could not create a test fixture file")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Binary.path("avgas-live"))
        p.arguments = ["--device", "unplugcap", "--headless", "--no-images", "--events", events]
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = home.path
        env["AVGAS_TEST_DEVICE_GONE"] = "1.5,4"
        p.environment = env
        p.standardError = try FileHandle(forWritingTo: errFile)
        try p.run()
        func lineCount() -> Int { ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").split(separator: "\n").count }
        func stderrText() -> String { (try? String(contentsOf: errFile, encoding: .utf8)) ?? "" }
        // While gone (about 3 s in): it said so, and is still running.
        usleep(3_200_000)
        XCTAssertTrue(p.isRunning, stderrText())
        XCTAssertTrue(stderrText().contains("stopped delivering audio"), stderrText())
        let duringLoss = lineCount()
        // Back: reopened within a retry interval (2 s), events flow again.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, !stderrText().contains("capture resumed") { usleep(100_000) }
        usleep(1_500_000)
        XCTAssertTrue(p.isRunning)
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, stderrText())
        let err = stderrText()
        XCTAssertEqual(err.components(separatedBy: "stopped delivering audio").count - 1, 1, "said it more than once: \(err)")
        XCTAssertEqual(err.components(separatedBy: "capture resumed").count - 1, 1, err)
        XCTAssertGreaterThan(lineCount(), duringLoss, "no events after the device came back")
    }

    /// A device defined by a `file` plugin reading a pipe: the driver blocks in open (nobody
    /// writes the pipe) or in a read (the writer stalls). Neither may hold the program hostage.
    func fifoDevice(_ name: String) throws -> (home: URL, fifo: String) {
        let home = TestPaths.makeTempDir("avgas-\(name)")
        let fifo = home.appendingPathComponent("\(name).raw").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        try """
        pcm.\(name) {
            type file
            slave.pcm "null"
            file "/dev/null"
            infile "\(fifo)"
            format "raw"
        }
        """.write(to: home.appendingPathComponent(".asoundrc"), atomically: true, encoding: .utf8)
        return (home, fifo)
    }

    func testDeviceBlockedInOpenGivesOneLine() throws {
        let (home, _) = try fifoDevice("nowriter")
        defer { try? FileManager.default.removeItem(at: home) }
        let t0 = Date()
        let r = try Binary.run("avgas-live", ["--device", "nowriter", "--headless", "--no-images"],
                               environment: ["HOME": home.path], timeout: 60)
        XCTAssertEqual(r.status, 69, r.stderr)
        XCTAssertEqual(r.stderrLines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("did not open within"), r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 20)
    }

    func testStalledDeviceIsReportedAndSIGINTStillQuits() throws {
        let (home, fifo) = try fifoDevice("stallcap")
        defer { try? FileManager.default.removeItem(at: home) }
        // The writer: 1.5 s of tone at real speed, then silence on the wire (the pipe stays open).
        let release = DispatchSemaphore(value: 0)
        let writerDone = DispatchSemaphore(value: 0)
        Thread {
            let fd = open(fifo, O_WRONLY)
            let block = (0..<1600).map { Float(sin(Double($0) * 0.17)) * 0.3 }
            for _ in 0..<15 {
                _ = block.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, $0.count) }
                usleep(100_000)
            }
            release.wait()
            close(fd)
            writerDone.signal()
        }.start()
        let errFile = home.appendingPathComponent("stderr.txt")
        XCTAssertTrue(FileManager.default.createFile(atPath: errFile.path, contents: nil))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Binary.path("avgas-live"))
        p.arguments = ["--device", "stallcap", "--headless", "--no-images", "--events", home.appendingPathComponent("e.jsonl").path]
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = home.path
        p.environment = env
        p.standardError = try FileHandle(forWritingTo: errFile)
        try p.run()
        func stderrText() -> String { (try? String(contentsOf: errFile, encoding: .utf8)) ?? "" }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, !stderrText().contains("has delivered no audio") { usleep(100_000) }
        XCTAssertTrue(stderrText().contains("capture device 'stallcap' has delivered no audio for 2 s"), stderrText())
        XCTAssertTrue(p.isRunning)
        let t0 = Date()
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(t0), 8, "SIGINT took too long with the device stalled")
        XCTAssertEqual(p.terminationStatus, 0, stderrText())
        XCTAssertTrue(stderrText().contains("did not stop (blocked in its driver)"), stderrText())
        release.signal()
        writerDone.wait()
    }
}

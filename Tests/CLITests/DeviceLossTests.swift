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
}

import AudioInput
import Foundation
import Listening
import Pipeline
import TestSupport
import XCTest

/// The `--events` JSON lines contract of docs/architecture.md, checked on the line itself and
/// on the real analysis of the demo: `{"t": 3.475, "active": [{"class": "dog barking",
/// "score": 0.91}, ...]}`, t the stream time at the end of the analysis window (three decimals),
/// class a vocabulary name, active strongest first (SceneStore: "Active classes, strongest first").
final class EventsContractTests: XCTestCase {
    func testLineFormatAndEscaping() throws {
        let odd = "a \"quoted\" \\ name\n\t\r\u{1}\u{1f} é"
        let line = EventsWriter.line(time: 3.4217, active: [ActiveClass(name: "dog barking", index: 0, score: 0.91234),
                                                            ActiveClass(name: odd, index: 1, score: 0.5)])
        XCTAssertEqual(line, #"{"t": 3.422, "active": [{"class": "dog barking", "score": 0.912}, "#
                           + #"{"class": "a \"quoted\" \\ name\n\t\r\u0001\u001f é", "score": 0.500}]}"# + "\n")
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let active = try XCTUnwrap(obj["active"] as? [[String: Any]])
        XCTAssertEqual(active.map { $0["class"] as? String }, ["dog barking", odd])
        XCTAssertEqual(EventsWriter.line(time: 0, active: []), "{\"t\": 0.000, \"active\": []}\n")
    }

    func testDemoEventsFollowTheContract() throws {
        let demo = TestPaths.repoRoot.appendingPathComponent("Assets/demo/soundscape.wav").path
        let audio = Array(try FileSource(path: demo).readAll().prefix(16_000 * 6))
        let dir = TestPaths.makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let listener = try SceneListener(assets: TestPaths.repoRoot.appendingPathComponent("Assets"))
        let names = Set(listener.vocabulary.classes.map(\.name))
        let path = dir.appendingPathComponent("events.jsonl").path
        let analyzer = Analyzer(hopMilliseconds: 100, listener: listener, spectrogram: SpectrogramStore(capacity: 64),
                                scenes: SceneStore(), events: try EventsWriter(path: path))
        try analyzer.consume(audio, pushSize: 1600)
        try analyzer.flush()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.last, "", "the file ends with a newline")
        var times: [Double] = []
        var multi = 0
        for l in lines.dropLast() {
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any], String(l))
            XCTAssertEqual(Set(obj.keys), ["t", "active"])
            let t = try XCTUnwrap(obj["t"] as? Double)
            XCTAssertNotNil(l.range(of: #"^\{"t": [0-9]+\.[0-9]{3}, "active": \["#, options: .regularExpression), String(l))
            times.append(t)
            let active = try XCTUnwrap(obj["active"] as? [[String: Any]])
            var scores: [Double] = []
            for a in active {
                XCTAssertEqual(Set(a.keys), ["class", "score"])
                let name = try XCTUnwrap(a["class"] as? String)
                XCTAssertTrue(names.contains(name), name)
                let s = try XCTUnwrap(a["score"] as? Double)
                XCTAssertTrue(s > 0 && s <= 1, "\(s)")
                scores.append(s)
            }
            XCTAssertEqual(scores, scores.sorted(by: >), "strongest first: \(l)")
            if active.count >= 2 { multi += 1 }
        }
        XCTAssertNotNil(lines.first { $0.range(of: #""score": [01]\.[0-9]{3}\}"#, options: .regularExpression) != nil },
                        "scores have three decimals")
        // Hops end at 0.975 s (the first 96-frame patch: 95 hops of 10 ms + the last frame's 25 ms
        // window) and every 0.1 s after; mid-hops fall halfway. Printed with three decimals: on
        // that grid (two decimals printed 0.97, 1.07, 1.18, 1.27..., uneven steps).
        XCTAssertEqual(times.first ?? 0, 0.975, accuracy: 0.0001)
        XCTAssertNotNil(lines.first { $0.hasPrefix(#"{"t": 0.975, "#) }, "t has three decimals")
        for (a, b) in zip(times, times.dropFirst()) { XCTAssertGreaterThan(b, a) }
        var hops = 0
        for t in times {
            let k = ((t - 0.975) / 0.05).rounded()
            XCTAssertEqual(t, 0.975 + 0.05 * k, accuracy: 0.0001, "\(t)")
            if Int(k) % 2 == 0 { hops += 1 }
        }
        XCTAssertEqual(hops, 51)  // 0.975 ... 5.975 s
        XCTAssertGreaterThan(multi, 0, "the demo has moments with two classes at once")
    }
}

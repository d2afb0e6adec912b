import Foundation
import TestSupport
import XCTest
@testable import Listening

final class ClassVocabularyTests: XCTestCase {
    static let yamnetNames: [String] = {
        (try? YAMNet.loadClassNames(path: TestPaths.repoRoot.appendingPathComponent("Assets/models/yamnet_classes.txt").path)) ?? []
    }()

    /// The names issue 3 and the dataset require, exactly.
    static let requiredNames = [
        "dog barking", "cat meowing", "cow lowing", "horse neighing", "pig oinking", "sheep bleating", "chicken crowing",
        "chicken clucking", "duck quacking", "owl hooting", "bird chirping, tweeting", "crow cawing", "frog croaking",
        "cricket chirping", "bee, wasp, etc. buzzing", "lions roaring", "wolf howling", "playing piano",
        "playing electronic organ", "playing acoustic guitar", "playing violin, fiddle", "playing cello", "playing harp",
        "playing trumpet", "playing saxophone", "playing flute", "playing drum kit", "church bell ringing", "singing choir",
        "raining", "thunder", "sea waves", "wind noise", "fire crackling", "car passing by", "train horning", "helicopter",
        "airplane flyby", "ambulance siren", "people speaking", "people clapping", "baby crying", "people crowd",
        "telephone bell ringing", "vacuum cleaner cleaning floors", "fireworks banging",
    ]

    func testProjectVocabularyLoadsAndCitesOnlyRealYAMNetLabels() throws {
        XCTAssertEqual(Self.yamnetNames.count, 521)
        // Loading validates every cited label against YAMNet's class names (exact strings).
        let v = try ClassVocabulary(contentsOf: TestPaths.repoRoot.appendingPathComponent("Assets/classes.json"),
                                    audioSetLabels: Self.yamnetNames)
        XCTAssertGreaterThanOrEqual(v.count, 40)
        for name in Self.requiredNames { XCTAssertNotNil(v.index(of: name), "missing class '\(name)'") }
        for c in v.classes {
            XCTAssertFalse(c.audioset.isEmpty, c.name)
            XCTAssertTrue(c.audioset.contains { $0.weight == 1 }, "\(c.name) needs one label of full weight")
        }
        XCTAssertEqual(v.classes[v.index(of: "helicopter")!].layer, .sky)
        XCTAssertEqual(v.classes[v.index(of: "dog barking")!].layer, .ground)
    }

    func testUnknownFieldsAreIgnored() throws {
        let json = #"{"version": 1, "classes": [{"name": "dog barking", "group": "animal", "layer": "ground", "thin": false,"#
            + #" "recordings": ["a.wav"], "images": 12, "audioset": [{"label": "Bark", "weight": 1.0}]}], "extra": 3}"#
        let v = try ClassVocabulary(json: Data(json.utf8), source: "x.json", audioSetLabels: Self.yamnetNames)
        XCTAssertEqual(v.names, ["dog barking"])
    }

    func testInvalidVocabulariesGiveClearErrors() {
        func entry(_ name: String, _ label: String = "Bark", _ weight: Double = 1, layer: String = "ground") -> String {
            #"{"name": "\#(name)", "group": "g", "layer": "\#(layer)", "audioset": [{"label": "\#(label)", "weight": \#(weight)}]}"#
        }
        let cases: [(String, (VocabularyError) -> Bool)] = [
            (#"{"version": 2, "classes": [\#(entry("a"))]}"#, { if case .invalid(_, let d) = $0 { d.contains("version") } else { false } }),
            (#"{"version": 1, "classes": []}"#, { if case .invalid(_, let d) = $0 { d.contains("no classes") } else { false } }),
            (#"{"version": 1, "classes": [\#(entry("a")), \#(entry("a"))]}"#, { $0 == .invalidClass(file: "v.json", name: "a", detail: "listed twice") }),
            (#"{"version": 1, "classes": [\#(entry("a", "Barking"))]}"#, { $0 == .unknownLabel(file: "v.json", name: "a", label: "Barking") }),
            (#"{"version": 1, "classes": [\#(entry("a", "Bark", 1.5))]}"#, { if case .invalidClass(_, "a", let d) = $0 { d.contains("weight") } else { false } }),
            (#"{"version": 1, "classes": [\#(entry("a", "Bark", 0))]}"#, { if case .invalidClass(_, "a", let d) = $0 { d.contains("weight") } else { false } }),
            (#"{"version": 1, "classes": [\#(entry("a", layer: "underground"))]}"#, { if case .invalid(_, let d) = $0 { d.contains("layer") } else { false } }),
            (#"{"version": 1, "classes": [{"name": "a", "group": "g", "layer": "sky"}]}"#, { if case .invalid(_, let d) = $0 { d.contains("audioset") } else { false } }),
            (#"{"version": 1, "classes": [{"name": "a", "group": "g", "layer": "sky", "audioset": []}]}"#, { if case .invalidClass(_, "a", _) = $0 { true } else { false } }),
            ("not json", { if case .invalid = $0 { true } else { false } }),
        ]
        for (json, check) in cases {
            XCTAssertThrowsError(try ClassVocabulary(json: Data(json.utf8), source: "v.json", audioSetLabels: Self.yamnetNames), json) { error in
                guard let e = error as? VocabularyError else { return XCTFail("\(error)") }
                XCTAssertTrue(check(e), "\(json): got \(e)")
                XCTAssertTrue(e.description.contains("v.json"), e.description)
            }
        }
        XCTAssertThrowsError(try ClassVocabulary(contentsOf: URL(fileURLWithPath: "/nonexistent/classes.json"), audioSetLabels: [])) { error in
            guard case VocabularyError.cannotRead(let f, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(f, "/nonexistent/classes.json")
        }
    }

    func testNoisyOrMapping() throws {
        let labels = ["A", "B", "C", "D"]
        let json = #"{"version": 1, "classes": ["#
            + #"{"name": "one", "group": "g", "layer": "sky", "audioset": [{"label": "A", "weight": 1.0}]},"#
            + #"{"name": "two", "group": "g", "layer": "sky", "audioset": [{"label": "B", "weight": 1.0}, {"label": "C", "weight": 0.5}]},"#
            + #"{"name": "weak", "group": "g", "layer": "sky", "audioset": [{"label": "D", "weight": 0.25}]}]}"#
        let v = try ClassVocabulary(json: Data(json.utf8), source: "t", audioSetLabels: labels)
        func logit(_ p: Float) -> Float { log(p / (1 - p)) }
        let s = v.scores(fromLogits: [logit(0.8), logit(0.6), logit(0.4), logit(0.9)])
        XCTAssertEqual(s[0], 0.8, accuracy: 1e-5)                        // one full-weight label passes through
        XCTAssertEqual(s[1], 1 - (1 - 0.6) * (1 - 0.5 * 0.4), accuracy: 1e-5)  // 0.68
        XCTAssertEqual(s[2], 0.25 * 0.9, accuracy: 1e-5)                 // a weak label alone stays weak
        let low = v.scores(fromLogits: [-20, -20, -20, -20])
        XCTAssertTrue(low.allSatisfy { $0 < 1e-6 })
        let high = v.scores(fromLogits: [20, 20, 20, 20])
        XCTAssertEqual(high[0], 1, accuracy: 1e-6)
        XCTAssertEqual(high[2], 0.25, accuracy: 1e-6)
    }
}

// The project's class vocabulary (Assets/classes.json) and the mapping from YAMNet's 521
// AudioSet scores to per-class scores.
import Foundation

/// Why the class vocabulary (or the YAMNet class list) could not be used.
public enum VocabularyError: Error, CustomStringConvertible, Equatable {
    case cannotRead(file: String, reason: String)
    case invalid(file: String, detail: String)
    case invalidClass(file: String, name: String, detail: String)
    case unknownLabel(file: String, name: String, label: String)

    public var description: String {
        switch self {
        case .cannotRead(let f, let r): "cannot read \(f): \(r)"
        case .invalid(let f, let d): "\(f) is not a valid class vocabulary: \(d)"
        case .invalidClass(let f, let n, let d): "\(f): class '\(n)': \(d)"
        case .unknownLabel(let f, let n, let l):
            "\(f): class '\(n)' cites AudioSet label '\(l)', which is not a YAMNet class name (check Assets/models/yamnet_classes.txt)"
        }
    }
}

/// Where the composed scene places a class's picture.
public enum SceneLayer: String, Sendable, Codable, CaseIterable {
    case sky, middle, ground
}

/// The classes the program can recognise and draw, loaded from `Assets/classes.json`:
///
/// ```json
/// {"version": 1, "classes": [{"name": "dog barking", "group": "animal", "layer": "ground",
///   "audioset": [{"label": "Bark", "weight": 1.0}, {"label": "Dog", "weight": 0.8}]}, ...]}
/// ```
/// Other fields (the dataset's `thin`, `recordings`, `images`, ...) are ignored here.
///
/// **Mapping rule (weighted evidence, noisy-OR).** Each class cites AudioSet labels with
/// weights w in (0, 1]. With p = sigmoid(logit) YAMNet's probability of a label, the class score is
///
///     score = 1 - prod over cited labels of (1 - w * p)
///
/// i.e. each label is independent evidence that the class is present, trusted to degree w.
/// A single label with w = 1 passes its probability through unchanged; a generic label with a
/// small weight (e.g. "Insect" 0.3 for crickets) can only add a little; scores stay in [0, 1]
/// and never decrease when a label's probability rises.
public struct ClassVocabulary: Sendable {
    /// One AudioSet label cited as evidence for a class.
    public struct Evidence: Sendable, Equatable, Codable {
        public var label: String
        public var weight: Float
    }

    /// One class of the vocabulary.
    public struct Entry: Sendable, Equatable, Codable {
        /// VGGSound-style name, e.g. "dog barking" (used in `--events` output).
        public var name: String
        /// Coarse family: animal, music, nature, vehicle, human, household, urban...
        public var group: String
        /// Where the composed scene draws it.
        public var layer: SceneLayer
        /// AudioSet labels that evidence the class.
        public var audioset: [Evidence]
    }

    private struct File: Decodable {
        var version: Int
        var classes: [Entry]
    }

    /// The classes, in file order (the order of every per-class score array).
    public let classes: [Entry]
    // Flattened evidence: class i uses entries evidenceStart[i] ..< evidenceStart[i + 1]
    // of evidenceIndex (YAMNet class index) and evidenceWeight.
    private let evidenceStart: [Int]
    private let evidenceIndex: [Int]
    private let evidenceWeight: [Float]
    /// Number of YAMNet classes the mapping expects.
    public let audioSetCount: Int

    /// Loads and validates a vocabulary file against YAMNet's class names (`audioSetLabels`,
    /// e.g. from `YAMNet.loadClassNames`).
    public init(contentsOf url: URL, audioSetLabels: [String]) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw VocabularyError.cannotRead(file: url.path, reason: error.localizedDescription)
        }
        try self.init(json: data, source: url.path, audioSetLabels: audioSetLabels)
    }

    /// Parses and validates vocabulary JSON; `source` names it in errors.
    public init(json: Data, source: String, audioSetLabels: [String]) throws {
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: json) } catch let e as DecodingError {
            throw VocabularyError.invalid(file: source, detail: Self.describe(e))
        } catch {
            throw VocabularyError.invalid(file: source, detail: "\(error)")
        }
        guard file.version == 1 else { throw VocabularyError.invalid(file: source, detail: "version \(file.version), expected 1") }
        guard !file.classes.isEmpty else { throw VocabularyError.invalid(file: source, detail: "no classes") }
        var labelIndex: [String: Int] = [:]
        for (i, l) in audioSetLabels.enumerated() where labelIndex[l] == nil { labelIndex[l] = i }
        var seen = Set<String>()
        var start = [0], index: [Int] = [], weight: [Float] = []
        for c in file.classes {
            guard !c.name.isEmpty, c.name == c.name.trimmingCharacters(in: .whitespacesAndNewlines) else {
                throw VocabularyError.invalidClass(file: source, name: c.name, detail: "empty name or surrounding spaces")
            }
            guard seen.insert(c.name).inserted else {
                throw VocabularyError.invalidClass(file: source, name: c.name, detail: "listed twice")
            }
            guard !c.audioset.isEmpty else {
                throw VocabularyError.invalidClass(file: source, name: c.name, detail: "cites no AudioSet label")
            }
            var labels = Set<String>()
            for e in c.audioset {
                guard let i = labelIndex[e.label] else {
                    throw VocabularyError.unknownLabel(file: source, name: c.name, label: e.label)
                }
                guard e.weight > 0, e.weight <= 1 else {
                    throw VocabularyError.invalidClass(file: source, name: c.name,
                        detail: "label '\(e.label)' has weight \(e.weight), expected a value in (0, 1]")
                }
                guard labels.insert(e.label).inserted else {
                    throw VocabularyError.invalidClass(file: source, name: c.name, detail: "label '\(e.label)' cited twice")
                }
                index.append(i)
                weight.append(e.weight)
            }
            start.append(index.count)
        }
        classes = file.classes
        evidenceStart = start
        evidenceIndex = index
        evidenceWeight = weight
        audioSetCount = audioSetLabels.count
    }

    /// Only the class names of a vocabulary file, in order, without validating its evidence
    /// (`--list-classes`, and checking `--only`/`--ignore` before any model loads).
    public static func names(contentsOf url: URL) throws -> [String] {
        struct Named: Decodable { var name: String }
        struct NamesOnly: Decodable { var classes: [Named] }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw VocabularyError.cannotRead(file: url.path, reason: error.localizedDescription)
        }
        do { return try JSONDecoder().decode(NamesOnly.self, from: data).classes.map(\.name) } catch let e as DecodingError {
            throw VocabularyError.invalid(file: url.path, detail: describe(e))
        }
    }

    /// Number of classes.
    public var count: Int { classes.count }
    /// Class names in order.
    public var names: [String] { classes.map(\.name) }
    /// Position of the class called `name`, if any.
    public func index(of name: String) -> Int? { classes.firstIndex { $0.name == name } }

    /// Per-class scores from YAMNet logits (the rule is in the type's documentation).
    /// `logits` has `audioSetCount` values, `scores` has `count`; allocates nothing.
    public func scores(fromLogits logits: UnsafeBufferPointer<Float>, into scores: UnsafeMutableBufferPointer<Float>) {
        precondition(logits.count == audioSetCount && scores.count == classes.count, "ClassVocabulary.scores: buffer sizes")
        for c in 0..<classes.count {
            var miss: Float = 1  // probability that no cited label is (trusted) evidence
            for k in evidenceStart[c]..<evidenceStart[c + 1] {
                let z = logits[evidenceIndex[k]]
                let p = 1 / (1 + expf(-z))
                miss *= 1 - evidenceWeight[k] * p
            }
            scores[c] = 1 - miss
        }
    }

    /// Allocating convenience for `scores(fromLogits:into:)`.
    public func scores(fromLogits logits: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: classes.count)
        logits.withUnsafeBufferPointer { l in out.withUnsafeMutableBufferPointer { scores(fromLogits: l, into: $0) } }
        return out
    }

    private static func describe(_ e: DecodingError) -> String {
        func at(_ c: DecodingError.Context) -> String {
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "" : " at \(p)"
        }
        switch e {
        case .typeMismatch(let t, let c): return "wrong type\(at(c)), expected \(t)"
        case .valueNotFound(let t, let c): return "missing value\(at(c)), expected \(t)"
        case .keyNotFound(let k, let c): return "missing key '\(k.stringValue)'\(at(c))"
        case .dataCorrupted(let c): return "\(c.debugDescription)\(at(c))"
        @unknown default: return "\(e)"
        }
    }
}

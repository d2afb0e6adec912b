import Foundation
import Listening
import NeuralNet

/// The listening stage of one hop: a 0.96 s log-mel patch -> YAMNet -> vocabulary scores ->
/// tracker -> active classes. Owns its workspaces; `analyse` allocates only the small result.
public final class SceneListener {
    /// What the tracker follows.
    public enum PresenceSource: String, Sendable, CaseIterable {
        /// YAMNet's AudioSet scores mapped to the vocabulary (Assets/classes.json evidence).
        case yamnet
        /// The AV-GAS separator's presence probabilities.
        case separator
        /// The larger of the two, per class.
        case combined
    }

    public let yamnet: YAMNet
    public let vocabulary: ClassVocabulary
    /// The AV-GAS separator (per-class presence + 128-d visual embedding), when loaded.
    public let separator: GraphNetwork?
    public let presence: PresenceSource
    public private(set) var tracker: ClassTracker
    private var scores: [Float]

    /// Loads YAMNet and the vocabulary from `assets`, and the separator when `separator` is
    /// true (required then). Errors name the file and the problem.
    public init(assets: URL, tracker configuration: TrackerConfiguration = TrackerConfiguration(),
                separator loadSeparator: Bool = false, presence: PresenceSource = .yamnet) throws(AvgasError) {
        let weights = assets.appendingPathComponent("models/yamnet.safetensors").path
        let labelsPath = assets.appendingPathComponent("models/yamnet_classes.txt").path
        let classesPath = assets.appendingPathComponent("classes.json")
        do {
            yamnet = try YAMNet(path: weights)
        } catch {
            throw AvgasError("\(error)", status: .config)
        }
        let labels: [String]
        do {
            labels = try String(contentsOfFile: labelsPath, encoding: .utf8).split(separator: "\n").map(String.init)
        } catch {
            throw AvgasError("cannot read the AudioSet label list '\(labelsPath)': \(error.localizedDescription)", status: .config)
        }
        guard labels.count == yamnet.classCount else {
            throw AvgasError("'\(labelsPath)' lists \(labels.count) labels but '\(weights)' has \(yamnet.classCount) outputs", status: .config)
        }
        do {
            vocabulary = try ClassVocabulary(contentsOf: classesPath, audioSetLabels: labels)
            tracker = try ClassTracker(classCount: vocabulary.count, configuration: configuration)
        } catch {
            throw AvgasError("\(error)", status: .config)
        }
        scores = [Float](repeating: 0, count: vocabulary.count)
        self.presence = loadSeparator ? presence : .yamnet
        if loadSeparator {
            let path = assets.appendingPathComponent("models/separator.safetensors").path
            do {
                let net = try GraphNetwork(path: path)
                guard net.inputShape == [yamnet.embeddingSize], net.shape(of: "presence_logits") == [vocabulary.count],
                      net.shape(of: "embeddings")?.first == vocabulary.count else {
                    throw AvgasError("'\(path)' does not fit: it needs a \(yamnet.embeddingSize)-d input and \(vocabulary.count) classes", status: .config)
                }
                if let names = net.file.metadata["classes"], let list = try? JSONDecoder().decode([String].self, from: Data(names.utf8)),
                   list != vocabulary.names {
                    throw AvgasError("'\(path)' was trained for other classes than Assets/classes.json; retrain it (make train-separator)", status: .config)
                }
                separator = net
            } catch let e as AvgasError { throw e } catch {
                throw AvgasError("\(error)", status: .config)
            }
        } else {
            separator = nil
        }
    }

    func resetTracker() { tracker.reset() }

    /// Runs one hop on `patch` ([96][64] log-mel) ending at stream time `time`.
    public func analyse(patch: UnsafeBufferPointer<Float>, time: Double) throws -> (active: [ActiveClass], smoothed: [Float]) {
        try yamnet.forward(patch: patch)
        scores.withUnsafeMutableBufferPointer { vocabulary.scores(fromLogits: yamnet.logits, into: $0) }
        var embeddings: UnsafeBufferPointer<Float>?
        if let separator {
            separator.forward(yamnet.embedding)
            embeddings = separator.output("embeddings")
            let logits = separator.output("presence_logits")
            for c in 0..<scores.count {
                let p = 1 / (1 + expf(-logits[c]))
                switch presence {
                case .yamnet: break
                case .separator: scores[c] = p
                case .combined: scores[c] = max(scores[c], p)
                }
            }
        }
        scores.withUnsafeBufferPointer { tracker.update(scores: $0, time: time) }
        let d = separator?.shape(of: "embeddings")?.last ?? 0
        let active = tracker.activeIndices
            .map { i in
                ActiveClass(name: vocabulary.classes[i].name, index: i, score: tracker.states[i].smoothed,
                            embedding: embeddings.map { Array(UnsafeBufferPointer(rebasing: $0[(i * d)..<((i + 1) * d)])) })
            }
            .sorted { $0.score > $1.score }
        return (active, tracker.states.map(\.smoothed))
    }
}

extension SceneListener {
    /// Forgets the tracker's history (a new, unrelated input follows).
    public func reset() { resetTracker() }
}

/// Runs the real analysis path (streaming log-mel, one listening step per hop, tracker) over
/// samples already in memory. Used by the listening tests and `avgas-bench listening`.
public enum OfflineAnalysis {
    /// One analysis hop's result.
    public struct Hop: Sendable {
        public var time: Double
        public var active: [ActiveClass]
    }

    public static func run(_ samples: [Float], listener: SceneListener, hopMilliseconds: Int = 100) throws -> [Hop] {
        listener.reset()
        let scenes = SceneStore()
        let analyzer = Analyzer(hopMilliseconds: hopMilliseconds, listener: listener,
                                spectrogram: SpectrogramStore(capacity: 64), scenes: scenes, events: nil)
        var hops: [Hop] = []
        var lastHops = 0
        // Feed in 10 ms periods, as capture does, collecting each hop's scene.
        try samples.withUnsafeBufferPointer { s in
            var o = 0
            while o < s.count {
                let n = min(160, s.count - o)
                try analyzer.consume(UnsafeBufferPointer(rebasing: s[o..<(o + n)]))
                o += n
                if analyzer.timings.hops != lastHops {
                    lastHops = analyzer.timings.hops
                    let sc = scenes.latest()
                    hops.append(Hop(time: sc.time, active: sc.active))
                }
            }
        }
        return hops
    }
}

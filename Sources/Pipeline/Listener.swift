import Features
import Foundation
import Listening
import NeuralNet
import Synchronization

/// The listening stage of one hop: a 0.96 s log-mel patch -> YAMNet -> vocabulary scores ->
/// tracker -> active classes. Owns its workspaces; `analyse` allocates only the small result.
public final class SceneListener {
    /// What the tracker follows.
    public enum PresenceSource: String, Sendable, CaseIterable {
        /// The learned presence head on the YAMNet embedding (Assets/models/presence.safetensors,
        /// training/avgas/presence.py), noisy-OR-combined with the label mapping as its metadata
        /// says. The default: on the validation clips it hears the right class more often than the
        /// mapping alone at about the same number of wrong classes (training/reports/listening.md).
        case head
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
    /// The learned presence head, loaded when `presence` is `.head` (stateless, shareable by threads).
    public let head: PresenceHead?
    public let presence: PresenceSource
    public private(set) var tracker: ClassTracker
    private var scores: [Float]

    /// Loads YAMNet and the vocabulary from `assets`, the separator when `separator` is true
    /// (required then), and the presence head when `presence` is `.head` (required then). The
    /// tracker follows `configuration`, or without one the defaults measured for the presence
    /// source (`TrackerConfiguration.learnedHead` for the head, `TrackerConfiguration()` otherwise).
    /// `.separator` and `.combined` need the separator; without it the mapping is used. Errors
    /// name the file and the problem.
    public init(assets: URL, tracker configuration: TrackerConfiguration? = nil,
                separator loadSeparator: Bool = false, presence: PresenceSource = .head) throws(AvgasError) {
        let weights = assets.appendingPathComponent("models/yamnet.safetensors").path
        let labelsPath = assets.appendingPathComponent("models/yamnet_classes.txt").path
        let classesPath = assets.appendingPathComponent("classes.json")
        guard FileManager.default.fileExists(atPath: weights) else {
            throw AvgasError("model weights '\(weights)' not found; point --assets (or $AVGAS_ASSETS) at the folder holding models/ and classes.json",
                             status: .config)
        }
        do {
            yamnet = try YAMNet(path: weights)
        } catch {
            throw AvgasError("\(error)", status: .config)
        }
        let front = LogMelConfiguration()
        guard yamnet.patchFrames == front.patchFrames, yamnet.melBands == front.melBands else {
            throw AvgasError("'\(weights)' expects \(yamnet.patchFrames) x \(yamnet.melBands) log-mel patches, but the front end makes "
                             + "\(front.patchFrames) x \(front.melBands); use the YAMNet weights made by make models", status: .config)
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
            let defaults = presence == .head ? TrackerConfiguration.learnedHead : TrackerConfiguration()
            tracker = try ClassTracker(classCount: vocabulary.count, configuration: configuration ?? defaults)
        } catch {
            throw AvgasError("\(error)", status: .config)
        }
        scores = [Float](repeating: 0, count: vocabulary.count)
        switch presence {
        case .head, .yamnet: self.presence = presence
        case .separator, .combined: self.presence = loadSeparator ? presence : .yamnet
        }
        if presence == .head {
            let path = assets.appendingPathComponent("models/presence.safetensors").path
            do {
                head = try PresenceHead(path: path, vocabulary: vocabulary, embeddingSize: yamnet.embeddingSize)
            } catch {
                throw AvgasError("\(error)", status: .config)
            }
        } else {
            head = nil
        }
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

    /// Width of the separator's per-class visual embeddings (nil without a separator).
    public var embeddingSize: Int? { separator?.shape(of: "embeddings")?.last }

    func resetTracker() { tracker.reset() }

    /// Changes the tracker's settings from the next hop on, keeping what it tracks
    /// (`ClassTracker.reconfigure`). Call it from the thread that analyses.
    public func retune(_ configuration: TrackerConfiguration) throws {
        try tracker.reconfigure(configuration)
    }

    /// Restricts what is ever reported: only the classes named in `only` (nil: all of them),
    /// minus those in `ignoring` (`--only`, `--ignore`). Names are exact vocabulary names; an
    /// unknown one is refused with the closest name, and a restriction that leaves no class too.
    public func restrict(only: [String]?, ignoring: [String]) throws(AvgasError) {
        let keep = try Self.kept(names: vocabulary.names, only: only, ignoring: ignoring)
        do { try tracker.ignore(Set(vocabulary.classes.indices).subtracting(keep)) } catch {
            throw AvgasError("\(error)", status: .software)
        }
    }

    /// The indices into `names` that `--only` (nil: all) and `--ignore` keep; an unknown name or
    /// an empty result is a usage error naming the closest class. (Runner checks the options with
    /// this before it opens the input, so a typo never opens a device or a window.)
    public static func kept(names: [String], only: [String]?, ignoring: [String]) throws(AvgasError) -> Set<Int> {
        func index(_ name: String, option: String) throws(AvgasError) -> Int {
            if let i = names.firstIndex(of: name) { return i }
            let closest = names.min { editDistance($0.lowercased(), name.lowercased()) < editDistance($1.lowercased(), name.lowercased()) } ?? ""
            throw AvgasError("\(option) '\(name)' is not a class name; did you mean '\(closest)'? (avgas-live --list-classes lists them)", status: .usage)
        }
        var keep = Set(names.indices)
        if let only {
            keep = []
            for name in only { keep.insert(try index(name, option: "--only")) }
        }
        for name in ignoring { keep.remove(try index(name, option: "--ignore")) }
        guard !keep.isEmpty else { throw AvgasError("--only and --ignore leave no class to report", status: .usage) }
        return keep
    }

    /// Levenshtein distance (for "did you mean" in `restrict`).
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        var row = Array(0...b.count)   // distances from a[0..<i] to b[0..<j], j = 0...b.count
        for i in 1...a.count {
            var diagonal = row[0]
            row[0] = i
            for j in 0..<b.count {
                let above = row[j + 1]
                row[j + 1] = min(above + 1, row[j] + 1, diagonal + (a[i - 1] == b[j] ? 0 : 1))
                diagonal = above
            }
        }
        return row[b.count]
    }

    /// Whether the tracker uses the onset path (`TrackerConfiguration.fastOnThreshold`): then the
    /// analyser tiles the audio after an onset into an extra patch per hop (`fastScores`).
    public var usesOnsetPath: Bool { tracker.configuration.fastOnThreshold != nil }

    /// Runs one hop on `patch` ([96][64] log-mel) ending at stream time `time`; `fast`: the onset
    /// path's scores for this hop (`fastScores` of its tiled patch), if any.
    public func analyse(patch: UnsafeBufferPointer<Float>, fast: [Float]? = nil,
                        time: Double) throws -> (active: [ActiveClass], smoothed: [Float]) {
        let d = separator?.shape(of: "embeddings")?.last ?? 0
        if hopEmbeddings.count != vocabulary.count * d { hopEmbeddings = [Float](repeating: 0, count: vocabulary.count * d) }
        try SceneListener.score(patch: patch, yamnet: yamnet, separator: separator, head: head, vocabulary: vocabulary,
                                presence: presence, scores: &scores, embeddings: &hopEmbeddings)
        return track(scores: scores, embeddings: separator == nil ? nil : hopEmbeddings, fast: fast, time: time)
    }

    /// The presence scores of a tiled onset patch ([96][64]) into `out` [classes]: the same
    /// stateless scoring as a hop (YAMNet, mapping, head or separator), no tracker update.
    public func fastScores(patch: UnsafeBufferPointer<Float>, into out: inout [Float]) throws {
        let d = separator?.shape(of: "embeddings")?.last ?? 0
        if fastEmbeddings.count != vocabulary.count * d { fastEmbeddings = [Float](repeating: 0, count: vocabulary.count * d) }
        if out.count != vocabulary.count { out = [Float](repeating: 0, count: vocabulary.count) }
        try SceneListener.score(patch: patch, yamnet: yamnet, separator: separator, head: head, vocabulary: vocabulary,
                                presence: presence, scores: &out, embeddings: &fastEmbeddings)
    }

    /// The onset path midway between hops (`OnsetConfiguration.midHop`): only the tracker's fast
    /// rule, on the tiled scores `fast`. Returns the new active list when a class turned on (their
    /// embeddings are those of the last hop's window), nil when nothing changed.
    func fastOnly(fast: [Float], time: Double) -> (active: [ActiveClass], smoothed: [Float])? {
        let changed = fast.withUnsafeBufferPointer { tracker.fastOnly(fast: $0, time: time) }
        return changed ? activeList(embeddings: lastEmbeddings) : nil
    }

    /// Embeddings of the last tracked hop (nil without a separator).
    private var lastEmbeddings: [Float]?
    private var hopEmbeddings: [Float] = []
    private var fastEmbeddings: [Float] = []

    /// The stateless part of a hop: YAMNet, vocabulary scores, presence head, separator.
    /// `scores` [classes], `embeddings` [classes * d] (left alone without a separator).
    static func score(patch: UnsafeBufferPointer<Float>, yamnet: YAMNet, separator: GraphNetwork?, head: PresenceHead?,
                      vocabulary: ClassVocabulary, presence: PresenceSource, scores: inout [Float], embeddings: inout [Float]) throws {
        try yamnet.forward(patch: patch)
        score(logits: yamnet.logits, embedding: yamnet.embedding, separator: separator, head: head, vocabulary: vocabulary,
              presence: presence, scores: &scores, embeddings: &embeddings)
    }

    /// The part of `score` after YAMNet, from its outputs (also used by `Analyzer`'s batched
    /// offline path, which runs YAMNet on many patches at once).
    static func score(logits: UnsafeBufferPointer<Float>, embedding: UnsafeBufferPointer<Float>, separator: GraphNetwork?,
                      head: PresenceHead?, vocabulary: ClassVocabulary, presence: PresenceSource,
                      scores: inout [Float], embeddings: inout [Float]) {
        scores.withUnsafeMutableBufferPointer { vocabulary.scores(fromLogits: logits, into: $0) }
        if let head, presence == .head {
            scores.withUnsafeMutableBufferPointer { head.scores(embedding: embedding, mapping: $0) }
        }
        guard let separator else { return }
        separator.forward(embedding)
        let e = separator.output("embeddings")
        embeddings.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: e.baseAddress!, count: min(e.count, $0.count)) }
        let logits = separator.output("presence_logits")
        for c in 0..<scores.count {
            let p = 1 / (1 + expf(-logits[c]))
            switch presence {
            case .yamnet, .head: break
            case .separator: scores[c] = p
            case .combined: scores[c] = max(scores[c], p)
            }
        }
    }

    /// The stateful part of a hop, in stream order: tracker update and the active list.
    func track(scores: [Float], embeddings: [Float]?, fast: [Float]? = nil,
               time: Double) -> (active: [ActiveClass], smoothed: [Float]) {
        scores.withUnsafeBufferPointer { s in
            if let fast {
                fast.withUnsafeBufferPointer { tracker.update(scores: s, fast: $0, time: time) }
            } else {
                tracker.update(scores: s, time: time)
            }
        }
        lastEmbeddings = embeddings
        return activeList(embeddings: embeddings)
    }

    private func activeList(embeddings: [Float]?) -> (active: [ActiveClass], smoothed: [Float]) {
        let d = embeddings.map { $0.count / max(1, vocabulary.count) } ?? 0
        let active = tracker.activeIndices
            .map { i in
                ActiveClass(name: vocabulary.classes[i].name, index: i, score: tracker.states[i].smoothed,
                            embedding: embeddings.map { Array($0[(i * d)..<((i + 1) * d)]) })
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
        // Feed in 10 ms periods, as capture does, collecting each hop's (and mid-hop's) scene.
        try analyzer.consume(samples, pushSize: 160) {
            if analyzer.timings.hops + analyzer.timings.midHops != lastHops {
                lastHops = analyzer.timings.hops + analyzer.timings.midHops
                let sc = scenes.latest()
                hops.append(Hop(time: sc.time, active: sc.active))
            }
        }
        return hops
    }
}

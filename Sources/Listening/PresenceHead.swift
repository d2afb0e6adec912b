// The learned presence head: per-class presence from YAMNet's 1024-d embedding, trained on the
// project's own recordings (training/avgas/presence.py), combined with the AudioSet-label
// mapping of ClassVocabulary.
import Foundation
import NeuralNet

/// Why a presence head file cannot be used.
public enum PresenceHeadError: Error, CustomStringConvertible, Equatable {
    case mismatch(file: String, detail: String)

    public var description: String {
        switch self { case .mismatch(let f, let d): "'\(f)' cannot be used as the presence head: \(d)" }
    }
}

/// A small head from the YAMNet embedding x of the current window to one presence logit per
/// vocabulary class, and the rule that turns it into the tracker's class score.
///
/// File (Assets/models/presence.safetensors, written by training/avgas/presence.py): an
/// avgas-graph-v1 description in the metadata `architecture` whose ops are either
/// `linear(x; fc1) -> presence_logits` or `linear(x; fc1) -> relu -> linear(fc2) -> presence_logits`
/// (weights [out, in], y = x W^T + b, training's input standardisation folded into fc1), plus
/// `classes` (JSON list, must equal the vocabulary's names in order) and `combine`:
/// - `head`: score_c = sigmoid(logit_c);
/// - `or`:   score_c = 1 - (1 - sigmoid(logit_c)) * (1 - s_c), a noisy-OR with the vocabulary's
///   AudioSet-label score s_c (either source of evidence can turn a class on).
///
/// Stateless after loading (weights are read-only, memory-mapped; scratch lives on the stack),
/// so one instance may serve several analysis threads; `scores` allocates nothing.
public final class PresenceHead: Sendable {
    public enum Combine: String, Sendable { case head, or }

    public let combine: Combine
    public let classes: [String]
    public let inputSize: Int
    /// Hidden width (0: a linear head).
    public let hidden: Int
    /// Float operations per window (multiply-add counts two).
    public var flops: Int { 2 * (hidden == 0 ? inputSize * classes.count : inputSize * hidden + hidden * classes.count) }

    private let file: SafeTensorsFile
    nonisolated(unsafe) private let w1: UnsafePointer<Float>
    nonisolated(unsafe) private let b1: UnsafePointer<Float>
    nonisolated(unsafe) private let w2: UnsafePointer<Float>?
    nonisolated(unsafe) private let b2: UnsafePointer<Float>?

    private struct Graph: Decodable {
        struct Op: Decodable { var op: String; var `in`: String?; var out: String; var weight: String?; var bias: String? }
        struct Input: Decodable { var name: String; var shape: [Int] }
        var format: String
        var input: Input
        var ops: [Op]
    }

    public convenience init(path: String, vocabulary: ClassVocabulary, embeddingSize: Int) throws {
        try self.init(file: SafeTensorsFile(path: path), vocabulary: vocabulary, embeddingSize: embeddingSize)
    }

    public init(file: SafeTensorsFile, vocabulary: ClassVocabulary, embeddingSize: Int) throws {
        func bad(_ d: String) -> PresenceHeadError { .mismatch(file: file.path, detail: d) }
        let g = try file.metadataJSON("architecture", as: Graph.self)
        guard g.format == "avgas-graph-v1" else { throw bad("graph format '\(g.format)', expected avgas-graph-v1") }
        guard g.input.shape == [embeddingSize] else {
            throw bad("it takes input \(g.input.shape), the YAMNet embedding has \(embeddingSize) values")
        }
        let kinds = g.ops.map(\.op)
        guard kinds == ["linear"] || kinds == ["linear", "relu", "linear"], g.ops.last?.out == "presence_logits",
              g.ops.first?.in == g.input.name, g.ops.first?.weight == "fc1.weight", g.ops.first?.bias == "fc1.bias",
              kinds.count == 1 || (g.ops[2].weight == "fc2.weight" && g.ops[2].bias == "fc2.bias") else {
            throw bad("ops \(kinds) are not linear(fc1) or linear(fc1), relu, linear(fc2) ending in presence_logits")
        }
        let c = vocabulary.count
        guard let names = file.metadata["classes"],
              let list = try? JSONDecoder().decode([String].self, from: Data(names.utf8)) else {
            throw bad("metadata 'classes' (a JSON list of class names) is missing")
        }
        guard list == vocabulary.names else {
            throw bad("it was trained for other classes than Assets/classes.json; retrain it (training/avgas/presence.py)")
        }
        guard let mode = file.metadata["combine"].flatMap(Combine.init(rawValue:)) else {
            throw bad("metadata 'combine' must be 'head' or 'or' (got '\(file.metadata["combine"] ?? "nothing")')")
        }
        let h = kinds.count == 1 ? 0 : try file.info("fc1.weight").shape.first ?? 0
        let first = h == 0 ? c : h
        let fc1 = try file.floats("fc1.weight", shape: [first, embeddingSize]), fb1 = try file.floats("fc1.bias", shape: [first])
        if h > 0 {
            w2 = try file.floats("fc2.weight", shape: [c, h]).pointer
            b2 = try file.floats("fc2.bias", shape: [c]).pointer
        } else {
            w2 = nil
            b2 = nil
        }
        self.file = file
        w1 = fc1.pointer
        b1 = fb1.pointer
        hidden = h
        inputSize = embeddingSize
        classes = list
        combine = mode
    }

    private static func dot(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        // Four partial sums: lets the compiler vectorise without reassociation licence.
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        var i = 0
        while i + 4 <= n {
            s0 += w[i] * x[i]; s1 += w[i + 1] * x[i + 1]; s2 += w[i + 2] * x[i + 2]; s3 += w[i + 3] * x[i + 3]
            i += 4
        }
        while i < n { s0 += w[i] * x[i]; i += 1 }
        return (s0 + s1) + (s2 + s3)
    }

    /// Presence logits for one embedding (`embedding.count == inputSize`) into `logits` (`classes.count`).
    public func logits(embedding: UnsafeBufferPointer<Float>, into logits: UnsafeMutableBufferPointer<Float>) {
        precondition(embedding.count == inputSize && logits.count == classes.count, "PresenceHead.logits: buffer sizes")
        let x = embedding.baseAddress!, c = classes.count, n = inputSize
        if hidden == 0 {
            for k in 0..<c { logits[k] = Self.dot(w1 + k * n, x, n) + b1[k] }
            return
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: hidden) { hbuf in
            let hp = hbuf.baseAddress!
            for j in 0..<hidden { hp[j] = max(0, Self.dot(w1 + j * n, x, n) + b1[j]) }
            for k in 0..<c { logits[k] = Self.dot(w2! + k * hidden, hp, hidden) + b2![k] }
        }
    }

    /// Replaces `scores` (the vocabulary's mapping scores on entry) with the head's class scores.
    public func scores(embedding: UnsafeBufferPointer<Float>, mapping scores: UnsafeMutableBufferPointer<Float>) {
        precondition(scores.count == classes.count, "PresenceHead.scores: \(scores.count) scores for \(classes.count) classes")
        withUnsafeTemporaryAllocation(of: Float.self, capacity: classes.count) { l in
            logits(embedding: embedding, into: l)
            for c in 0..<scores.count {
                let p = 1 / (1 + expf(-l[c]))
                switch combine {
                case .head: scores[c] = p
                case .or: scores[c] = 1 - (1 - p) * (1 - scores[c])
                }
            }
        }
    }

    /// Allocating convenience: sigmoid(logit) per class for one embedding.
    public func probabilities(embedding: [Float]) -> [Float] {
        var l = [Float](repeating: 0, count: classes.count)
        embedding.withUnsafeBufferPointer { e in l.withUnsafeMutableBufferPointer { logits(embedding: e, into: $0) } }
        return l.map { 1 / (1 + expf(-$0)) }
    }
}

import Foundation

/// How a slot's image starts.
public enum GenerationMode: String, Sendable, CaseIterable {
    /// From noise.
    case pure
    /// From a partially re-noised real exemplar nearest to the embedding (SDEdit-style).
    case retrieval
}

/// One class the scene currently shows (or is fading out), with its image being refined.
public struct SlotSnapshot: Sendable {
    public var key: String
    public var classIndex: Int?
    public var score: Float
    public var layer: String
    public var image: GeneratedImage?
    /// Steps done of the current refinement, and its length.
    public var step: Int
    public var steps: Int
    public var active: Bool
}

/// Per-class image slots, refined incrementally: every frame each slot whose image is not
/// finished advances by one student step (newest and most-changed first when the frame budget
/// is short) and decodes a preview, so a new class appears rough within a frame and sharpens
/// over the next few. When a class's embedding drifts (cosine below `driftCosine`), the image is
/// refined again rather than restarted: in pure mode from its current estimate re-noised at
/// `renoiseStrength`; in retrieval mode from its exemplar (kept while it is still among the
/// top-k for the new embedding, else a new one is drawn) re-noised at `retrievalStrength`, so
/// repeated drifts never walk the picture away from a real one (re-noising the estimate again
/// and again turned recognisable exemplars into the student's blobs within seconds in the
/// demo). Inactive slots are dropped after `keepInactive` seconds (the display fades them meanwhile).
public final class ImageSlots {
    public struct Request: Sendable {
        public var key: String
        public var classIndex: Int?
        public var score: Float
        public var layer: String
        public var embedding: [Float]
        public init(key: String, classIndex: Int?, score: Float, layer: String, embedding: [Float]) {
            self.key = key; self.classIndex = classIndex; self.score = score; self.layer = layer; self.embedding = embedding
        }
    }

    final class Slot {
        var request: Request
        var sampler: DenoisingSampler
        var image: GeneratedImage?
        /// The bank entry the image started from (retrieval mode).
        var exemplar: Int?
        var created: Double
        var lastActive: Double
        var active = true
        var changedAt: Double
        init(request: Request, sampler: DenoisingSampler, time: Double) {
            self.request = request; self.sampler = sampler; created = time; lastActive = time; changedAt = time
        }
    }

    public let model: GeneratorModel
    public let bank: ExemplarBank?
    public var mode: GenerationMode
    public var steps: Int
    public var retrievalStrength: Double
    public var retrievalTopK: Int
    public var renoiseStrength: Double
    public var driftCosine: Double
    public var keepInactive = 1.5
    private var slots: [String: Slot] = [:]
    private var noise: NoiseSource
    /// Student steps run so far (benchmarks).
    public private(set) var stepsRun = 0

    public init(model: GeneratorModel, bank: ExemplarBank?, mode: GenerationMode? = nil, seed: UInt64 = 1) {
        self.model = model
        self.bank = bank
        let d = model.defaults
        self.mode = mode ?? (bank != nil && d.mode == "retrieval" ? .retrieval : .pure)
        steps = d.steps
        retrievalStrength = d.retrieval_strength
        retrievalTopK = d.retrieval_top_k
        renoiseStrength = d.renoise_strength
        driftCosine = d.drift_cosine
        noise = NoiseSource(seed: seed)
    }

    /// The exemplar for a request (retrieval mode with a bank), keeping `current` while it is
    /// still among the top-k for the request's embedding.
    private func exemplar(for r: Request, current: Int? = nil) -> Int? {
        guard mode == .retrieval, let bank else { return nil }
        let top = r.embedding.withUnsafeBufferPointer { bank.candidates($0.baseAddress!, classIndex: r.classIndex, topK: retrievalTopK) }
        if let current, top.contains(current) { return current }
        return top[min(top.count - 1, Int(noise.uniform() * Double(top.count)))]
    }

    private func start(from exemplar: Int?) -> SamplerStart {
        guard let exemplar, let bank else { return .fresh }
        return .latent(Array(UnsafeBufferPointer(start: bank.latent(exemplar), count: model.latentCount)), strength: retrievalStrength)
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var d: Float = 0, na: Float = 0, nb: Float = 0
        for i in 0..<min(a.count, b.count) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i] }
        return Double(d / max(1e-12, (na * nb).squareRoot()))
    }

    /// Brings slots in line with the requests of this frame at stream time `time`.
    public func update(_ requests: [Request], time: Double) {
        let keys = Set(requests.map(\.key))
        for r in requests {
            if let s = slots[r.key] {
                s.active = true
                s.lastActive = time
                let drift = Self.cosine(s.request.embedding, r.embedding) < driftCosine
                s.request.score = r.score
                if drift {
                    let start: SamplerStart
                    if let e = exemplar(for: r, current: s.exemplar) {
                        // Retrieval: back to a real exemplar, freshly noised towards the new embedding.
                        s.exemplar = e
                        start = self.start(from: e)
                    } else {
                        // Pure: re-noise the current estimate towards the new embedding.
                        start = .latent(s.sampler.estimate, strength: renoiseStrength)
                    }
                    s.sampler = DenoisingSampler(model: model, embedding: r.embedding, start: start, steps: steps, noise: &noise)
                    s.request = r
                    s.changedAt = time
                }
            } else {
                let e = exemplar(for: r)
                let sampler = DenoisingSampler(model: model, embedding: r.embedding, start: start(from: e), steps: steps, noise: &noise)
                let slot = Slot(request: r, sampler: sampler, time: time)
                slot.exemplar = e
                slots[r.key] = slot
            }
        }
        for (k, s) in slots where !keys.contains(k) {
            s.active = false
            if time - s.lastActive > keepInactive { slots[k] = nil }
        }
    }

    /// Advances up to `budget` slots by one step each (all of them when nil), newest and most
    /// recently changed first. Returns how many steps ran.
    @discardableResult
    public func advance(budget: Int? = nil) -> Int {
        let pending = slots.values.filter { !$0.sampler.isFinished && $0.active }.sorted { $0.changedAt > $1.changedAt || ($0.changedAt == $1.changedAt && $0.request.key < $1.request.key) }
        var ran = 0
        for s in pending.prefix(budget ?? pending.count) {
            _ = s.sampler.next()
            // Taken out of the slot so the decoder writes its pixels in place (no copy-on-write)
            // when nothing else still holds the previous image.
            var img = s.image ?? GeneratedImage(width: 0, height: 0, rgb: [])
            s.image = nil
            s.sampler.decode(into: &img)
            s.image = img
            ran += 1
        }
        stepsRun += ran
        return ran
    }

    /// Current slots, strongest first.
    public var snapshots: [SlotSnapshot] {
        slots.values.map {
            SlotSnapshot(key: $0.request.key, classIndex: $0.request.classIndex, score: $0.request.score, layer: $0.request.layer,
                         image: $0.image, step: $0.sampler.stepIndex, steps: $0.sampler.stepCount, active: $0.active)
        }.sorted { $0.score > $1.score || ($0.score == $1.score && $0.key < $1.key) }
    }

    public func snapshot(_ key: String) -> SlotSnapshot? { snapshots.first { $0.key == key } }

    /// A slot's current latent estimate and its exemplar (tests, benchmarks).
    public func state(_ key: String) -> (estimate: [Float], exemplar: Int?)? {
        slots[key].map { ($0.sampler.estimate, $0.exemplar) }
    }
}

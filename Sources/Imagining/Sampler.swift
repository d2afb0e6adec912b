import Foundation

/// A seeded random source (SplitMix64; Gaussian values by Box-Muller), so runs and benchmark
/// inputs are reproducible. tools/tune_listening.py mirrors it for the listening benchmark.
public struct NoiseSource: Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func nextUInt64() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func uniform() -> Double { Double(nextUInt64() >> 11) / Double(1 << 53) }
    /// One standard normal value (the cosine branch of Box-Muller).
    public mutating func gaussian() -> Double {
        let u = max(uniform(), 1e-12), v = uniform()
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }
    public mutating func fill(_ p: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i < count {
            let u = max(uniform(), 1e-300), v = uniform()
            let r = (-2 * log(u)).squareRoot()
            p[i] = Float(r * cos(2 * .pi * v))
            if i + 1 < count { p[i + 1] = Float(r * sin(2 * .pi * v)) }
            i += 2
        }
    }
}

/// Where a sampler starts.
public enum SamplerStart {
    /// Pure noise, t0 = 0, all `steps` steps.
    case fresh
    /// A latent (an exemplar, or the slot's previous image) re-noised at `strength` in (0, 1]:
    /// t0 = 1 - strength, x = t0 z + (1 - t0) noise, ceil(steps * strength) steps.
    case latent([Float], strength: Double)
}

/// The generator as an iterator of denoising steps (one `next()` = one student step and a
/// decoded preview), so the render loop decides how many to run per frame.
public final class DenoisingSampler: IteratorProtocol, Sequence {
    public let model: GeneratorModel
    public private(set) var embedding: [Float]
    /// Current state x_t and the latest data estimate x1_hat.
    private var x: [Float]
    private var xNext: [Float]
    public private(set) var estimate: [Float]
    private let schedule: [Float]
    public private(set) var stepIndex = 0
    public var stepCount: Int { schedule.count - 1 }
    public var isFinished: Bool { stepIndex >= stepCount }

    public init(model: GeneratorModel, embedding: [Float], start: SamplerStart, steps: Int, noise: inout NoiseSource) {
        self.model = model
        self.embedding = embedding
        let n = model.latentCount
        var eps = [Float](repeating: 0, count: n)
        eps.withUnsafeMutableBufferPointer { noise.fill($0.baseAddress!, count: n) }
        let t0: Double, count: Int
        switch start {
        case .fresh:
            t0 = 0; count = Swift.max(1, steps)
            x = eps
        case .latent(let z, let strength):
            let s = Swift.max(0.01, Swift.min(1, strength))
            t0 = 1 - s
            count = Swift.max(1, Int((Double(steps) * s).rounded(.up)))
            x = (0..<n).map { Float(t0) * z[$0] + Float(1 - t0) * eps[$0] }
        }
        schedule = (0...count).map { Float(t0 + (1 - t0) * Double($0) / Double(count)) }
        xNext = [Float](repeating: 0, count: n)
        estimate = x
    }

    /// Runs one step; returns its index, or nil when the image is finished.
    public func next() -> Int? {
        guard !isFinished else { return nil }
        let t = schedule[stepIndex], tn = schedule[stepIndex + 1]
        x.withUnsafeBufferPointer { xp in
            embedding.withUnsafeBufferPointer { ep in
                xNext.withUnsafeMutableBufferPointer { np in
                    estimate.withUnsafeMutableBufferPointer { e1 in
                        model.step(x: xp.baseAddress!, t: t, tNext: tn, emb: ep.baseAddress!, xNext: np.baseAddress!, x1: e1.baseAddress!)
                    }
                }
            }
        }
        swap(&x, &xNext)
        stepIndex += 1
        return stepIndex - 1
    }

    /// Decodes the current data estimate.
    public func decode(into image: inout GeneratedImage) {
        estimate.withUnsafeBufferPointer { model.decode($0.baseAddress!, into: &image) }
    }
}

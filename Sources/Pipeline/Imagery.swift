import Display
import Foundation
import Imagining
import Listening

/// How the large mixed image is made.
public enum MixMode: String, Sendable, CaseIterable {
    /// A scene laid out from the per-class images (SceneComposer).
    case composed
    /// Paper-style: generated from one embedding of the whole mixture (the presence-weighted,
    /// normalised sum of the separated embeddings).
    case paper
}

/// The image side of the render loop: per-class slots refined one step per frame, and the
/// mixed image. Owned by the render thread.
public final class Imagery {
    public let slots: ImageSlots
    public var mix: MixMode
    private let layers: [String]
    public let composeSize: Int
    static let mixKey = "__mix__"
    /// Seconds spent in generator steps + decoding, and in composing, and steps run.
    public private(set) var generatorTime = 0.0
    public private(set) var composeTime = 0.0
    public private(set) var frames = 0
    /// Milliseconds of generator work allowed per frame; when several slots need steps, the
    /// newest and most changed go first and the rest wait for the next frame. At least one step
    /// always runs, so a new class appears in the first frame after its detection.
    public var frameBudgetMs = 24.0
    private var stepMs = 0.0
    /// The last composed scene and the items it was made from: while they are unchanged (names,
    /// scores, layers, pixels: e.g. between analysis hops once the images are held) the frame
    /// reuses it instead of composing again. Composing is a pure function of the items, so the
    /// frames are the same either way.
    private var lastComposed: (items: [SceneComposer.Item], image: RGBImage)?
    /// Scenes composed (tests and benchmarks: frames minus reuses).
    public private(set) var compositions = 0

    public init(model: GeneratorModel, bank: ExemplarBank?, vocabulary: ClassVocabulary, mix: MixMode,
                mode: GenerationMode?, seed: UInt64 = 1, composeSize: Int = 256) {
        slots = ImageSlots(model: model, bank: bank, mode: mode, seed: seed)
        self.mix = mix
        layers = vocabulary.classes.map(\.layer.rawValue)
        self.composeSize = composeSize
    }

    static func rgb(_ g: GeneratedImage) -> RGBImage { RGBImage(width: g.width, height: g.height, pixels: g.rgb) }

    /// Same composer input (Array == compares the pixel buffers' identity first, so held images
    /// cost no byte comparison).
    static func same(_ a: [SceneComposer.Item], _ b: [SceneComposer.Item]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy {
            $0.name == $1.name && $0.score == $1.score && $0.layer == $1.layer && $0.image == $1.image
        }
    }

    /// Updates slots for `scene`, runs this frame's steps, returns images per class name and the mixed image.
    public func frame(scene: Scene, time: Double) -> (cards: [String: RGBImage], mixed: RGBImage?) {
        var requests: [ImageSlots.Request] = scene.active.compactMap { a in
            guard let e = a.embedding else { return nil }
            return .init(key: a.name, classIndex: a.index, score: a.score, layer: layers[a.index], embedding: e)
        }
        if mix == .paper, !requests.isEmpty {
            var m = [Float](repeating: 0, count: requests[0].embedding.count)
            for r in requests { for i in m.indices { m[i] += r.score * r.embedding[i] } }
            let norm = max(1e-8, m.reduce(0) { $0 + $1 * $1 }.squareRoot())
            requests.append(.init(key: Self.mixKey, classIndex: nil, score: requests.map(\.score).max() ?? 1,
                                  layer: "middle", embedding: m.map { $0 / norm }))
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        slots.update(requests, time: time)
        let budget = stepMs > 0 ? max(1, Int(frameBudgetMs / stepMs)) : 1
        let ran = slots.advance(budget: budget)
        let spent = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        if ran > 0 {
            let per = spent * 1000 / Double(ran)
            stepMs = stepMs == 0 ? per : 0.8 * stepMs + 0.2 * per
        }
        generatorTime += spent
        frames += 1
        var cards: [String: RGBImage] = [:]
        let snaps = slots.snapshots
        for s in snaps where s.key != Self.mixKey { if let img = s.image { cards[s.key] = Self.rgb(img) } }
        var mixed: RGBImage?
        switch mix {
        case .paper:
            mixed = snaps.first { $0.key == Self.mixKey }?.image.map(Self.rgb)
        case .composed:
            let items = snaps.filter { $0.active && $0.key != Self.mixKey }.compactMap { s in
                s.image.map { SceneComposer.Item(name: s.key, image: $0, score: s.score, layer: s.layer) }
            }
            if let last = lastComposed, Self.same(last.items, items) {
                mixed = last.image
            } else if !items.isEmpty {
                let t1 = DispatchTime.now().uptimeNanoseconds
                let image = Self.rgb(SceneComposer.compose(items, width: composeSize, height: composeSize))
                composeTime += Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9
                compositions += 1
                lastComposed = (items, image)
                mixed = image
            }
        }
        return (cards, mixed)
    }
}

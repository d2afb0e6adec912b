import Display
import Foundation

/// Turns the latest scene into frames: class cards with on/off transitions, spectrogram,
/// level meter, status and overlay. Runs on the render thread; stream time drives the
/// transitions, so file runs give identical frames every time.
public final class Presenter {
    public let renderer: FrameRenderer
    public private(set) var framebuffer: Framebuffer
    private let spectrogramStore: SpectrogramStore
    private var cards: [String: FrameModel.ClassCard] = [:]
    /// Card order: first appearance, so cards do not jump around.
    private var order: [String] = []
    private var lastTime: Double?
    private var spectrogram: [Float] = []
    /// Seconds for a card to appear and to fade out.
    public var fadeIn = 0.15, fadeOut = 1.0
    public var status: String?
    public var overlay: [String]?
    /// A short message about a setting just changed (FrameModel.notice).
    public var notice: String?
    /// Generator and composer (nil with --no-images).
    public var imagery: Imagery?
    private var lastImages: [String: RGBImage] = [:]
    /// The last mixed image, kept on screen while nothing is heard (no flicker back to the
    /// spectrogram between sounds); the spectrogram fills the main area only before the first.
    private var lastMixed: RGBImage?

    public init(width: Int, height: Int, spectrogram: SpectrogramStore, text: TextRenderer = TextRenderer()) {
        renderer = FrameRenderer(text: text)
        framebuffer = Framebuffer(width: width, height: height)
        spectrogramStore = spectrogram
    }

    public func resize(width: Int, height: Int) { framebuffer.resize(width: width, height: height) }

    /// Updates card transitions to `scene` at stream time `time` and draws the frame.
    public func draw(scene: Scene, time: Double) {
        let dt = max(0, time - (lastTime ?? time))
        lastTime = time
        let activeNames = Set(scene.active.map(\.name))
        for a in scene.active where cards[a.name] == nil {
            cards[a.name] = FrameModel.ClassCard(name: a.name, score: a.score, presence: 0)
            order.append(a.name)
        }
        for name in order {
            guard var c = cards[name] else { continue }
            if activeNames.contains(name) {
                c.presence = min(1, c.presence + Float(dt / fadeIn))
                c.score = scene.active.first { $0.name == name }?.score ?? c.score
            } else {
                c.presence = max(0, c.presence - Float(dt / fadeOut))
            }
            cards[name] = c
        }
        order.removeAll { cards[$0]!.presence <= 0 && !activeNames.contains($0) }
        cards = cards.filter { order.contains($0.key) }

        var m = FrameModel()
        m.streamTime = time
        if let imagery {
            let (images, mixed) = imagery.frame(scene: scene, time: time)
            for (k, v) in images { lastImages[k] = v }
            lastImages = lastImages.filter { cards[$0.key] != nil }
            if let mixed { lastMixed = mixed }
            m.mixed = mixed ?? lastMixed
            m.mixedCaption = imagery.mix == .composed ? "composed scene" : "paper-style mixed image"
            for name in order { cards[name]?.image = lastImages[name] }
        }
        let columns = max(64, min(spectrogramStore.capacity, framebuffer.width))
        spectrogramStore.copyLatest(columns, into: &spectrogram)
        m.spectrogram = spectrogram
        m.spectrogramFrames = columns
        m.bands = spectrogramStore.bands
        m.levelDB = scene.levelDB
        m.peakDB = scene.peakDB
        // Active cards first (strongest first), then fading ones.
        let active = order.filter { activeNames.contains($0) }.sorted { cards[$0]!.score > cards[$1]!.score }
        let fading = order.filter { !activeNames.contains($0) }
        m.classes = (active + fading).compactMap { cards[$0] }
        m.status = status
        m.overlay = overlay
        m.notice = notice
        renderer.render(m, into: &framebuffer)
    }

    /// Names of the cards currently shown (tests).
    public var cardNames: [String] { order }
}

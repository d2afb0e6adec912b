import AudioInput
import Features
import Foundation
import Listening
import NeuralNet
import Synchronization

/// Cumulative time per stage, for the exit summary and the overlay.
public struct StageTimings: Sendable {
    public var frontEnd: Double = 0      // seconds in the log-mel front end
    public var backbone: Double = 0      // seconds in YAMNet + vocabulary + tracker
    public var hops = 0
    /// Hops and mid-hops that also analysed a tiled onset patch (the onset path).
    public var tiledPatches = 0
    /// Scenes published midway between hops, when the onset path turned a class on there
    /// (`OnsetConfiguration.midHop`); not counted in `hops`.
    public var midHops = 0
    public var render: Double = 0        // seconds drawing frames
    public var output: Double = 0        // seconds writing PNG frames
    public var frames = 0
    public init() {}
}

@inline(__always) func seconds(since t0: UInt64) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
}

/// The analysis stage, driven by one thread: audio in, log-mel frames, one listening step
/// per hop, scene and events out. The same object serves live capture and file replay.
public final class Analyzer {
    public let hopFrames: Int
    public let config: LogMelConfiguration
    private let stream: LogMelStream
    private let listener: SceneListener?
    private let spectrogram: SpectrogramStore
    private let scenes: SceneStore
    private let events: EventsWriter?
    private var patch: [Float]               // [patchFrames][melBands]
    private var frame: [Float]               // [melBands]
    /// The onset path (when the listener's tracker uses it): onsets out of quiet, and for the
    /// hops soon after one, a tiled patch of the audio since the onset (`OnsetDetector`).
    private var onsets: OnsetDetector?
    private var tiled: [[Float]]             // per fill (OnsetFill.patches): [patchFrames][melBands]
    private var segment: [Float]             // [patchFrames - 1][melBands]
    private var fast: [Float] = []           // [classes]: the larger of the fills' scores
    private var fastOne: [Float] = []        // [classes]: one fill's scores
    /// Tiled patches of the hops and mid-hops waiting in a batch: (index in `pending`,
    /// [patchFrames * melBands]), one entry per fill.
    private var pendingTiled: [(hop: Int, patch: [Float])] = []
    /// Samples consumed or skipped since the start: the stream clock.
    public private(set) var streamSamples = 0
    /// Samples the analysis skipped because it fell behind.
    public private(set) var skippedSamples = 0
    /// Stream sample index where frame 0 of the current run of frames starts.
    private var frameOriginSample = 0
    private var frameOriginIndex = 0
    private var sumSquares: Float = 0
    private var peak: Float = 0
    private var levelCount = 0
    private var lastScene = Scene()
    public private(set) var timings = StageTimings()
    /// When > 0, hops are analysed in batches of this many on two threads (file replays without
    /// images: nothing waits for single hops). Results are identical to hop-by-hop analysis.
    public var batchHops = 0
    /// Hops waiting in a batch, in stream order: a hop's scene, or a mid-hop (`window` false:
    /// only tiled patches, only the tracker's fast rule); and the hops' window patches
    /// ([hops with a window, patchFrames * melBands]).
    private struct PendingHop { var scene: Scene; var window: Bool }
    private var pending: [PendingHop] = []
    private var pendingPatches: [Float] = []
    /// Whether the onset path also runs midway between hops (`OnsetConfiguration.midHop`).
    private let midHops: Bool
    /// Patches one YAMNet forward takes in the batched path: each worker runs its share of a
    /// batch in forwards of up to this many patches, so the late layers' weights (most of
    /// YAMNet's 15 MB) are read once per forward instead of once per patch. 4 measured best
    /// (avgas-bench backbone --batch: per patch 0.88 ms at 4, 0.93 at 8, 1.15 at 16, minimum
    /// of runs; larger batches' feature maps no longer fit in L2 beside the weights).
    public static let forwardBatch = 4
    /// One YAMNet (with a `forwardBatch` workspace) and separator copy per worker thread of the
    /// batched path, made at the first batch; the YAMNet layers (packed weights, kernels) are the
    /// listener's network's, so the outputs are bit-identical to hop-by-hop analysis.
    private var engines: [(yamnet: YAMNet, separator: GraphNetwork?)] = []

    public init(hopMilliseconds: Int, listener: SceneListener?, spectrogram: SpectrogramStore,
                scenes: SceneStore, events: EventsWriter?, config: LogMelConfiguration = .init()) {
        self.config = config
        hopFrames = max(1, hopMilliseconds * config.sampleRate / 1000 / config.hopLength)
        stream = LogMelStream(config, historyFrames: max(256, config.patchFrames * 2))
        self.listener = listener
        self.spectrogram = spectrogram
        self.scenes = scenes
        self.events = events
        patch = [Float](repeating: 0, count: config.patchFrames * config.melBands)
        frame = [Float](repeating: 0, count: config.melBands)
        segment = [Float](repeating: 0, count: (config.patchFrames - 1) * config.melBands)
        let detector: OnsetDetector? = listener?.usesOnsetPath == true ? OnsetDetector() : nil
        onsets = detector
        midHops = detector?.configuration.midHop == true && hopFrames >= 2
        tiled = [[Float]](repeating: patch, count: detector?.configuration.fill.patches.count ?? 0)
        if let listener { lastScene.scores = [Float](repeating: 0, count: listener.vocabulary.count) }
    }

    /// Stream time in seconds.
    public var streamTime: Double { Double(streamSamples) / Double(config.sampleRate) }

    /// Feeds new audio; runs every hop that completes. Throws only for output failures.
    public func consume(_ samples: UnsafeBufferPointer<Float>) throws(AvgasError) {
        // Slices of at most 8192 samples (51 frames), so every frame of a slice is still in the
        // stream's history (256 frames) when its hop copies its window.
        var o = 0
        while o < samples.count {
            let n = min(8192, samples.count - o)
            try consumeSlice(UnsafeBufferPointer(rebasing: samples[o..<(o + n)]))
            o += n
        }
    }

    /// Feeds `samples` in pushes of `pushSize` samples (160: 10 ms periods as capture delivers
    /// them; 4096: file replay's ring reads), calling `afterPush` after each one.
    public func consume(_ samples: [Float], pushSize: Int, afterPush: () throws -> Void = {}) throws {
        precondition(pushSize > 0, "Analyzer.consume: pushSize must be positive")
        try samples.withUnsafeBufferPointer { s in
            var o = 0
            while o < s.count {
                let n = min(pushSize, s.count - o)
                try consume(UnsafeBufferPointer(rebasing: s[o..<(o + n)]))
                o += n
                try afterPush()
            }
        }
    }

    private func consumeSlice(_ samples: UnsafeBufferPointer<Float>) throws(AvgasError) {
        guard !samples.isEmpty else { return }
        for s in samples {
            sumSquares += s * s
            peak = max(peak, abs(s))
        }
        levelCount += samples.count
        streamSamples += samples.count
        let before = stream.framesProduced
        let t0 = DispatchTime.now().uptimeNanoseconds
        let produced = stream.push(samples)
        timings.frontEnd += seconds(since: t0)
        guard produced > 0 else { return }
        for f in before..<(before + produced) {
            frame.withUnsafeMutableBufferPointer { stream.frame(f, into: $0.baseAddress!) }
            frame.withUnsafeBufferPointer { spectrogram.append($0.baseAddress!) }
            if onsets != nil { frame.withUnsafeBufferPointer { onsets!.push(frame: $0, index: f) } }
            let sinceOrigin = f - frameOriginIndex
            if sinceOrigin + 1 >= config.patchFrames {
                let phase = (sinceOrigin + 1 - config.patchFrames) % hopFrames
                if phase == 0 {
                    try hop(endingAtFrame: f)
                } else if midHops && phase == hopFrames / 2 {
                    try midHop(endingAtFrame: f)
                }
            }
        }
    }

    /// The input skipped `count` samples ahead (analysis fell behind). Frames restart at the
    /// new audio; the next hop comes `hopFrames` frames later, its patch still holding older
    /// frames before the gap, so a live display keeps updating while overloaded.
    public func skip(_ count: Int) {
        guard count > 0 else { return }
        streamSamples += count
        skippedSamples += count
        stream.resetPending()
        onsets?.reset()
        // Realign so that frame `framesProduced` starts at the current stream sample and
        // the hop condition first holds hopFrames - 1 frames after it.
        frameOriginIndex = stream.framesProduced + hopFrames - config.patchFrames
        frameOriginSample = streamSamples - (stream.framesProduced - frameOriginIndex) * config.hopLength
    }

    /// Stream time at the end of the window that ends at frame `f`.
    private func windowTime(endingAtFrame f: Int) -> Double {
        let endSample = frameOriginSample + (f - frameOriginIndex) * config.hopLength + config.windowLength
        return Double(endSample) / Double(config.sampleRate)
    }

    /// The onset path's tiled span for a hop or mid-hop ending at frame `f`, with `tiled` filled
    /// (one patch per fill); nil when there is none.
    private func fillTiled(endingAtFrame f: Int) -> ClosedRange<Int>? {
        guard let span = onsets?.tiledSpan(endingAt: f, patchFrames: config.patchFrames) else { return nil }
        timings.tiledPatches += 1
        copyFrames(span, into: &segment)
        let fills = onsets!.configuration.fill.patches
        segment.withUnsafeBufferPointer { seg in
            for (k, mirrored) in fills.enumerated() {
                tiled[k].withUnsafeMutableBufferPointer {
                    OnsetDetector.fill(segment: seg.baseAddress!, count: span.count, bands: config.melBands,
                                       into: $0.baseAddress!, patchFrames: config.patchFrames, mirrored: mirrored)
                }
            }
        }
        return span
    }

    /// `fast` = the larger of the tiled fills' scores, class by class (hop-by-hop path).
    private func scoreTiled(_ listener: SceneListener) throws {
        for (k, p) in tiled.enumerated() {
            try p.withUnsafeBufferPointer { try listener.fastScores(patch: $0, into: &fastOne) }
            if fast.count != fastOne.count { fast = [Float](repeating: 0, count: fastOne.count) }
            for c in fast.indices { fast[c] = k == 0 ? fastOne[c] : max(fast[c], fastOne[c]) }
        }
    }

    /// Midway between hops, while a tiled onset patch exists: the tiled scores and the tracker's
    /// fast rule only. A scene is published only when a class turned on.
    private func midHop(endingAtFrame f: Int) throws(AvgasError) {
        guard let listener, fillTiled(endingAtFrame: f) != nil else { return }
        let time = windowTime(endingAtFrame: f)
        if batchHops > 0 {
            for p in tiled { pendingTiled.append((pending.count, p)) }
            var scene = Scene()
            scene.time = time
            pending.append(PendingHop(scene: scene, window: false))
            if pending.count >= batchHops { try flush() }
            return
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r: (active: [ActiveClass], smoothed: [Float])?
        do {
            try scoreTiled(listener)
            r = listener.fastOnly(fast: fast, time: time)
        } catch {
            throw AvgasError("the listening model failed: \(error)", status: .software)
        }
        timings.backbone += seconds(since: t0)
        if let r { try publishMidHop(time: time, r) }
    }

    private func hop(endingAtFrame f: Int) throws(AvgasError) {
        let time = windowTime(endingAtFrame: f)
        var scene = Scene()
        scene.time = time
        let rms = levelCount > 0 ? (sumSquares / Float(levelCount)).squareRoot() : 0
        scene.levelDB = 20 * log10(max(rms, 1e-6))
        scene.peakDB = 20 * log10(max(peak, 1e-6))
        sumSquares = 0; peak = 0; levelCount = 0
        if let listener {
            // The window ends at frame f (not at the newest frame: one push can produce several
            // frames, and hops at the earlier ones must see their own window).
            copyFrames(f - config.patchFrames + 1...f, into: &patch)
            let span = fillTiled(endingAtFrame: f)
            if batchHops > 0 {
                if span != nil { for p in tiled { pendingTiled.append((pending.count, p)) } }
                pending.append(PendingHop(scene: scene, window: true))
                pendingPatches.append(contentsOf: patch)
                if pending.count >= batchHops { try flush() }
                return
            }
            let t0 = DispatchTime.now().uptimeNanoseconds
            do {
                if span != nil { try scoreTiled(listener) }
                let r = try patch.withUnsafeBufferPointer { try listener.analyse(patch: $0, fast: span == nil ? nil : fast, time: time) }
                scene.active = r.active
                scene.scores = r.smoothed
            } catch {
                throw AvgasError("the listening model failed: \(error)", status: .software)
            }
            timings.backbone += seconds(since: t0)
        }
        try publish(scene)
    }

    /// a[i] = max(a[i], b[i]): the onset path's fills combined class by class.
    private static func maxInPlace(_ a: inout [Float], _ b: [Float]) {
        for i in a.indices { a[i] = max(a[i], b[i]) }
    }

    /// Copies frames `range` (absolute indices) into `out` [count][melBands]. Rows whose frame does
    /// not exist (before the first frame: a skip right after start-up realigns hops to end before
    /// 96 frames were produced) are left as they were, like the patch rows before a gap.
    private func copyFrames(_ range: ClosedRange<Int>, into out: inout [Float]) {
        let bands = config.melBands
        let oldest = max(0, stream.framesProduced - stream.historyFrames)
        out.withUnsafeMutableBufferPointer { o in
            for (k, i) in range.enumerated() where i >= oldest {
                stream.frame(i, into: o.baseAddress! + k * bands)
            }
        }
    }

    /// A mid-hop's scene: the last one with the new active list, at the mid-hop's time.
    private func publishMidHop(time: Double, _ r: (active: [ActiveClass], smoothed: [Float])) throws(AvgasError) {
        var scene = lastScene
        scene.time = time
        scene.active = r.active
        scene.scores = r.smoothed
        try publish(scene, midHop: true)
    }

    private func publish(_ s: Scene, midHop: Bool = false) throws(AvgasError) {
        var scene = s
        if midHop { timings.midHops += 1 } else { timings.hops += 1 }
        scene.timings = timings
        scene.skippedSeconds = Double(skippedSamples) / Double(config.sampleRate)
        lastScene = scene
        scenes.publish(scene)
        try events?.write(time: scene.time, active: scene.active)
    }

    /// Changes the tracker's settings (a live `--sensitivity` change) for the hops after the audio
    /// consumed so far: hops waiting in a batch are analysed with the old settings first. The
    /// onset path stays as it is (the new settings keep the old `fastOnThreshold`).
    public func retune(_ configuration: TrackerConfiguration) throws(AvgasError) {
        guard let listener else { return }
        try flush()
        var c = configuration
        c.fastOnThreshold = listener.tracker.configuration.fastOnThreshold
        do { try listener.retune(c) } catch { throw AvgasError("cannot change the sensitivity: \(error)", status: .software) }
    }

    /// Analyses the hops waiting in a batch and publishes them in order: the stateless part
    /// (YAMNet in forwards of up to `forwardBatch` patches, vocabulary scores, presence head,
    /// separator) on two threads, each with its own networks, taking chunks of hops from a
    /// shared counter; then the tracker hop by hop in stream order.
    public func flush() throws(AvgasError) {
        guard let listener, !pending.isEmpty else { return }
        let n = pending.count
        let windows = pending.reduce(0) { $0 + ($1.window ? 1 : 0) }   // rows 0..<windows: the hops' windows
        let t0 = DispatchTime.now().uptimeNanoseconds
        if engines.isEmpty {
            do {
                engines = try (0..<2).map { i in
                    (YAMNet(sharingWeightsOf: listener.yamnet, maxBatch: Self.forwardBatch),
                     try listener.separator.map { i == 0 ? $0 : try GraphNetwork(file: $0.file) })
                }
            } catch {
                throw AvgasError("the listening model failed: \(error)", status: .software)
            }
        }
        let classes = listener.vocabulary.count
        let d = listener.separator?.shape(of: "embeddings")?.last ?? 0
        let patchCount = listener.yamnet.patchCount
        // The onset path's tiled patches (a few hops after each onset) go into the same batch,
        // after the windows: row windows + k holds pendingTiled[k]'s scores.
        for (_, p) in pendingTiled { pendingPatches.append(contentsOf: p) }
        let rows = windows + pendingTiled.count
        // Results [rows, classes] and [rows, classes * d], written by the two workers at disjoint rows.
        var scoreStore = [Float](repeating: 0, count: rows * classes)
        var embStore = [Float](repeating: 0, count: max(1, rows * classes * d))
        let failure = Mutex<String?>(nil)
        let engines = self.engines
        let vocabulary = listener.vocabulary, presence = listener.presence, head = listener.head
        // Work sharing: the workers take chunks of hops in order from a shared counter, so a
        // worker that the scheduler delays (a loaded machine) leaves more chunks to the other.
        let chunk = max(1, min(Self.forwardBatch, (rows + 3) / 4))
        let next = Atomic<Int>(0)
        pendingPatches.withUnsafeBufferPointer { patches in
            scoreStore.withUnsafeMutableBufferPointer { scoreOut in
                embStore.withUnsafeMutableBufferPointer { embOut in
                    nonisolated(unsafe) let (patches, scoreOut, embOut) = (patches, scoreOut, embOut)
                    DispatchQueue.concurrentPerform(iterations: 2) { part in
                        let (net, separator) = engines[part]
                        var sc = [Float](repeating: 0, count: classes), em = [Float](repeating: 0, count: classes * d)
                        while true {
                            let first = next.add(chunk, ordering: .relaxed).oldValue
                            guard first < rows else { break }
                            let count = min(chunk, rows - first)
                            do {
                                try net.forward(patches: UnsafeBufferPointer(rebasing: patches[(first * patchCount)..<((first + count) * patchCount)]),
                                                count: count)
                            } catch {
                                failure.withLock { $0 = "\(error)" }
                                return
                            }
                            for i in 0..<count {
                                SceneListener.score(logits: net.logits(i), embedding: net.embedding(i), separator: separator, head: head,
                                                    vocabulary: vocabulary, presence: presence, scores: &sc, embeddings: &em)
                                (scoreOut.baseAddress! + (first + i) * classes).update(from: sc, count: classes)
                                if d > 0 { (embOut.baseAddress! + (first + i) * classes * d).update(from: em, count: classes * d) }
                            }
                        }
                    }
                }
            }
        }
        if let f = failure.withLock({ $0 }) { throw AvgasError("the listening model failed: \(f)", status: .software) }
        // Tiled scores per hop or mid-hop: the larger of its fills' scores, class by class.
        var fastByHop = [[Float]?](repeating: nil, count: n)
        for (k, (i, _)) in pendingTiled.enumerated() {
            let out = Array(scoreStore[((windows + k) * classes)..<((windows + k + 1) * classes)])
            if fastByHop[i] == nil { fastByHop[i] = out } else { Self.maxInPlace(&fastByHop[i]!, out) }
        }
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        pendingPatches.removeAll(keepingCapacity: true)
        pendingTiled.removeAll(keepingCapacity: true)
        // The tracker in stream order; a mid-hop has a result only when a class turned on there.
        var results: [(active: [ActiveClass], smoothed: [Float])?] = []
        results.reserveCapacity(n)
        var row = 0
        for (i, item) in batch.enumerated() {
            if item.window {
                results.append(listener.track(scores: Array(scoreStore[(row * classes)..<((row + 1) * classes)]),
                                              embeddings: d > 0 ? Array(embStore[(row * classes * d)..<((row + 1) * classes * d)]) : nil,
                                              fast: fastByHop[i], time: item.scene.time))
                row += 1
            } else {
                results.append(fastByHop[i].flatMap { listener.fastOnly(fast: $0, time: item.scene.time) })
            }
        }
        timings.backbone += seconds(since: t0)
        for (item, r) in zip(batch, results) {
            guard let r else { continue }
            if !item.window {
                try publishMidHop(time: item.scene.time, r)
                continue
            }
            var scene = item.scene
            scene.active = r.active
            scene.scores = r.smoothed
            try publish(scene)
        }
    }

    /// The last published scene (for the offline driver).
    public var scene: Scene { lastScene }
}

import AudioInput
import Display
import Features
import Foundation
import Imagining
import NeuralNet
import Listening
import Synchronization

/// Set by SIGINT/SIGTERM (and Q/Esc); every loop checks it.
let stopRequested = Atomic<Bool>(false)

/// Installs SIGINT/SIGTERM handlers that ask the loops to stop cleanly (outputs are
/// flushed and closed on the way out).
public func installStopSignalHandlers() {
    signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
    signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
    signal(SIGPIPE, SIG_IGN)
    // A file-size limit (ulimit -f) must give a clear "File too large" error, not kill us.
    signal(SIGXFSZ, SIG_IGN)
}

/// One validated configuration for a run, built from the command line.
public struct RunConfiguration: Sendable {
    public enum Input: Sendable, Equatable {
        case device(String)
        case file(String)
    }
    public var input: Input = .device("default")
    public var realtime = false
    public var headless = false
    public var framesDirectory: String?
    public var fps: Double = 30
    public var eventsPath: String?
    public var noImages = false
    public var hopMilliseconds = 100
    public var width = 1280
    public var height = 720
    public var fullscreen = false
    public var displayIndex = 0
    public var assets: URL = AssetLocator.locate(explicit: nil)
    /// Stop after this many seconds of stream time (live runs, tests).
    public var duration: Double?
    /// `--record FILE.mp4`: video of the rendered frames through ffmpeg.
    public var recordPath: String?
    /// `--contact-sheet FILE.png`: one frame per second of stream time, in a grid, at the end.
    public var contactSheetPath: String?
    /// Show the diagnostics overlay from the start (key D toggles it).
    public var overlay = false
    /// How the mixed image is made (key M toggles).
    public var mix: MixMode = .composed
    /// Pure generation or retrieval-augmented (nil: the generator's measured default).
    public var generation: GenerationMode?
    /// What the tracker follows.
    public var presence: SceneListener.PresenceSource = .head
    /// OpenBLAS threads for the networks (1: analysis on one core, rendering on the other).
    public var threads = 1
    /// Where S-key screenshots go.
    public var screenshotDirectory = "."
    /// Print the summary at exit.
    public var quiet = false
    /// Test hook: extra ALSA configuration text (defines `file` plugin devices).
    public var alsaConfigText: String?
    /// Tracker settings (nil: the defaults measured for the presence source).
    public var tracker: TrackerConfiguration?
    /// `--only` (nil: every class) and `--ignore`: which classes may ever be reported.
    public var onlyClasses: [String]?
    public var ignoredClasses: [String] = []
    /// The learned head's `--sensitivity` at start (key V cycles it in a window; only with
    /// `presence == .head`). The tracker starts with `tracker` when set, otherwise with
    /// `TrackerConfiguration.learnedHead(sensitivity:)` for the head.
    public var sensitivity: Sensitivity = .normal
    public init() {}

    /// True when the input is a file replayed as fast as possible (deterministic lockstep).
    public var isOffline: Bool {
        if case .file = input { return !realtime && headless }
        return false
    }
}

/// What a run did, printed at exit.
public struct RunSummary: Sendable {
    public var streamSeconds: Double = 0
    public var wallSeconds: Double = 0
    public var framesWritten = 0
    public var timings = StageTimings()
    public var skippedSeconds: Double = 0
    public var droppedSeconds: Double = 0
    public var xruns = 0

    public var lines: [String] {
        let rt = wallSeconds > 0 ? streamSeconds / wallSeconds : 0
        var out = [String(format: "avgas-live: %.1f s of audio in %.2f s (%.0fx real time), %d analysis hops (%d onset patches scored, %d mid-hop turn-ons), %d frames written",
                          streamSeconds, wallSeconds, rt, timings.hops, timings.tiledPatches, timings.midHops, framesWritten)]
        let ms = { (s: Double, n: Int) in n > 0 ? s / Double(n) * 1000 : 0 }
        out.append(String(format: "  front end %.3f ms/hop, listening %.3f ms/hop, render %.2f ms/frame, PNG %.2f ms/frame",
                          ms(timings.frontEnd, timings.hops), ms(timings.backbone, timings.hops),
                          ms(timings.render, timings.frames), ms(timings.output, timings.frames)))
        if skippedSeconds > 0 || droppedSeconds > 0 || xruns > 0 {
            out.append(String(format: "  analysis skipped %.2f s, capture dropped %.2f s, %d overruns recovered",
                              skippedSeconds, droppedSeconds, xruns))
        }
        return out
    }
}

/// A sensitivity change handed from the render thread (key V) to the analysis thread: the
/// newest one wins, and the analysis thread takes it before its next audio.
final class SensitivityRequest: Sendable {
    private let wanted = Atomic<Int>(-1)   // index into Sensitivity.allCases; -1: nothing new
    func put(_ s: Sensitivity) { wanted.store(Sensitivity.allCases.firstIndex(of: s) ?? -1, ordering: .releasing) }
    func take() -> Sensitivity? {
        let i = wanted.exchange(-1, ordering: .acquiring)
        return Sensitivity.allCases.indices.contains(i) ? Sensitivity.allCases[i] : nil
    }
}

/// Runs the whole program for one configuration: opens everything first (failing fast with
/// one clear error), then drives capture -> analysis -> render until the input ends, the
/// user quits, or a signal arrives.
public final class Runner {
    public let config: RunConfiguration
    private let source: AudioSource
    private let fileSource: FileSource?
    private let ringStorage: UnsafeMutableBufferPointer<Float>
    private let ring: SampleRing
    private let scenes = SceneStore()
    private let spectrogram = SpectrogramStore()
    private let analyzer: Analyzer
    private let events: EventsWriter?
    private var window: Window?
    private var presenter: Presenter?
    private var frameIndex = 0
    private var screenshotCount = 0
    private var recorder: VideoRecorder?
    private var recordingsMade = 0
    private let contactSheet: ContactSheet?
    private var showOverlay: Bool
    private var fpsWindow: [UInt64] = []
    private let imagery: Imagery?
    private var sourceStarted = false
    /// The learned head's sensitivity (nil for the other presence sources, which have none).
    private var sensitivity: Sensitivity?
    /// A V-key change for the analysis thread to apply.
    private let sensitivityRequest = SensitivityRequest()
    /// A short notice drawn in the main area until `noticeUntil` (uptime nanoseconds).
    private var notice: String?
    private var noticeUntil: UInt64 = 0

    /// Opens outputs, models, input and window, in that order. Throws `AvgasError`.
    public init(_ config: RunConfiguration) throws(AvgasError) {
        self.config = config
        // Outputs are checked first (nothing is created or truncated yet: an existing events
        // file, video or contact sheet is replaced only once everything else has opened).
        var inputPath: String?
        if case .file(let p) = config.input { inputPath = p }
        if let dir = config.framesDirectory { try Self.prepareDirectory(dir, option: "--frames") }
        if let rec = config.recordPath {
            do { try VideoRecorder.checkDestination(rec, input: inputPath) } catch {
                throw AvgasError(error.description, status: error.isSameAsInput ? .usage : error == .ffmpegMissing ? .unavailable : .cannotCreate)
            }
        }
        if let sheet = config.contactSheetPath { try Self.checkFileDestination(sheet, option: "--contact-sheet", input: inputPath) }
        if let ev = config.eventsPath, ev != "-" {
            try Self.checkFileDestination(ev, option: "--events", input: inputPath, allowSpecial: true, inPlace: true)
        }
        contactSheet = config.contactSheetPath == nil ? nil : ContactSheet()
        showOverlay = config.overlay
        sensitivity = config.presence == .head ? config.sensitivity : nil
        if config.onlyClasses != nil || !config.ignoredClasses.isEmpty {   // a typo must not open a device first
            let file = config.assets.appendingPathComponent("classes.json")
            do {
                _ = try SceneListener.kept(names: try ClassVocabulary.names(contentsOf: file), only: config.onlyClasses,
                                           ignoring: config.ignoredClasses)
            } catch let e as AvgasError { throw e } catch {
                throw AvgasError("\(error)", status: .config)
            }
        }
        // Input and display first: their problems are the user's to fix before any model loads.
        // Two seconds of audio: room for scheduling hiccups without dropping live input.
        ringStorage = .allocate(capacity: 1 << 15)
        ringStorage.initialize(repeating: 0)
        ring = SampleRing(storage: ringStorage)
        switch config.input {
        case .file(let path):
            do {
                // A window is a real-time sink: file input shown in a window is paced.
                let f = try FileSource(path: path, realtime: config.realtime || !config.headless)
                fileSource = f
                source = f
            } catch { throw AvgasError(error) }
        case .device(let name):
            var c = ALSACapture.Configuration(device: name)
            c.configText = config.alsaConfigText
            let capture = ALSACapture(c)
            // Open the device now, so a missing card or a busy device is reported before
            // anything else; capture fills the ring while the models load.
            do { try capture.start(into: ring) } catch let e as AudioInputError { throw AvgasError(e) } catch {
                throw AvgasError("cannot start capture: \(error)", status: .unavailable)
            }
            source = capture
            sourceStarted = true
            fileSource = nil
            Self.scheduleTestDeviceLoss(capture)
        }
        if !config.headless {
            do {
                window = try Window(title: "avgas-live", width: config.width, height: config.height,
                                    fullscreen: config.fullscreen, displayIndex: config.displayIndex)
            } catch { throw AvgasError(error) }
        }
        NeuralNetRuntime.setThreads(config.threads)
        let tracker = config.tracker ?? (config.presence == .head ? .learnedHead(sensitivity: config.sensitivity) : nil)
        let listener = try SceneListener(assets: config.assets, tracker: tracker,
                                         separator: !config.noImages, presence: config.presence)
        if config.onlyClasses != nil || !config.ignoredClasses.isEmpty {
            try listener.restrict(only: config.onlyClasses, ignoring: config.ignoredClasses)
        }
        var imagery: Imagery?
        if !config.noImages {
            let genPath = config.assets.appendingPathComponent("models/generator.safetensors").path
            let bankPath = config.assets.appendingPathComponent("models/exemplars.safetensors").path
            do {
                let model = try GeneratorModel(path: genPath)
                let bank = try ExemplarBank(path: bankPath)
                try bank.check(fits: model, path: bankPath)
                guard model.classes == listener.vocabulary.names else {
                    throw ImaginingError("'\(genPath)' was trained for other classes than Assets/classes.json; retrain it (make train-generator)")
                }
                if let d = listener.embeddingSize, d != model.embeddingSize {
                    throw ImaginingError("'\(genPath)' draws from \(model.embeddingSize)-d embeddings but the separator makes \(d)-d ones; "
                                         + "retrain the generator on this separator (make train-generator)")
                }
                imagery = Imagery(model: model, bank: bank, vocabulary: listener.vocabulary, mix: config.mix, mode: config.generation)
            } catch {
                throw AvgasError("\(error)", status: .config)
            }
        }
        self.imagery = imagery
        if !config.headless || config.framesDirectory != nil || config.recordPath != nil || config.contactSheetPath != nil {
            let size = window?.drawableSize ?? (config.width, config.height)
            presenter = Presenter(width: size.0, height: size.1, spectrogram: spectrogram)
            presenter?.imagery = imagery
        }
        if let rec = config.recordPath, let presenter {
            do {
                recorder = try VideoRecorder(path: rec, width: presenter.framebuffer.width, height: presenter.framebuffer.height, fps: config.fps)
                recordingsMade = 1
            } catch { throw AvgasError(error.description, status: .cannotCreate) }
        }
        // Last, now that nothing else can fail: the events file is truncated and the frames of
        // an earlier run into the same folder are removed (they would mix with this run's).
        let events = try config.eventsPath.map { p throws(AvgasError) in try EventsWriter(path: p) }
        self.events = events
        analyzer = Analyzer(hopMilliseconds: config.hopMilliseconds, listener: listener,
                            spectrogram: spectrogram, scenes: scenes, events: events)
        if let dir = config.framesDirectory { Self.removeEarlierFrames(in: dir) }
        if window != nil { displayLostHook = { [weak self] in self?.displayLost() } }
    }

    /// Frame files are named `frame_NNNNNN.png` (six digits).
    static func isFrameFile(_ name: String) -> Bool {
        let digits = name.dropFirst(6).dropLast(4)
        return name.count == 16 && name.hasPrefix("frame_") && name.hasSuffix(".png") && digits.allSatisfy(\.isASCII) && digits.allSatisfy(\.isNumber)
    }

    /// Removes the `frame_NNNNNN.png` files (and nothing else) of an earlier run from `dir`.
    static func removeEarlierFrames(in dir: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names where isFrameFile(name) { unlink("\(dir)/\(name)") }
    }

    /// Test hook: AVGAS_TEST_DEVICE_GONE="A,B" makes the capture's fault injector report the
    /// device unplugged from A to B seconds after start (the robustness tests unplug a real
    /// ALSA `file` plugin device this way; nothing else reads the variable).
    static func scheduleTestDeviceLoss(_ capture: ALSACapture) {
        guard let spec = ProcessInfo.processInfo.environment["AVGAS_TEST_DEVICE_GONE"] else { return }
        let parts = spec.split(separator: ",").compactMap { Double($0) }
        guard parts.count == 2, parts[0] >= 0, parts[1] > parts[0] else { return }
        let faults = capture.faults
        DispatchQueue.global().asyncAfter(deadline: .now() + parts[0]) { faults.setDeviceGone(true) }
        DispatchQueue.global().asyncAfter(deadline: .now() + parts[1]) { faults.setDeviceGone(false) }
    }

    static func checkFileDestination(_ path: String, option: String, input: String? = nil,
                                     allowSpecial: Bool = false, inPlace: Bool = false) throws(AvgasError) {
        do { try OutputPath.check(path, input: input, allowSpecial: allowSpecial, inPlace: inPlace) } catch {
            if case .cannotCreate(let why) = error {
                throw AvgasError("cannot write \(option) '\(path)': \(why)", status: .cannotCreate)
            }
            throw AvgasError("\(option) '\(path)' \(error)", status: error == .sameAsInput ? .usage : .cannotCreate)
        }
    }

    deinit {
        // The producer must be stopped before its ring goes (a Runner dropped without run()).
        // A capture thread left blocked in its driver still holds the ring: leak it rather than
        // free memory that thread may write to (the process is about to exit).
        source.stop()
        if (source as? ALSACapture)?.abandoned != true { ringStorage.deallocate() }
    }

    static func prepareDirectory(_ dir: String, option: String) throws(AvgasError) {
        do { try OutputPath.makeDirectories(dir) } catch {
            throw AvgasError("cannot create \(option) directory '\(dir)': \(error.reason)", status: .cannotCreate)
        }
        do { try OutputPath.check("\(dir)/frame_000000.png") } catch {
            throw AvgasError("cannot write frames into \(option) directory '\(dir)': \(error.reason)", status: .cannotCreate)
        }
    }

    /// Runs to the end. Returns the summary; throws for failures while running.
    public func run() throws(AvgasError) -> RunSummary {
        let wall0 = DispatchTime.now().uptimeNanoseconds
        if !sourceStarted {
            do { try source.start(into: ring) } catch let e as AudioInputError { throw AvgasError(e) } catch {
                throw AvgasError("cannot start the input: \(error)", status: .software)
            }
            sourceStarted = true
        }
        defer {
            source.stop()
            if let capture = source as? ALSACapture, capture.abandoned, case .device(let name) = config.input {
                FileHandle.standardError.write(Data("avgas-live: capture device '\(name)' did not stop (blocked in its driver); exiting without it\n".utf8))
            }
        }
        if config.isOffline {
            try runOffline()
        } else {
            try runLive()
        }
        try finishOutputs()
        var s = RunSummary()
        s.streamSeconds = analyzer.streamTime
        s.wallSeconds = seconds(since: wall0)
        s.timings = analyzer.timings
        s.timings.render = renderTime; s.timings.output = outputTime; s.timings.frames = frameIndex
        s.framesWritten = config.framesDirectory != nil ? frameIndex : 0
        s.skippedSeconds = Double(analyzer.skippedSamples) / Double(pipelineSampleRate)
        s.droppedSeconds = Double(source.stats.droppedSamples.load(ordering: .relaxed)) / Double(pipelineSampleRate)
        s.xruns = source.stats.xruns.load(ordering: .relaxed)
        if let f = fileSource, let failure = f.failure { throw AvgasError(failure) }
        return s
    }

    /// The X server went away (Xlib's I/O error handler; the process ends with 69 right after):
    /// finalise the video and the contact sheet, and say so in one line.
    private func displayLost() {
        var saved = ""
        if let recorder {
            self.recorder = nil
            if (try? recorder.finish()) == true { saved = "; the video so far is in \(recorder.path)" }
        }
        if let sheet = contactSheet, let path = config.contactSheetPath, let presenter {
            try? sheet.write(to: path, text: presenter.renderer.text)
        }
        FileHandle.standardError.write(Data("avgas-live: error: the display went away (the X server closed the connection)\(saved)\n".utf8))
    }

    /// Finalises the video and writes the contact sheet (also after SIGINT/SIGTERM).
    private func finishOutputs() throws(AvgasError) {
        if let recorder {
            self.recorder = nil
            let saved: Bool
            do { saved = try recorder.finish() } catch { throw AvgasError(error.description, status: .ioError) }
            if !config.quiet {
                let note = saved ? "video saved to \(recorder.path) (\(recorder.framesWritten) frames)"
                    : "no frame was recorded, so '\(recorder.path)' was not written"
                FileHandle.standardError.write(Data("avgas-live: \(note)\n".utf8))
            }
        }
        if let sheet = contactSheet, let path = config.contactSheetPath, let presenter {
            do { try sheet.write(to: path, text: presenter.renderer.text) } catch {
                throw AvgasError(error.description, status: .ioError)
            }
        }
    }

    private func toggleRecording() {
        if let recorder {
            self.recorder = nil
            do {
                let note = try recorder.finish() ? "video saved to \(recorder.path)" : "no frame was recorded, so '\(recorder.path)' was not written"
                FileHandle.standardError.write(Data("avgas-live: \(note)\n".utf8))
            } catch { FileHandle.standardError.write(Data("avgas-live: \(error)\n".utf8)) }
            return
        }
        guard let presenter else { return }
        recordingsMade += 1
        // The first take goes to --record's path as asked; later takes (and key R without
        // --record) get a name no file has yet, so no take replaces another.
        let path: String
        if let given = config.recordPath, recordingsMade == 1 {
            path = given
        } else {
            let stem = config.recordPath.map { ($0 as NSString).deletingPathExtension }
                ?? "\(config.screenshotDirectory)/avgas-recording-\(Int(Date().timeIntervalSince1970))"
            var n = config.recordPath == nil ? 1 : recordingsMade
            func name(_ k: Int) -> String { k == 1 ? stem + ".mp4" : stem + "-\(k).mp4" }
            while FileManager.default.fileExists(atPath: name(n)) || FileManager.default.fileExists(atPath: VideoRecorder.partialPath(name(n))) { n += 1 }
            path = name(n)
        }
        do {
            recorder = try VideoRecorder(path: path, width: presenter.framebuffer.width, height: presenter.framebuffer.height, fps: config.fps)
            FileHandle.standardError.write(Data("avgas-live: recording to \(path) (R stops)\n".utf8))
        } catch { FileHandle.standardError.write(Data("avgas-live: \(error)\n".utf8)) }
    }

    /// Key V: the next sensitivity, applied by the analysis thread before its next audio, with a
    /// two-second notice in the window and a line on stderr.
    private func cycleSensitivity() {
        let text: String
        if let current = sensitivity {
            let next = current.next
            sensitivity = next
            sensitivityRequest.put(next)
            text = "sensitivity \(next.rawValue): \(next.summary)"
        } else {
            text = "sensitivity applies to --presence head only"
        }
        notice = text
        noticeUntil = DispatchTime.now().uptimeNanoseconds + 2_000_000_000
        FileHandle.standardError.write(Data("avgas-live: \(text) (key V)\n".utf8))
    }

    private func overlayLines(_ scene: Scene) -> [String] {
        let now = DispatchTime.now().uptimeNanoseconds
        fpsWindow.append(now)
        fpsWindow.removeAll { now - $0 > 2_000_000_000 }
        let fps = fpsWindow.count > 1 ? Double(fpsWindow.count - 1) / (Double(now - fpsWindow.first!) / 1e9) : 0
        let t = scene.timings
        let per = { (s: Double, n: Int) in n > 0 ? s / Double(n) * 1000 : 0 }
        return [
            String(format: "%.1f fps  stream %.1f s", fps, scene.time),
            String(format: "front end %.2f ms/hop  listening %.2f ms/hop", per(t.frontEnd, t.hops), per(t.backbone, t.hops)),
            String(format: "render %.2f ms  output %.2f ms per frame", per(renderTime, frameIndex), per(outputTime, frameIndex)),
            imagery.map { String(format: "generator %.2f ms  compose %.2f ms per frame  (%@, %@)", per($0.generatorTime, $0.frames),
                                 per($0.composeTime, $0.frames), $0.slots.mode.rawValue, $0.mix.rawValue) } ?? "no images",
            "presence \(config.presence.rawValue)" + (sensitivity.map { ", sensitivity \($0.rawValue) (V)" } ?? ""),
            String(format: "skipped %.2f s  dropped %.2f s  xruns %d", scene.skippedSeconds,
                   Double(source.stats.droppedSamples.load(ordering: .relaxed)) / Double(pipelineSampleRate),
                   source.stats.xruns.load(ordering: .relaxed)),
        ]
    }

    private var renderTime = 0.0
    private var outputTime = 0.0

    /// File replay as fast as possible, in lockstep: frame k is drawn once exactly
    /// round(k * 16000 / fps) samples have been analysed, so runs are deterministic.
    private func runOffline() throws(AvgasError) {
        let chunk = UnsafeMutableBufferPointer<Float>.allocate(capacity: 4096)
        defer { chunk.deallocate() }
        let rendering = presenter != nil
        // Nothing waits for single hops without frames: analyse hops in batches on two threads.
        if !rendering { analyzer.batchHops = 32 }
        var nextFrameSample = 0
        let endSample = config.duration.map { Int(($0 * Double(pipelineSampleRate)).rounded()) } ?? Int.max
        while !stopRequested.load(ordering: .relaxed) {
            if rendering && analyzer.streamSamples >= nextFrameSample {
                try renderFrame(time: Double(nextFrameSample) / Double(pipelineSampleRate))
                nextFrameSample = Int((Double(frameIndex) * Double(pipelineSampleRate) / config.fps).rounded())
                continue
            }
            if analyzer.streamSamples >= endSample { break }
            var want = min(chunk.count, endSample - analyzer.streamSamples)
            if rendering { want = min(want, nextFrameSample - analyzer.streamSamples) }
            let n = ring.read(into: UnsafeMutableBufferPointer(rebasing: chunk[0..<want]))
            if n > 0 {
                try analyzer.consume(UnsafeBufferPointer(rebasing: chunk[0..<n]))
            } else if source.stats.finished.load(ordering: .acquiring) && ring.availableToRead == 0 {
                break
            } else {
                usleep(100)
            }
        }
        try analyzer.flush()
    }

    /// Live capture (or paced file): analysis on its own thread, rendering on this one at
    /// `fps` of wall time, never waiting for analysis.
    private func runLive() throws(AvgasError) {
        let analysisDone = DispatchSemaphore(value: 0)
        let failure = Mutex<AvgasError?>(nil)
        let running = Atomic<Bool>(true)
        nonisolated(unsafe) let analyzer = self.analyzer
        let ring = self.ring
        let source = self.source
        let duration = config.duration
        let maxBacklog = pipelineSampleRate  // more than 1 s behind: skip ahead
        let sensitivityRequest = self.sensitivityRequest
        let thread = Thread {
            let chunk = UnsafeMutableBufferPointer<Float>.allocate(capacity: 4096)
            defer { chunk.deallocate(); analysisDone.signal() }
            while running.load(ordering: .acquiring) && !stopRequested.load(ordering: .relaxed) {
                if ring.availableToRead > maxBacklog {
                    // Fell behind: keep the newest patch worth of audio, report the rest.
                    analyzer.skip(ring.skip(keepingNewest: LogMelConfiguration().patchSamples))
                }
                let n = ring.read(into: chunk)
                if n > 0 {
                    do {
                        if let wanted = sensitivityRequest.take() {
                            try analyzer.retune(.learnedHead(sensitivity: wanted))
                        }
                        try analyzer.consume(UnsafeBufferPointer(rebasing: chunk[0..<n]))
                    } catch {
                        let e = (error as? AvgasError) ?? AvgasError("\(error)", status: .software)
                        failure.withLock { $0 = e }
                        return
                    }
                } else if source.stats.finished.load(ordering: .acquiring) {
                    return
                } else {
                    usleep(2000)
                }
                if let duration, analyzer.streamTime >= duration { return }
            }
        }
        thread.name = "avgas-analysis"
        thread.start()
        defer {
            running.store(false, ordering: .releasing)
            analysisDone.wait()
        }
        let frameNanos = UInt64(1e9 / config.fps)
        var next = DispatchTime.now().uptimeNanoseconds
        var reportedLost = false
        var lastProduced = -1
        var lastProducedAt = DispatchTime.now().uptimeNanoseconds
        var analysisFinished = false
        while !stopRequested.load(ordering: .relaxed) && !analysisFinished {
            if let window {
                for e in window.pollEvents() {
                    switch e {
                    case .quit: stopRequested.store(true, ordering: .relaxed)
                    case .toggleFullscreen: window.toggleFullscreen()
                    case .resized(let w, let h): presenter?.resize(width: w, height: h)
                    case .screenshot: saveScreenshot()
                    case .toggleOverlay: showOverlay.toggle()
                    case .toggleRecording: toggleRecording()
                    case .toggleMixMode:
                        if let imagery { imagery.mix = imagery.mix == .composed ? .paper : .composed }
                    case .cycleSensitivity: cycleSensitivity()
                    }
                }
            }
            // A device can also stall without an error (a driver blocked in a read): no new
            // samples for 2 s of wall time counts as lost too, until samples flow again.
            let produced = source.stats.producedSamples.load(ordering: .relaxed) + source.stats.droppedSamples.load(ordering: .relaxed)
            let now = DispatchTime.now().uptimeNanoseconds
            if produced != lastProduced { lastProduced = produced; lastProducedAt = now }
            let stalled = fileSource == nil && now - lastProducedAt > 2_000_000_000
            let lost = source.stats.state == .lost || stalled
            if lost && !reportedLost, case .device(let name) = config.input {
                let what = stalled && source.stats.state != .lost ? "has delivered no audio for 2 s; waiting for it"
                    : "stopped delivering audio; retrying every 2 s"
                FileHandle.standardError.write(Data("avgas-live: capture device '\(name)' \(what)\n".utf8))
            }
            if !lost && reportedLost {
                FileHandle.standardError.write(Data("avgas-live: capture resumed\n".utf8))
            }
            reportedLost = lost
            presenter?.notice = now < noticeUntil ? notice : nil
            presenter?.status = !lost ? nil : source.stats.state == .lost ? "no input: the capture device stopped; retrying"
                : "no input: the capture device delivers no audio; waiting for it"
            if let presenter {
                // Follow the window's real size even when no resize event comes (fullscreen
                // toggled in an X session without a window manager).
                if let window {
                    let size = window.drawableSize
                    if size.width > 0, size.height > 0, size != (presenter.framebuffer.width, presenter.framebuffer.height) {
                        presenter.resize(width: size.width, height: size.height)
                    }
                }
                let scene = scenes.latest()
                try renderFrame(time: max(scene.time, analyzerTimeEstimate(scene)))
            }
            func checkAnalysisDone() {
                if analysisDone.wait(timeout: .now()) == .success {
                    analysisDone.signal()  // keep it signalled for the deferred wait
                    analysisFinished = true
                }
            }
            checkAnalysisDone()
            next += frameNanos
            // Wait for the next frame in slices of at most 20 ms, so the end of the input or a
            // signal is noticed at once even at a low frame rate.
            while !analysisFinished && !stopRequested.load(ordering: .relaxed) {
                let now = DispatchTime.now().uptimeNanoseconds
                guard next > now else { next = now; break }
                usleep(UInt32(min(next - now, 20_000_000) / 1000))
                checkAnalysisDone()
            }
        }
        if let e = failure.withLock({ $0 }) { throw e }
    }

    private func analyzerTimeEstimate(_ scene: Scene) -> Double { scene.time }

    private func renderFrame(time: Double) throws(AvgasError) {
        guard let presenter else { return }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let scene = scenes.latest()
        presenter.overlay = showOverlay ? overlayLines(scene) : nil
        presenter.draw(scene: scene, time: time)
        window?.present(presenter.framebuffer)
        renderTime += seconds(since: t0)
        if let sheet = contactSheet, sheet.wants(time) { sheet.add(presenter.framebuffer, time: time) }
        if let recorder {
            do { try recorder.write(presenter.framebuffer) } catch {
                self.recorder = nil
                throw AvgasError(error.description, status: .ioError)
            }
        }
        if let dir = config.framesDirectory {
            let t1 = DispatchTime.now().uptimeNanoseconds
            let path = "\(dir)/frame_\(String(format: "%06d", frameIndex)).png"
            do { try PNGWriter.write(presenter.framebuffer, to: path) } catch {
                throw AvgasError("\(error) (is the disk full?); the \(frameIndex) frames before it are in '\(dir)'", status: .ioError)
            }
            outputTime += seconds(since: t1)
        }
        frameIndex += 1
    }

    private func saveScreenshot() {
        guard let presenter else { return }
        let stamp = Int(Date().timeIntervalSince1970)
        screenshotCount += 1
        let path = "\(config.screenshotDirectory)/avgas-screenshot-\(stamp)-\(screenshotCount).png"
        do {
            try PNGWriter.write(presenter.framebuffer, to: path)
            FileHandle.standardError.write(Data("avgas-live: screenshot saved to \(path)\n".utf8))
        } catch {
            FileHandle.standardError.write(Data("avgas-live: \(error)\n".utf8))
        }
    }
}

import ArgumentParser
import AudioInput
import Foundation
import Imagining
import Listening
import NeuralNet
import Pipeline

/// avgas-live: listens, tracks which sound sources are active, and shows them.
struct AvgasLive: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "avgas-live",
        abstract: "Listen to a microphone (or a recording) and show what it hears.",
        discussion: """
        With no options, captures from the default ALSA device and opens a window. Keys in the \
        window: Q or Esc quit, F fullscreen, S screenshot (PNG in the current directory), \
        D diagnostics overlay, R start/stop recording, V cycles the sensitivity (normal, high, low).

        Exit codes: 0 ok, 64 bad option value, 65 input is not usable audio, 66 input file \
        missing/unreadable/empty, 69 no sound card, unknown or busy device, or no display, \
        70 internal error, 73 an output cannot be created, 74 writing an output failed, \
        78 model weights missing or corrupt.
        """)

    @Option(name: .long, help: "ALSA capture device (default, hw:1, plughw:1,0...). See --list-devices.")
    var device: String = "default"

    @Flag(name: .long, help: "List the capture devices ALSA knows and exit.")
    var listDevices = false

    @Option(name: .long, help: "Analyse an audio file (WAV, FLAC, OGG; any rate and channel count) instead of a device.")
    var input: String?

    @Flag(name: .long, help: "Pace file input at real speed, like live input. (A window always paces file input.)")
    var realtime = false

    @Flag(name: .long, help: "No window: render offscreen. File input then runs as fast as possible.")
    var headless = false

    @Option(name: .long, help: "Write every rendered frame as a PNG (frame_000000.png, ...) into this directory (created if needed; frames of an earlier run in it are replaced).")
    var frames: String?

    @Option(name: .long, parsing: .unconditional, help: "Frames per second (1 to 240): of stream time for --frames, of wall time in a window.")
    var fps: Double = 30

    @Option(name: .long, help: "Write one JSON line per analysis hop to this file ('-' for standard output): {\"t\": seconds, \"active\": [{\"class\": name, \"score\": s}]}.")
    var events: String?

    @Option(name: .long, help: "Record the rendered frames as an H.264 video through ffmpeg (finalised on quit, Ctrl-C or SIGTERM). Key R starts/stops recording in a window.")
    var record: String?

    @Option(name: .long, help: "At the end of the run, write a grid of one frame per second of stream time to this PNG (at most 120 frames: longer runs get one every 2, 4, 8... seconds).")
    var contactSheet: String?

    @Flag(name: .long, help: "Show the diagnostics overlay (fps, stage timings, dropped audio, overruns) from the start; key D toggles it.")
    var overlay = false

    @Flag(name: .long, help: "Analysis only: do not generate images (no separator or generator is loaded).")
    var noImages = false

    @Option(name: .long, help: "Mixed image: 'composed' (a scene laid out from the per-class images) or 'paper' (generated from one embedding of the whole mixture). Key M switches.")
    var mix: String = "composed"

    @Option(name: .long, help: "Image generation: 'retrieval' (start from a re-noised real exemplar) or 'pure' (from noise). Default: the generator's measured default.")
    var generation: String?

    @Option(name: .long, help: "What decides which classes are active: 'head' (a presence head trained on the project's recordings, combined with the AudioSet-label mapping), 'yamnet' (AudioSet labels mapped to the vocabulary), 'separator' (the AV-GAS separator's presence) or 'combined' (the larger of 'yamnet' and 'separator').")
    var presence: String = "head"

    @Option(name: .long, help: "How readily a class is shown: 'low' (fewer false classes), 'normal' or 'high' (hears more, and names more wrong classes). On the test clips: recall 0.84 / 0.86 / 0.89 with 0.86 / 0.95 / 1.66 wrong classes per clip ('head' presence only; key V cycles it in the window).")
    var sensitivity: String = "normal"

    @Option(name: .long, help: "Never report this class (its exact name, see --list-classes; repeat the option for more), e.g. --ignore \"people speaking\" where visitors talk.")
    var ignore: [String] = []

    @Option(name: .long, help: "Report only this class (repeat the option for more); every other class is ignored.")
    var only: [String] = []

    @Flag(name: .long, help: "List the class names (for --only and --ignore) and exit.")
    var listClasses = false

    @Flag(name: .long, help: "Turn off the onset path. By default, for under a second after a sound starts out of quiet, the audio since its start fills two extra YAMNet windows (repeated end to end, and mirrored), scored at every hop and midway between hops, and a class either names with a score of 0.9 or more turns on at once (median onset latency 0.38 s instead of 0.67 s on the test clips; 'head' presence only).")
    var noOnsetPath = false

    @Option(name: .long, parsing: .unconditional, help: "Analysis hop in milliseconds (a multiple of 10, 10 to 2000).")
    var hopMs: Int = 100

    @Flag(name: .long, help: "Start the window fullscreen.")
    var fullscreen = false

    @Option(name: .long, parsing: .unconditional, help: "Monitor to open the window on (0 is the first).")
    var display: Int = 0

    @Option(name: .long, help: "Window or frame size, WIDTHxHEIGHT (up to 3840x2160).")
    var size: String = "1280x720"

    @Option(name: .long, parsing: .unconditional, help: "Stop after this many seconds of stream time (default: until the input ends or you quit).")
    var duration: Double?

    @Option(name: .long, help: "Folder holding models/ and classes.json (default: found next to the program, or $AVGAS_ASSETS).")
    var assets: String?

    @Option(name: .long, parsing: .unconditional, help: "Threads for the neural networks' matrix products (OpenBLAS, 1 to 16).")
    var threads: Int = 1

    @Flag(name: .long, help: "Do not print the summary at exit.")
    var quiet = false

    func validate() throws {
        guard fps.isFinite, fps >= 1, fps <= 240 else {
            throw ValidationError("--fps must be between 1 and 240 frames per second (got \(fps))")
        }
        guard hopMs >= 10, hopMs <= 2000, hopMs % 10 == 0 else {
            throw ValidationError("--hop-ms must be a multiple of 10 between 10 and 2000 (got \(hopMs))")
        }
        guard parsedSize != nil else {
            throw ValidationError("--size must look like 1280x720: each side 64 to 4096, at most 3840x2160 pixels in all (got '\(size)')")
        }
        guard (1...16).contains(threads) else { throw ValidationError("--threads must be between 1 and 16 (got \(threads))") }
        guard display >= 0 else { throw ValidationError("--display must be 0 or more (got \(display))") }
        if let duration, !(duration > 0 && duration <= 1e9) {
            throw ValidationError("--duration must be a number of seconds above 0 and at most 1e9 (got \(duration))")
        }
        if let input, input.isEmpty { throw ValidationError("--input needs a file name") }
        for (option, value) in [("--frames", frames), ("--events", events), ("--record", record), ("--contact-sheet", contactSheet)] {
            if let value, value.isEmpty { throw ValidationError("\(option) needs a name (got an empty one)") }
        }
        if noImages, presence == "separator" || presence == "combined" {
            throw ValidationError("--presence \(presence) needs the separator, which --no-images does not load; drop one of them")
        }
        guard MixMode(rawValue: mix) != nil else { throw ValidationError("--mix must be 'composed' or 'paper' (got '\(mix)')") }
        if let generation, GenerationMode(rawValue: generation) == nil {
            throw ValidationError("--generation must be 'retrieval' or 'pure' (got '\(generation)')")
        }
        guard SceneListener.PresenceSource(rawValue: presence) != nil else {
            throw ValidationError("--presence must be 'head', 'yamnet', 'separator' or 'combined' (got '\(presence)')")
        }
        guard Sensitivity(rawValue: sensitivity) != nil else {
            throw ValidationError("--sensitivity must be 'low', 'normal' or 'high' (got '\(sensitivity)')")
        }
        if sensitivity != "normal", presence != "head" {
            throw ValidationError("--sensitivity applies to --presence head only (got --presence \(presence))")
        }
    }

    var parsedSize: (Int, Int)? {
        let parts = size.lowercased().split(separator: "x")
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]),
              (64...4096).contains(w), (64...4096).contains(h), w * h <= 3840 * 2160 else { return nil }
        return (w, h)
    }

    func runConfiguration() -> RunConfiguration {
        var c = RunConfiguration()
        c.input = input.map { .file($0) } ?? .device(device)
        c.realtime = realtime
        c.headless = headless
        c.framesDirectory = frames
        c.fps = fps
        c.eventsPath = events
        c.noImages = noImages
        c.hopMilliseconds = hopMs
        (c.width, c.height) = parsedSize ?? (1280, 720)
        c.fullscreen = fullscreen
        c.displayIndex = display
        c.assets = AssetLocator.locate(explicit: assets)
        c.duration = duration
        c.quiet = quiet
        c.recordPath = record
        c.contactSheetPath = contactSheet
        c.overlay = overlay
        c.mix = MixMode(rawValue: mix) ?? .composed
        c.generation = generation.flatMap(GenerationMode.init(rawValue:))
        c.presence = SceneListener.PresenceSource(rawValue: presence) ?? .head
        c.onlyClasses = only.isEmpty ? nil : only
        c.ignoredClasses = ignore
        if c.presence == .head {
            c.sensitivity = Sensitivity(rawValue: sensitivity) ?? .normal
            var t = TrackerConfiguration.learnedHead(sensitivity: c.sensitivity)
            if noOnsetPath { t.fastOnThreshold = nil }
            c.tracker = t
        }
        c.threads = threads
        return c
    }

    func run() throws {
        if listDevices {
            printDevices()
            return
        }
        if listClasses {
            let file = AssetLocator.locate(explicit: assets).appendingPathComponent("classes.json")
            do {
                for name in try ClassVocabulary.names(contentsOf: file) { print(name) }
            } catch {
                throw AvgasError("\(error); point --assets (or $AVGAS_ASSETS) at the folder holding classes.json", status: .config)
            }
            return
        }
        installStopSignalHandlers()
        let runner = try Runner(runConfiguration())
        let summary = try runner.run()
        if !quiet {
            for line in summary.lines { FileHandle.standardError.write(Data((line + "\n").utf8)) }
            if let frames { FileHandle.standardError.write(Data("  frames are in \(frames)/\n".utf8)) }
        }
    }

    func printDevices() {
        let (cards, pcms) = ALSADevices.list()
        if cards.isEmpty {
            print("This machine has no sound card: there is no capture device. Use --input FILE to analyse a recording.")
        } else {
            print("Sound cards:")
            for c in cards { print("  \(c.name)\t\(c.description)") }
        }
        if !pcms.isEmpty {
            print("Capture PCMs (use with --device):")
            for p in pcms { print("  \(p.name)\t\(p.description)") }
        }
    }
}

NeuralNetRuntime.reexecWithBetterCoreTypeIfNeeded()
// One clear line for every error, with a distinct exit status; --help prints normally.
do {
    var command = try AvgasLive.parseAsRoot()
    try command.run()
    exit(0)
} catch let e as AvgasError {
    FileHandle.standardError.write(Data("avgas-live: error: \(e.description)\n".utf8))
    exit(e.status.rawValue)
} catch {
    let code = AvgasLive.exitCode(for: error)
    if code == .success {
        AvgasLive.exit(withError: error)  // --help, --version: print and exit 0
    }
    let message = AvgasLive.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    FileHandle.standardError.write(Data("avgas-live: error: \(message) (see avgas-live --help)\n".utf8))
    exit(ExitStatus.usage.rawValue)
}

// `avgas-bench soak`: the long-run check of issue 8. The demo soundscape is looped through ONE
// Analyzer (a continuous stream, as a week-long installation sees it) as fast as the machine
// allows, for `--hours` of audio. Reports resident memory and open file descriptors at
// intervals, their growth after warm-up, and whether every loop produced the same events.
import ArgumentParser
import AudioInput
import Foundation
import Imagining
import Pipeline

struct SoakBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Long run: loop the demo soundscape through the analysis path, watch memory, fds and determinism.",
        discussion: """
            Events are compared as the --events lines they would be (time relative to the loop's \
            start, classes, scores to 3 decimals). Loop 1 starts from silence, every later loop \
            follows the same audio (the previous loop's end), so loops 2, 3, ... must be identical \
            to loop 2; loop 1's differences from it (its first hops, before the tracker has \
            history) are reported separately. Pass: RSS growth after warm-up <= --max-growth-mb, \
            no fd growth, every loop identical. Exit status 1 otherwise.
            """)

    @Option(help: "Hours of audio to analyse (analysis only: the --no-images path).")
    var hours: Double = 24
    @Option(help: "16 kHz WAV to loop.")
    var wav = "Assets/demo/soundscape.wav"
    @Option(help: "Assets folder.")
    var assets = "Assets"
    @Option(help: "Analysis hop in milliseconds.")
    var hopMs = 100
    @Option(help: "Print a row every this many minutes of audio.")
    var reportMinutes: Double = 60
    @Option(help: "Minutes of audio treated as warm-up (growth is measured from its end).")
    var warmupMinutes: Double = 10
    @Option(help: "Largest acceptable resident-memory growth after warm-up, in MB.")
    var maxGrowthMb: Double = 5
    @Flag(help: "Also generate images: separator + generator, one 640x360 headless frame per hop (try --hours 1).")
    var images = false

    /// Growth is measured from the end of the warm-up, so the run must outlast it: a shorter
    /// run would compare the end with the start-up footprint and report a spurious failure.
    func validate() throws {
        guard hours > 0, warmupMinutes >= 0, reportMinutes > 0, hopMs > 0 else {
            throw ValidationError("--hours, --report-minutes and --hop-ms must be positive, --warmup-minutes not negative.")
        }
        guard hours * 60 > warmupMinutes else {
            throw ValidationError(String(format: "--hours %g is %g minutes of audio, not more than the %g-minute warm-up after which memory growth is measured; use --hours %g or more, or a shorter --warmup-minutes.",
                                         hours, hours * 60, warmupMinutes, (warmupMinutes + 5) / 60))
        }
    }

    static func residentMB() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return -1 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return -1 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }

    static func openFDs() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    func run() throws {
        printMachine()
        let audio = try FileSource(path: wav).readAll()
        let loopSamples = audio.count
        let loopSeconds = Double(loopSamples) / Double(pipelineSampleRate)
        let totalSamples = Int(hours * 3600 * Double(pipelineSampleRate))
        let loops = Int((Double(totalSamples) / Double(loopSamples)).rounded(.up))
        let assetsURL = URL(fileURLWithPath: assets)
        let listener = try SceneListener(assets: assetsURL, separator: images)
        let scenes = SceneStore()
        let spectrogram = SpectrogramStore()
        let analyzer = Analyzer(hopMilliseconds: hopMs, listener: listener,
                                spectrogram: spectrogram, scenes: scenes, events: nil)
        // With images: the separator, generator and exemplar bank as the program loads them,
        // one headless frame drawn (generator steps included) after every hop.
        var presenter: Presenter?
        if images {
            let model = try GeneratorModel(path: assetsURL.appendingPathComponent("models/generator.safetensors").path)
            let bank = try ExemplarBank(path: assetsURL.appendingPathComponent("models/exemplars.safetensors").path)
            let p = Presenter(width: 640, height: 360, spectrogram: spectrogram)
            p.imagery = Imagery(model: model, bank: bank, vocabulary: listener.vocabulary, mix: .composed, mode: nil)
            presenter = p
        }
        print("")
        print(String(format: "Soak: %@ (%.1f s) looped %d times = %.2f h of audio through one Analyzer, hop %d ms, one thread%@",
                     wav, loopSeconds, loops, Double(loops) * loopSeconds / 3600, hopMs, images ? ", with images (one frame per hop)" : ""))
        print("| audio h | wall s | x real time | RSS MB | open fds | loops identical |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")

        var reference: [String]? = nil   // loop 2's events
        var loop1: [String] = []
        var current: [String] = []
        var identical = 0, differing = 0
        var firstDifference: String?
        var lastHops = 0
        let reportSamples = Int(reportMinutes * 60 * Double(pipelineSampleRate))
        let warmupSamples = Int(warmupMinutes * 60 * Double(pipelineSampleRate))
        var nextReport = reportSamples
        var warmRSS: Double?, warmFDs: Int?
        var maxRSS = 0.0
        var maxFDs = 0
        let startRSS = Self.residentMB(), startFDs = Self.openFDs()
        let t0 = DispatchTime.now().uptimeNanoseconds
        func wall() -> Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
        func row(_ fed: Int) {
            let rss = Self.residentMB(), fds = Self.openFDs()
            maxRSS = max(maxRSS, rss); maxFDs = max(maxFDs, fds)
            let w = wall()
            print(String(format: "| %.2f | %.0f | %.0f | %.1f | %d | %d of %d |", Double(fed) / 16_000 / 3600, w,
                         Double(fed) / 16_000 / max(w, 1e-9), rss, fds, identical, identical + differing))
            fflush(nil)
        }
        var fed = 0
        try audio.withUnsafeBufferPointer { a in
            for loop in 0..<loops {
                var o = 0
                while o < loopSamples {
                    let n = min(160, loopSamples - o)  // 10 ms periods, as capture delivers them
                    try analyzer.consume(UnsafeBufferPointer(rebasing: a[o..<(o + n)]))
                    o += n
                    fed += n
                    if analyzer.timings.hops + analyzer.timings.midHops != lastHops {   // a hop, or a mid-hop turn-on
                        lastHops = analyzer.timings.hops + analyzer.timings.midHops
                        let sc = scenes.latest()
                        presenter?.draw(scene: sc, time: sc.time)
                        // Time within the loop, exact to the sample (subtracting seconds rounds).
                        let rel = Int((sc.time * Double(pipelineSampleRate)).rounded()) - loop * loopSamples
                        current.append(EventsWriter.line(time: Double(rel) / Double(pipelineSampleRate), active: sc.active))
                    }
                    if warmRSS == nil && fed >= warmupSamples { warmRSS = Self.residentMB(); warmFDs = Self.openFDs() }
                    if fed >= nextReport { row(fed); nextReport += reportSamples }
                }
                switch loop {
                case 0: loop1 = current
                case 1: reference = current; identical += 1
                default:
                    if current == reference { identical += 1 } else {
                        differing += 1
                        if firstDifference == nil, let ref = reference {
                            let i = zip(current, ref).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(current.count, ref.count)
                            firstDifference = "loop \(loop + 1), hop \(i): \(i < current.count ? current[i] : "<none>") vs \(i < ref.count ? ref[i] : "<none>")"
                        }
                    }
                }
                current.removeAll(keepingCapacity: true)
            }
        }
        if fed < nextReport { row(fed) }
        let endRSS = Self.residentMB(), endFDs = Self.openFDs()
        let growth = endRSS - (warmRSS ?? startRSS)
        let fdGrowth = endFDs - (warmFDs ?? startFDs)
        // Loop 1 has no hops before 0.96 s; each of its lines is looked up in loop 2's (time included).
        let loop1Diff = reference.map { ref in let r = Set(ref); return loop1.filter { !r.contains($0) }.count } ?? 0
        print("")
        print("| measure | value | target |")
        print("| --- | ---: | ---: |")
        print(String(format: "| audio analysed | %.2f h in %.0f s (%.0fx real time) | 24 h |", Double(fed) / 16_000 / 3600, wall(), Double(fed) / 16_000 / wall()))
        print(String(format: "| resident memory: start / after warm-up (%.0f min) / end / max | %.1f / %.1f / %.1f / %.1f MB | |",
                     warmupMinutes, startRSS, warmRSS ?? -1, endRSS, maxRSS))
        print(String(format: "| RSS growth after warm-up | %+.2f MB | <= %.0f MB |", growth, maxGrowthMb))
        print("| open fds: start / after warm-up / end | \(startFDs) / \(warmFDs ?? -1) / \(endFDs) | no growth |")
        print("| loops identical to loop 2 | \(identical) of \(identical + differing) | all |")
        print("| loop 1 hops differing from loop 2 (loop 1 starts from silence) | \(loop1Diff) of \(loop1.count) | |")
        print("| hops | \(analyzer.timings.hops) (and \(analyzer.timings.midHops) mid-hop turn-ons) | |")
        if let firstDifference { print("first difference: \(firstDifference)") }
        let pass = growth <= maxGrowthMb && fdGrowth <= 0 && differing == 0
        print(pass ? "soak: PASS" : "soak: FAIL")
        if !pass { throw ExitCode(1) }
    }
}

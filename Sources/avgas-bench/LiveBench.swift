// `avgas-bench live`: the live visualizer's budget, in release, on the demo soundscape:
// per-stage timings, frames per second with 1-4 active classes, new-class-to-first-image
// latency, CPU use, peak resident memory, start-up to first frame, and the generator step in
// Swift beside PyTorch on the same weights and thread count.
import ArgumentParser
import AudioInput
import Display
import Features
import Foundation
import Imagining
import NeuralNet
import Pipeline

struct LiveBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "live", abstract: "Live visualizer budget (release build).")

    @Option(help: "Assets folder.") var assets = "Assets"
    @Option(help: "Audio to analyse.") var wav = "Assets/demo/soundscape.wav"
    @Option(help: "Python with torch (the project's venv), for the PyTorch generator timing.") var python = ".venv/bin/python"
    @Option(parsing: .unconditional, help: "Frames timed per configuration (1 to 100000).") var frames = 90
    @Option(help: "Frame size, WIDTHxHEIGHT.") var size = "1280x720"
    @Flag(help: "Only the generator: per-op timings of the denoiser and decoder (medians), the step beside PyTorch, then exit.")
    var ops = false
    @Option(parsing: .unconditional, help: "Repeats for the per-op and step medians (--ops), 1 to 100000.") var repeats = 60

    func validate() throws {
        guard (1...100_000).contains(frames) else { throw ValidationError("--frames takes 1 to 100000 (got \(frames))") }
        guard (1...100_000).contains(repeats) else { throw ValidationError("--repeats takes 1 to 100000 (got \(repeats))") }
        _ = try parseSize(size)
        try requireFile(wav, option: "--wav")
    }

    func cpuSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    }

    func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Per-op medians of both networks, then the whole step (denoiser + decoder) median in Swift
    /// beside PyTorch's on the same weights, one thread each.
    func generatorOps(_ root: URL) throws {
        let path = root.appendingPathComponent("models/generator.safetensors").path
        let model = try GeneratorModel(path: path)
        let n = model.latentCount
        var noise = NoiseSource(seed: 7)
        model.denoiser.input("x").baseAddress!.update(repeating: 0, count: n)
        noise.fill(model.denoiser.input("x").baseAddress!, count: n)
        noise.fill(model.decoder.input("z").baseAddress!, count: n)
        model.denoiser.input("t")[0] = 0.25
        noise.fill(model.denoiser.input("emb").baseAddress!, count: model.embeddingSize)
        print("AVX-512 kernels: \(NeuralNetRuntime.hasAVX512)")
        for net in [model.denoiser, model.decoder] {
            let times = net.profile(repeats: repeats)
            let total = times.reduce(0, +)
            print("")
            print("\(net.name): per-op medians over \(repeats) passes (sum \(String(format: "%.2f", total / 1e6)) ms, \(String(format: "%.3f", Double(net.flops) / 1e9)) GFLOP)")
            print("| # | op | step | ms | GFLOP/s | share |")
            print("| ---: | --- | --- | ---: | ---: | ---: |")
            for (i, l) in net.stepLabels.enumerated() {
                let ms = times[i] / 1e6
                print(String(format: "| %d | %@ | %@ | %.3f | %@ | %.1f%% |", i, l.op, l.detail, ms,
                             l.flops > 0 && times[i] > 0 ? String(format: "%.1f", Double(l.flops) / times[i]) : "", 100 * times[i] / max(1, total)))
            }
        }
        // Whole step medians (as the live loop runs it).
        var x = [Float](repeating: 0, count: n), xn = x, x1 = x
        noise.fill(&x, count: n)
        let emb = [Float](UnsafeBufferPointer(start: model.denoiser.input("emb").baseAddress!, count: model.embeddingSize))
        var img = GeneratedImage(width: 0, height: 0, rgb: [])
        var den: [Double] = [], dec: [Double] = [], both: [Double] = []
        for i in 0..<(repeats + 5) {
            let t0 = now()
            x.withUnsafeBufferPointer { xp in emb.withUnsafeBufferPointer { ep in xn.withUnsafeMutableBufferPointer { np in x1.withUnsafeMutableBufferPointer { p1 in
                model.step(x: xp.baseAddress!, t: 0.25, tNext: 0.5, emb: ep.baseAddress!, xNext: np.baseAddress!, x1: p1.baseAddress!) } } } }
            let t1 = now()
            x1.withUnsafeBufferPointer { model.decode($0.baseAddress!, into: &img) }
            let t2 = now()
            if i >= 5 { den.append(Double(t1 - t0) / 1e6); dec.append(Double(t2 - t1) / 1e6); both.append(Double(t2 - t0) / 1e6) }
        }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s[s.count / 2] }
        print("")
        print(String(format: "Swift step medians (%d): denoiser %.2f ms, decoder + RGB %.2f ms, step %.2f ms",
                     repeats, median(den), median(dec), median(both)))
        if let json = runPython(python, ["tools/bench_generator_torch.py", "--weights", path, "--threads", "1"]),
           let results = json["results"] as? [[String: Any]], let r = results.first {
            let ts = r["step_ms"] as? Double ?? .nan
            print(String(format: "PyTorch %@ medians, 1 thread: denoiser %.2f ms, decoder %.2f ms, step %.2f ms; Swift/PyTorch step ratio %.2f",
                         (json["torch"] as? String) ?? "?", r["denoiser_ms"] as? Double ?? .nan, r["decoder_ms"] as? Double ?? .nan, ts, median(both) / ts))
        } else {
            print("Generator step in PyTorch: not measured (needs \(python) with torch: make pyenv-torch)")
        }
    }

    func run() throws {
        printMachine()
        NeuralNetRuntime.setThreads(1)
        let (W, H) = try parseSize(size)
        let root = URL(fileURLWithPath: assets)
        if ops { try generatorOps(root); return }
        let listener = try SceneListener(assets: root, separator: true, presence: .yamnet)
        let model = try GeneratorModel(path: root.appendingPathComponent("models/generator.safetensors").path)
        let bank = try ExemplarBank(path: root.appendingPathComponent("models/exemplars.safetensors").path)
        let audio = try FileSource(path: wav).readAll()

        // Stage timings on real audio.
        let frontEnd = LogMelFrameComputer()
        var t0 = now()
        let mel = frontEnd.frames(of: audio)
        let frontMsPerHop = Double(now() - t0) / 1e6 / Double(max(1, mel.count)) * 10
        var patch = [Float](repeating: 0, count: 96 * 64)
        var yam = 0.0, sep = 0.0, hops = 0
        var sceneEmbeddings: [(Int, [Float])] = []
        for start in stride(from: 0, to: mel.count - 96, by: 10) {
            for f in 0..<96 { for b in 0..<64 { patch[f * 64 + b] = mel[start + f][b] } }
            t0 = now()
            try patch.withUnsafeBufferPointer { try listener.yamnet.forward(patch: $0) }
            yam += Double(now() - t0) / 1e6
            t0 = now()
            listener.separator!.forward(listener.yamnet.embedding)
            sep += Double(now() - t0) / 1e6
            hops += 1
        }
        // Real separated embeddings for four different classes: the strongest class of hops spread over the demo.
        let logitsEmb: (Int) -> (Int, [Float]) = { hop in
            let start = hop * 10
            for f in 0..<96 { for b in 0..<64 { patch[f * 64 + b] = mel[start + f][b] } }
            try? patch.withUnsafeBufferPointer { try listener.yamnet.forward(patch: $0) }
            listener.separator!.forward(listener.yamnet.embedding)
            let l = listener.separator!.output("presence_logits"), e = listener.separator!.output("embeddings")
            let c = (0..<l.count).max { l[$0] < l[$1] }!
            return (c, Array(e[(c * 128)..<((c + 1) * 128)]))
        }
        for hop in stride(from: 5, to: hops, by: 7) {
            let (c, e) = logitsEmb(hop)
            if !sceneEmbeddings.contains(where: { $0.0 == c }) { sceneEmbeddings.append((c, e)) }
        }
        // Pad with exemplar embeddings of other classes if the demo has fewer than four.
        var k = 0
        while sceneEmbeddings.count < 4 && k < bank.count {
            let c = bank.classIndex[k]
            if !sceneEmbeddings.contains(where: { $0.0 == c }) {
                sceneEmbeddings.append((c, Array(UnsafeBufferPointer(start: bank.embeddings.pointer + k * 128, count: 128))))
            }
            k += 1
        }
        // Generator step and decoder alone.
        let n = model.latentCount
        var x = [Float](repeating: 0.1, count: n), xn = x, x1 = x
        var img = GeneratedImage(width: 0, height: 0, rgb: [])
        let emb = sceneEmbeddings[0].1
        var dens: [Double] = [], decodes: [Double] = []
        let reps = 60
        for i in 0..<(reps + 5) {
            t0 = now()
            x.withUnsafeBufferPointer { xp in emb.withUnsafeBufferPointer { ep in xn.withUnsafeMutableBufferPointer { np in x1.withUnsafeMutableBufferPointer { p1 in
                model.step(x: xp.baseAddress!, t: 0.25, tNext: 0.5, emb: ep.baseAddress!, xNext: np.baseAddress!, x1: p1.baseAddress!) } } } }
            let t1 = now()
            x1.withUnsafeBufferPointer { model.decode($0.baseAddress!, into: &img) }
            if i >= 5 { dens.append(Double(t1 - t0) / 1e6); decodes.append(Double(now() - t1) / 1e6) }
        }
        // Medians (the machine is shared: means follow other jobs' bursts).
        let den = dens.sorted()[reps / 2], decode = decodes.sorted()[reps / 2]

        // Frames per second with 1-4 classes: steady (images refine, then hold) and worst case
        // (every slot re-noised every frame, so every slot steps every frame).
        let spectrogram = SpectrogramStore()
        for f in mel.suffix(1024) { f.withUnsafeBufferPointer { spectrogram.append($0.baseAddress!) } }
        var rows: [String] = []
        var composeMs = 0.0, renderMs = 0.0
        var firstImage: [Double] = []
        for classes in 1...4 {
            for worst in [false, true] {
                let imagery = Imagery(model: model, bank: bank, vocabulary: listener.vocabulary, mix: .composed, mode: nil)
                if worst { imagery.slots.driftCosine = 2 }  // any change counts as drift: re-noise each frame
                let presenter = Presenter(width: W, height: H, spectrogram: spectrogram)
                presenter.imagery = imagery
                var scene = Scene()
                let cpu0 = cpuSeconds(), w0 = now()
                var time = 0.0
                for f in 0..<frames {
                    scene.active = (0..<classes).map { i in
                        let (c, e) = sceneEmbeddings[i]
                        return ActiveClass(name: listener.vocabulary.classes[c].name, index: c, score: 0.9 - 0.1 * Float(i), embedding: e)
                    }
                    let fs = now()
                    presenter.draw(scene: scene, time: time)
                    if f == 0 && !worst { firstImage.append(Double(now() - fs) / 1e6) }
                    time += 1.0 / 30
                }
                let wall = Double(now() - w0) / 1e9, cpu = cpuSeconds() - cpu0
                if classes == 4 && worst {
                    composeMs = imagery.composeTime / Double(imagery.frames) * 1000
                    renderMs = wall / Double(frames) * 1000 - imagery.generatorTime / Double(imagery.frames) * 1000 - composeMs
                }
                rows.append(String(format: "| %d | %@ | %.1f | %.2f | %.2f |", classes, worst ? "every slot re-noised every frame (24 ms step budget)" : "steady (refine, then hold)",
                                   Double(frames) / wall, imagery.generatorTime / Double(imagery.frames) * 1000, cpu / wall))
            }
        }
        print("")
        print("Per-stage timings (one thread, \(W)x\(H) frames)")
        print("| stage | time |")
        print("| --- | ---: |")
        print(String(format: "| front end (per 100 ms hop) | %.3f ms |", frontMsPerHop))
        print(String(format: "| backbone YAMNet (per hop) | %.2f ms |", yam / Double(hops)))
        print(String(format: "| separator (per hop, %.1f MFLOP) | %.3f ms |", Double(listener.separator!.flops) / 1e6, sep / Double(hops)))
        print(String(format: "| generator step: denoiser (%.3f GFLOP), median | %.2f ms |", Double(model.denoiser.flops) / 1e9, den))
        print(String(format: "| generator step: decoder + RGB (%.3f GFLOP), median | %.2f ms |", Double(model.decoder.flops) / 1e9, decode))
        print(String(format: "| compose (4 classes, 256x256) | %.2f ms |", composeMs))
        print(String(format: "| draw frame (layout, spectrogram, thumbnails) | %.2f ms |", renderMs))
        print("")
        print("Frames per second (render loop alone, no pacing)")
        print("| active classes | regime | fps | generator ms/frame | CPU cores |")
        print("| ---: | --- | ---: | ---: | ---: |")
        rows.forEach { print($0) }
        print("")
        print(String(format: "New class to first image: the first frame after detection draws it (one step + decode + frame): %.1f ms of work, plus up to one frame interval (33.3 ms at 30 fps) of waiting: worst case %.1f ms.",
                     firstImage.first ?? .nan, (firstImage.first ?? .nan) + 33.3))

        // Start-up to first frame and peak memory: the real binary, first frame then exit.
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("avgas-bench-\(getpid())")
        try? FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("avgas-live").path
        for (label, args) in [("start-up to first frame", ["--input", wav, "--headless", "--frames", tmp.path, "--duration", "0.01", "--quiet", "--assets", assets]),
                              ("whole demo, headless frames at 10 fps", ["--input", wav, "--headless", "--frames", tmp.path, "--fps", "10", "--quiet", "--assets", assets])] {
            var pid: pid_t = 0
            let cargs = ([bin] + args).map { strdup($0) } + [nil]
            let s0 = now()
            posix_spawn(&pid, bin, nil, nil, cargs, environ)
            cargs.forEach { free($0) }
            var status: Int32 = 0
            var usage = rusage()
            wait4(pid, &status, 0, &usage)
            let wall = Double(now() - s0) / 1e9
            print(String(format: "%@: %.3f s wall, peak resident memory %.1f MB, exit %d", label, wall, Double(usage.ru_maxrss) / 1024, (status >> 8) & 0xff))
        }
        try? FileManager.default.removeItem(at: tmp)

        // Generator step in PyTorch on the same weights.
        if let json = runPython(python, ["tools/bench_generator_torch.py", "--weights", root.appendingPathComponent("models/generator.safetensors").path, "--threads", "1"]),
           let results = json["results"] as? [[String: Any]], let r = results.first {
            let ts = r["step_ms"] as? Double ?? .nan
            print(String(format: "Generator step, 1 thread, medians: Swift %.2f ms (denoiser + decoder) vs PyTorch %@ %.2f ms: ratio %.2f (below 1: Swift faster)",
                         den + decode, (json["torch"] as? String) ?? "?", ts, (den + decode) / ts))
        } else {
            print("Generator step in PyTorch: not measured (needs \(python) with torch: make pyenv-torch)")
        }
    }
}

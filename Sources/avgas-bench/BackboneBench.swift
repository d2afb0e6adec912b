// `avgas-bench backbone`: YAMNet per-patch time of the Swift engine and of onnxruntime on the same
// float graph, with 1 and 2 threads, in one run on one machine.
import ArgumentParser
import Foundation
import Imagining
import Listening
import NeuralNet

struct BackboneBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backbone",
        abstract: "Time the YAMNet backbone: Swift engine versus onnxruntime, 1 and 2 threads.",
        discussion: """
            Runs one 96x64 log-mel patch per forward pass. onnxruntime runs the float ONNX graph \
            (`make yamnet-float-onnx` writes it) through tools/bench_onnxruntime.py in the given \
            Python. Prints median milliseconds per patch, the Swift/onnxruntime ratio (below 1 means \
            Swift is faster) and OpenBLAS's core name. Build with -c release.
            """)

    @Option(help: "YAMNet weights (safetensors). Default: Assets/models/yamnet.safetensors.")
    var weights = "Assets/models/yamnet.safetensors"

    @Option(help: "The float YAMNet ONNX graph for onnxruntime. Default: .build/models/yamnet_float.onnx.")
    var onnx = ".build/models/yamnet_float.onnx"

    @Option(help: "Python with onnxruntime installed. Default: .venv/bin/python.")
    var python = ".venv/bin/python"

    @Option(parsing: .unconditional, help: "Timed forward passes per configuration. Default: 300.")
    var iterations = 300

    @Option(parsing: .unconditional, help: "Untimed passes before timing. Default: 30.")
    var warmup = 30

    @Option(parsing: .upToNextOption, help: "Thread counts to measure. Default: 1 2.")
    var threads: [Int] = [1, 2]

    @Flag(help: "Measure only the Swift engine.")
    var skipOnnxruntime = false

    @Flag(help: "Also print the Swift engine's fastest time per layer (one thread), at batch 1 and at --batch.")
    var layers = false

    @Option(help: "Real log-mel patches to time on (safetensors with 'patches'). Default: the YAMNet parity fixture.")
    var fixture = "Tests/ListeningTests/Fixtures/yamnet_golden.safetensors"

    @Flag(help: "Choose each layer's kernel by timing at load (default: the program's deterministic size rule).")
    var measureKernels = false

    @Option(parsing: .unconditional, help: "Also time batched forwards of this many patches (offline analysis batches; 1: off). Default: 4.")
    var batch = 4

    func validate() throws {
        guard (1...256).contains(batch) else { throw ValidationError("--batch takes 1 to 256 patches.") }
        try requireFile(weights, option: "--weights")
        if fixture != "Tests/ListeningTests/Fixtures/yamnet_golden.safetensors" { try requireFile(fixture, option: "--fixture") }
        guard iterations > 0, warmup >= 0 else { throw ValidationError("--iterations must be positive and --warmup non-negative.") }
        guard !threads.isEmpty, threads.allSatisfy({ (1...64).contains($0) }) else {
            throw ValidationError("--threads takes counts between 1 and 64, e.g. --threads 1 2.")
        }
    }

    struct Timing { var threads: Int; var median: Double; var mean: Double; var min: Double; var threadCPU: Double }

    struct OrtReport: Decodable {
        struct Result: Decodable {
            var threads: Int
            var medianMs: Double, meanMs: Double, minMs: Double, threadCPUMs: Double
            enum CodingKeys: String, CodingKey {
                case threads, medianMs = "median_ms", meanMs = "mean_ms", minMs = "min_ms", threadCPUMs = "thread_cpu_ms"
            }
        }
        var onnxruntime: String
        var results: [Result]
    }

    func run() throws {
        printMachine()
        let net: YAMNet
        do { net = try YAMNet(path: weights, kernels: measureKernels ? .measure : .standard) } catch {
            throw ValidationError("\(error) (run `make models`).")
        }
        // A real log-mel patch (the first of the parity fixture's recordings): the timing depends
        // on the values, as the AVX-512 product skips input channels that are zero after a ReLU.
        // Without the fixture, a plausible random patch (log(mel + 1e-6) spans about -13.8 .. 3).
        let patch: [Float]
        if let golden = try? SafeTensorsFile(path: fixture), let p = try? golden.floats("patches"), p.count >= net.patchCount {
            patch = Array(UnsafeBufferPointer(start: p.pointer, count: net.patchCount))
            print("input: the first patch of \(fixture)")
        } else {
            var rng = NoiseSource(seed: 0)
            patch = (0..<net.patchCount).map { _ in Float(rng.uniform() * 14 - 12) }
            print("input: a random patch (no \(fixture))")
        }

        var swift: [Timing] = []
        var paths: [String] = []
        for t in threads {
            // t > 1: the intra-op split (a network sharing the weights, with a pool of t - 1
            // workers; OpenBLAS stays at 1 thread, its layers run whole on the calling thread).
            let tnet = t == 1 ? net : YAMNet(sharingWeightsOf: net, maxBatch: 1, threads: t)
            NeuralNetRuntime.setThreads(1)
            let (split, of) = tnet.splitLayers
            paths.append(t == 1 ? "threads 1: one thread (OpenBLAS 1 thread)"
                         : "threads \(t): intra-op split over \(t) threads (ComputePool, \(t - 1) worker; \(split) of \(of) layers split, "
                           + "a barrier per layer; OpenBLAS 1 thread)")
            var samples = [Double]()
            samples.reserveCapacity(iterations)
            var cpu0 = timespec(), cpu1 = timespec()
            try patch.withUnsafeBufferPointer { p in
                for _ in 0..<warmup { try tnet.forward(patch: p) }
                clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0)
                for _ in 0..<iterations {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try tnet.forward(patch: p)
                    samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                }
                clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1)
            }
            // CPU time of this thread per pass: for one thread, the compute time without the time
            // other processes held the core (shared machines); with more threads it misses the helpers.
            let cpuMs = (Double(cpu1.tv_sec - cpu0.tv_sec) * 1e3 + Double(cpu1.tv_nsec - cpu0.tv_nsec) / 1e6) / Double(iterations)
            samples.sort()
            swift.append(Timing(threads: t, median: samples[samples.count / 2],
                                mean: samples.reduce(0, +) / Double(samples.count), min: samples[0], threadCPU: cpuMs))
        }
        NeuralNetRuntime.setThreads(1)

        var ort: OrtReport?
        var ortProblem: String?
        if !skipOnnxruntime {
            do { ort = try runOnnxruntime() } catch { ortProblem = "\(error)" }
        }

        print("YAMNet backbone, milliseconds per 0.96 s patch (median of \(iterations) runs after \(warmup) warm-up)")
        print("OpenBLAS core: \(NeuralNetRuntime.coreName); onnxruntime: \(ort?.onnxruntime ?? "not measured")")
        for line in paths { print("swift path, \(line)") }
        print("threads | swift median (mean, min)   | onnxruntime median (mean, min) | ratio median | ratio min")
        for s in swift {
            let swiftCol = String(format: "%6.3f (%6.3f, %6.3f)", s.median, s.mean, s.min)
            if let o = ort?.results.first(where: { $0.threads == s.threads }) {
                let ortCol = String(format: "%6.3f (%6.3f, %6.3f)", o.medianMs, o.meanMs, o.minMs)
                print(String(format: "%7d | %@    | %@         | %12.2f | %9.2f", s.threads, swiftCol, ortCol,
                             s.median / o.medianMs, s.min / o.minMs))
            } else {
                print(String(format: "%7d | %@    | -", s.threads, swiftCol))
            }
        }
        if let s1 = swift.first(where: { $0.threads == 1 }) {
            let o1 = ort?.results.first { $0.threads == 1 }
            print(String(format: "one thread, CPU time of the computing thread per patch: swift %.3f ms", s1.threadCPU)
                  + (o1.map { String(format: ", onnxruntime %.3f ms, ratio %.2f", $0.threadCPUMs, s1.threadCPU / $0.threadCPUMs) } ?? ""))
        }
        print("ratio = swift / onnxruntime (below 1: Swift faster). On a shared machine the minimum and the CPU time "
              + "are the least disturbed by other processes.")
        if let ortProblem { print("onnxruntime not measured: \(ortProblem)") }
        if let warning = NeuralNetRuntime.coreTypeWarning { print("warning: \(warning)") }
        print("pointwise kernels (\(measureKernels ? "timed at load" : "size rule, as the program")): " + net.pointwiseKernels.map(\.rawValue).joined(separator: " "))
        NeuralNetRuntime.setThreads(1)
        var batched: YAMNet?
        if batch > 1 {
            // Batched forwards (what offline analysis runs): median per patch, one thread.
            let b = YAMNet(sharingWeightsOf: net, maxBatch: batch)
            batched = b
            let input = [[Float]](repeating: patch, count: batch).flatMap { $0 }
            var samples = [Double]()
            try input.withUnsafeBufferPointer { p in
                for _ in 0..<max(1, warmup / batch) { try b.forward(patches: p, count: batch) }
                for _ in 0..<max(5, iterations / batch) {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try b.forward(patches: p, count: batch)
                    samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6 / Double(batch))
                }
            }
            samples.sort()
            print(String(format: "batches of %d patches, one thread: %.3f ms per patch (median), %.3f (min)",
                         batch, samples[samples.count / 2], samples[0]))
        }
        if layers {
            let columns = batched == nil ? "batch 1" : "batch 1 | batch \(batch) per patch"
            print("per layer, one thread (fastest of \(iterations) runs, ms; \(columns)):")
            let one = try net.profileLayers(patch: patch, runs: iterations)
            let many = try batched?.profileLayers(patch: patch, runs: max(5, iterations / batch), batch: batch)
            var sums = (0.0, 0.0)
            for (i, (name, ms)) in one.enumerated() {
                sums.0 += ms
                if let many {
                    sums.1 += many[i].milliseconds
                    print(String(format: "  %7.4f | %7.4f  %@", ms, many[i].milliseconds, name))
                } else {
                    print(String(format: "  %7.4f  %@", ms, name))
                }
            }
            print(many == nil ? String(format: "  %7.4f  sum", sums.0) : String(format: "  %7.4f | %7.4f  sum", sums.0, sums.1))
        }
    }

    struct OrtFailure: Error, CustomStringConvertible { var description: String }

    /// Runs tools/bench_onnxruntime.py and decodes its JSON line.
    func runOnnxruntime() throws -> OrtReport {
        guard FileManager.default.fileExists(atPath: onnx) else {
            throw OrtFailure(description: "no float ONNX graph at \(onnx) (run `make yamnet-float-onnx`)")
        }
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw OrtFailure(description: "no Python at \(python) (run `make pyenv` or pass --python)")
        }
        let args = ["tools/bench_onnxruntime.py", "--onnx", onnx,
                    "--threads", threads.map(String.init).joined(separator: ","),
                    "--iterations", String(iterations), "--warmup", String(warmup)]
        guard let (status, data) = spawnCapturing(python, args) else {
            throw OrtFailure(description: "cannot start \(python)")
        }
        guard status == 0 else {
            throw OrtFailure(description: "tools/bench_onnxruntime.py exited with \(status) (its message is above)")
        }
        do { return try JSONDecoder().decode(OrtReport.self, from: data) } catch {
            throw OrtFailure(description: "tools/bench_onnxruntime.py printed no valid JSON: \(error)")
        }
    }
}

// avgas-bench: release-build benchmarks that print tables. Timing targets are checked here,
// never in unit tests (they flake on shared machines). Each comparison runs side by side in
// one process run on one machine.
import ArgumentParser
import AudioInput
import Features
import Foundation
import NeuralNet
import Pipeline

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "avgas-bench",
        abstract: "avgas-live benchmarks (build with -c release).",
        subcommands: [AllBench.self, FrontendBench.self, BackboneBench.self, ListeningBench.self, LiveBench.self, SoakBench.self],
        defaultSubcommand: AllBench.self)
}

/// Machine facts printed above every table.
func printMachine() {
    var uts = utsname()
    uname(&uts)
    let machine = withUnsafeBytes(of: uts.machine) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
        .split(separator: "\n").first { $0.hasPrefix("model name") }?
        .split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
    print("machine: \(cpu) (\(machine)), \(ProcessInfo.processInfo.activeProcessorCount) logical CPUs; OpenBLAS core \(NeuralNetRuntime.coreName)")
}

/// Refuses a missing input file with one line naming the option (instead of the program's
/// `--input` wording, or a Foundation error dump).
func requireFile(_ path: String, option: String) throws {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
        throw ValidationError("\(option) '\(path)' is not a file")
    }
}

/// Checks a WIDTHxHEIGHT size as avgas-live does (each side 64 to 4096, at most 3840x2160 pixels).
func parseSize(_ text: String) throws -> (Int, Int) {
    let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
    guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), (64...4096).contains(w), (64...4096).contains(h),
          w * h <= 3840 * 2160 else {
        throw ValidationError("--size must look like 1280x720: each side 64 to 4096, at most 3840x2160 pixels in all (got '\(text)')")
    }
    return (w, h)
}

/// Runs `executable` with `args`, its standard error inherited; returns its exit status and
/// standard output. Spawned with posix_spawn and a pipe, not Foundation's Process (one
/// `avgas-bench all` run aborted with "double free or corruption" right after a Process launch).
func spawnCapturing(_ executable: String, _ args: [String]) -> (status: Int32, stdout: Data)? {
    guard FileManager.default.isExecutableFile(atPath: executable) else { return nil }
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { return nil }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    let cargs = ([executable] + args).map { strdup($0) } + [nil]
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, nil, cargs, environ)
    cargs.forEach { free($0) }
    posix_spawn_file_actions_destroy(&actions)
    close(fds[1])
    guard rc == 0 else { close(fds[0]); return nil }
    var data = Data()
    var buf = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fds[0], $0.baseAddress!, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        data.append(contentsOf: buf[0..<n])
    }
    close(fds[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), data)
}

/// Runs a helper script in the project's Python and decodes its one-line JSON output.
func runPython(_ python: String, _ args: [String]) -> [String: Any]? {
    guard let r = spawnCapturing(python, args), r.status == 0 else { return nil }
    return try? JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
}

struct FrontendBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "frontend",
        abstract: "Log-mel front end: Swift (FFTW) versus numpy and scipy on the same audio.")

    @Option(help: "16 kHz mono WAV to analyse.")
    var wav = "Assets/demo/soundscape.wav"
    @Option(help: "Python with numpy/scipy (the project's venv).")
    var python = ".venv/bin/python"
    @Option(parsing: .unconditional, help: "Timed repetitions (the median is reported), 1 to 1000.")
    var repetitions = 9

    func validate() throws {
        guard (1...1000).contains(repetitions) else { throw ValidationError("--repetitions takes 1 to 1000 (got \(repetitions))") }
        try requireFile(wav, option: "--wav")
    }

    func run() throws {
        printMachine()
        let audio = try FileSource(path: wav).readAll()
        let seconds = Double(audio.count) / 16_000
        var times: [Double] = []
        for i in 0..<(repetitions + 1) {
            let s = LogMelStream()
            let t0 = DispatchTime.now().uptimeNanoseconds
            // Streaming, in 10 ms periods as live capture delivers them.
            audio.withUnsafeBufferPointer { a in
                var o = 0
                while o < a.count {
                    let n = min(160, a.count - o)
                    s.push(UnsafeBufferPointer(rebasing: a[o..<(o + n)]))
                    o += n
                }
            }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if i > 0 { times.append(dt) }  // the first run warms caches
        }
        times.sort()
        let swiftMedian = times[times.count / 2]
        print("")
        print("Log-mel front end on \(String(format: "%.1f", seconds)) s of audio (\(wav)), one thread each")
        print("| implementation | median time | x real time | vs Swift |")
        print("| --- | ---: | ---: | ---: |")
        print(String(format: "| Swift (FFTW, streaming 10 ms periods) | %.2f ms | %.0fx | 1.00 |", swiftMedian * 1000, seconds / swiftMedian))
        let script = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("../../tools/bench_frontend.py").standardized.path
        let toolPath = FileManager.default.fileExists(atPath: "tools/bench_frontend.py") ? "tools/bench_frontend.py" : script
        if let json = runPython(python, [toolPath, wav, "--repeat", "\(repetitions)"]),
           let results = json["results"] as? [[String: Any]] {
            for r in results {
                let med = r["median_s"] as? Double ?? .nan
                let ratio = med / swiftMedian
                print(String(format: "| %@ | %.2f ms | %.0fx | %.2fx (%@) |", (r["impl"] as? String ?? "?"), med * 1000, seconds / med, ratio,
                             ratio >= 1 ? "slower than Swift" : "faster than Swift"))
            }
        } else {
            print("| numpy/scipy | (not run: \(python) or tools/bench_frontend.py unavailable) | | |")
        }
    }
}

struct AllBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "all", abstract: "Every benchmark in turn.")
    @Option(help: "Python with numpy/scipy/onnxruntime (the project's venv).")
    var python = ".venv/bin/python"

    func run() throws {
        try FrontendBench.parse(["--python", python]).run()
        print("")
        let b = try BackboneBench.parse(["--python", python])
        try b.run()
        print("")
        try ListeningBench.parse([]).run()
        print("")
        try LiveBench.parse(["--python", python]).run()
    }
}

NeuralNetRuntime.reexecWithBetterCoreTypeIfNeeded()
Bench.main()

// NeuralNet: the project's neural-network runtime. Weights come from safetensors files
// (SafeTensors.swift), layers run on OpenBLAS (Layers.swift), and every network owns a
// workspace allocated once (Workspace.swift) so that `forward` allocates nothing.
import COpenBLAS
import Foundation

/// Process-wide settings of the BLAS library every network uses.
public enum NeuralNetRuntime {
    /// OpenBLAS's kernel family for this CPU (e.g. "Haswell", "SkylakeX"); print it next to timings.
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// Whether this CPU (and the operating system) supports the AVX-512 kernels of the
    /// NeuralNetAVX512 target (AVX-512F, BW, DQ and VL, as listed in /proc/cpuinfo, which lists
    /// only what the kernel enables). `AVGAS_NO_AVX512=1` in the environment turns them off
    /// (to test or time the AVX2 fallback). Layers choose their kernels from this when built.
    public static let hasAVX512: Bool = {
        if ProcessInfo.processInfo.environment["AVGAS_NO_AVX512"] == "1" { return false }
        #if arch(x86_64) && os(Linux)
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        return flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl", "fma"])
        #else
        return false
        #endif
    }()

    /// The number of threads OpenBLAS uses for one call.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// Sets the number of threads OpenBLAS uses for one call (process-wide). 1 or 2 on this
    /// project's 2-core machines: two threads scale erratically for batch-1 layers, so measure
    /// (`avgas-bench backbone`) and choose deliberately. Values below 1 are treated as 1.
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
    }

    /// The `OPENBLAS_CORETYPE` this CPU should use when OpenBLAS fell back to generic kernels,
    /// else nil. OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons and picks "Prescott"
    /// (SSE3) kernels, several times slower, unless the environment names a core type. It reads
    /// the variable once when the library loads, so the fix is in the environment (or a re-exec
    /// of the program with it set), not a call: e.g. "SkylakeX" for AVX-512, "Haswell" for AVX2.
    public static var recommendedCoreType: String? {
        let generic: Set<String> = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Katmai", "Coppermine",
                                    "Northwood", "Banias", "Atom", "Opteron", "Barcelona"]
        guard generic.contains(coreName),
              let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]) { return "SkylakeX" }
        if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return nil
    }

    /// One warning line when OpenBLAS runs generic kernels on a CPU that has better ones, else nil.
    public static var coreTypeWarning: String? {
        recommendedCoreType.map {
            "OpenBLAS picked its generic '\(coreName)' kernels on this CPU; set OPENBLAS_CORETYPE=\($0) for full speed"
        }
    }
}

extension NeuralNetRuntime {
    /// OpenBLAS reads OPENBLAS_CORETYPE only when the library loads, so a program that finds
    /// the generic fallback kernels on a capable CPU re-executes itself once with the variable
    /// set (the user's own setting always wins). Call first thing in `main`.
    public static func reexecWithBetterCoreTypeIfNeeded() {
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env["AVGAS_NO_REEXEC"] == nil, let core = recommendedCoreType else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("AVGAS_NO_REEXEC", "1", 1)
        let args = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", args)
        // exec failed: carry on with the generic kernels.
    }
}

// NeuralNet: the project's neural-network runtime. Weights come from safetensors files
// (SafeTensors.swift), layers run on OpenBLAS (Layers.swift), and every network owns a
// workspace allocated once (Workspace.swift) so that `forward` allocates nothing.
import COpenBLAS

/// Process-wide settings of the BLAS library every network uses.
public enum NeuralNetRuntime {
    /// OpenBLAS's kernel family for this CPU (e.g. "Haswell", "SkylakeX"); print it next to timings.
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// The number of threads OpenBLAS uses for one call.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// Sets the number of threads OpenBLAS uses for one call (process-wide). 1 or 2 on this
    /// project's 2-core machines: two threads scale erratically for batch-1 layers, so measure
    /// (`avgas-bench backbone`) and choose deliberately. Values below 1 are treated as 1.
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
    }
}

// swift-tools-version:6.0
// avgas-live: a streaming, CPU-only sound-to-image visualizer (AV-GAS, arXiv 2504.18283).
//
// Targets follow the pipeline, dependencies point downstream only:
//   C shims (one per library, each imported by exactly one Swift target)
//   AudioInput -> Features -> NeuralNet -> Listening -> Imagining -> Display -> Pipeline -> avgas-live / avgas-bench
import PackageDescription

let package = Package(
    name: "avgas-live",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "avgas-live", targets: ["avgas-live"]),
        .executable(name: "avgas-bench", targets: ["avgas-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries. SDL2 gets no pkgConfig: sdl2.pc carries -D_REENTRANT, which SwiftPM rejects.
        .systemLibrary(name: "CALSA", pkgConfig: "alsa", providers: [.apt(["libasound2-dev"])]),
        .systemLibrary(name: "CFFTW", pkgConfig: "fftw3", providers: [.apt(["libfftw3-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CSDL2", providers: [.apt(["libsdl2-dev"])]),
        .systemLibrary(name: "CSDL2TTF", providers: [.apt(["libsdl2-ttf-dev"])]),
        .systemLibrary(name: "CSndFile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "CSampleRate", pkgConfig: "samplerate", providers: [.apt(["libsamplerate0-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng16", providers: [.apt(["libpng-dev"])]),

        // Pipeline stages.
        .target(name: "AudioInput", dependencies: ["CALSA", "CSndFile", "CSampleRate"]),
        .target(name: "Features", dependencies: ["CFFTW"]),
        // AVX-512 kernels (one zmm per SIMD16<Float>), called by NeuralNet only on CPUs that have
        // AVX-512F/BW/DQ/VL (checked at run time); always optimised, as debug-built SIMD code is
        // too slow for the tests that run it.
        .target(name: "NeuralNetAVX512",
                swiftSettings: [.unsafeFlags(["-target-cpu", "skylake-avx512", "-O"])]),
        .target(name: "NeuralNet", dependencies: ["COpenBLAS", "NeuralNetAVX512"],
                // The hand-written matrix kernels need AVX2/FMA to be competitive (measured in
                // avgas-bench backbone: about 2x over baseline x86-64); Haswell-level CPUs (2013+).
                swiftSettings: [.unsafeFlags(["-target-cpu", "haswell"])]),
        .target(name: "Listening", dependencies: ["Features", "NeuralNet"]),
        .target(name: "Imagining", dependencies: ["NeuralNet", "Listening"]),
        .target(name: "Display", dependencies: ["CSDL2", "CSDL2TTF", "CPNG"]),
        .target(name: "Pipeline", dependencies: ["AudioInput", "Features", "Listening", "Imagining", "Display"]),
        .executableTarget(name: "avgas-live", dependencies: [
            "Pipeline", "Imagining", "Listening", "NeuralNet", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "avgas-bench", dependencies: [
            "Pipeline", "Imagining", "Listening", "NeuralNet", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Tests: one target per library target, plus shared support.
        .target(name: "TestSupport", dependencies: ["AudioInput"], path: "Tests/TestSupport"),
        .testTarget(name: "AudioInputTests", dependencies: ["AudioInput", "TestSupport"]),
        .testTarget(name: "FeaturesTests", dependencies: ["Features", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "NeuralNetTests", dependencies: ["NeuralNet", "TestSupport"]),
        .testTarget(name: "ListeningTests", dependencies: ["Listening", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "ImaginingTests", dependencies: ["Imagining", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "DisplayTests", dependencies: ["Display", "TestSupport"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "Display"], exclude: ["Fixtures"]),
    ]
)

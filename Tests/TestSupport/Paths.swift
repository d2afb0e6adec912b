import Foundation

/// Locations the tests share. Fixtures are found relative to this source file, so tests run
/// from any working directory without SwiftPM resources.
public enum TestPaths {
    /// The repository root (the folder holding Package.swift).
    public static let repoRoot: URL = {
        URL(fileURLWithPath: #filePath)   // Tests/TestSupport/Paths.swift
            .deletingLastPathComponent()  // Tests/TestSupport
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // root
    }()

    /// `Tests/<target>/Fixtures/<name>`.
    public static func fixture(_ target: String, _ name: String) -> URL {
        repoRoot.appendingPathComponent("Tests/\(target)/Fixtures/\(name)")
    }

    /// A fresh, empty temporary directory, removed by the caller if it wishes.
    public static func makeTempDir(_ prefix: String = "avgas-test") -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

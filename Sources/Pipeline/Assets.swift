import Foundation

/// Finds the Assets folder: `--assets`, then `$AVGAS_ASSETS`, then the nearest `Assets`
/// folder above the executable (a build inside the repository), then `./Assets`.
public enum AssetLocator {
    public static func locate(explicit: String?) -> URL {
        if let explicit { return URL(fileURLWithPath: explicit) }
        if let env = ProcessInfo.processInfo.environment["AVGAS_ASSETS"] { return URL(fileURLWithPath: env) }
        // The executable's real path (argv[0] is just "avgas-live" when it is found on PATH).
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = dir.appendingPathComponent("Assets")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("classes.json").path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("Assets")
    }
}

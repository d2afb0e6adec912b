import Foundation

/// `--events FILE`: one JSON line per analysis hop, flushed as written, so the file is valid
/// JSON lines up to the last line whatever stops the program. (Plus a line midway between two
/// hops when the onset path turns a class on there: `OnsetConfiguration.midHop`.)
///
/// `{"t": 3.42, "active": [{"class": "dog barking", "score": 0.91}]}`
public final class EventsWriter {
    private let file: UnsafeMutablePointer<FILE>
    public let path: String
    private var failed = false

    /// Opens (truncates) `path`. Throws `AvgasError` (.cannotCreate) if it cannot be written.
    public init(path: String) throws(AvgasError) {
        self.path = path
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw AvgasError("cannot write events to '\(path)': it is a directory; give --events a file name", status: .cannotCreate)
        }
        guard let f = fopen(path, "w") else {
            throw AvgasError("cannot write events to '\(path)': \(String(cString: strerror(errno)))", status: .cannotCreate)
        }
        file = f
    }

    deinit { fclose(file) }

    /// Formats one line (exposed for tests).
    public static func line(time: Double, active: [ActiveClass]) -> String {
        var s = "{\"t\": \(String(format: "%.2f", time)), \"active\": ["
        for (i, a) in active.enumerated() {
            if i > 0 { s += ", " }
            s += "{\"class\": \(jsonString(a.name)), \"score\": \(String(format: "%.3f", a.score))}"
        }
        return s + "]}\n"
    }

    static func jsonString(_ v: String) -> String {
        var out = "\""
        for u in v.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// Writes and flushes one line. Throws `.ioError` once if the disk is full or the file vanished.
    public func write(time: Double, active: [ActiveClass]) throws(AvgasError) {
        guard !failed else { return }
        let text = Self.line(time: time, active: active)
        let ok = text.withCString { fputs($0, file) } >= 0 && fflush(file) == 0
        if !ok {
            failed = true
            throw AvgasError("writing events to '\(path)' failed: \(String(cString: strerror(errno)))", status: .ioError)
        }
    }
}

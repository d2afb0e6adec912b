import Foundation

/// `--events FILE`: one JSON line per analysis hop, written and flushed as it is made, so the
/// file is valid JSON lines up to its last line whatever stops the program; if a write fails
/// (disk full, file-size limit) the partial line is cut off again. (Plus a line midway between
/// two hops when the onset path turns a class on there: `OnsetConfiguration.midHop`.)
/// `-` writes to standard output.
///
/// `{"t": 3.475, "active": [{"class": "dog barking", "score": 0.910}]}` (t: three decimals, the
/// architecture contract's example shows two)
public final class EventsWriter {
    private let fd: Int32
    private let ownsDescriptor: Bool
    /// A regular file (ours or a redirected standard output): a cut line can be truncated away.
    private let truncatable: Bool
    public let path: String
    private var failed = false
    /// Bytes of complete lines written so far (where a failed write is truncated back to).
    private var complete: off_t = 0

    /// Opens (truncates) `path`, or standard output for `-`. Throws `AvgasError` (.cannotCreate)
    /// if it cannot be written.
    public init(path: String) throws(AvgasError) {
        self.path = path
        if path == "-" {
            fd = STDOUT_FILENO
            ownsDescriptor = false
            truncatable = Self.isRegularFile(fd)
            complete = truncatable ? max(0, lseek(fd, 0, SEEK_CUR)) : 0
            return
        }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw AvgasError("cannot write events to '\(path)': it is a directory; give --events a file name", status: .cannotCreate)
        }
        let f = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o666)
        guard f >= 0 else {
            throw AvgasError("cannot write events to '\(path)': \(String(cString: strerror(errno)))", status: .cannotCreate)
        }
        // One writer per regular file: a second run on the same file would interleave and cut
        // lines. The lock is taken before truncating, so the other run's file is left alone.
        // (Pipes and devices such as /dev/null or a shared terminal are not locked.)
        let regular = Self.isRegularFile(f)
        if regular && flock(f, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK {
            close(f)
            throw AvgasError("'\(path)' is being written by another avgas-live run; give this run another --events file", status: .cannotCreate)
        }
        if regular { _ = ftruncate(f, 0) }
        fd = f
        ownsDescriptor = true
        truncatable = regular
    }

    static func isRegularFile(_ fd: Int32) -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    deinit { if ownsDescriptor { close(fd) } }

    /// Formats one line (exposed for tests).
    public static func line(time: Double, active: [ActiveClass]) -> String {
        // three decimals: the stream times (0.975 s + k * 0.05 s) exactly; two decimals printed them
        // as 0.97, 1.07, 1.18, 1.27..., uneven steps of 0.09 and 0.11 s for a reader
        var s = "{\"t\": \(String(format: "%.3f", time)), \"active\": ["
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

    /// Writes one whole line. Throws `.ioError` once if the disk is full or the file vanished;
    /// the part of the line that did reach a regular file is truncated away.
    public func write(time: Double, active: [ActiveClass]) throws(AvgasError) {
        guard !failed else { return }
        var bytes = Array(Self.line(time: time, active: active).utf8)
        var off = 0
        var err: Int32 = 0
        bytes.withUnsafeMutableBytes { b in
            while off < b.count {
                let n = Glibc.write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    err = errno
                    return
                }
                off += n
            }
        }
        if err != 0 {
            failed = true
            if truncatable { _ = ftruncate(fd, complete) }
            let target = ownsDescriptor ? "'\(path)'" : "standard output"
            throw AvgasError("writing events to \(target) failed: \(String(cString: strerror(err))); the lines before are complete",
                             status: .ioError)
        }
        complete += off_t(off)
    }
}

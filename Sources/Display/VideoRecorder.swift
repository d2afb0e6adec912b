import Foundation

/// Problems recording video. `description` is the one line the user sees.
public enum VideoError: Error, CustomStringConvertible, Equatable {
    case ffmpegMissing
    case cannotCreate(path: String, detail: String)
    case writeFailed(path: String, detail: String)
    case sameAsInput(path: String)
    public var description: String {
        switch self {
        case .ffmpegMissing:
            return "--record needs ffmpeg, which is not installed; install it (apt-get install ffmpeg) or drop --record"
        case .cannotCreate(let p, let d): return "cannot record to '\(p)': \(d)"
        case .writeFailed(let p, let d): return "recording to '\(p)' failed: \(d)"
        case .sameAsInput(let p): return "--record '\(p)' \(OutputPath.Problem.sameAsInput)"
        }
    }
    public var isSameAsInput: Bool { if case .sameAsInput = self { return true }; return false }
}

/// Video output: raw BGRA frames piped to an ffmpeg child that encodes H.264 MP4.
/// ffmpeg runs in its own process group, so Ctrl-C reaches only avgas-live, which then
/// finishes the file cleanly. It writes `NAME.part.mp4` and renames it to `NAME` once ffmpeg
/// has finalised it, so the path given by the user only ever holds a playable file.
public final class VideoRecorder {
    public let path: String
    public let width: Int
    public let height: Int
    private let partial: String
    /// ffmpeg's standard error: an unlinked temporary file (nothing left behind, whatever ends
    /// the run), or /dev/null when no temporary file can be made (-1 then: nothing to read).
    private var logFD: Int32 = -1
    private var logReadable = false
    private var fd: Int32 = -1
    private var pid: pid_t = 0
    private var scratch: [UInt32] = []
    public private(set) var framesWritten = 0

    /// Finds ffmpeg on PATH.
    public static func ffmpegPath() -> String? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return dirs.map { "\($0)/ffmpeg" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The temporary file ffmpeg writes before it is renamed to `path`.
    public static func partialPath(_ path: String) -> String { (path as NSString).deletingPathExtension + ".part.mp4" }

    /// Checks that `path` can be written (before any work starts): not a directory, device or
    /// the input recording, in a folder that accepts the temporary file.
    public static func checkDestination(_ path: String, input: String? = nil) throws(VideoError) {
        guard ffmpegPath() != nil else { throw .ffmpegMissing }
        do {
            try OutputPath.check(path, input: input,
                                 probeName: (partialPath(path) as NSString).lastPathComponent)
        } catch {
            if error == .sameAsInput { throw .sameAsInput(path: path) }
            throw .cannotCreate(path: path, detail: error.reason)
        }
    }

    public init(path: String, width: Int, height: Int, fps: Double) throws(VideoError) {
        try Self.checkDestination(path)
        self.path = path
        // Even sizes: yuv420p needs them.
        self.width = width & ~1
        self.height = height & ~1
        partial = Self.partialPath(path)
        // ffmpeg's own messages go to a log, read back for our one-line error if it fails. It is
        // opened here (a missing $TMPDIR must not stop the recording) and unlinked at once.
        let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("avgas-ffmpeg-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log").path
        logFD = open(logPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if logFD >= 0 {
            unlink(logPath)
            logReadable = true
        } else {
            logFD = open("/dev/null", O_WRONLY | O_CLOEXEC)
        }
        guard let ffmpeg = Self.ffmpegPath() else { throw .ffmpegMissing }
        let args = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "rawvideo", "-pix_fmt", "bgra", "-s", "\(self.width)x\(self.height)",
                    "-r", String(format: "%.3f", fps), "-i", "-",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", partial]
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw .cannotCreate(path: path, detail: String(cString: strerror(errno))) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        posix_spawn_file_actions_addclose(&actions, fds[1])
        if logFD >= 0 { posix_spawn_file_actions_adddup2(&actions, logFD, 2) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attr, 0)
        let cargs = args.map { strdup($0) } + [nil]
        var child: pid_t = 0
        let rc = posix_spawn(&child, ffmpeg, &actions, &attr, cargs, environ)
        cargs.forEach { free($0) }
        posix_spawn_file_actions_destroy(&actions)
        posix_spawnattr_destroy(&attr)
        close(fds[0])
        guard rc == 0 else {
            close(fds[1])
            throw .cannotCreate(path: path, detail: "cannot start ffmpeg: \(String(cString: strerror(rc)))")
        }
        fd = fds[1]
        pid = child
    }

    deinit {
        if fd >= 0 { _ = try? finish() }
        if logFD >= 0 { close(logFD) }
    }

    /// Appends one frame (scaled to the recording size if the window was resized).
    public func write(_ fb: Framebuffer) throws(VideoError) {
        guard fd >= 0 else { return }
        let ok: Bool
        if fb.width == width && fb.height == height {
            ok = fb.pixels.withUnsafeBytes { writeAll($0) }
        } else {
            if scratch.count != width * height { scratch = [UInt32](repeating: 0, count: width * height) }
            for y in 0..<height {
                let sy = y * fb.height / height
                for x in 0..<width { scratch[y * width + x] = fb.pixels[sy * fb.width + x * fb.width / width] }
            }
            ok = scratch.withUnsafeBytes { writeAll($0) }
        }
        guard ok else {
            let reason = String(cString: strerror(errno))
            abandon()
            throw .writeFailed(path: path, detail: ffmpegMessage() ?? "ffmpeg stopped accepting frames (\(reason))")
        }
        framesWritten += 1
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 { if errno == EINTR { continue }; return false }
            off += n
        }
        return true
    }

    /// Stops ffmpeg and removes its unfinished file (the path itself is left as it was).
    private func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
        if pid > 0 { var st: Int32 = 0; while waitpid(pid, &st, 0) < 0 && errno == EINTR {}; pid = 0 }
        unlink(partial)
    }

    /// ffmpeg's first error line from its log ("No space left on device"...), if any.
    private func ffmpegMessage() -> String? {
        guard logReadable else { return nil }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = bytes.withUnsafeMutableBytes { pread(logFD, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { return nil }
        let text = String(decoding: bytes[0..<n], as: UTF8.self)
        let line = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .first { !$0.isEmpty && !$0.hasPrefix("Last message repeated") }
        return line.map { "ffmpeg: " + String($0.prefix(200)) }
    }

    /// Closes the stream, waits for ffmpeg to finalise, and moves the file into place. Returns
    /// false, leaving `path` as it was, when no frame was recorded (a file with no video in it
    /// would replace what the path held). On failure the unfinished file is removed.
    @discardableResult
    public func finish() throws(VideoError) -> Bool {
        guard fd >= 0 else { return false }
        if framesWritten == 0 {
            abandon()
            return false
        }
        close(fd)
        fd = -1
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        pid = 0
        let exited = (status & 0x7f) == 0
        let code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            unlink(partial)
            throw .writeFailed(path: path, detail: ffmpegMessage() ?? "ffmpeg exited with status \(code) (is the disk full?)")
        }
        guard rename(partial, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(partial)
            throw .writeFailed(path: path, detail: reason)
        }
        return true
    }
}

import Foundation

/// Checks made on an output path before any work starts, so that a run that cannot write its
/// output fails at once with one clear line, and nothing the user already has is destroyed:
/// an existing directory, device, pipe or the input recording itself is never replaced.
public enum OutputPath {
    /// Why `path` cannot be an output. `description` is the part of the line after the option.
    public enum Problem: Error, Equatable, CustomStringConvertible {
        case empty
        case isDirectory
        case notRegularFile
        case sameAsInput
        case cannotCreate(String)

        public var description: String {
            switch self {
            case .empty: return "needs a file name"
            case .isDirectory: return "is a directory; give a file name"
            case .notRegularFile: return "exists and is not a regular file (a device, pipe or socket); give a file name"
            case .sameAsInput: return "is the input recording; writing it would destroy the recording, so choose another name"
            case .cannotCreate(let why): return "cannot be created: \(why)"
            }
        }

        /// The reason alone (for messages that already say what could not be created).
        public var reason: String {
            if case .cannotCreate(let why) = self { return why }
            return description
        }
    }

    /// True when `a` and `b` name the same existing file (same device and inode).
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// Checks that a file output can be written at `path`:
    /// - an existing directory, or (unless `allowSpecial`) an existing device, pipe or socket, is refused;
    /// - a path that is the file `input` is refused;
    /// - the folder must exist and accept a new file: a probe file is created and removed, so
    ///   read-only mounts, /proc and full inode tables are caught as well as permissions.
    /// `probeName` is the name the probe gets in that folder (default: a hidden per-process name).
    /// `inPlace`: the output is written into an existing file as it is (events), not renamed over
    /// it, so an existing writable file needs nothing from its folder.
    public static func check(_ path: String, input: String? = nil, allowSpecial: Bool = false, inPlace: Bool = false,
                             probeName: String? = nil) throws(Problem) {
        guard !path.isEmpty else { throw .empty }
        var st = stat()
        let exists = stat(path, &st) == 0
        if exists {
            let type = st.st_mode & S_IFMT
            if type == S_IFDIR { throw .isDirectory }
            if let input, sameFile(path, input) { throw .sameAsInput }
            if type != S_IFREG {
                if allowSpecial { return }      // writing into an existing pipe or device (e.g. /dev/stdout)
                throw .notRegularFile
            }
            if inPlace {
                guard access(path, W_OK) == 0 else { throw .cannotCreate(String(cString: strerror(errno))) }
                return
            }
        }
        let dir = (path as NSString).deletingLastPathComponent
        let folder = dir.isEmpty ? "." : dir
        var ds = stat()
        guard stat(folder, &ds) == 0 else { throw .cannotCreate("the folder '\(folder)' does not exist") }
        guard (ds.st_mode & S_IFMT) == S_IFDIR else { throw .cannotCreate("'\(folder)' is not a folder") }
        let probe = "\(folder)/\(probeName ?? ".avgas-probe-\(getpid())")"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if fd < 0 {
            if errno == EEXIST { return }       // a leftover of ours: the folder takes files
            throw .cannotCreate("the folder '\(folder)' does not accept new files (\(String(cString: strerror(errno))))")
        }
        close(fd)
        unlink(probe)
    }

    /// `mkdir -p` with the system's reason on failure (Foundation's message for this is vague).
    public static func makeDirectories(_ path: String) throws(Problem) {
        guard !path.isEmpty else { throw .empty }
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .cannotCreate("'\(path)' exists and is not a directory") }
            return
        }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != path { try makeDirectories(parent) }
        if mkdir(path, 0o777) != 0 && errno != EEXIST {
            throw .cannotCreate(String(cString: strerror(errno)))
        }
    }
}

import Synchronization

/// Sample rate of everything downstream of the input stage.
public let pipelineSampleRate = 16_000

/// A producer of 16 kHz mono audio that writes into a `SampleRing` from its own thread.
///
/// One implementation per kind of input (`ALSACapture`, `FileSource`); the analysis side
/// only ever sees the ring and these counters.
public protocol AudioSource: AnyObject, Sendable {
    /// Starts producing into `ring`. Throws `AudioInputError` for problems found at start-up.
    func start(into ring: SampleRing) throws
    /// Asks the producer thread to stop and waits for it.
    func stop()
    /// Counters readable from any thread.
    var stats: AudioSourceStats { get }
}

/// Health of an input, shared lock-free between the producer thread and everyone else.
public final class AudioSourceStats: Sendable {
    /// Overruns recovered with `snd_pcm_recover`.
    public let xruns = Atomic<Int>(0)
    /// Samples a live producer could not fit into the ring (it drops rather than blocks).
    public let droppedSamples = Atomic<Int>(0)
    /// Samples delivered into the ring.
    public let producedSamples = Atomic<Int>(0)
    /// True once a finite source (a file) has delivered its last sample.
    public let finished = Atomic<Bool>(false)
    /// State of a live device: see `DeviceState`.
    public let deviceState = Atomic<Int>(DeviceState.running.rawValue)
    /// Times the device was reopened after being lost.
    public let reopens = Atomic<Int>(0)

    public init() {}

    public var state: DeviceState { DeviceState(rawValue: deviceState.load(ordering: .acquiring)) ?? .running }
}

/// Live device state as seen by the capture thread.
public enum DeviceState: Int, Sendable {
    case running = 0
    /// Reads fail persistently (unplugged?); the capture thread retries opening it.
    case lost = 1
    /// The producer stopped (quit, or a file ended).
    case stopped = 2
}

/// Problems an input can report at start-up. `description` is the one line the user sees.
public enum AudioInputError: Error, CustomStringConvertible, Equatable {
    case noSoundCard
    case unknownDevice(String)
    case deviceBusy(String)
    case unsupportedFormat(device: String, detail: String)
    case deviceFailed(device: String, detail: String)
    case fileMissing(String)
    case fileIsDirectory(String)
    case fileNotRegular(String)
    case fileUnreadable(String, detail: String)
    case fileEmpty(String)
    case notAudio(String, detail: String)
    case unsupportedAudioFile(String, detail: String)
    case resampler(String)

    public var description: String {
        switch self {
        case .noSoundCard:
            return "this machine has no sound card, so there is nothing to capture from; use --input FILE to analyse a recording (try --list-devices)"
        case .unknownDevice(let d):
            return "unknown capture device '\(d)'; run avgas-live --list-devices to see the names ALSA knows"
        case .deviceBusy(let d):
            return "capture device '\(d)' is busy (another program is using it); close that program or choose another device with --device"
        case .unsupportedFormat(let d, let detail):
            return "capture device '\(d)' offers no usable sample format (\(detail)); try a plughw: device, e.g. --device plughw:1,0"
        case .deviceFailed(let d, let detail):
            return "cannot open capture device '\(d)': \(detail)"
        case .fileMissing(let p):
            return "input file '\(p)' does not exist; check the path given to --input"
        case .fileIsDirectory(let p):
            return "input '\(p)' is a directory, not an audio file; give --input a WAV, FLAC or OGG file"
        case .fileNotRegular(let p):
            return "input '\(p)' is not a regular file (a pipe or device); save the audio to a WAV, FLAC or OGG file and give --input that file"
        case .fileUnreadable(let p, let detail):
            return "cannot read input file '\(p)': \(detail)"
        case .fileEmpty(let p):
            return "input file '\(p)' is empty (no audio samples); give --input a recording with sound in it"
        case .notAudio(let p, let detail):
            return "input file '\(p)' is not an audio file libsndfile can decode (\(detail)); use WAV, FLAC or OGG/Vorbis"
        case .unsupportedAudioFile(let p, let detail):
            return "input file '\(p)' cannot be used: \(detail)"
        case .resampler(let detail):
            return "the resampler failed: \(detail)"
        }
    }
}

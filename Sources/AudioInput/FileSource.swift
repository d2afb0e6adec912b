import CSampleRate
import CSndFile
import Foundation
import Synchronization

/// Audio from a file (WAV, FLAC, OGG/Vorbis... anything libsndfile decodes), downmixed to
/// mono and resampled to 16 kHz with libsamplerate, written into the same ring live capture
/// uses. It never drops: when the ring is full the producer waits. `realtime` paces it at
/// real speed like a live input; otherwise it runs as fast as the consumer allows.
public final class FileSource: AudioSource, @unchecked Sendable {
    // @unchecked Sendable: `file` and the buffers are used by the producer thread only after
    // `start`; the public metadata is immutable.

    public let path: String
    /// The file's own sample rate and channel count, and its length in its own frames.
    public let sourceRate: Int
    public let sourceChannels: Int
    public let sourceFrames: Int
    public let realtime: Bool
    public let stats = AudioSourceStats()

    /// Length after resampling to 16 kHz.
    public var durationSeconds: Double { Double(sourceFrames) / Double(sourceRate) }

    private var file: OpaquePointer?
    private let running = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private var thread: Thread?
    /// Set by the producer thread if decoding fails half way; read after `finished`.
    public private(set) var failure: AudioInputError?

    /// Opens and checks the file. Throws `AudioInputError` with a user-facing description.
    public init(path: String, realtime: Bool = false) throws(AudioInputError) {
        self.path = path
        self.realtime = realtime
        var st = stat()
        if stat(path, &st) != 0 {
            if errno == ENOENT { throw .fileMissing(path) }
            throw .fileUnreadable(path, detail: String(cString: strerror(errno)))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw .fileIsDirectory(path) }
        // Pipes and devices have no length and cannot be rewound for decoding.
        if (st.st_mode & S_IFMT) != S_IFREG { throw .fileNotRegular(path) }
        if access(path, R_OK) != 0 { throw .fileUnreadable(path, detail: String(cString: strerror(errno))) }
        if st.st_size == 0 { throw .fileEmpty(path) }
        var info = SF_INFO()
        guard let f = sf_open(path, Int32(SFM_READ), &info) else {
            let msg = String(cString: sf_strerror(nil))
            throw .notAudio(path, detail: msg)
        }
        guard info.channels > 0, info.channels <= 256 else {
            sf_close(f)
            throw .unsupportedAudioFile(path, detail: "its header claims \(info.channels) channels")
        }
        guard info.samplerate >= 1_000, info.samplerate <= 768_000 else {
            sf_close(f)
            throw .unsupportedAudioFile(path, detail: "its header claims a sample rate of \(info.samplerate) Hz (supported: 1 kHz to 768 kHz)")
        }
        guard info.frames > 0 else {
            sf_close(f)
            throw .fileEmpty(path)
        }
        file = f
        sourceRate = Int(info.samplerate)
        sourceChannels = Int(info.channels)
        sourceFrames = Int(info.frames)
    }

    deinit {
        if let file { sf_close(file) }
    }

    public func start(into ring: SampleRing) throws {
        running.store(true, ordering: .releasing)
        let t = Thread { [self] in
            self.produce(into: ring)
            self.done.signal()
        }
        t.name = "avgas-file"
        thread = t
        t.start()
    }

    public func stop() {
        running.store(false, ordering: .releasing)
        if thread != nil {
            done.wait()
            thread = nil
        }
    }

    /// Decodes the whole file synchronously into 16 kHz mono samples (tests, benchmarks).
    public func readAll() throws(AudioInputError) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(Int(durationSeconds * Double(pipelineSampleRate)) + 1024)
        try decode { block in out.append(contentsOf: block); return true }
        return out
    }

    private func produce(into ring: SampleRing) {
        let startWall = DispatchTime.now().uptimeNanoseconds
        var position = 0
        do {
            try decode { block in
                if self.realtime {
                    // Pace: this block must not be delivered before its stream time.
                    let due = startWall + UInt64(Double(position) / Double(pipelineSampleRate) * 1e9)
                    let now = DispatchTime.now().uptimeNanoseconds
                    if due > now { usleep(UInt32((due - now) / 1000)) }
                }
                var offset = 0
                while offset < block.count {
                    if !self.running.load(ordering: .acquiring) { return false }
                    let n = block.withUnsafeBufferPointer { b in
                        ring.write(UnsafeBufferPointer(rebasing: b[offset...]))
                    }
                    offset += n
                    // Never lossy: wait for the consumer while the ring is full.
                    if n == 0 { usleep(200) }
                }
                position += block.count
                self.stats.producedSamples.add(block.count, ordering: .relaxed)
                return true
            }
        } catch {
            failure = error
        }
        stats.finished.store(true, ordering: .releasing)
        stats.deviceState.store(DeviceState.stopped.rawValue, ordering: .releasing)
    }

    /// Streams the file through downmix + resampler, calling `sink` with 16 kHz mono blocks
    /// until it returns false or the file ends.
    private func decode(_ sink: ([Float]) -> Bool) throws(AudioInputError) {
        guard let file else { return }
        sf_seek(file, 0, SEEK_SET)
        let blockFrames = 4096
        var interleaved = [Float](repeating: 0, count: blockFrames * sourceChannels)
        var mono = [Float](repeating: 0, count: blockFrames)
        let ratio = Double(pipelineSampleRate) / Double(sourceRate)
        var out = [Float](repeating: 0, count: Int(Double(blockFrames) * ratio) + 256)
        var state: OpaquePointer?
        if sourceRate != pipelineSampleRate {
            var err: Int32 = 0
            state = src_new(Int32(SRC_SINC_MEDIUM_QUALITY), 1, &err)
            guard state != nil else { throw .resampler(String(cString: src_strerror(err))) }
        }
        defer { if let state { src_delete(state) } }
        var ended = false
        while !ended {
            let got = Int(interleaved.withUnsafeMutableBufferPointer { sf_readf_float(file, $0.baseAddress, sf_count_t(blockFrames)) })
            if got < blockFrames { ended = true }
            let ch = sourceChannels
            let scale = 1.0 / Float(ch)
            for i in 0..<got {
                var s: Float = 0
                for c in 0..<ch { s += interleaved[i * ch + c] }
                mono[i] = s * scale
            }
            guard let state else {
                if got > 0, !sink(Array(mono[0..<got])) { return }
                continue
            }
            // Feed the block; on the last one flush the resampler's tail.
            var consumed = 0
            repeat {
                var data = SRC_DATA()
                var produced = 0
                let rc: Int32 = mono.withUnsafeBufferPointer { inp in
                    out.withUnsafeMutableBufferPointer { o in
                        data.data_in = inp.baseAddress! + consumed
                        data.input_frames = got - consumed
                        data.data_out = o.baseAddress
                        data.output_frames = o.count
                        data.src_ratio = ratio
                        data.end_of_input = ended ? 1 : 0
                        let r = src_process(state, &data)
                        produced = data.output_frames_gen
                        return r
                    }
                }
                guard rc == 0 else { throw .resampler(String(cString: src_strerror(rc))) }
                consumed += data.input_frames_used
                if produced > 0, !sink(Array(out[0..<produced])) { return }
                if ended && produced == 0 && consumed >= got { break }
                if !ended && consumed >= got { break }
            } while true
        }
    }
}

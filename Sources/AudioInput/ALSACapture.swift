import CALSA
import CSampleRate
import Foundation
import Synchronization

/// Live capture from an ALSA PCM on a dedicated thread.
///
/// The capture thread opens, reads and closes the `snd_pcm_t` itself (the handle is not
/// Sendable and never leaves it). Its loop only reads one period, converts it to 16 kHz mono
/// float in preallocated buffers and writes it into the ring: no allocation, no locks, no
/// logging. Overruns are recovered with `snd_pcm_recover` and counted. A read error that
/// persists marks the device `lost`; the thread then retries opening it every
/// `reopenInterval` seconds and resumes by itself.
public final class ALSACapture: AudioSource, @unchecked Sendable {
    // @unchecked Sendable: mutable state below is touched only by the capture thread after
    // `start`, except the atomics and `openResult`, which is handed over through `opened`.

    /// What to open and how.
    public struct Configuration: Sendable {
        /// ALSA PCM name: `default`, `hw:1`, `plughw:1,0`, or a name from `configText`.
        public var device: String
        /// Frames per period (one read). 10 ms at 16 kHz by default.
        public var periodFrames: Int = 160
        /// Periods in the device buffer.
        public var periods: Int = 8
        /// Optional ALSA configuration text loaded instead of the global configuration
        /// (tests use it to define a `file` plugin device).
        public var configText: String? = nil
        /// Seconds between attempts to reopen a lost device.
        public var reopenInterval: Double = 2.0
        /// Seconds to wait for the device to open (and, at most 2, for the capture thread to stop): a driver
        /// blocked in open or read (a stalled plugin, a pipe with no writer) cannot hold the
        /// program hostage.
        public var blockedTimeout: Double = 5.0
        public init(device: String) { self.device = device }
    }

    public let stats = AudioSourceStats()
    public let configuration: Configuration
    /// Test-only fault injection, consulted by the capture loop (atomics only).
    public let faults = CaptureFaultInjector()

    private let running = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private let opened = DispatchSemaphore(value: 0)
    private var openResult: AudioInputError?
    private var thread: Thread?

    // Capture-thread state.
    private var pcm: OpaquePointer?
    private var localConfig: OpaquePointer?
    private var negotiated = Negotiated()
    private var rawBuffer: UnsafeMutableRawPointer?
    private var rawBufferBytes = 0
    private var mono: UnsafeMutableBufferPointer<Float> = .init(start: nil, count: 0)
    private var resampled: UnsafeMutableBufferPointer<Float> = .init(start: nil, count: 0)
    private var src: OpaquePointer?

    struct Negotiated {
        var format: snd_pcm_format_t = SND_PCM_FORMAT_FLOAT_LE
        var channels = 1
        var rate = 16_000
        var periodFrames = 160
    }

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    deinit {
        if rawBuffer != nil { rawBuffer?.deallocate() }
        if mono.baseAddress != nil { mono.deallocate() }
        if resampled.baseAddress != nil { resampled.deallocate() }
    }

    /// Opens the device on a new capture thread and starts it. Throws if it cannot be opened.
    public func start(into ring: SampleRing) throws {
        avgas_alsa_silence_errors()
        running.store(true, ordering: .releasing)
        let t = Thread { [self] in self.threadMain(ring) }
        t.name = "avgas-capture"
        t.stackSize = 1 << 20
        thread = t
        t.start()
        guard opened.wait(timeout: .now() + configuration.blockedTimeout) == .success else {
            running.store(false, ordering: .releasing)
            abandoned = true
            thread = nil
            throw AudioInputError.deviceFailed(device: configuration.device, detail: String(
                format: "it did not open within %.0f s (its driver is blocked: a stalled sound server, or a file plugin reading a pipe nobody writes)",
                configuration.blockedTimeout))
        }
        if let error = openResult {
            done.wait()
            throw error
        }
    }

    /// True when the capture thread is stuck in the driver and was left behind by `start` or
    /// `stop`: it still holds the ring, which must then outlive this object (it is leaked).
    public private(set) var abandoned = false

    public func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) || thread != nil else { return }
        if thread != nil {
            if done.wait(timeout: .now() + min(2, configuration.blockedTimeout)) != .success { abandoned = true }
            thread = nil
        }
    }

    // MARK: capture thread

    private func threadMain(_ ring: SampleRing) {
        Self.raisePriority()
        do {
            try openDevice()
        } catch {
            openResult = error
            stats.deviceState.store(DeviceState.stopped.rawValue, ordering: .releasing)
            opened.signal()
            done.signal()
            return
        }
        opened.signal()
        captureLoop(ring)
        closeDevice()
        stats.deviceState.store(DeviceState.stopped.rawValue, ordering: .releasing)
        done.signal()
    }

    private func captureLoop(_ ring: SampleRing) {
        var consecutiveErrors = 0
        while running.load(ordering: .acquiring) {
            if pcm == nil {
                // Device lost: retry opening it every reopenInterval seconds.
                if sleepWhileRunning(configuration.reopenInterval), (try? openDevice()) != nil {
                    stats.reopens.add(1, ordering: .relaxed)
                    stats.deviceState.store(DeviceState.running.rawValue, ordering: .releasing)
                    consecutiveErrors = 0
                }
                continue
            }
            var got = readPeriod()
            if let injected = faults.takeInjectedError() { got = injected }
            if got == -Int(EPIPE) || got == -Int(ESTRPIPE) || got == -Int(EINTR) {
                // Overrun (or suspend): recover and count, never fatal.
                if snd_pcm_recover(pcm, Int32(got), 1) >= 0 || got != -Int(EPIPE) {
                    stats.xruns.add(got == -Int(EPIPE) ? 1 : 0, ordering: .relaxed)
                    if got == -Int(EPIPE) { snd_pcm_prepare(pcm); snd_pcm_start(pcm) }
                    continue
                }
            }
            if got == -Int(EAGAIN) { continue }
            if got < 0 {
                consecutiveErrors += 1
                if consecutiveErrors >= 3 {
                    // Persistent failure: the device is gone. Close it and start retrying.
                    closeDevice()
                    stats.deviceState.store(DeviceState.lost.rawValue, ordering: .releasing)
                } else {
                    _ = snd_pcm_recover(pcm, Int32(got), 1)
                }
                continue
            }
            consecutiveErrors = 0
            if got == 0 { continue }
            let out = convert(frames: got)
            let written = ring.write(UnsafeBufferPointer(out))
            stats.producedSamples.add(written, ordering: .relaxed)
            if written < out.count {
                stats.droppedSamples.add(out.count - written, ordering: .relaxed)
            }
        }
    }

    /// Reads exactly one period (the file plugin ignores larger requests). Returns frames or -errno.
    private func readPeriod() -> Int {
        if faults.isDeviceGone { return -Int(ENODEV) }
        return Int(snd_pcm_readi(pcm, rawBuffer, snd_pcm_uframes_t(negotiated.periodFrames)))
    }

    /// Converts `frames` interleaved frames in `rawBuffer` to 16 kHz mono float.
    private func convert(frames: Int) -> UnsafeMutableBufferPointer<Float> {
        let ch = negotiated.channels
        let scale = 1.0 / Float(ch)
        let raw = rawBuffer!
        switch negotiated.format {
        case SND_PCM_FORMAT_FLOAT_LE:
            let p = raw.assumingMemoryBound(to: Float.self)
            for i in 0..<frames {
                var s: Float = 0
                for c in 0..<ch { s += p[i * ch + c] }
                mono[i] = s * scale
            }
        case SND_PCM_FORMAT_S32_LE:
            let p = raw.assumingMemoryBound(to: Int32.self)
            for i in 0..<frames {
                var s: Float = 0
                for c in 0..<ch { s += Float(p[i * ch + c]) * (1.0 / 2_147_483_648.0) }
                mono[i] = s * scale
            }
        default: // S16_LE
            let p = raw.assumingMemoryBound(to: Int16.self)
            for i in 0..<frames {
                var s: Float = 0
                for c in 0..<ch { s += Float(p[i * ch + c]) * (1.0 / 32_768.0) }
                mono[i] = s * scale
            }
        }
        guard let src else { return UnsafeMutableBufferPointer(rebasing: mono[0..<frames]) }
        var data = SRC_DATA()
        data.data_in = UnsafePointer(mono.baseAddress)
        data.input_frames = frames
        data.data_out = resampled.baseAddress
        data.output_frames = resampled.count
        data.src_ratio = Double(pipelineSampleRate) / Double(negotiated.rate)
        data.end_of_input = 0
        if src_process(src, &data) != 0 { return UnsafeMutableBufferPointer(rebasing: resampled[0..<0]) }
        return UnsafeMutableBufferPointer(rebasing: resampled[0..<data.output_frames_gen])
    }

    private func sleepWhileRunning(_ seconds: Double) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if !running.load(ordering: .acquiring) { return false }
            usleep(20_000)
        }
        return running.load(ordering: .acquiring)
    }

    // MARK: opening (capture thread, before the loop or while the device is lost)

    private func openDevice() throws(AudioInputError) {
        let name = configuration.device
        // An injected unplug fails opening too, as a missing device does (without this the
        // retry loop "reopened" a gone device every interval and flapped back to running).
        if faults.isDeviceGone { throw Self.openError(-ENODEV, device: name, hasLocalConfig: true) }
        var handle: OpaquePointer?
        var rc: Int32
        if let text = configuration.configText {
            if localConfig == nil {
                var cfg: OpaquePointer?
                var input: OpaquePointer?
                guard snd_config_top(&cfg) >= 0 else { throw .deviceFailed(device: name, detail: "cannot create an ALSA configuration") }
                let bytes = Array(text.utf8)
                rc = bytes.withUnsafeBufferPointer { b in
                    snd_input_buffer_open(&input, UnsafeRawPointer(b.baseAddress!).assumingMemoryBound(to: CChar.self), b.count)
                }
                guard rc >= 0 else { snd_config_delete(cfg); throw .deviceFailed(device: name, detail: "cannot read the ALSA configuration text") }
                rc = snd_config_load(cfg, input)
                snd_input_close(input)
                guard rc >= 0 else { snd_config_delete(cfg); throw .deviceFailed(device: name, detail: "invalid ALSA configuration text (\(Self.errorText(rc)))") }
                localConfig = cfg
            }
            rc = snd_pcm_open_lconf(&handle, name, SND_PCM_STREAM_CAPTURE, SND_PCM_NONBLOCK, localConfig)
        } else {
            rc = snd_pcm_open(&handle, name, SND_PCM_STREAM_CAPTURE, SND_PCM_NONBLOCK)
        }
        guard rc >= 0, let handle else { throw Self.openError(rc, device: name, hasLocalConfig: configuration.configText != nil) }
        // Opened without blocking (a busy device answers EBUSY at once instead of waiting for the
        // other program); reads block, one period at a time.
        snd_pcm_nonblock(handle, 0)
        do {
            negotiated = try Self.configure(handle, device: name, wantPeriod: configuration.periodFrames, periods: configuration.periods)
        } catch {
            snd_pcm_close(handle)
            throw error
        }
        try allocateBuffers()
        snd_pcm_prepare(handle)
        snd_pcm_start(handle)
        pcm = handle
    }

    private func closeDevice() {
        if let pcm {
            snd_pcm_drop(pcm)
            snd_pcm_close(pcm)
        }
        pcm = nil
    }

    private func allocateBuffers() throws(AudioInputError) {
        let frames = negotiated.periodFrames
        let bytes = frames * negotiated.channels * 4
        if bytes > rawBufferBytes {
            rawBuffer?.deallocate()
            rawBuffer = .allocate(byteCount: bytes, alignment: 16)
            rawBuffer!.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            rawBufferBytes = bytes
            if mono.baseAddress != nil { mono.deallocate() }
            mono = .allocate(capacity: frames)
            mono.initialize(repeating: 0)
        }
        if negotiated.rate != pipelineSampleRate {
            if src == nil {
                var err: Int32 = 0
                src = src_new(Int32(SRC_SINC_FASTEST), 1, &err)
                guard src != nil else { throw .resampler(String(cString: src_strerror(err))) }
            }
            let outCap = frames * pipelineSampleRate / max(1, negotiated.rate) + 64
            if resampled.count < outCap {
                if resampled.baseAddress != nil { resampled.deallocate() }
                resampled = .allocate(capacity: outCap)
            }
        } else if let s = src {
            src_delete(s)
            src = nil
        }
    }

    /// Negotiates access, format, channels, rate and period size. Prefers 16 kHz mono float;
    /// takes what the device offers otherwise (16/32-bit integers, more channels, another rate).
    private static func configure(_ pcm: OpaquePointer, device: String, wantPeriod: Int, periods: Int) throws(AudioInputError) -> Negotiated {
        var hw: OpaquePointer?
        snd_pcm_hw_params_malloc(&hw)
        defer { snd_pcm_hw_params_free(hw) }
        guard snd_pcm_hw_params_any(pcm, hw) >= 0 else {
            throw .deviceFailed(device: device, detail: "it reports no capture configuration")
        }
        _ = snd_pcm_hw_params_set_rate_resample(pcm, hw, 1)
        guard snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED) >= 0 else {
            throw .unsupportedFormat(device: device, detail: "no interleaved read access")
        }
        var n = Negotiated()
        var formatOK = false
        for f in [SND_PCM_FORMAT_FLOAT_LE, SND_PCM_FORMAT_S16_LE, SND_PCM_FORMAT_S32_LE]
        where snd_pcm_hw_params_test_format(pcm, hw, f) == 0 {
            snd_pcm_hw_params_set_format(pcm, hw, f)
            n.format = f
            formatOK = true
            break
        }
        guard formatOK else { throw .unsupportedFormat(device: device, detail: "none of float32, int16, int32") }
        var ch: UInt32 = 1
        guard snd_pcm_hw_params_set_channels_near(pcm, hw, &ch) >= 0 else {
            throw .unsupportedFormat(device: device, detail: "no channel count accepted")
        }
        n.channels = Int(ch)
        var rate: UInt32 = UInt32(pipelineSampleRate)
        var dir: Int32 = 0
        guard snd_pcm_hw_params_set_rate_near(pcm, hw, &rate, &dir) >= 0 else {
            throw .unsupportedFormat(device: device, detail: "no sample rate accepted")
        }
        n.rate = Int(rate)
        // Period: the same 10 ms of audio at the device rate.
        var period = snd_pcm_uframes_t(max(32, wantPeriod * n.rate / pipelineSampleRate))
        _ = snd_pcm_hw_params_set_period_size_near(pcm, hw, &period, &dir)
        var buffer = period * snd_pcm_uframes_t(periods)
        _ = snd_pcm_hw_params_set_buffer_size_near(pcm, hw, &buffer)
        let rc = snd_pcm_hw_params(pcm, hw)
        guard rc >= 0 else { throw .unsupportedFormat(device: device, detail: errorText(rc)) }
        var actual: snd_pcm_uframes_t = 0
        snd_pcm_hw_params_get_period_size(hw, &actual, &dir)
        n.periodFrames = Int(actual)
        return n
    }

    static func openError(_ rc: Int32, device: String, hasLocalConfig: Bool) -> AudioInputError {
        if rc == -EBUSY { return .deviceBusy(device) }
        if rc == -ENOENT || rc == -ENODEV || rc == -ENXIO {
            if !hasLocalConfig && !ALSADevices.hasSoundCard() && ALSADevices.isCardDevice(device) {
                return .noSoundCard
            }
            // A name ALSA lists (from the configuration) whose card or file is absent.
            if !hasLocalConfig && ALSADevices.list().pcms.contains(where: { $0.name == device }) {
                return .deviceFailed(device: device, detail: "it is defined, but its sound card or file is missing (\(errorText(rc))); is it plugged in?")
            }
            return .unknownDevice(device)
        }
        if rc == -EINVAL { return .unknownDevice(device) }
        return .deviceFailed(device: device, detail: errorText(rc))
    }

    static func errorText(_ rc: Int32) -> String { String(cString: snd_strerror(rc)) }

    /// SCHED_FIFO works as root only; anything else keeps the default priority.
    private static func raisePriority() {
        var param = sched_param()
        param.sched_priority = 10
        _ = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param)
    }
}

/// Test-only fault injection for the capture loop, through atomics (nothing allocates).
public final class CaptureFaultInjector: Sendable {
    private let pendingXruns = Atomic<Int>(0)
    private let gone = Atomic<Bool>(false)
    public init() {}

    /// The next `count` reads report an overrun (-EPIPE), as a real overrun would.
    public func injectXruns(_ count: Int) { pendingXruns.add(count, ordering: .releasing) }
    /// While true, every read fails with -ENODEV, as an unplugged device does.
    public func setDeviceGone(_ value: Bool) { gone.store(value, ordering: .releasing) }

    var isDeviceGone: Bool { gone.load(ordering: .acquiring) }
    func takeInjectedError() -> Int? {
        if pendingXruns.load(ordering: .relaxed) > 0 {
            pendingXruns.subtract(1, ordering: .acquiringAndReleasing)
            return -Int(EPIPE)
        }
        return nil
    }
}

/// What ALSA knows about capture devices (`--list-devices`).
public enum ALSADevices {
    /// One capture-capable PCM or card.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var description: String
    }

    /// True when ALSA sees at least one sound card.
    public static func hasSoundCard() -> Bool {
        avgas_alsa_silence_errors()
        var card: Int32 = -1
        return snd_card_next(&card) >= 0 && card >= 0
    }

    /// Whether `device` names something that needs a card (`default`, `hw:`, `plughw:`...).
    public static func isCardDevice(_ device: String) -> Bool {
        device == "default" || device.hasPrefix("hw") || device.hasPrefix("plughw") || device.hasPrefix("sysdefault")
            || device.hasPrefix("front") || device.hasPrefix("dsnoop")
    }

    /// Cards (`hw:N` with their long names) followed by the capture PCM hints.
    public static func list() -> (cards: [Entry], pcms: [Entry]) {
        avgas_alsa_silence_errors()
        var cards: [Entry] = []
        var card: Int32 = -1
        while snd_card_next(&card) >= 0 && card >= 0 {
            var longName: UnsafeMutablePointer<CChar>?
            snd_card_get_longname(card, &longName)
            let desc = longName.map { String(cString: $0) } ?? "card \(card)"
            free(longName)
            cards.append(Entry(name: "hw:\(card)", description: desc))
        }
        var pcms: [Entry] = []
        var hints: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        if snd_device_name_hint(-1, "pcm", &hints) >= 0, let hints {
            var i = 0
            while let h = hints[i] {
                defer { i += 1 }
                let name = snd_device_name_get_hint(h, "NAME")
                let desc = snd_device_name_get_hint(h, "DESC")
                let ioid = snd_device_name_get_hint(h, "IOID")
                defer { free(name); free(desc); free(ioid) }
                guard let name else { continue }
                if let ioid, String(cString: ioid) != "Input" { continue }  // nil means both directions
                // "null" captures endless silence as fast as it can be read: not a sound source.
                if String(cString: name) == "null" { continue }
                let d = desc.map { String(cString: $0).replacingOccurrences(of: "\n", with: ", ") } ?? ""
                pcms.append(Entry(name: String(cString: name), description: d))
            }
            snd_device_name_free_hint(hints)
        }
        return (cards, pcms)
    }
}

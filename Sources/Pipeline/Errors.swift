import AudioInput
import Display
import Foundation

/// Exit codes of avgas-live (sysexits.h values, so scripts can tell problems apart).
public enum ExitStatus: Int32, Sendable, CaseIterable {
    case ok = 0
    /// A bad option value (negative fps, hop of 0, unknown --mix...).
    case usage = 64
    /// The input is not decodable audio, or its header is absurd.
    case dataError = 65
    /// The input file is missing, unreadable or empty.
    case noInput = 66
    /// No sound card, unknown or busy device, no display.
    case unavailable = 69
    /// An internal error (please report it).
    case software = 70
    /// An output (frames directory, events file, recording) cannot be created.
    case cannotCreate = 73
    /// Writing an output failed while running (disk full...).
    case ioError = 74
    /// Model weights are missing, truncated, corrupted or do not match the network.
    case config = 78
}

/// Every error the program reports: one line for the user, and an exit status.
public struct AvgasError: Error, CustomStringConvertible {
    public let description: String
    public let status: ExitStatus
    public init(_ description: String, status: ExitStatus) {
        self.description = description
        self.status = status
    }

    public init(_ e: AudioInputError) {
        let status: ExitStatus
        switch e {
        case .noSoundCard, .unknownDevice, .deviceBusy, .unsupportedFormat, .deviceFailed: status = .unavailable
        case .fileMissing, .fileIsDirectory, .fileNotRegular, .fileUnreadable, .fileEmpty: status = .noInput
        case .notAudio, .unsupportedAudioFile: status = .dataError
        case .resampler: status = .software
        }
        self.init(e.description, status: status)
    }

    public init(_ e: DisplayError) {
        self.init(e.description, status: e == .noDisplay ? .unavailable : .unavailable)
    }
}

// libFuzzer entry point for the program parser (built only by `make fuzz`, never by SwiftPM).
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    FuzzHarness.run("program", Data(bytes: bytes, count: size))
    return 0
}

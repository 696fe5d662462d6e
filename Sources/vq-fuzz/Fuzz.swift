// Fuzz targets for what the server reads from the network: the HTTP request
// parser and the JSON of API bodies (parse, then decode as the API does).
//
//   swift build --product vq-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library -Xswiftc -DFUZZING
//   VQ_FUZZ=http .build-fuzz/debug/vq-fuzz -max_total_time=60     (or VQ_FUZZ=json)
//
// Without FUZZING it is a replayer: `vq-fuzz http FILE...` runs saved inputs through the same code.

import Foundation
import VQEngine

/// Feeds one input to the chosen target; crashes (the only failure a fuzzer sees) are bugs.
func fuzzOne(_ target: String, _ bytes: UnsafeRawBufferPointer) {
    switch target {
    case "json":
        guard let json = try? JSONParser.parseRequest(Array(bytes)) else { return }
        // Decode as the API would: filters, ids, vectors, and the writer round trip.
        if let f = json["filter"] { _ = try? Filter(json: f) }
        if let ids = json["ids"]?.arrayValue { for id in ids { _ = try? PointID(json: id) } }
        _ = try? JSONParser.parse(JSONWriter.bytes(json))
        if let f = try? Filter(json: json) { _ = f.matches(id: .number(1), payload: json) }
    default:
        var limits = HTTPLimits()
        limits.maxBodyBytes = 1 << 16
        limits.maxHeaderBytes = 4096
        _ = HTTPParser.parse(bytes, limits: limits)
    }
}

#if FUZZING
let fuzzTarget = ProcessInfo.processInfo.environment["VQ_FUZZ"] ?? "http"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(fuzzTarget, UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: FuzzCallback) -> CInt

/// SwiftPM links an executable's entry point under this name; hand control to libFuzzer's driver.
@_cdecl("vq_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    return runFuzzerDriver(&count, &vector) { data, size in fuzzerTestOneInput(data, size) }
}
#else
@main
struct FuzzReplay {
    static func main() throws {
        let args = CommandLine.arguments.dropFirst()
        guard let target = args.first, target == "http" || target == "json" else {
            FileHandle.standardError.write(Data("usage: vq-fuzz http|json FILE...\n".utf8))
            exit(2)
        }
        for path in args.dropFirst() {
            let bytes = try FileIO.readAll(path)
            bytes.withUnsafeBytes { fuzzOne(target, $0) }
        }
    }
}
#endif

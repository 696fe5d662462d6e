import Foundation
import VQEngine

/// The built `vq` binary: next to the test bundle (STYLE.md: drop a trailing `.xctest`).
let vqBinary: URL = {
    var url = Bundle.main.bundleURL
    if url.pathExtension == "xctest" { url.deleteLastPathComponent() }
    let candidate = url.appendingPathComponent("vq")
    if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    // swift-corelibs-xctest runs the bundle as an executable in the build directory.
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("vq")
}()

/// What a finished `vq` run printed and returned.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// Runs `vq` with `args`, feeding `stdin`, in `environment` (VQ_* from the test process are dropped).
@discardableResult
func vq(_ args: [String], stdin: Data? = nil, env: [String: String] = [:], cwd: String? = nil) throws -> Run {
    let process = Process()
    process.executableURL = vqBinary
    process.arguments = args
    var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("VQ_") }
    environment["NO_COLOR"] = "1"
    for (k, v) in env { environment[k] = v }
    process.environment = environment
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    let group = DispatchGroup()
    nonisolated(unsafe) var outData = Data(), errData = Data()
    DispatchQueue.global().async(group: group) { outData = out.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
    if let stdin { input.fileHandleForWriting.write(stdin) }
    try input.fileHandleForWriting.close()
    process.waitUntilExit()
    group.wait()
    return Run(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
               stderr: String(decoding: errData, as: UTF8.self))
}

/// A temporary directory removed on release.
final class Scratch {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.path + "/vq-e2e-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    var data: String { path + "/data" }
}

/// SplitMix64 (the engine's `mix64` is its finaliser), seeded so every run is the same.
struct Rng {
    var state: UInt64
    mutating func next() -> UInt64 {
        defer { state &+= 0x9E37_79B9_7F4A_7C15 }
        return mix64(state)
    }
    mutating func float() -> Float { Float(Double(next() >> 11) / Double(1 << 53) * 2 - 1) }
    mutating func vector(_ dim: Int) -> [Float] { (0..<dim).map { _ in float() } }
}

/// JSON Lines of points with ids `ids.lowerBound...` and optional payloads.
func jsonl(_ vectors: [[Float]], firstID: Int = 0, payload: ((Int) -> String)? = nil) -> String {
    var s = ""
    for (i, v) in vectors.enumerated() {
        s += "{\"id\":\(firstID + i),\"vector\":[" + v.map { "\($0)" }.joined(separator: ",") + "]"
        if let payload { s += ",\"payload\":" + payload(firstID + i) }
        s += "}\n"
    }
    return s
}

/// Exact cosine top-k ids in Double.
func cosineTopK(_ vectors: [[Float]], _ q: [Float], k: Int, firstID: Int = 0) -> [Int] {
    func unit(_ v: [Float]) -> [Double] {
        let d = v.map(Double.init)
        let n = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return d.map { $0 / n }
    }
    let uq = unit(q)
    let scored = vectors.enumerated().map { (i, v) -> (Int, Double) in
        let u = unit(v)
        return (firstID + i, zip(u, uq).reduce(0) { $0 + $1.0 * $1.1 })
    }
    return scored.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }.prefix(k).map(\.0)
}

/// The ids in one `vq search` output line.
func resultIDs(_ line: String) throws -> [Int] {
    let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
    let results = obj?["results"] as? [[String: Any]] ?? []
    return results.compactMap { ($0["id"] as? NSNumber)?.intValue }
}

func writeFile(_ path: String, _ text: String) throws {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

import Foundation
@testable import VQEngine

/// SplitMix64: a small seeded generator, so every test is repeatable.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        defer { state &+= 0x9E37_79B9_7F4A_7C15 }
        return mix64(state)
    }

    mutating func float() -> Float { Float.random(in: -1...1, using: &self) }

    mutating func vector(_ dim: Int) -> [Float] { (0..<dim).map { _ in float() } }
}

/// A fresh temporary directory, removed when the value is released.
final class TempDir {
    let path: String

    init(_ label: String = "vq-test") {
        let base = FileManager.default.temporaryDirectory.path
        path = base + "/\(label)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Brute-force top-k ids for `query` over `vectors` under `distance`, in Double.
func oracleTopK(_ vectors: [[Float]], ids: [PointID], query: [Float], distance: Distance, k: Int) -> [(PointID, Double)] {
    func norm(_ v: [Float]) -> [Double] {
        let d = v.map(Double.init)
        guard distance == .cosine else { return d }
        let n = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return n > 0 ? d.map { $0 / n } : d
    }
    let q = norm(query)
    var scored: [(PointID, Double)] = []
    for (i, v) in vectors.enumerated() {
        let x = norm(v)
        var s = 0.0
        switch distance {
        case .cosine, .dot: for j in x.indices { s += x[j] * q[j] }
        case .euclid: for j in x.indices { s -= (x[j] - q[j]) * (x[j] - q[j]) }
        case .manhattan: for j in x.indices { s -= abs(x[j] - q[j]) }
        }
        scored.append((ids[i], s))
    }
    scored.sort { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
    return Array(scored.prefix(k))
}

// Single-vector conveniences: most tests use collections of one unnamed vector.

extension PointRecord {
    /// The first vector (the unnamed one), or [] when vectors were not asked for.
    var vector: [Float] { vectors.first.flatMap { $0 } ?? [] }
}

extension Segment {
    convenience init(directory: String, info: SegmentInfo, dim: Int, distance: Distance, capacity: Int, committedFlush: UInt64 = 0) throws {
        try self.init(directory: directory, info: info, vectors: VectorLayout(dim: dim, distance: distance), capacity: capacity,
                      committedFlush: committedFlush)
    }

    func append(id: PointID, version: UInt64, vector: UnsafeBufferPointer<Float>, payload: [UInt8]?) throws -> Int {
        try append(id: id, version: version, vectors: [vector], payload: payload)
    }
}

extension VQEngine.Operation {
    func validate(dim: Int) throws { try validate(dims: [dim], optional: false) }
}

extension ShardWire {
    static func decodeOperation(_ body: [UInt8], dim: Int) throws
        -> (operation: VQEngine.Operation, bytes: [UInt8], wait: WriteWait, seq: UInt64, epoch: UInt64) {
        try decodeOperation(body, vectors: VectorLayout(dim: dim, distance: .cosine))
    }
}

/// Whether `condition` holds within `seconds` (a thread the test started reaching its point).
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let until = Date().addingTimeInterval(seconds)
    while Date() < until {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.005)
    }
    return false
}

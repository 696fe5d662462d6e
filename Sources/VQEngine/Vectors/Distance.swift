// Distances and their kernels.
//
//   Distance.swift        the metric enum: names, score conventions, normalisation
//   Kernels.swift         the kernels in use (C: AVX-512 / AVX2+FMA / plain), chosen once per process
//   DistanceKernels.swift Swift SIMD kernels (normalisation) and scalar oracles for the tests
//
// Internally every score is "higher is better": cosine and dot use the inner
// product (cosine on vectors normalised at insert), euclid the negated squared
// distance, manhattan the negated L1 distance. `userScore` turns an internal
// score into what Qdrant reports: similarity for cosine/dot, distance for
// euclid/manhattan (sorted ascending).

/// A collection's distance metric, named as in Qdrant's API.
package enum Distance: String, Sendable, CaseIterable, Codable {
    case cosine = "Cosine"
    case dot = "Dot"
    case euclid = "Euclid"
    case manhattan = "Manhattan"

    /// Parses the CLI spelling (any case): cosine, dot, euclid, manhattan.
    package init?(name: String) {
        switch name.lowercased() {
        case "cosine": self = .cosine
        case "dot": self = .dot
        case "euclid", "euclidean", "l2": self = .euclid
        case "manhattan", "l1": self = .manhattan
        default: return nil
        }
    }

    package var cliName: String { rawValue.lowercased() }

    /// Whether stored vectors (and queries) are scaled to unit length.
    package var normalizes: Bool { self == .cosine }

    /// Whether the reported score grows with similarity.
    package var higherIsBetter: Bool { self == .cosine || self == .dot }

    /// The score as Qdrant reports it.
    package func userScore(_ value: Float) -> Float {
        switch self {
        case .cosine, .dot: return value
        case .euclid: return (-value).squareRoot()
        case .manhattan: return -value
        }
    }

    /// Scales `v` to unit length in place (a zero vector stays zero).
    package static func normalize(_ v: UnsafeMutableBufferPointer<Float>) {
        guard let p = v.baseAddress else { return }
        let norm = DistanceKernels.dot(p, p, v.count).squareRoot()
        guard norm > 0 else { return }
        let inv = 1 / norm
        for i in 0..<v.count { v[i] *= inv }
    }

    /// Normalises each of the `v.count / dim` vectors laid end to end in `v`.
    package static func normalizeRows(_ v: UnsafeMutableBufferPointer<Float>, dim: Int) {
        for i in 0..<(v.count / dim) { normalize(UnsafeMutableBufferPointer(rebasing: v[(i * dim)..<((i + 1) * dim)])) }
    }
}

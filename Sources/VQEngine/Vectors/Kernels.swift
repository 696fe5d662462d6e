// Distance kernels chosen once per process from what the CPU supports.
//
// The C kernels (Sources/CVQSupport/kernels.c) use AVX-512F or AVX2+FMA when
// present, else plain C; DistanceKernels.swift keeps Swift SIMD versions as the
// tests' oracle. `VQ_SIMD=avx2|generic` caps the level (for comparisons).

import CVQSupport
import Foundation

/// The process's distance kernels.
package enum Kernels {
    /// `VQ_SIMD`'s cap: 0 = best available, 1 = at most AVX2, 2 = plain C (every kernel family takes it).
    package static let limit: Int32 = {
        switch ProcessInfo.processInfo.environment["VQ_SIMD"]?.lowercased() {
        case "avx2": return 1
        case "generic", "none": return 2
        default: return 0
        }
    }()

    nonisolated(unsafe) package static let selected: cvq_kernels = cvq_select_kernels(limit)

    /// "avx512", "avx2" or "generic".
    package static var level: String { String(cString: selected.level) }
}

/// A distance where lower is better, with the metric fixed once per query.
///
/// `distance = sign * kernel(a, b)`: the negated inner product for cosine and
/// dot, squared L2 for euclid, L1 for manhattan. The internal score (higher is
/// better) is `-distance`.
package struct DistanceFunction: @unchecked Sendable {
    let kernel: cvq_kernel
    let sign: Float

    package init(_ distance: Distance) {
        let k = Kernels.selected
        switch distance {
        case .cosine, .dot: kernel = k.dot; sign = -1
        case .euclid: kernel = k.l2sq; sign = 1
        case .manhattan: kernel = k.l1; sign = 1
        }
    }

    @inline(__always)
    package func callAsFunction(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        sign * kernel(a, b, n)
    }
}

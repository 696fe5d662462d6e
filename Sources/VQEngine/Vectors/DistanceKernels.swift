// SIMD distance kernels: four SIMD8<Float> accumulators, unaligned loads, scalar tail.
//
// `acc += a * b`, never `addingProduct`: without an FMA target the latter is a
// library call per lane on x86-64. The scalar versions are the tests' oracle.

package enum DistanceKernels {
    @inline(__always)
    private static func load(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// Inner product.
    @inline(__always)
    package static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        var i = 0
        while i + 32 <= n {
            s0 += load(a, i) * load(b, i)
            s1 += load(a, i + 8) * load(b, i + 8)
            s2 += load(a, i + 16) * load(b, i + 16)
            s3 += load(a, i + 24) * load(b, i + 24)
            i += 32
        }
        while i + 8 <= n {
            s0 += load(a, i) * load(b, i)
            i += 8
        }
        var sum = ((s0 + s1) + (s2 + s3)).sum()
        while i < n {
            sum += a[i] * b[i]
            i += 1
        }
        return sum
    }

    /// Squared Euclidean distance.
    @inline(__always)
    package static func squaredL2(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        var i = 0
        while i + 32 <= n {
            let d0 = load(a, i) - load(b, i)
            let d1 = load(a, i + 8) - load(b, i + 8)
            let d2 = load(a, i + 16) - load(b, i + 16)
            let d3 = load(a, i + 24) - load(b, i + 24)
            s0 += d0 * d0
            s1 += d1 * d1
            s2 += d2 * d2
            s3 += d3 * d3
            i += 32
        }
        while i + 8 <= n {
            let d = load(a, i) - load(b, i)
            s0 += d * d
            i += 8
        }
        var sum = ((s0 + s1) + (s2 + s3)).sum()
        while i < n {
            let d = a[i] - b[i]
            sum += d * d
            i += 1
        }
        return sum
    }

    /// Manhattan (L1) distance.
    @inline(__always)
    package static func l1(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        @inline(__always) func absDiff(_ x: SIMD8<Float>, _ y: SIMD8<Float>) -> SIMD8<Float> {
            let d = x - y
            return pointwiseMax(d, -d)
        }
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        var i = 0
        while i + 32 <= n {
            s0 += absDiff(load(a, i), load(b, i))
            s1 += absDiff(load(a, i + 8), load(b, i + 8))
            s2 += absDiff(load(a, i + 16), load(b, i + 16))
            s3 += absDiff(load(a, i + 24), load(b, i + 24))
            i += 32
        }
        while i + 8 <= n {
            s0 += absDiff(load(a, i), load(b, i))
            i += 8
        }
        var sum = ((s0 + s1) + (s2 + s3)).sum()
        while i < n {
            sum += abs(a[i] - b[i])
            i += 1
        }
        return sum
    }

    // MARK: scalar oracles (tests only)

    package static func scalarDot(_ a: [Float], _ b: [Float]) -> Float {
        var s: Float = 0
        for i in a.indices { s += a[i] * b[i] }
        return s
    }

    package static func scalarSquaredL2(_ a: [Float], _ b: [Float]) -> Float {
        var s: Float = 0
        for i in a.indices { s += (a[i] - b[i]) * (a[i] - b[i]) }
        return s
    }

    package static func scalarL1(_ a: [Float], _ b: [Float]) -> Float {
        var s: Float = 0
        for i in a.indices { s += abs(a[i] - b[i]) }
        return s
    }
}

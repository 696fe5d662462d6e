import Testing
@testable import VQEngine

@Suite struct DistanceKernelsTests {
    @Test("SIMD kernels match the scalar oracle", arguments: [1, 3, 7, 8, 9, 31, 32, 33, 64, 100, 384, 768])
    func kernelsMatchScalar(dim: Int) {
        var rng = SplitMix64(seed: UInt64(dim))
        for _ in 0..<20 {
            let a = rng.vector(dim), b = rng.vector(dim)
            let tolerance = Float(dim) * 1e-6 + 1e-6
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    #expect(abs(DistanceKernels.dot(pa.baseAddress!, pb.baseAddress!, dim) - DistanceKernels.scalarDot(a, b)) <= tolerance)
                    #expect(abs(DistanceKernels.squaredL2(pa.baseAddress!, pb.baseAddress!, dim) - DistanceKernels.scalarSquaredL2(a, b)) <= tolerance * 4)
                    #expect(abs(DistanceKernels.l1(pa.baseAddress!, pb.baseAddress!, dim) - DistanceKernels.scalarL1(a, b)) <= tolerance * 2)
                }
            }
        }
    }

    @Test("scores follow Qdrant: similarity for cosine/dot, distance for euclid/manhattan")
    func userScores() {
        let a: [Float] = [3, 0], b: [Float] = [0, 4]
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                // Internal score = -distance (higher is better); userScore gives Qdrant's number.
                let euclid = -DistanceFunction(.euclid)(pa.baseAddress!, pb.baseAddress!, 2)
                #expect(Distance.euclid.userScore(euclid) == 5)
                let manhattan = -DistanceFunction(.manhattan)(pa.baseAddress!, pb.baseAddress!, 2)
                #expect(Distance.manhattan.userScore(manhattan) == 7)
                #expect(Distance.dot.userScore(-DistanceFunction(.dot)(pa.baseAddress!, pa.baseAddress!, 2)) == 9)
            }
        }
    }

    @Test("normalize makes unit vectors and leaves zero vectors alone")
    func normalize() {
        var v: [Float] = [3, 4]
        v.withUnsafeMutableBufferPointer { Distance.normalize($0) }
        #expect(abs(v[0] - 0.6) < 1e-6 && abs(v[1] - 0.8) < 1e-6)
        var z: [Float] = [0, 0, 0]
        z.withUnsafeMutableBufferPointer { Distance.normalize($0) }
        #expect(z == [0, 0, 0])
    }

    @Test("distance names parse from the CLI spelling")
    func names() {
        #expect(Distance(name: "Cosine") == .cosine)
        #expect(Distance(name: "euclid") == .euclid)
        #expect(Distance(name: "manhattan") == .manhattan)
        #expect(Distance(name: "hamming") == nil)
    }
}

import Testing
@testable import VQEngine

@Suite struct CRC32CTests {
    @Test("matches the standard check value")
    func checkValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test("the hardware and software versions agree at every length and alignment")
    func hardwareMatchesSoftware() {
        var rng = SplitMix64(seed: 5)
        let bytes = (0..<300).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes.withUnsafeBytes { raw in
            for start in 0..<9 {
                for end in stride(from: start, through: raw.count, by: 7) {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                    #expect(CRC32C.update(0, slice) == CRC32C.software(0, slice))
                }
            }
        }
    }

    @Test("slicing-by-8 equals the bytewise update at every length and split")
    func incremental() {
        var rng = SplitMix64(seed: 3)
        let bytes = (0..<100).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for split in 0...bytes.count {
            let whole = CRC32C.checksum(bytes)
            let parts = bytes.withUnsafeBytes { raw in
                CRC32C.update(CRC32C.update(0, UnsafeRawBufferPointer(rebasing: raw[0..<split])), UnsafeRawBufferPointer(rebasing: raw[split...]))
            }
            #expect(parts == whole)
        }
    }
}

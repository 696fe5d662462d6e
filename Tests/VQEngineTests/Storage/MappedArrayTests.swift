import Testing
@testable import VQEngine

@Suite struct MappedArrayTests {
    @Test("appends and overwrites survive flush and reopen; unflushed bytes past the count are dropped")
    func persistence() throws {
        let tmp = TempDir()
        let path = tmp.path + "/a.bin"
        do {
            let a = try MappedArray<UInt64>(path: path, count: 0, capacity: 1 << 20)
            for i in 0..<100_000 { try a.append(UInt64(i)) }
            try a.flush()
            a[5] = 555
            a[99_999] = 7
            try a.append(123)
            try a.flush()
            try a.append(999)  // never flushed
        }
        let b = try MappedArray<UInt64>(path: path, count: 100_001, capacity: 1 << 20)
        #expect(b.count == 100_001)
        #expect(b[5] == 555)
        #expect(b[99_999] == 7)
        #expect(b[100_000] == 123)
        #expect(b[6] == 6)
        try b.append(42)
        #expect(b[100_001] == 42)
    }

    @Test("a flush tried again under the same sequence keeps the old bytes its first undo saved")
    func retriedFlushKeepsUndo() throws {
        let tmp = TempDir()
        let path = tmp.path + "/a.bin"
        do {
            let a = try MappedArray<UInt64>(path: path, count: 0, capacity: 1 << 16)
            for i in 0..<20_000 { try a.append(UInt64(i)) }
            try a.flush(sequence: 1)   // committed (the manifest says flush 1)
            a.dropUndo()
            a[10] = 1010
            try a.flush(sequence: 2)   // as if it wrote the chunk and then failed before finishing
            a[10] = 2020
            a[15_000] = 3030
            try a.flush(sequence: 2)   // the retry of flush 2; the manifest never commits it
        }
        // Reopened at flush 1: both chunks are back as flush 1 left them.
        let b = try MappedArray<UInt64>(path: path, count: 20_000, capacity: 1 << 16, committedFlush: 1)
        #expect(b[10] == 10 && b[15_000] == 15_000, "\(b[10]) \(b[15_000])")
    }

    @Test("a file shorter than the manifest says is reported as corrupt")
    func shortFile() throws {
        let tmp = TempDir()
        let path = tmp.path + "/a.bin"
        do {
            let a = try MappedArray<Float>(path: path, count: 0, capacity: 100)
            try a.append(1)
            try a.flush()
        }
        #expect(throws: VQError.self) { _ = try MappedArray<Float>(path: path, count: 2, capacity: 100) }
    }

    @Test("growing past the capacity fails instead of overrunning")
    func capacity() throws {
        let tmp = TempDir()
        let a = try MappedArray<UInt8>(path: tmp.path + "/c.bin", count: 0, capacity: 3)
        try a.append(1)
        try a.append(2)
        try a.append(3)
        #expect(throws: VQError.self) { try a.append(4) }
    }
}

import Testing
import Synchronization
import Foundation
#if canImport(Glibc)
import Glibc
#endif
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

    /// Overwrites `bytes` of the file at `offset` in place (as a failing disk would).
    static func scribble(_ path: String, at offset: Int, _ bytes: [UInt8]) throws {
        let fd = FileIO.openFD(path, O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        try bytes.withUnsafeBytes { try FileIO.pwriteAll(fd, $0, at: offset, path: path) }
    }

    @Test("block checksums: verify() names the damaged chunk; a flush refuses to replace damaged bytes; reopening still finds it")
    func blockChecksums() throws {
        let tmp = TempDir()
        let path = tmp.path + "/a.bin"
        let a = try MappedArray<UInt64>(path: path, count: 0, capacity: 1 << 20)
        for i in 0..<40_000 { try a.append(UInt64(i)) }   // 320,000 bytes: 4 whole chunks and a part
        try a.flush(sequence: 1)
        a.dropUndo()
        #expect(a.verify() == nil)
        try Self.scribble(path, at: 100_000, [0xA5, 0x5A, 0xFF])
        #expect(a.verify() == "\(path) is damaged (checksum mismatch in bytes 65536..<131072)")
        a[12_600] = 1   // in the damaged chunk
        #expect { try a.flush(sequence: 2) } throws: { ($0 as? VQError)?.kind == .corrupt && "\($0)".contains("65536..<131072") }
        let b = try MappedArray<UInt64>(path: path, count: 40_000, capacity: 1 << 20, committedFlush: 1)
        #expect(b.verify()?.contains("65536..<131072") == true)
    }

    @Test("the partial last chunk is checked before appends extend it")
    func tailChunk() throws {
        let tmp = TempDir()
        let path = tmp.path + "/a.bin"
        let a = try MappedArray<UInt64>(path: path, count: 0, capacity: 1 << 20)
        for i in 0..<10_000 { try a.append(UInt64(i)) }   // 80,000 bytes: the second chunk is partial
        try a.flush(sequence: 1)
        try Self.scribble(path, at: 70_000, [1, 2, 3, 4])
        try a.append(7)
        #expect { try a.flush(sequence: 2) } throws: { ($0 as? VQError)?.kind == .corrupt && "\($0)".contains("65536..<80000") }
    }

    @Test("sums follow the committed flush: a flush the manifest never committed leaves the older sums in force")
    func sumsFollowCommit() throws {
        let tmp = TempDir()
        let path = tmp.path + "/a.bin"
        do {
            let a = try MappedArray<UInt32>(path: path, count: 0, capacity: 1 << 20)
            for i in 0..<50_000 { try a.append(UInt32(i)) }
            try a.flush(sequence: 1)
            a.dropUndo()
            a[3] = 33
            a[49_999] = 44
            for i in 0..<30_000 { try a.append(UInt32(i)) }
            try a.flush(sequence: 2)   // then a crash before the manifest of flush 2
        }
        do {
            let b = try MappedArray<UInt32>(path: path, count: 50_000, capacity: 1 << 20, committedFlush: 1)
            #expect(b[3] == 3 && b[49_999] == 49_999)
            #expect(b.verify() == nil)
            b[3] = 333
            try b.append(5)
            try b.flush(sequence: 2)   // committed this time
            b.dropUndo()
        }
        let c = try MappedArray<UInt32>(path: path, count: 50_001, capacity: 1 << 20, committedFlush: 2)
        #expect(c[3] == 333 && c[50_000] == 5)
        #expect(c.verify() == nil)
        // Both slots are in use by now; damage is still found.
        try Self.scribble(path, at: 8, [9, 9])
        #expect(c.verify()?.contains("0..<65536") == true)
    }

    @Test("a file without sums (written before them) is summed in full at its next flush")
    func noSumsYet() throws {
        let tmp = TempDir()
        let path = tmp.path + "/a.bin"
        do {
            let a = try MappedArray<UInt64>(path: path, count: 0, capacity: 1 << 20)
            for i in 0..<20_000 { try a.append(UInt64(i)) }
            try a.flush(sequence: 1)
        }
        FileIO.remove(path + ".sum0")
        FileIO.remove(path + ".sum1")
        let b = try MappedArray<UInt64>(path: path, count: 20_000, capacity: 1 << 20, committedFlush: 1)
        #expect(b.verify() == nil)   // nothing to check against yet
        b[0] = 1
        try b.flush(sequence: 2)
        try Self.scribble(path, at: 150_000, [0xEE])
        #expect(b.verify()?.contains("131072..<160000") == true)
    }

    @Test("a flush that slips in between a scrub's reading of a chunk's sum and of its bytes is no damage")
    func verifyDuringFlush() throws {
        let tmp = TempDir()
        let path = tmp.path + "/a.bin"
        let a = try MappedArray<UInt64>(path: path, count: 0, capacity: 1 << 20)
        for i in 0..<20_000 { try a.append(UInt64(i)) }
        try a.flush(sequence: 1)
        a.dropUndo()
        var fired = false
        a.verifyHookForTesting = {
            guard !fired else { return }
            fired = true
            a[3] = 42   // chunk 0, the one being checked
            try? a.flush(sequence: 2)
        }
        #expect(a.verify() == nil)
        #expect(fired && a[3] == 42)
        a.verifyHookForTesting = nil
        #expect(a.verify() == nil)
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

@Suite struct SegmentUndoTests {
    @Test("a payload overwritten in its slot stays overwritten when the process dies after the manifest, before the undo file is dropped")
    func committedPayloadOverwrite() throws {
        let tmp = TempDir()
        let dir = tmp.path + "/seg"
        let info0 = SegmentInfo(id: 1, rows: 0, payloadBytes: 0, appendable: true)
        let v: [Float] = [1, 0]
        do {
            let seg = try Segment(directory: dir, info: info0, dim: 2, distance: .dot, capacity: 16)
            _ = try v.withUnsafeBufferPointer { try seg.append(id: .number(1), version: 1, vector: $0, payload: Array("{\"a\":\"long value\"}".utf8)) }
            try seg.flush(sequence: 1)
            seg.dropUndo()
            try seg.setPayload(row: 0, version: 2, Array("{\"a\":1}".utf8))   // fits: reuses the slot
            try seg.flush(sequence: 2)   // the manifest of flush 2 is written; then the process dies
        }
        let info = SegmentInfo(id: 1, rows: 1, payloadBytes: 18, appendable: true)
        let seg = try Segment(directory: dir, info: info, dim: 2, distance: .dot, capacity: 16, committedFlush: 2)
        #expect(seg.payloadBytes(0).map { String(decoding: $0, as: UTF8.self) } == "{\"a\":1}")
        #expect(seg.verifyBlocks() == nil)
    }
}

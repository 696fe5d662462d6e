import Foundation
import Testing
@testable import VQEngine

@Suite struct WALTests {
    /// Opens the WAL in `dir`, collecting replayed records and warnings.
    func open(_ dir: String, from: UInt64 = 1, fileLimit: Int = 1 << 20, acceptGap: Bool = false) throws -> (WAL, [(UInt64, [UInt8])], [String]) {
        var records: [(UInt64, [UInt8])] = []
        var warnings: [String] = []
        let wal = try WAL(directory: dir, nextOpAtLeast: from, replayFrom: from, fileLimit: fileLimit, acceptGap: acceptGap,
                          warn: { warnings.append($0) }) { op, body in records.append((op, Array(body))) }
        return (wal, records, warnings)
    }

    func write(_ wal: WAL, _ bodies: [[UInt8]]) throws -> [UInt64] {
        let ops = try bodies.map { b in try b.withUnsafeBytes { try wal.append($0) } }
        try wal.sync(upTo: ops.last ?? 0)
        return ops
    }

    func body(_ i: Int) -> [UInt8] { Array("record \(i) ".utf8) + [UInt8](repeating: UInt8(i & 0xFF), count: i % 50) }

    func walFiles(_ dir: String) -> [String] { FileIO.list(dir).filter { $0.hasSuffix(".wal") }.map { dir + "/" + $0 } }

    @Test("records come back in order after reopening, numbered from 1")
    func replay() throws {
        let tmp = TempDir()
        do {
            let (wal, records, _) = try open(tmp.path)
            #expect(records.isEmpty)
            #expect(try write(wal, (0..<100).map(body)) == Array(1...100))
        }
        let (wal, records, warnings) = try open(tmp.path)
        #expect(warnings.isEmpty)
        #expect(records.map(\.0) == Array(1...100))
        #expect(records.map(\.1) == (0..<100).map(body))
        #expect(wal.nextOp == 101)
    }

    @Test("group commit: many threads, every acknowledged record survives")
    func concurrentWriters() throws {
        let tmp = TempDir()
        do {
            let (wal, _, _) = try open(tmp.path)
            DispatchQueue.concurrentPerform(iterations: 8) { t in
                for i in 0..<50 {
                    let op = try! body(t * 100 + i).withUnsafeBytes { try wal.append($0) }
                    try! wal.sync(upTo: op)
                }
            }
        }
        let (_, records, _) = try open(tmp.path)
        #expect(records.count == 400)
        #expect(records.map(\.0) == Array(1...400))
    }

    @Test("a truncated tail is cut off with a warning", arguments: [1, 5, 17, 30])
    func truncatedTail(cut: Int) throws {
        let tmp = TempDir()
        do { _ = try write(try open(tmp.path).0, (0..<10).map(body)) }
        let file = try #require(walFiles(tmp.path).last)
        let size = try #require(FileIO.fileSize(file))
        #expect(truncate(file, off_t(size - cut)) == 0)
        let (wal, records, warnings) = try open(tmp.path)
        #expect(records.map(\.0) == Array(1...9))
        #expect(warnings.count == 1)
        #expect(wal.nextOp == 10)
        // The log keeps working after the repair.
        #expect(try write(wal, [body(99)]) == [10])
    }

    @Test("a flipped byte in the last record drops only that record")
    func flippedByteInLastRecord() throws {
        let tmp = TempDir()
        do { _ = try write(try open(tmp.path).0, (0..<10).map(body)) }
        let file = try #require(walFiles(tmp.path).last)
        var bytes = try FileIO.readAll(file)
        bytes[bytes.count - 3] ^= 0x40
        try FileIO.writeAtomically(file, bytes)
        let (_, records, warnings) = try open(tmp.path)
        #expect(records.map(\.0) == Array(1...9))
        #expect(warnings.count == 1)
    }

    @Test("garbage appended after the last record is removed")
    func garbageAppended() throws {
        let tmp = TempDir()
        do { _ = try write(try open(tmp.path).0, (0..<10).map(body)) }
        let file = try #require(walFiles(tmp.path).last)
        var bytes = try FileIO.readAll(file)
        var rng = SplitMix64(seed: 9)
        bytes += (0..<777).map { _ in UInt8.random(in: 0...255, using: &rng) }
        try FileIO.writeAtomically(file, bytes)
        let (_, records, warnings) = try open(tmp.path)
        #expect(records.count == 10)
        #expect(warnings.count == 1)
        #expect(try FileIO.readAll(file).count == bytes.count - 777)
    }

    @Test("damage in the middle is refused, never skipped")
    func middleCorruption() throws {
        let tmp = TempDir()
        do { _ = try write(try open(tmp.path).0, (0..<10).map(body)) }
        let file = try #require(walFiles(tmp.path).last)
        var bytes = try FileIO.readAll(file)
        bytes[WAL.headerSize + 20] ^= 0x01  // inside record 1's body
        try FileIO.writeAtomically(file, bytes)
        #expect(throws: VQError.self) { _ = try open(tmp.path) }
    }

    @Test("a deleted newest WAL file is refused, naming what is lost, unless the operator accepts the gap")
    func missingNewestFile() throws {
        let tmp = TempDir()
        do {
            let (wal, _, _) = try open(tmp.path, fileLimit: 300)
            for i in 0..<40 { _ = try write(wal, [body(i)]) }
        }
        let files = walFiles(tmp.path).sorted()
        #expect(files.count >= 2)
        try FileManager.default.removeItem(atPath: files.last!)
        do {
            _ = try open(tmp.path, fileLimit: 300)
            Issue.record("a WAL missing its newest file opened")
        } catch let e as VQError {
            #expect(e.kind == .corrupt && e.message.contains("missing its newest file") && e.message.contains("are lost"), "\(e.message)")
        }
        let (wal, records, warnings) = try open(tmp.path, fileLimit: 300, acceptGap: true)
        #expect(warnings.contains { $0.contains("opened anyway") }, "\(warnings)")
        #expect(!records.isEmpty && records.map(\.0) == Array(1...UInt64(records.count)))
        #expect(wal.nextOp == UInt64(records.count) + 1)
        // Every file gone: refused too.
        for f in walFiles(tmp.path) { try FileManager.default.removeItem(atPath: f) }
        #expect(throws: VQError.self) { try open(tmp.path, fileLimit: 300) }
    }

    @Test("rotation makes several files; flushed ones are removed")
    func rotationAndRemoval() throws {
        let tmp = TempDir()
        let big = [UInt8](repeating: 7, count: 4000)
        let (wal, _, _) = try open(tmp.path, fileLimit: 16_000)
        for _ in 0..<20 { _ = try write(wal, [big]) }
        #expect(walFiles(tmp.path).count > 2)
        wal.removeFlushed(upTo: 10)
        let (_, records, _) = try open(tmp.path, from: 11)
        #expect(records.first?.0 == 11)
        #expect(records.last?.0 == 20)
        wal.removeFlushed(upTo: 20)
        #expect(walFiles(tmp.path).count == 1)
        #expect(FileIO.fileSize(walFiles(tmp.path)[0]) == WAL.headerSize)
    }

    @Test("numbering continues after the manifest's flushed op when the log is empty")
    func continuesAfterFlushedOp() throws {
        let tmp = TempDir()
        let (wal, _, _) = try open(tmp.path, from: 501)
        #expect(try write(wal, [body(1)]) == [501])
    }

    @Test("a log that starts after the flushed op is refused as a gap")
    func gap() throws {
        let tmp = TempDir()
        do { _ = try write(try open(tmp.path, from: 50).0, [body(1)]) }
        #expect(throws: VQError.self) { _ = try open(tmp.path, from: 10) }
    }
}

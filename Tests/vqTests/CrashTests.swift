import Foundation
import Testing

/// SIGKILL in the middle of upserting, many times: acknowledged data is never lost,
/// the directory always opens, and no batch is half-applied.
@Suite struct CrashTests {
    @Test("killed upserts never lose acknowledged batches or apply half a batch")
    func killLoop() throws {
        let s = Scratch()
        let dim = 8
        let batch = 50
        let perRun = 2000
        #expect(try vq(["create-collection", "k", "--dim", "\(dim)", "--data-dir", s.data]).status == 0)
        var rng = Rng(state: 2024)
        var acknowledged = 0  // points from runs that exited 0
        var previousTotal = 0
        for run in 0..<12 {
            let first = run * perRun
            let vectors = (0..<perRun).map { _ in rng.vector(dim) }
            let path = s.path + "/run\(run).jsonl"
            try writeFile(path, jsonl(vectors, firstID: first))
            // Kill at a seeded moment from "at once" to "probably finished".
            let exitedCleanly = try runKilled(["upsert", "k", path, "--batch-size", "\(batch)", "--data-dir", s.data, "-q"],
                                              afterMicroseconds: UInt32(rng.next() % 250_000))
            let total = try pointCount("k", dataDir: s.data)
            #expect(total >= 0, "run \(run): the directory must always open")
            let added = total - previousTotal
            #expect(added >= 0, "run \(run): points were lost")
            #expect(added % batch == 0, "run \(run): \(added) points is not a whole number of batches")
            if exitedCleanly {
                acknowledged += perRun
                #expect(added == perRun, "run \(run) exited 0 but only \(added) of \(perRun) points are there")
            }
            #expect(total >= acknowledged)
            previousTotal = total
        }
        // Every point that is there is searchable and whole.
        let search = try vq(["search", "k", "--vector", "[1,0,0,0,0,0,0,0]", "-k", "5", "--data-dir", s.data])
        #expect(search.status == 0)
    }

}

@Suite struct OptimizeCrashTests {
    @Test("vq optimize killed at random moments loses nothing; a later run completes")
    func killDuringOptimize() throws {
        let s = Scratch()
        let dim = 8
        #expect(try vq(["create-collection", "o", "--dim", "\(dim)", "--indexing-threshold", "0", "--m", "8", "--ef-construct", "32",
                        "--data-dir", s.data]).status == 0)
        var rng = Rng(state: 99)
        let vectors = (0..<3000).map { _ in rng.vector(dim) }
        try writeFile(s.path + "/p.jsonl", jsonl(vectors))
        #expect(try vq(["upsert", "o", s.path + "/p.jsonl", "--no-optimize", "--data-dir", s.data]).status == 0)
        func points() throws -> Int { try pointCount("o", dataDir: s.data) }
        for _ in 0..<8 {
            _ = try runKilled(["optimize", "o", "--data-dir", s.data, "-q"], afterMicroseconds: UInt32(rng.next() % 400_000))
            #expect(try points() == 3000)
        }
        let done = try vq(["optimize", "o", "--data-dir", s.data])
        #expect(done.status == 0, "\(done.stderr)")
        #expect(try points() == 3000)
        let q = "[" + vectors[17].map { "\($0)" }.joined(separator: ",") + "]"
        let hit = try vq(["search", "o", "--vector", q, "-k", "1", "--data-dir", s.data])
        #expect(try resultIDs(hit.stdout) == [17])
    }
}

/// Runs vq with `args`, sends SIGKILL after `afterMicroseconds`, and says whether it had already exited 0.
func runKilled(_ args: [String], afterMicroseconds: UInt32) throws -> Bool {
    let p = Process()
    p.executableURL = vqBinary
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    usleep(afterMicroseconds)
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    return p.terminationReason == .exit && p.terminationStatus == 0
}

/// The point count `vq info` reports, or -1 when the directory does not open.
func pointCount(_ collection: String, dataDir: String) throws -> Int {
    let info = try vq(["info", collection, "--data-dir", dataDir])
    #expect(info.status == 0, "the directory must always open: \(info.stderr)")
    let obj = try? JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any]
    return (obj?["points"] as? NSNumber)?.intValue ?? -1
}

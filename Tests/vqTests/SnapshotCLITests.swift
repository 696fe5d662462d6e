#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VQEngine

/// `vq snapshot`: README's nightly backup through a server and its restore into a fresh data
/// directory, step by step; full snapshots embedded; usage mistakes.
@Suite struct SnapshotCLITests {
    @Test("README's backup and restore: nightly snapshots through a server, kept to N, restored into a fresh directory and served")
    func backupAndRestore() throws {
        let scratch = Scratch()
        let data = ["--data-dir", scratch.data]
        var rng = Rng(state: 5)
        try writeFile(scratch.path + "/p.jsonl", jsonl((0..<300).map { _ in rng.vector(4) }) { #"{"i":\#($0),"city":"c\#($0 % 7)"}"# })
        #expect(try vq(["create-collection", "docs", "--dim", "4", "--shards", "2"] + data).status == 0)
        #expect(try vq(["upsert", "docs", scratch.path + "/p.jsonl", "-q"] + data).status == 0)
        let backups = scratch.path + "/backup"
        try FileManager.default.createDirectory(atPath: backups, withIntermediateDirectories: true)

        let server = try ServerProcess(scratch: scratch)
        let url = ["--url", server.url]
        // Three nights, each keeping the newest two on the server.
        var last = JSON.null
        for night in 1...3 {
            let r = try vq(["snapshot", "create", "docs", "--output", "\(backups)/docs-\(night).snapshot", "--keep", "2"] + url)
            #expect(r.status == 0, "\(r.stderr)")
            last = try JSONParser.parse(Array(r.stdout.utf8))
            #expect(last["name"]?.stringValue?.hasPrefix("docs-") == true && last["checksum"]?.stringValue?.count == 64)
        }
        let listed = try vq(["snapshot", "list", "docs"] + url)
        #expect(listed.stdout.split(separator: "\n").count == 2 && listed.stdout.contains(last["name"]!.stringValue!), "\(listed.stdout)")
        let backup = "\(backups)/docs-3.snapshot"
        let sha = try #require(last["checksum"]?.stringValue)
        #expect(try SHA256.hex(file: backup) == sha, "the copy is the snapshot the server listed")
        let before = try vq(["export", "docs", "--with-vectors", "-q"] + url)
        #expect(before.status == 0 && before.stdout.split(separator: "\n").count == 300)
        // Written after the backup: not in the restore.
        try writeFile(scratch.path + "/late.jsonl", jsonl([[1, 0, 0, 0]], firstID: 1000))
        #expect(try vq(["upsert", "docs", scratch.path + "/late.jsonl", "-q"] + url).status == 0)
        #expect(server.stop().0 == 0)

        // Restore into a fresh data directory, checked against the sum, then serve it.
        let fresh = Scratch()
        let restored = try vq(["snapshot", "restore", "docs", backup, "--checksum", sha, "--data-dir", fresh.data])
        #expect(restored.status == 0 && restored.stdout.hasPrefix(#"{"collection":"docs","restored":true"#), "\(restored.stderr)")
        let served = try ServerProcess(scratch: fresh)
        let url2 = ["--url", served.url]
        let after = try vq(["export", "docs", "--with-vectors", "-q"] + url2)
        #expect(after.stdout == before.stdout, "the same points, vectors and payloads")
        #expect(try vq(["search", "docs", "--vector", "[1,0,0,0]", "-k", "3"] + url2).status == 0)
        // Through the server: an upload, under another name.
        let uploaded = try vq(["snapshot", "restore", "copy", backup] + url2)
        #expect(uploaded.status == 0, "\(uploaded.stderr)")
        #expect(try vq(["count", "copy"] + url2).stdout == #"{"collection":"copy","count":300}"# + "\n")
        // From an http:// location (here the server's own download route), written to a file as it arrives.
        let made = try request(served.port, "POST", "/collections/docs/snapshots?wait=true")
        let name = try #require(JSONParser.parse(Array(made.body.utf8))["result"]?["name"]?.stringValue, "\(made.body)")
        let source = "http://127.0.0.1:\(served.port)/collections/docs/snapshots/"
        let fetched = try request(served.port, "PUT", "/collections/fetched/snapshots/recover", #"{"location":"\#(source)\#(name)"}"#)
        #expect(fetched.status == 200, "\(fetched.body)")
        #expect(try vq(["count", "fetched"] + url2).stdout == #"{"collection":"fetched","count":300}"# + "\n")
        let missing = try request(served.port, "PUT", "/collections/fetched/snapshots/recover", #"{"location":"\#(source)nope.snapshot"}"#)
        #expect(missing.status == 400 && missing.body.contains("answered HTTP 404"), "\(missing.body)")
        #expect(!FileIO.list(fresh.data + "/snapshots").contains { $0.hasPrefix(".download-") }, "no download is left behind")
        #expect(try request(served.port, "DELETE", "/collections/fetched").status == 200)
        // Over a collection the server's cluster did not make (restored embedded above): replaced too.
        #expect(try vq(["upsert", "docs", scratch.path + "/late.jsonl", "-q"] + url2).status == 0)
        let over = try vq(["snapshot", "restore", "docs", backup] + url2)
        #expect(over.status == 0, "\(over.stderr)")
        #expect(try vq(["count", "docs"] + url2).stdout == #"{"collection":"docs","count":300}"# + "\n")
        let wrongSum = try vq(["snapshot", "restore", "copy", backup, "--checksum", String(repeating: "a", count: 64)] + url2)
        #expect(wrongSum.status == 2 && wrongSum.stderr.contains("SHA-256"), "\(wrongSum.stderr)")
        #expect(served.stop().0 == 0)

        // A full snapshot, embedded: every collection into another fresh directory.
        let full = try vq(["snapshot", "create", "--full", "--output", scratch.path + "/all.snapshot", "--data-dir", fresh.data])
        #expect(full.status == 0, "\(full.stderr)")
        let third = Scratch()
        let all = try vq(["snapshot", "restore", "--full", scratch.path + "/all.snapshot", "--data-dir", third.data])
        #expect(all.status == 0 && all.stdout.split(separator: "\n").count == 2, "\(all.stdout) \(all.stderr)")
        #expect(try vq(["collections", "--data-dir", third.data]).stdout.contains("copy"))
        #expect(try vq(["export", "docs", "--with-vectors", "-q", "--data-dir", third.data]).stdout == before.stdout)
    }

    @Test("vq snapshot usage mistakes exit 2 and say what was expected")
    func usage() throws {
        let scratch = Scratch()
        let data = ["--data-dir", scratch.data]
        #expect(try vq(["create-collection", "d", "--dim", "2"] + data).status == 0)
        try writeFile(scratch.path + "/junk.snapshot", String(repeating: "x", count: 3000))
        for (argv, fragment) in [(["snapshot"], "needs an ACTION"), (["snapshot", "take", "d"], "unknown snapshot action"),
                                 (["snapshot", "create"], "takes NAME"), (["snapshot", "create", "d", "--checksum", "ab"], "--checksum"),
                                 (["snapshot", "restore", "d", scratch.path + "/none"], "does not exist"),
                                 (["snapshot", "restore", "d", scratch.path + "/junk.snapshot", "--checksum", "xyz"], "64 hex digits"),
                                 (["snapshot", "restore", "d", scratch.path + "/junk.snapshot"], "wrong checksum"),
                                 (["snapshot", "create", "d", "--keep", "0"], "--keep"),
                                 (["snapshot", "download", "d"], "takes NAME SNAPSHOT")] {
            let r = try vq(argv + data)
            #expect(r.status == 2 && r.stderr.contains(fragment), "\(argv): \(r.status) \(r.stderr)")
        }
        let missing = try vq(["snapshot", "create", "nope"] + data)
        #expect(missing.status == 1 && missing.stderr.contains("does not exist"))
        #expect(try vq(["count", "d"] + data).stdout == #"{"collection":"d","count":0}"# + "\n", "a refused restore changed nothing")
    }
}

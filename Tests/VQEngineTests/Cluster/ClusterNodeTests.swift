import Foundation
import Testing
@testable import VQEngine

@Suite struct ClusterNodeTests {
    /// A one-peer cluster in `tmp`, started (it elects itself), and its directory's lock.
    static func founder(_ tmp: TempDir) throws -> (ClusterNode, DirectoryLock) {
        let (directory, lock) = try Engine.lock(path: tmp.path, address: nil)
        let node = try ClusterNode(directory: directory, options: ClusterOptions(uri: "http://127.0.0.1:9", secret: "a-test-secret-of-some-length"),
                                   joining: false, log: { _, _ in })
        node.start()
        return (node, lock)
    }

    /// A proposal creating collection "c" (`dim`-d, one shard on `node`), under proposal id `pid` when given.
    static func create(_ node: ClusterNode, dim: Int = 2, pid: UInt64? = nil) -> JSON {
        .object([("op", .string("create_collection")), ("name", .string("c")), ("config", CollectionConfig(dim: dim).json),
                 ("shards", .array([.array([.uint(node.id)])]))] + (pid.map { [("pid", .uint($0))] } ?? []))
    }

    @Test("a committed change the state machine refuses is reported to its proposer, not answered as done")
    func refusedEntriesReported() throws {
        let tmp = TempDir()
        let (node, lock) = try Self.founder(tmp)
        defer { withExtendedLifetime(lock) { node.stop() } }
        func create(_ dim: Int) -> JSON { Self.create(node, dim: dim) }
        try node.propose(create(2), waitEffects: false)
        // As when two proposals race: each is checked against a state before the other commits,
        // and the second to commit is refused when applied. Its proposer must hear so.
        do {
            try node.propose(create(3), waitEffects: false, check: false)
            Issue.record("a create the state machine refused was answered as done")
        } catch let e as VQError {
            #expect(e.kind == .conflict && e.message.contains("exists"), "\(e.message)")
        }
        #expect(node.collectionMeta("c")?.config.vectors.dims == [2])
    }

    @Test("a proposal committed again under its id (its proposer tried again) is applied once and answered as done")
    func proposalsApplyOnce() throws {
        let tmp = TempDir()
        let (node, lock) = try Self.founder(tmp)
        defer { withExtendedLifetime(lock) { node.stop() } }
        func create(_ pid: UInt64) -> JSON { Self.create(node, pid: pid) }
        try node.propose(create(42), waitEffects: false)
        try node.propose(create(42), waitEffects: false, check: false)
        try node.propose(create(42), waitEffects: false)
        // Another id is another proposal, not a retry: committed, and refused as the state machine applies it.
        do {
            try node.propose(create(43), waitEffects: false, check: false)
            Issue.record("another proposal of the same create was answered as done")
        } catch let e as VQError {
            #expect(e.kind == .conflict, "\(e.message)")
        }

        // The state machine alone, and its snapshot: the ids go with it.
        var state = ClusterState()
        let bytes = Array(JSONWriter.string(create(7)).utf8)
        try state.apply(bytes)
        #expect(try state.apply(bytes) == nil)
        #expect(throws: VQError.self) { try state.apply(Array(JSONWriter.string(create(8)).utf8)) }
        let restored = try ClusterState(json: state.json)
        #expect(restored == state && restored.recentProposals == [7])
        // A snapshot's proposals are a list of ids, at most as many as are kept.
        for bad: JSON in [.string("7"), .array([.string("x")]), .array(Array(repeating: .uint(1), count: ClusterState.proposalsKept + 1))] {
            let fields = try #require(state.json.objectValue)
            let json = JSON.object(fields.filter { $0.0 != "proposals" } + [("proposals", bad)])
            #expect(throws: VQError.self) { try ClusterState(json: json) }
        }
        #expect(try { var r = restored; return try r.apply(bytes) }() == nil)
    }
}

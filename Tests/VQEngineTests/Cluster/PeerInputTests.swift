import Foundation
import Testing
@testable import VQEngine

/// What a peer sends is input: decoders refuse bad bytes before allocating, validation refuses
/// what could not be applied, Raft drops messages no honest peer sends.
@Suite struct PeerInputTests {
    func upsert(dim: Int, _ vectors: [Float], payloads: [[UInt8]?]) -> VQEngine.Operation {
        var batch = PointBatch(dim: dim)
        for i in 0..<payloads.count {
            vectors[(i * dim)..<((i + 1) * dim)].withUnsafeBufferPointer { batch.append(id: .number(UInt64(i + 1)), vector: $0, payload: payloads[i]) }
        }
        return .upsert(batch)
    }

    @Test("a count the bytes cannot hold is refused before anything is reserved, overflow included")
    func hugeCounts() throws {
        var w = ByteWriter()
        w.u8(1); w.u32(UInt32.max); w.u32(4)
        #expect(throws: VQError.self) { try w.bytes.withUnsafeBytes { try VQEngine.Operation.decode($0) } }
        var overflow = ByteWriter()
        overflow.u8(1); overflow.u32(UInt32.max); overflow.u32(UInt32.max)
        #expect(throws: VQError.self) { try overflow.bytes.withUnsafeBytes { try VQEngine.Operation.decode($0) } }
        var keys = ByteWriter()
        keys.u8(4); keys.u32(0); keys.u32(UInt32.max); keys.u32(1); keys.u8(0x61)
        do {
            _ = try keys.bytes.withUnsafeBytes { try VQEngine.Operation.decode($0) }
            Issue.record("2^32-1 payload keys were accepted")
        } catch let e as VQError {
            #expect(e.message.contains("claims"), "\(e.message)")
        }
        var floats: [Float] = []
        var reader = ByteReader(UnsafeRawBufferPointer(start: nil, count: 0))
        #expect(throws: VQError.self) { try reader.floats(Int.max / 2, into: &floats) }
    }

    @Test("a peer's search answer with more hits than the k asked for is refused")
    func tooManyHits() throws {
        let hits = (0..<5).map { ScoredPoint(id: .number(UInt64($0)), version: 1, score: 1, rank: 1, payload: nil) }
        let bytes = ShardWire.encodeHits((hits, 0))
        #expect(try ShardWire.decodeHits(bytes, maxHits: 5).hits.count == 5)
        #expect(throws: VQError.self) { _ = try ShardWire.decodeHits(bytes, maxHits: 4) }
    }

    @Test("records asked for with vectors must carry every vector of the collection, each present or not")
    func recordsCarryEveryVector() throws {
        let two = [PointRecord(id: .number(1), version: 1, vectors: [[1, 0], nil], payload: nil)]
        let back = try ShardWire.decodeRecords(ShardWire.encodeRecords(two, withVector: true), dims: [2, 3])
        #expect(back.count == 1 && back[0].vectors[0] == [1, 0] && back[0].vectors[1] == nil)
        // Without vectors where they were asked for (or with too few): refused, not passed on to trap later.
        let none = ShardWire.encodeRecords([PointRecord(id: .number(1), version: 1, vectors: [], payload: nil)], withVector: false)
        #expect(throws: VQError.self) { _ = try ShardWire.decodeRecords(none, dims: [2, 3]) }
        let one = ShardWire.encodeRecords([PointRecord(id: .number(1), version: 1, vectors: [[1, 0]], payload: nil)], withVector: true)
        #expect(throws: VQError.self) { _ = try ShardWire.decodeRecords(one, dims: [2, 3]) }
        #expect(try ShardWire.decodeRecords(none, dims: []).count == 1)
        // Sparse vectors ride along; a record with the wrong number of them is refused.
        let sparse = [PointRecord(id: .number(1), version: 1, vectors: [[1, 0]], sparse: [try SparseVector(indices: [4, 1], values: [1, 2])], payload: nil)]
        let withSparse = ShardWire.encodeRecords(sparse, withVector: true)
        #expect(try ShardWire.decodeRecords(withSparse, dims: [2], sparse: 1).first?.sparse.first??.indices == [1, 4])
        #expect(throws: VQError.self) { _ = try ShardWire.decodeRecords(withSparse, dims: [2], sparse: 2) }
        // A sparse search names a sparse vector the shard has, with a well-formed query.
        var search = ShardSearch(k: 3, ef: 3)
        search.sparse = try SparseVector(indices: [7], values: [1])
        let bytes = ShardWire.encodeSearch([], search)
        #expect(try ShardWire.decodeSearch(bytes, dims: [2], sparse: 1, maxResults: 10).1.sparse?.indices == [7])
        #expect(throws: VQError.self) { _ = try ShardWire.decodeSearch(bytes, dims: [2], sparse: 0, maxResults: 10) }
        #expect(throws: VQError.self) { _ = try ShardWire.decodeSparseCounts(ShardWire.encodeSparseCounts((points: 2, df: [3])), terms: 1) }
        // Multi-vectors: whole vectors of the shard's size, in records and in searches.
        let multi = [PointRecord(id: .number(1), version: 1, vectors: [[1, 0]], sparse: [nil], multi: [[1, 2, 3, 4, 5, 6]], payload: nil)]
        let withMulti = ShardWire.encodeRecords(multi, withVector: true)
        #expect(try ShardWire.decodeRecords(withMulti, dims: [2], sparse: 1, multiDims: [3]).first?.multi.first ?? nil == [1, 2, 3, 4, 5, 6])
        #expect(throws: VQError.self) { _ = try ShardWire.decodeRecords(withMulti, dims: [2], sparse: 1, multiDims: [4]) }
        var multiSearch = ShardSearch(k: 3, ef: 3)
        multiSearch.multi = [1, 0, 0, 0, 1, 0]
        let multiBytes = ShardWire.encodeSearch([], multiSearch)
        #expect(try ShardWire.decodeSearch(multiBytes, dims: [2], multiDims: [3], maxResults: 10).1.multi?.count == 6)
        #expect(throws: VQError.self) { _ = try ShardWire.decodeSearch(multiBytes, dims: [2], multiDims: [4], maxResults: 10) }
        #expect(throws: VQError.self) { _ = try ShardWire.decodeSearch(multiBytes, dims: [2], maxResults: 10) }
        // Oversampling multiplies the re-scoring work: bounded like k.
        var over = ShardSearch(k: 8, ef: 8)
        over.quantization = QuantizedSearch(oversampling: 2)
        #expect(try ShardWire.decodeSearch(ShardWire.encodeSearch([1, 0], over), dims: [2], maxResults: 16).1.quantization?.oversampling == 2)
        #expect(throws: VQError.self) { _ = try ShardWire.decodeSearch(ShardWire.encodeSearch([1, 0], over), dims: [2], maxResults: 15) }
        // A sparse vector past 65,536 entries is refused in searches and in upserts alike.
        var big = ShardSearch(k: 1, ef: 1)
        big.sparse = try SparseVector(indices: (0..<65_537).map(UInt32.init), values: Array(repeating: 1, count: 65_537))
        #expect(throws: VQError.self) { _ = try ShardWire.decodeSearch(ShardWire.encodeSearch([], big), dims: [2], sparse: 1, maxResults: 10) }
        var batch = PointBatch(dims: [], sparse: 1)
        batch.append(id: .number(1), vectors: [], sparse: [big.sparse], payload: nil)
        #expect(throws: VQError.self) { _ = try VQEngine.Operation.upsert(batch).encode().withUnsafeBytes { try VQEngine.Operation.decode($0) } }
    }

    @Test("validation refuses wrong dimensions, non-finite floats and payloads that are not JSON objects")
    func validation() throws {
        try upsert(dim: 2, [1, 2, 3, 4], payloads: [Array(#"{"a":1}"#.utf8), nil]).validate(dim: 2)
        #expect(throws: VQError.self) { try upsert(dim: 1, [1], payloads: [nil]).validate(dim: 2) }
        #expect(throws: VQError.self) { try upsert(dim: 2, [1, .nan], payloads: [nil]).validate(dim: 2) }
        #expect(throws: VQError.self) { try upsert(dim: 2, [1, .infinity], payloads: [nil]).validate(dim: 2) }
        #expect(throws: VQError.self) { try upsert(dim: 2, [1, 2], payloads: [Array("[1]".utf8)]).validate(dim: 2) }
        #expect(throws: VQError.self) { try upsert(dim: 2, [1, 2], payloads: [[0xFF, 0x00]]).validate(dim: 2) }
        #expect(throws: VQError.self) { try VQEngine.Operation.setPayload(ids: [.number(1)], payload: Array("1".utf8), overwrite: false).validate(dim: 2) }
        // The wire form: a validated operation decodes; a bad one is a 400-kind error naming it.
        let good = ShardWire.encodeOperation(upsert(dim: 2, [1, 2], payloads: [nil]).encode(), .durable)
        #expect(try ShardWire.decodeOperation(good, dim: 2).operation.encode() == upsert(dim: 2, [1, 2], payloads: [nil]).encode())
        do {
            _ = try ShardWire.decodeOperation(good, dim: 3)
            Issue.record("a 2-d upsert was accepted by a 3-d shard")
        } catch let e as VQError {
            #expect(e.kind == .invalidInput && e.message.contains("[2] dimensions"), "\(e.message)")
        }
    }

    @Test("seeded random and mutated operations never trap the decoder", arguments: [1, 2, 3])
    func randomOperations(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let vectors: [Float] = (0..<12).map { Float($0) }
        let first: [UInt8] = upsert(dim: 4, vectors, payloads: [Array(#"{"k":"v"}"#.utf8), nil, nil]).encode()
        let seeds: [[UInt8]] = [first,
                     VQEngine.Operation.delete([.number(7), .uuid(1, 2)]).encode(),
                     VQEngine.Operation.setPayload(ids: [.number(1)], payload: Array(#"{"x":[1,2]}"#.utf8), overwrite: true).encode(),
                     VQEngine.Operation.deletePayloadKeys(ids: [.number(1)], keys: ["a", "b"]).encode()]
        for i in 0..<3000 {
            var bytes = seeds[i % seeds.count]
            for _ in 0..<(1 + rng.next() % 6) {
                let at = Int(rng.next() % UInt64(bytes.count))
                bytes[at] = UInt8(truncatingIfNeeded: rng.next())
            }
            if rng.next() % 4 == 0 { bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1)))) }
            if let op = try? bytes.withUnsafeBytes({ try VQEngine.Operation.decode($0) }) { _ = try? op.validate(dim: 4) }
            _ = try? ShardWire.decodeOperation([1] + [UInt8](repeating: 0, count: 16) + bytes, dim: 4)
        }
    }

    /// A leader of voters {1, 2, 3} that has committed its no-op.
    func leader(learners: Set<PeerID> = []) throws -> RaftNode {
        let node = try RaftNode(id: 1, storage: MemoryRaftStorage(), seed: 7, voters: [1, 2, 3])
        // It times out and asks for pre-votes; one grant (and its own) make a majority: it campaigns.
        for _ in 0..<200 where node.role != .candidate {
            try node.tick()
            if node.takeReady().messages.contains(where: { if case .preVote = $0.message { return true } else { return false } }) {
                try node.step(RaftEnvelope(from: 2, to: 1, term: node.term + 1, message: .preVoteResponse(granted: true)))
            }
        }
        try node.step(RaftEnvelope(from: 2, to: 1, term: node.term, message: .vote(granted: true)))
        #expect(node.role == .leader)
        node.learners = learners
        try node.step(RaftEnvelope(from: 2, to: 1, term: node.term, message: .appendResponse(success: true, match: node.lastIndex, hint: 0)))
        _ = node.takeReady()
        return node
    }

    @Test("Raft drops messages no honest peer sends: matches past the log, terms at the top, broken entry runs")
    func malformedRaft() throws {
        let node = try leader()
        let term = node.term, commit = node.commitIndex, last = node.lastIndex
        try node.step(RaftEnvelope(from: 3, to: 1, term: term, message: .appendResponse(success: true, match: UInt64.max, hint: 0)))
        try node.step(RaftEnvelope(from: 3, to: 1, term: term, message: .snapshotResponse(match: UInt64.max)))
        try node.step(RaftEnvelope(from: 3, to: 1, term: UInt64.max, message: .requestVote(lastIndex: UInt64.max, lastTerm: UInt64.max)))
        #expect(node.term == term && node.role == .leader && node.commitIndex == commit && node.lastIndex == last)
        // A peer with no leader to be sticky to drops a term past the bound, and a jump of billions.
        let lone = try RaftNode(id: 5, storage: MemoryRaftStorage(), seed: 4)
        try lone.step(RaftEnvelope(from: 3, to: 5, term: RaftNode.maxTerm + 1, message: .requestVote(lastIndex: 9, lastTerm: 1)))
        try lone.step(RaftEnvelope(from: 3, to: 5, term: 1 << 40, message: .requestVote(lastIndex: 9, lastTerm: 1)))
        #expect(lone.term == 0 && lone.takeReady().messages.isEmpty)
        try lone.step(RaftEnvelope(from: 3, to: 5, term: 7, message: .requestVote(lastIndex: 9, lastTerm: 1)))
        #expect(lone.term == 7, "an ordinary higher term is taken")
        let follower = try RaftNode(id: 2, storage: MemoryRaftStorage(), seed: 3)
        let gap = [RaftEntry(term: 1, index: 1), RaftEntry(term: 1, index: 5)]
        try follower.step(RaftEnvelope(from: 1, to: 2, term: 1, message: .append(prevIndex: 0, prevTerm: 0, entries: gap, commit: 5)))
        try follower.step(RaftEnvelope(from: 1, to: 2, term: 1, message: .append(prevIndex: UInt64.max, prevTerm: 0, entries: [], commit: 0)))
        #expect(follower.lastIndex == 0 && follower.commitIndex == 0)
    }

    @Test("sequence numbers from a peer are bounded by one limit in every answer and message; unknown batch flags are refused")
    func sequenceBounds() throws {
        let huge = ShardWire.maxSeq
        #expect(throws: VQError.self) { try ShardWire.decodePosition(ShardWire.encodePosition((huge, 1))) }
        #expect(try ShardWire.decodePosition(ShardWire.encodePosition((huge - 1, 1))).seq == huge - 1)
        #expect(throws: VQError.self) { try ShardWire.decodeTransfer(ShardWire.encodeTransfer(to: 2, after: (huge, 1))) }
        let vectors = CollectionConfig(dim: 4).vectors
        #expect(throws: VQError.self) {
            try ShardWire.decodeReceive(ShardWire.encodeReceive(ShardWire.ReceiveBatch(clear: false, last: (huge, 1), records: [])), vectors: vectors)
        }
        var flagged = ShardWire.encodeReceive(ShardWire.ReceiveBatch(clear: true, last: nil, records: []))
        flagged[0] |= 8
        #expect(throws: VQError.self) { try ShardWire.decodeReceive(flagged, vectors: vectors) }
        // A valid operation, so only its sequence number can be what is refused.
        let delete = Operation.delete([.number(1)]).encode()
        #expect(try ShardWire.decodeOperation(ShardWire.encodeOperation(delete, .durable, seq: huge - 1, epoch: 1), vectors: vectors).seq == huge - 1)
        do {
            _ = try ShardWire.decodeOperation(ShardWire.encodeOperation(delete, .durable, seq: huge, epoch: 1), vectors: vectors)
            Issue.record("an operation numbered past the bound was taken")
        } catch let e as VQError {
            #expect(e.kind == .invalidInput && e.message.contains("out of range"), "\(e.message)")
        }
    }

    @Test("a learner receives the log but does not count toward commits; a voter does")
    func learners() throws {
        let node = try leader(learners: [4])
        _ = node.takeReady()
        guard let entry = try node.propose(Array("x".utf8)) else { Issue.record("not leader"); return }
        #expect(node.takeReady().messages.contains { $0.to == 4 }, "the learner gets the entry")
        try node.step(RaftEnvelope(from: 4, to: 1, term: node.term, message: .appendResponse(success: true, match: entry.index, hint: 0)))
        #expect(node.commitIndex < entry.index, "a learner's ack alone committed the entry")
        #expect(node.matchIndex(of: 4) == entry.index)
        try node.step(RaftEnvelope(from: 2, to: 1, term: node.term, message: .appendResponse(success: true, match: entry.index, hint: 0)))
        #expect(node.commitIndex == entry.index)
        // A learner never campaigns: neither before it knows the configuration, nor after it holds
        // a log whose voters do not include it, however long its leader is silent.
        let joiner = try RaftNode(id: 4, storage: MemoryRaftStorage(), seed: 9)
        for _ in 0..<500 { try joiner.tick() }
        #expect(joiner.role == .follower && joiner.takeReady().messages.isEmpty)
        let config = RaftEntry(term: 1, index: 1, voters: [1, 2, 3])
        try joiner.step(RaftEnvelope(from: 1, to: 4, term: 1, message: .append(prevIndex: 0, prevTerm: 0, entries: [config], commit: 1)))
        #expect(joiner.voters == [1, 2, 3] && joiner.lastIndex == 1)
        _ = joiner.takeReady()
        for _ in 0..<500 { try joiner.tick() }
        #expect(joiner.role == .follower && joiner.takeReady().messages.isEmpty, "a learner asked for votes")
    }

    @Test("the metadata state machine refuses invalid names, unknown or removed peers and bad addresses")
    func stateMachine() throws {
        var state = ClusterState()
        func command(_ text: String) -> [UInt8] { Array(text.utf8) }
        try state.apply(command(#"{"op":"add_peer","id":1,"uri":"http://127.0.0.1:6333"}"#))
        try state.apply(command(#"{"op":"add_peer","id":2,"uri":"http://127.0.0.1:6334"}"#))
        for bad in [#"{"op":"add_peer","id":3,"uri":"ftp://x:1"}"#, #"{"op":"add_peer","id":3,"uri":"http://x"}"#,
                    #"{"op":"add_peer","id":0,"uri":"http://x:1"}"#] {
            #expect(throws: VQError.self, "\(bad)") { try state.apply(command(bad)) }
        }
        let config = JSONWriter.string(CollectionConfig(dim: 4).json)
        for name in ["bad name", "../x", "", String(repeating: "n", count: 300)] {
            let json = JSONWriter.string(.object([("op", .string("create_collection")), ("name", .string(name)),
                                                  ("config", CollectionConfig(dim: 4).json), ("shards", .array([.array([.uint(1)])]))]))
            #expect(throws: VQError.self, "\(name)") { try state.apply(Array(json.utf8)) }
        }
        #expect(throws: VQError.self) {
            try state.apply(command(#"{"op":"create_collection","name":"c","config":\#(config),"shards":[[1,1]]}"#))
        }
        #expect(throws: Never.self) {
            try state.apply(command(#"{"op":"create_collection","name":"c","config":\#(config),"shards":[[1,2]]}"#))
        }
        // A "primary" or "pid" that is not an unsigned integer is refused, never read as absent.
        for bad in [#"{"op":"set_replica","name":"c","shard":0,"peer":1,"state":"Dead","primary":"2"}"#,
                    #"{"op":"set_replica","name":"c","shard":0,"peer":1,"state":"Dead","primary":-1}"#,
                    #"{"op":"set_replica","name":"c","shard":0,"peer":1,"state":"Dead","pid":"x"}"#] {
            #expect(throws: VQError.self, "\(bad)") { try state.apply(command(bad)) }
        }
        #expect(state.collections["c"]?.shards[0].map(\.state) == [.active, .active])
        // A mark made as a shard's primary holds only while that peer is the primary.
        #expect(throws: VQError.self) {
            try state.apply(command(#"{"op":"set_replica","name":"c","shard":0,"peer":1,"state":"Dead","primary":2}"#))
        }
        #expect(state.collections["c"]?.shards[0].map(\.state) == [.active, .active])
        // Removing a peer drops its replicas, but never a shard's last active one; it cannot return.
        try state.apply(command(#"{"op":"set_replica","name":"c","shard":0,"peer":1,"state":"Dead"}"#))
        #expect(throws: VQError.self) {
            try state.apply(command(#"{"op":"set_replica","name":"c","shard":0,"peer":1,"state":"Active","primary":1}"#))
        }
        try state.apply(command(#"{"op":"set_replica","name":"c","shard":0,"peer":1,"state":"Dead","primary":2}"#))
        #expect(throws: VQError.self) { try state.apply(command(#"{"op":"remove_peer","id":2}"#)) }
        try state.apply(command(#"{"op":"remove_peer","id":1}"#))
        #expect(state.collections["c"]?.shards[0].map(\.peer) == [2])
        #expect(state.removed == [1] && state.peers[1] == nil)
        #expect(throws: VQError.self) { try state.apply(command(#"{"op":"add_peer","id":1,"uri":"http://127.0.0.1:6333"}"#)) }
        #expect(try ClusterState(json: state.json) == state)
    }
}

@Suite struct OperationSizeTests {
    @Test("encodedSize is exactly the encoding's length, for every kind")
    func exactSize() {
        var batch = PointBatch(dim: 3)
        [Float(1), 2, 3].withUnsafeBufferPointer { batch.append(id: .number(1), vector: $0, payload: Array(#"{"a":1}"#.utf8)) }
        [Float(4), 5, 6].withUnsafeBufferPointer { batch.append(id: .uuid(7, 8), vector: $0, payload: nil) }
        let ops: [VQEngine.Operation] = [.upsert(batch), .delete([.number(1), .number(2)]), .clearPayload([.number(3)]),
                                        .setPayload(ids: [.number(1)], payload: Array(#"{"b":[1]}"#.utf8), overwrite: true),
                                        .deletePayloadKeys(ids: [.number(1)], keys: ["a", "long key"])]
        for op in ops { #expect(op.encode().count == op.encodedSize, "\(op)") }
    }
}

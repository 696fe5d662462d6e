// Binary forms of Raft's entries, snapshots and messages: on the wire (`POST /internal/raft`)
// and on disk (`raft/log`, `raft/snapshot`). Little-endian, length-prefixed; decoding checks
// every length and tag and throws `.corrupt` on anything else (peers' bytes are input too).

package enum RaftCodec {
    static func write(_ e: RaftEntry, _ w: inout ByteWriter) {
        w.u64(e.term)
        w.u64(e.index)
        writeVoters(e.voters, &w)
        w.blob(e.data)
    }

    static func readEntry(_ r: inout ByteReader) throws -> RaftEntry {
        RaftEntry(term: try r.u64(), index: try r.u64(), voters: try readVoters(&r), data: try r.blob())
    }

    private static func writeVoters(_ voters: [PeerID]?, _ w: inout ByteWriter) {
        guard let voters else { w.u32(UInt32.max); return }
        w.u32(UInt32(voters.count))
        for v in voters { w.u64(v) }
    }

    private static func readVoters(_ r: inout ByteReader) throws -> [PeerID]? {
        let n = try r.u32()
        if n == UInt32.max { return nil }
        guard n <= 1024 else { throw VQError(.corrupt, "raft entry lists \(n) voters; at most 1024 expected") }
        return try (0..<n).map { _ in try r.u64() }
    }

    static func write(_ s: RaftSnapshot, _ w: inout ByteWriter) {
        w.u64(s.index)
        w.u64(s.term)
        writeVoters(s.voters, &w)
        w.blob(s.data)
    }

    static func readSnapshot(_ r: inout ByteReader) throws -> RaftSnapshot {
        let index = try r.u64(), term = try r.u64()
        guard let voters = try readVoters(&r) else { throw VQError(.corrupt, "raft snapshot has no voters") }
        return RaftSnapshot(index: index, term: term, voters: voters, data: try r.blob())
    }

    /// A batch of messages, as one request body.
    package static func encode(_ messages: [RaftEnvelope]) -> [UInt8] {
        var w = ByteWriter(capacity: 64 * messages.count)
        w.u32(UInt32(messages.count))
        for m in messages {
            w.u64(m.from)
            w.u64(m.to)
            w.u64(m.term)
            switch m.message {
            case let .requestVote(lastIndex, lastTerm):
                w.u8(1); w.u64(lastIndex); w.u64(lastTerm)
            case let .vote(granted):
                w.u8(2); w.u8(granted ? 1 : 0)
            case let .append(prevIndex, prevTerm, entries, commit):
                w.u8(3); w.u64(prevIndex); w.u64(prevTerm); w.u64(commit)
                w.u32(UInt32(entries.count))
                for e in entries { write(e, &w) }
            case let .appendResponse(success, match, hint):
                w.u8(4); w.u8(success ? 1 : 0); w.u64(match); w.u64(hint)
            case let .installSnapshot(s):
                w.u8(5); write(s, &w)
            case let .snapshotResponse(match):
                w.u8(6); w.u64(match)
            case let .preVote(lastIndex, lastTerm):
                w.u8(7); w.u64(lastIndex); w.u64(lastTerm)
            case let .preVoteResponse(granted):
                w.u8(8); w.u8(granted ? 1 : 0)
            }
        }
        return w.bytes
    }

    /// - Throws: `.corrupt` naming what was wrong.
    package static func decode(_ bytes: [UInt8]) throws -> [RaftEnvelope] {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let count = try r.u32()
            guard count <= 100_000 else { throw VQError(.corrupt, "raft batch claims \(count) messages") }
            var out: [RaftEnvelope] = []
            for _ in 0..<count {
                let from = try r.u64(), to = try r.u64(), term = try r.u64()
                let message: RaftMessage
                switch try r.u8() {
                case 1: message = .requestVote(lastIndex: try r.u64(), lastTerm: try r.u64())
                case 2: message = .vote(granted: try r.u8() == 1)
                case 3:
                    let prevIndex = try r.u64(), prevTerm = try r.u64(), commit = try r.u64()
                    let n = try r.u32()
                    guard n <= 100_000 else { throw VQError(.corrupt, "raft append claims \(n) entries") }
                    let entries = try (0..<n).map { _ in try readEntry(&r) }
                    message = .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit)
                case 4: message = .appendResponse(success: try r.u8() == 1, match: try r.u64(), hint: try r.u64())
                case 5: message = .installSnapshot(try readSnapshot(&r))
                case 6: message = .snapshotResponse(match: try r.u64())
                case 7: message = .preVote(lastIndex: try r.u64(), lastTerm: try r.u64())
                case 8: message = .preVoteResponse(granted: try r.u8() == 1)
                case let tag: throw VQError(.corrupt, "raft message has unknown kind \(tag)")
                }
                out.append(RaftEnvelope(from: from, to: to, term: term, message: message))
            }
            guard r.remaining == 0 else { throw VQError(.corrupt, "raft batch has \(r.remaining) bytes after its messages") }
            return out
        }
    }
}

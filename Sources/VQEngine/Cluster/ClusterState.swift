// The cluster's metadata: what Raft agrees on. Every peer applies the same commands in the
// same order, so `apply` must be deterministic and must never fail differently on different
// peers: a command it cannot use is recorded as ignored, not thrown.
//
// Commands are JSON objects with an "op":
//   {"op": "add_peer", "id": 7, "uri": "http://127.0.0.1:6334"}   add or re-address a peer
//   {"op": "remove_peer", "id": 7}

package struct ClusterState: Sendable, Equatable {
    /// Peers by id: the URI others reach them at.
    package var peers: [PeerID: String] = [:]

    package init() {}

    /// Applies one committed command.
    /// - Returns: a description of why it was ignored, or nil when applied.
    @discardableResult
    package mutating func apply(_ bytes: [UInt8]) -> String? {
        guard let command = try? JSONParser.parse(bytes), let op = command["op"]?.stringValue else {
            return "not a command object"
        }
        switch op {
        case "add_peer":
            guard let id = command["id"]?.uint64Value, let uri = command["uri"]?.stringValue else { return "add_peer needs id and uri" }
            peers[id] = uri
        case "remove_peer":
            guard let id = command["id"]?.uint64Value else { return "remove_peer needs id" }
            peers[id] = nil
        default:
            return "unknown op \(op)"
        }
        return nil
    }

    package var json: JSON {
        .object([("peers", .object(peers.keys.sorted().map { (String($0), .string(peers[$0]!)) }))])
    }

    package init(json: JSON) throws {
        guard case .object(let fields)? = json["peers"] else { throw VQError(.corrupt, "cluster snapshot lacks peers") }
        for (k, v) in fields {
            guard let id = PeerID(k), let uri = v.stringValue else { throw VQError(.corrupt, "cluster snapshot has a bad peer \(k)") }
            peers[id] = uri
        }
    }

    package static func addPeer(_ id: PeerID, uri: String) -> JSON {
        .object([("op", .string("add_peer")), ("id", .uint(id)), ("uri", .string(uri))])
    }

    package static func removePeer(_ id: PeerID) -> JSON {
        .object([("op", .string("remove_peer")), ("id", .uint(id))])
    }
}

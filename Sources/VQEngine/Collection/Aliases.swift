// Collection aliases, as Qdrant has them: another name for a collection, switched atomically
// (a nightly rebuild goes to a new collection, then the alias moves to it).
//
//   POST /collections/aliases {"actions": [{"create_alias": {"collection_name", "alias_name"}},
//                                          {"delete_alias": {"alias_name"}},
//                                          {"rename_alias": {"old_alias_name", "new_alias_name"}}]}
//
// A batch applies whole or not at all. The map lives in DATA/aliases.json on a single peer and
// in the Raft state machine in a cluster (so every peer resolves the same names).

/// One change to the alias map.
package enum AliasAction: Sendable, Equatable {
    case create(alias: String, collection: String)
    case delete(alias: String)
    case rename(from: String, to: String)

    /// Parses Qdrant's action objects.
    /// - Throws: `.invalidInput` naming what is malformed.
    package static func parse(_ body: JSON) throws -> [AliasAction] {
        guard let list = body["actions"]?.arrayValue else {
            throw VQError.invalid("aliases request needs \"actions\": [{\"create_alias\"|\"delete_alias\"|\"rename_alias\": {...}}]")
        }
        return try list.map { a in
            guard case .object(let members) = a, members.count == 1, let (kind, v) = members.first else {
                throw VQError.invalid("alias action \(a.compactText) must be one of create_alias, delete_alias, rename_alias")
            }
            func field(_ name: String) throws -> String {
                guard let s = v[name]?.stringValue else { throw VQError.invalid("\(kind) needs \"\(name)\"") }
                return s
            }
            switch kind {
            case "create_alias": return .create(alias: try field("alias_name"), collection: try field("collection_name"))
            case "delete_alias": return .delete(alias: try field("alias_name"))
            case "rename_alias": return .rename(from: try field("old_alias_name"), to: try field("new_alias_name"))
            default: throw VQError.invalid("alias action \"\(kind)\" is not one of create_alias, delete_alias, rename_alias")
            }
        }
    }

    var json: JSON {
        switch self {
        case let .create(alias, collection):
            return .object([("create_alias", .object([("collection_name", .string(collection)), ("alias_name", .string(alias))]))])
        case let .delete(alias): return .object([("delete_alias", .object([("alias_name", .string(alias))]))])
        case let .rename(from, to):
            return .object([("rename_alias", .object([("old_alias_name", .string(from)), ("new_alias_name", .string(to))]))])
        }
    }

    /// `map` after `actions`, all or nothing.
    /// - Parameter exists: whether a collection of that name exists.
    /// - Throws: `.invalidInput` / `.notFound` naming the first action that cannot apply.
    package static func apply(_ actions: [AliasAction], to map: [String: String], exists: (String) -> Bool) throws -> [String: String] {
        var m = map
        for action in actions {
            switch action {
            case let .create(alias, collection):
                try Engine.validateName(alias)
                try Engine.validateName(collection)
                guard exists(collection) else { throw VQError(.notFound, "collection \"\(collection)\" does not exist") }
                guard !exists(alias) else { throw VQError.invalid("alias \"\(alias)\" is the name of a collection") }
                m[alias] = collection
            case let .delete(alias):
                guard m.removeValue(forKey: alias) != nil else { throw VQError(.notFound, "alias \"\(alias)\" does not exist") }
            case let .rename(from, to):
                try Engine.validateName(to)
                guard let target = m.removeValue(forKey: from) else { throw VQError(.notFound, "alias \"\(from)\" does not exist") }
                guard !exists(to) else { throw VQError.invalid("alias \"\(to)\" is the name of a collection") }
                m[to] = target
            }
        }
        return m
    }

    /// The map as stored: {"alias": "collection"}.
    static func json(_ map: [String: String]) -> JSON { .object(map.keys.sorted().map { ($0, .string(map[$0]!)) }) }

    /// Reads what `json(_:)` wrote.
    static func map(_ json: JSON, what: String) throws -> [String: String] {
        var m: [String: String] = [:]
        for (alias, target) in json.objectValue ?? [] {
            guard (try? Engine.validateName(alias)) != nil, let t = target.stringValue, (try? Engine.validateName(t)) != nil else {
                throw VQError(.corrupt, "\(what) has a bad alias \"\(alias)\"")
            }
            m[alias] = t
        }
        return m
    }
}

// Qdrant's `with_payload`: which parts of each point's payload a read returns.
//
//   true | false | ["city", "meta.a"] | {"include": ["city"]} | {"exclude": ["notes", "meta.b"]}
//
// Keys are payload paths ("a.b", "items[].name"): an include keeps the value at each path, in
// its place; an exclude removes it and keeps the rest.

/// What of a payload a read returns.
enum PayloadSelector: Equatable {
    case none
    case all
    case include([String])
    case exclude([String])

    /// Parses `with_payload` (absent or null: `fallback`).
    /// - Throws: `.invalidInput` naming what is not a boolean, a key list or an include/exclude object.
    init(json: JSON?, default fallback: Bool) throws {
        guard let json, json != .null else { self = fallback ? .all : .none; return }
        func keys(_ j: JSON, _ what: String) throws -> [String] {
            guard let list = j.arrayValue else { throw VQError.invalid("\(what) is \(j.typeName); expected a list of payload keys") }
            return try list.map { k in
                guard let s = k.stringValue, !s.isEmpty else { throw VQError.invalid("\(what) holds \(k.compactText); expected payload keys (strings)") }
                if s.split(separator: ".").contains(where: { $0.contains("[") && !$0.hasSuffix("[]") }) {
                    throw VQError.invalid("\(what) key \"\(s)\" names an array element; with_payload takes keys and \"[]\" (every element) only")
                }
                return s
            }
        }
        switch json {
        case .bool(let b): self = b ? .all : .none
        case .array: self = .include(try keys(json, "with_payload"))
        case .object(let members):
            guard members.count == 1, let (name, value) = members.first, name == "include" || name == "exclude" else {
                throw VQError.invalid("with_payload \(json.compactText) is not supported; expected {\"include\": [keys]} or {\"exclude\": [keys]}")
            }
            self = name == "include" ? .include(try keys(value, "with_payload.include")) : .exclude(try keys(value, "with_payload.exclude"))
        default:
            throw VQError.invalid("with_payload is \(json.typeName); expected true, false, a list of keys, or {\"include\"|\"exclude\": [keys]}")
        }
    }

    /// Whether any payload is returned (so the engine must read it).
    var wanted: Bool { self != .none }

    /// The part of `payload` to return (an empty object when there is none).
    func apply(_ payload: JSON?) -> JSON {
        let p = payload ?? .object([])
        switch self {
        case .none, .all: return p
        case .include(let keys):
            var out: JSON = .object([])
            for key in keys {
                if let part = PayloadSelector.project(p, PayloadSelector.parts(key)[...]) { out = PayloadSelector.merge(out, part) }
            }
            return out
        case .exclude(let keys):
            return keys.reduce(p) { PayloadSelector.remove($0, PayloadSelector.parts($1)[...]) }
        }
    }

    private static func parts(_ key: String) -> [String] {
        key.split(separator: ".").map { $0.hasSuffix("[]") ? String($0.dropLast(2)) : String($0) }
    }

    /// `v` reduced to the value at `parts`, nested as it was; nil when absent.
    private static func project(_ v: JSON, _ parts: ArraySlice<String>) -> JSON? {
        guard let name = parts.first else { return v }
        guard let child = v[name] else { return nil }
        let rest = parts.dropFirst()
        if rest.isEmpty { return .object([(name, child)]) }
        if case .array(let items) = child {
            return .object([(name, .array(items.compactMap { project($0, rest) }))])
        }
        return project(child, rest).map { .object([(name, $0)]) }
    }

    /// Objects merged key by key (later keys added, shared object keys merged).
    private static func merge(_ a: JSON, _ b: JSON) -> JSON {
        guard case .object(var members) = a, case .object(let more) = b else { return b }
        for (k, v) in more {
            if let i = members.firstIndex(where: { $0.0 == k }) { members[i].1 = merge(members[i].1, v) } else { members.append((k, v)) }
        }
        return .object(members)
    }

    /// `v` without the value at `parts`.
    private static func remove(_ v: JSON, _ parts: ArraySlice<String>) -> JSON {
        guard let name = parts.first, case .object(let members) = v else { return v }
        let rest = parts.dropFirst()
        if rest.isEmpty { return .object(members.filter { $0.0 != name }) }
        return .object(members.map { k, child in
            guard k == name else { return (k, child) }
            if case .array(let items) = child { return (k, .array(items.map { remove($0, rest) })) }
            return (k, remove(child, rest))
        })
    }
}

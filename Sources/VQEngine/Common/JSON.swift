// A JSON value, with a parser and a writer of our own (no Foundation on the hot path).
//
//   JSON.swift          the value type and its accessors
//   JSONParser.swift    bytes -> JSON, plus a fast path for float arrays (vectors)
//   JSONWriter.swift    JSON -> bytes, compact, keys in insertion order

/// A JSON value. Objects keep their keys in order; integers stay exact up to `UInt64.max`.
package enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    /// Only for integers above `Int64.max`.
    case uint(UInt64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    package static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.uint(let x), .uint(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            guard x.count == y.count else { return false }
            for (k, v) in x { guard let w = y.first(where: { $0.0 == k })?.1, w == v else { return false } }
            return true
        default: return false
        }
    }

    /// The value under `key`, for objects; nil otherwise.
    package subscript(key: String) -> JSON? {
        if case .object(let members) = self {
            for (k, v) in members where k == key { return v }
        }
        return nil
    }

    /// The number as a `Double`, for any numeric case.
    package var doubleValue: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .uint(let v): return Double(v)
        case .double(let v): return v
        default: return nil
        }
    }

    /// The number as an `Int64` when it is an integer that fits.
    package var intValue: Int64? {
        switch self {
        case .int(let v): return v
        case .double(let v) where v.rounded() == v && abs(v) < 9.0e15: return Int64(v)
        default: return nil
        }
    }

    /// The number as a `UInt64` when it is a non-negative integer that fits.
    package var uint64Value: UInt64? {
        switch self {
        case .uint(let v): return v
        case .int(let v) where v >= 0: return UInt64(v)
        default: return nil
        }
    }

    package var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    package var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    package var arrayValue: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    package var objectValue: [(String, JSON)]? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The JSON type's name, for error messages.
    package var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .uint, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Compact text, cut to 60 characters for error messages.
    package var compactText: String {
        let text = JSONWriter.string(self)
        return text.count > 60 ? String(text.prefix(57)) + "..." : text
    }
}

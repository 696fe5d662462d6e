// Which payload fields are indexed, and how: Qdrant's `field_schema`.
//
//   "keyword" | "integer" | "float" | "bool" | "datetime" | "uuid" | "text" | "geo"
//   {"type": "integer", "lookup": true, "range": false}
//   {"type": "text", "tokenizer": "word", "lowercase": true, "min_token_len": 2, "max_token_len": 20}
//   {"type": "keyword", "is_tenant": true}
//
// A collection's schema lives in its config (so Raft carries it to every replica); each segment
// builds a FieldIndex per field from it (see FieldIndex.swift).

/// The kind of index a payload field has.
package enum PayloadFieldType: String, Sendable, CaseIterable {
    case keyword, integer, float, bool, datetime, uuid, text, geo
}

/// How a text field is split into tokens.
package enum TextTokenizer: String, Sendable {
    /// Runs of letters and digits.
    case word
    /// Runs of anything but whitespace.
    case whitespace
    /// As `word`, and every prefix of each token is indexed too (so `match.text` finds prefixes).
    case prefix
}

/// One indexed field's type and parameters.
package struct PayloadFieldSchema: Sendable, Equatable {
    package var type: PayloadFieldType
    /// integer: exact-value lookups (`match`) use the index.
    package var lookup = true
    /// integer: ranges use the index.
    package var range = true
    /// keyword, uuid: the field partitions points by tenant (a hint, reported back as given).
    package var isTenant: Bool? = nil
    /// integer, float, datetime: the field most filters use (a hint, reported back as given).
    package var isPrincipal: Bool? = nil
    /// Whether the request used the object form (info reports `params` only then, as Qdrant does).
    package var parameterised = false
    // text
    package var tokenizer = TextTokenizer.word
    package var lowercase = true
    package var minTokenLen: Int? = nil
    package var maxTokenLen: Int? = nil

    package init(type: PayloadFieldType) { self.type = type }

    /// Parses Qdrant's `field_schema`: a type name or an object with `type` and parameters.
    /// - Throws: `.invalidInput` naming the unknown type or parameter, or a parameter vq does not
    ///   implement (`on_disk: true`, multilingual tokenizer, stemmers, stopwords, phrase matching).
    package init(json: JSON) throws {
        func type(_ name: String?) throws -> PayloadFieldType {
            guard let name, let t = PayloadFieldType(rawValue: name.lowercased()) else {
                throw VQError.invalid("field_schema \(name.map { "\"\($0)\"" } ?? "without a type") is not a payload index type; expected one of "
                                      + PayloadFieldType.allCases.map(\.rawValue).joined(separator: ", "))
            }
            return t
        }
        switch json {
        case .string(let name):
            self.init(type: try type(name))
        case .object(let members):
            self.init(type: try type(json["type"]?.stringValue))
            parameterised = true
            for (key, value) in members where key != "type" && value != .null {
                func flag() throws -> Bool {
                    guard let b = value.boolValue else { throw VQError.invalid("field_schema.\(key) is \(value.typeName); expected true or false") }
                    return b
                }
                func length() throws -> Int {
                    guard let n = value.intValue, (0...1_000).contains(n) else {
                        throw VQError.invalid("field_schema.\(key) is \(value.compactText); expected 0 to 1000")
                    }
                    return Int(n)
                }
                switch (key, self.type) {
                case ("on_disk", _):
                    if try flag() { throw VQError.invalid("field_schema.on_disk true is not supported: vq keeps payload indexes in memory; omit it or pass false") }
                case ("lookup", .integer): lookup = try flag()
                case ("range", .integer): range = try flag()
                case ("is_tenant", .keyword), ("is_tenant", .uuid): isTenant = try flag()
                case ("is_principal", .integer), ("is_principal", .float), ("is_principal", .datetime): isPrincipal = try flag()
                case ("tokenizer", .text):
                    guard let t = value.stringValue.flatMap(TextTokenizer.init(rawValue:)) else {
                        throw VQError.invalid("field_schema.tokenizer is \(value.compactText); expected \"word\", \"whitespace\" or \"prefix\" (multilingual is not supported)")
                    }
                    tokenizer = t
                case ("lowercase", .text): lowercase = try flag()
                case ("min_token_len", .text): minTokenLen = try length()
                case ("max_token_len", .text): maxTokenLen = try length()
                case ("phrase_matching", .text), ("ascii_folding", .text):
                    if try flag() { throw VQError.invalid("field_schema.\(key) is not supported by vq; omit it or pass false") }
                case ("stopwords", .text), ("stemmer", .text):
                    throw VQError.invalid("field_schema.\(key) is not supported by vq; omit it")
                default:
                    throw VQError.invalid("field_schema.\(key) is not a parameter of a \(self.type.rawValue) index")
                }
            }
            if self.type == .integer && !lookup && !range {
                throw VQError.invalid("field_schema for an integer index needs lookup or range (or both) true")
            }
        default:
            throw VQError.invalid("field_schema is \(json.typeName); expected a type name or an object with \"type\"")
        }
    }

    /// Whether the index keeps values as terms (keyword, uuid, bool, text tokens, integer lookups).
    var termsIndexed: Bool {
        switch type {
        case .keyword, .uuid, .bool, .text: return true
        case .integer: return lookup
        case .float, .datetime, .geo: return false
        }
    }

    /// Whether facets can count the field's values (keyword, uuid, bool, integer lookups).
    package var facetable: Bool { termsIndexed && type != .text }

    /// Whether the index keeps numbers, so `order_by` and ranges use it (integer ranges, float, datetime).
    package var orderable: Bool {
        switch type {
        case .integer: return range
        case .float, .datetime: return true
        default: return false
        }
    }

    /// Qdrant's `params` object for this schema.
    package var paramsJSON: JSON {
        var m: [(String, JSON)] = [("type", .string(type.rawValue))]
        switch type {
        case .integer:
            m += [("lookup", .bool(lookup)), ("range", .bool(range))]
            if let isPrincipal { m.append(("is_principal", .bool(isPrincipal))) }
        case .float, .datetime:
            if let isPrincipal { m.append(("is_principal", .bool(isPrincipal))) }
        case .keyword, .uuid:
            if let isTenant { m.append(("is_tenant", .bool(isTenant))) }
        case .text:
            m += [("tokenizer", .string(tokenizer.rawValue)), ("lowercase", .bool(lowercase))]
            if let minTokenLen { m.append(("min_token_len", .int(Int64(minTokenLen)))) }
            if let maxTokenLen { m.append(("max_token_len", .int(Int64(maxTokenLen)))) }
        case .bool, .geo:
            break
        }
        return .object(m)
    }

    /// What the config stores and `init(json:)` reads back: the name alone when unparameterised.
    package var json: JSON { parameterised ? paramsJSON : .string(type.rawValue) }
}

/// A collection's indexed fields, sorted by name (so equal schemas compare equal).
package struct PayloadSchema: Sendable, Equatable {
    package private(set) var fields: [(name: String, schema: PayloadFieldSchema)] = []

    package init() {}

    package subscript(name: String) -> PayloadFieldSchema? {
        get { fields.first { $0.name == name }?.schema }
        set {
            fields.removeAll { $0.name == name }
            if let newValue {
                fields.append((name, newValue))
                fields.sort { $0.name < $1.name }
            }
        }
    }

    package var isEmpty: Bool { fields.isEmpty }

    package static func == (a: PayloadSchema, b: PayloadSchema) -> Bool {
        a.fields.count == b.fields.count && zip(a.fields, b.fields).allSatisfy { $0.name == $1.name && $0.schema == $1.schema }
    }

    /// Checks a field name: a payload key path of at most 200 bytes, no empty parts.
    /// - Throws: `.invalidInput` naming the field.
    package static func validate(fieldName: String) throws {
        guard !fieldName.isEmpty, fieldName.utf8.count <= 200 else {
            throw VQError.invalid("field_name \"\(fieldName)\" must be 1 to 200 bytes")
        }
        let parts = fieldName.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.allSatisfy({ !$0.isEmpty && $0 != "[]" }) else {
            throw VQError.invalid("field_name \"\(fieldName)\" is not a payload key path; expected keys joined by \".\", like \"a.b\" or \"tags[].name\"")
        }
    }

    /// `{"field": schema, ...}` as the config stores it.
    package var json: JSON { .object(fields.map { ($0.name, $0.schema.json) }) }

    /// Reads what `json` wrote.
    package init(json: JSON) throws {
        guard case .object(let members) = json else { throw VQError.invalid("payload_schema is \(json.typeName); expected an object") }
        for (name, value) in members {
            try PayloadSchema.validate(fieldName: name)
            self[name] = try PayloadFieldSchema(json: value)
        }
    }
}

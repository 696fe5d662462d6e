import Foundation
import VQEngine

/// `vq create-index NAME FIELD TYPE` and `vq delete-index NAME FIELD`: index a payload field (or
/// stop indexing it); prints {"collection", "field", "field_schema"} or {"collection", "field", "deleted": true}.
func createIndex(_ args: Arguments, _ target: Target, delete: Bool) throws -> Int32 {
    let name = try args.positional(0)
    let field = try args.positional(1)
    do { try PayloadSchema.validate(fieldName: field) } catch let e as VQError { throw UsageError(message: e.message) }
    var schema: PayloadFieldSchema?
    if !delete {
        let text = try args.positional(2)
        // A type name, or Qdrant's field_schema object as JSON.
        let json: JSON = text.hasPrefix("{") ? try { () throws -> JSON in
            do { return try JSONParser.parse(text) } catch { throw UsageError(message: "TYPE is not valid JSON: \(error)") }
        }() : .string(text)
        do { schema = try PayloadFieldSchema(json: json) } catch let e as VQError {
            throw UsageError(message: e.message + suggestion(text, PayloadFieldType.allCases.map(\.rawValue)))
        }
    }
    let path = collectionPath(name, "/index" + (delete ? "/\(percentEncode(field))" : ""))
    let body: JSON? = delete ? nil : .object([("field_name", .string(field)), ("field_schema", schema!.json)])
    _ = try withClient(args, target) { client in try client.call(delete ? "DELETE" : "PUT", path, body, query: ["wait": "true"]) }
    let out: [(String, JSON)] = [("collection", .string(name)), ("field", .string(field))]
        + (delete ? [("deleted", .bool(true))] : [("field_schema", schema!.json)])
    standardOutput.write(bytes: JSONWriter.bytes(.object(out)) + [0x0A])
    return 0
}

// REST errors: one mapping from error kind to HTTP status, one envelope builder.

import Foundation

/// The HTTP status for an engine error kind (the CLI maps the same kinds to exit codes).
package func httpStatus(_ kind: VQErrorKind) -> Int {
    switch kind {
    case .invalidInput: return 400
    case .notFound: return 404
    case .alreadyExists: return 409
    case .busy: return 503
    case .overloaded: return 429
    case .cancelled: return 503
    case .corrupt, .io, .internal: return 500
    }
}

/// Qdrant's envelopes: `{"result":…,"status":"ok","time":…}` and `{"status":{"error":"…"},"time":…}`.
package enum APIEnvelope {
    package static func ok(_ result: JSON, since start: UInt64) -> HTTPResponse {
        var w = JSONWriter(capacity: 256)
        w.raw("{\"result\":")
        w.write(result)
        w.raw(",\"status\":\"ok\",\"time\":")
        w.writeDouble(elapsed(start))
        w.raw("}")
        return .json(200, w.bytes)
    }

    package static func error(_ status: Int, _ message: String, since start: UInt64, headers: [(String, String)] = []) -> HTTPResponse {
        var w = JSONWriter(capacity: 128)
        w.write(.object([("status", .object([("error", .string(message))])), ("time", .double(elapsed(start)))]))
        return .json(status, w.bytes, headers: headers)
    }

    package static func error(_ e: VQError, since start: UInt64) -> HTTPResponse {
        let headers: [(String, String)] = e.kind == .overloaded ? [("Retry-After", "1")] : []
        var message = e.message
        if let hint = e.hint { message += " (\(hint))" }
        return error(httpStatus(e.kind), message, since: start, headers: headers)
    }

    static func elapsed(_ start: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}

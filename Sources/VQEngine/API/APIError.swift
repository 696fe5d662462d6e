// REST errors: the one envelope builder (the kind -> status map is `VQErrorKind.httpStatus`).

import Foundation

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
        var headers: [(String, String)] = e.kind == .rateLimited ? [("Retry-After", "1")] : []
        if e.kind == .unauthorized { headers.append(("WWW-Authenticate", "Bearer")) }
        var message = e.message
        if let hint = e.hint { message += " (\(hint))" }
        return error(e.httpStatus, message, since: start, headers: headers)
    }

    static func elapsed(_ start: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}

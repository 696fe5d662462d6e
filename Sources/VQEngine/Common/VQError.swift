// The error that crosses the engine's boundary: a kind, a sentence, an optional hint.
//
// Each layer throws its own enum (WALError, SegmentError, ...); the facade and the CLI see
// `VQError`. The kind decides everything a caller reacts to, each in one place:
//   kind -> HTTP status         `VQErrorKind.httpStatus` (below)
//   HTTP status -> kind         `VQErrorKind(httpStatus:)` and `VQError(status:body:from:)` (below),
//                               for the CLI's remote mode and peers' answers alike
//   kind -> exit code           `exitCode` in Sources/vq/main.swift
//   the JSON envelope           `APIEnvelope` in API/APIError.swift

import Foundation

/// What went wrong, as far as a caller needs to know to react.
package enum VQErrorKind: Sendable, Equatable {
    /// The request or input is wrong; retrying it unchanged will fail again.
    case invalidInput
    /// No credential, or not a valid one.
    case unauthorized
    /// A valid credential that may not do this (the read-only key writing, a peer route without
    /// the cluster secret).
    case forbidden
    /// The named thing (collection, point, route) does not exist.
    case notFound
    /// The path exists but not with this method.
    case methodNotAllowed
    /// The request conflicts with what exists (a collection of that name, another primary's
    /// operation at that sequence number).
    case conflict
    /// It existed and never will again (a peer removed from the cluster).
    case gone
    /// A peer sent a shard's operation without being its primary (this replica's metadata names
    /// another): the sender was replaced and steps back; the replica did not fail (HTTP 421,
    /// Misdirected Request, so no other 503 reads as this).
    case notPrimary
    /// Someone else holds the resource, or the cluster cannot decide now (no leader); retry later.
    case busy
    /// Back pressure: the update queue stayed full past the timeout; retry after a pause.
    case rateLimited
    /// The disk is full.
    case insufficientStorage
    /// The server or peer could not be reached, or did not answer in time (nothing came back).
    case unreachable
    /// Stored data is damaged beyond what recovery may silently repair.
    case corrupt
    /// A system call or file failed.
    case io
    /// Stopped on purpose (the shard is closing).
    case cancelled
    /// A bug: an invariant did not hold.
    case `internal`

    /// The HTTP status a server answers with.
    package var httpStatus: Int {
        switch self {
        case .invalidInput: 400
        case .unauthorized: 401
        case .forbidden: 403
        case .notFound: 404
        case .methodNotAllowed: 405
        case .conflict: 409
        case .gone: 410
        case .notPrimary: 421
        case .rateLimited: 429
        case .busy, .cancelled, .unreachable: 503
        case .insufficientStorage: 507
        case .corrupt, .io, .internal: 500
        }
    }

    /// The kind of an error answer, as a client (the CLI, a peer) reads it back. Never
    /// `.unreachable`: an answer came.
    package init(httpStatus status: Int) {
        switch status {
        case 400, 413, 422, 431: self = .invalidInput
        case 401: self = .unauthorized
        case 403: self = .forbidden
        case 404: self = .notFound
        case 405: self = .methodNotAllowed
        case 409: self = .conflict
        case 410: self = .gone
        case 421: self = .notPrimary
        case 429: self = .rateLimited
        case 503: self = .busy
        case 507: self = .insufficientStorage
        default: self = .io
        }
    }
}

/// An error with a kind, a one-sentence message and an optional hint.
package struct VQError: Error, CustomStringConvertible, Sendable {
    package var kind: VQErrorKind
    package var message: String
    package var hint: String?

    package init(_ kind: VQErrorKind, _ message: String, hint: String? = nil) {
        self.kind = kind
        self.message = message
        self.hint = hint
    }

    package var description: String { message }

    /// `error` itself if it is a `VQError`, else an `.internal` one carrying its text.
    package static func wrap(_ error: any Error) -> VQError {
        error as? VQError ?? VQError(.internal, "\(error)")
    }

    package static func invalid(_ message: String, hint: String? = nil) -> VQError {
        VQError(.invalidInput, message, hint: hint)
    }

    /// A value outside an enumeration (a distance, a modifier, a datatype): invalid input that
    /// Qdrant answers with 422 Unprocessable Entity, as it does for bodies its schema rejects.
    package static func unknownValue(_ message: String) -> VQError {
        var e = VQError(.invalidInput, message)
        e.unprocessable = true
        return e
    }

    /// Answered with 422 rather than 400 (see `unknownValue`).
    package var unprocessable = false

    /// The HTTP status a server answers with.
    package var httpStatus: Int { unprocessable ? 422 : kind.httpStatus }

    /// The error an HTTP answer carries: its status's kind, the message of Qdrant's envelope
    /// (`{"status":{"error":"..."}}`, else the start of the body), prefixed with who said it.
    package init(status: Int, body: [UInt8], from who: String) {
        let parsed = (try? JSONParser.parse(body))?["status"]?["error"]?.stringValue
        let text = parsed ?? String(decoding: body.prefix(300), as: UTF8.self)
        self.init(VQErrorKind(httpStatus: status), "\(who): \(text.isEmpty ? "status \(status)" : text)")
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The text of the current `errno`.
func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// Builds an I/O error naming the operation, the path and the system's reason (a full disk is
/// `.insufficientStorage`: it passes when space is freed).
package func ioError(_ operation: String, _ path: String, _ code: Int32 = errno) -> VQError {
    VQError(code == ENOSPC || code == EDQUOT ? .insufficientStorage : .io, "\(operation) \(path) failed: \(errnoText(code))")
}

/// "1 dimension", "384 dimensions": for messages.
package func dimensions(_ n: Int) -> String { n == 1 ? "1 dimension" : "\(n) dimensions" }

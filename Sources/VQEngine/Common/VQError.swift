// The error that crosses the engine's boundary: a kind, a sentence, an optional hint.
//
// Each layer throws its own enum (WALError, SegmentError, ...); the facade and
// the CLI see `VQError`. The kind decides the exit code (CLI) and, from the
// server issue on, the HTTP status: both mappings live next to their users.

/// What went wrong, as far as a caller needs to know to react.
package enum VQErrorKind: Sendable, Equatable {
    /// The request or input is wrong; retrying it unchanged will fail again.
    case invalidInput
    /// The named thing (collection, point) does not exist.
    case notFound
    /// The thing to create exists already.
    case alreadyExists
    /// Someone else holds the resource (the data directory lock).
    case busy
    /// Back pressure: the update queue stayed full past the timeout.
    case overloaded
    /// Stored data is damaged beyond what recovery may silently repair.
    case corrupt
    /// A system call or file failed.
    case io
    /// Stopped on purpose (the shard is closing).
    case cancelled
    /// A bug: an invariant did not hold.
    case `internal`
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

/// Builds an I/O error naming the operation, the path and the system's reason.
func ioError(_ operation: String, _ path: String, _ code: Int32 = errno) -> VQError {
    VQError(.io, "\(operation) \(path) failed: \(errnoText(code))")
}

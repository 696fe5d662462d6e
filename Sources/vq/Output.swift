// stdout for data, stderr for diagnostics and progress.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import VQEngine

/// write(2), retried on EINTR by callers; a free function so methods named `write` do not shadow it.
@inline(__always)
func rawWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    write(fd, p, n)
}

/// Buffered writes to a file descriptor; flushed when large and at exit.
final class OutputStream: @unchecked Sendable {
    private let fd: Int32
    private var buffer: [UInt8] = []

    init(fd: Int32) {
        self.fd = fd
        buffer.reserveCapacity(1 << 16)
    }

    func write(_ s: String) {
        buffer.append(contentsOf: s.utf8)
        if buffer.count >= 1 << 16 { flush() }
    }

    func write(bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { flush() }
    }

    func flush() {
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeBytes { rawWrite(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 { if errno == EINTR { continue }; break }
            done += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

let standardOutput = OutputStream(fd: STDOUT_FILENO)

/// Writes one line to stderr at once (unbuffered).
func printError(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { rawWrite(STDERR_FILENO, $0, strlen($0)) }
}

/// Whether stderr is a terminal that should get progress bars and colour.
var stderrIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }

var useColor: Bool {
    let env = ProcessInfo.processInfo.environment
    return stderrIsTerminal && (env["NO_COLOR"] ?? "").isEmpty && env["TERM"] != "dumb"
}

/// "vq: error: MESSAGE" (and "hint: ..." when there is one).
func reportError(_ message: String, hint: String? = nil) {
    standardOutput.flush()
    let prefix = useColor ? "\u{1B}[31mvq: error:\u{1B}[0m" : "vq: error:"
    printError("\(prefix) \(message)")
    if let hint { printError("hint: \(hint)") }
}

/// A one-line progress bar on stderr, redrawn at most ten times a second; silent unless stderr is a terminal.
final class ProgressBar {
    private let enabled: Bool
    private let total: Int?
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let label: String

    init(label: String, totalBytes: Int?, quiet: Bool) {
        self.label = label
        self.total = totalBytes
        enabled = !quiet && stderrIsTerminal
    }

    /// Redraws with `count` items done and `bytes` of the input read.
    func update(count: Int, bytes: Int, force: Bool = false) {
        guard enabled else { return }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(start), 1e-6)
        let rate = Double(count) / elapsed
        var line = "\r\u{1B}[2K\(label) \(count) points  \(Int(rate)) points/s"
        if let total, total > 0 {
            let fraction = min(1, Double(bytes) / Double(total))
            let width = 24
            let filled = Int(fraction * Double(width))
            line += "  [" + String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled) + "]"
            line += " \(Int(fraction * 100))%"
            if fraction > 0.001 {
                let eta = elapsed / fraction - elapsed
                line += "  ETA \(Int(eta.rounded()))s"
            }
        }
        _ = line.withCString { rawWrite(STDERR_FILENO, $0, strlen($0)) }
    }

    /// Clears the bar.
    func finish() {
        guard enabled else { return }
        let clear = "\r\u{1B}[2K"
        _ = clear.withCString { rawWrite(STDERR_FILENO, $0, strlen($0)) }
    }
}

/// A one-line status on stderr for steps without a count (indexing); silent unless stderr is a terminal.
final class StatusLine {
    private let enabled: Bool

    init(quiet: Bool) { enabled = !quiet && stderrIsTerminal }

    func show(_ text: String) {
        guard enabled else { return }
        let line = "\r\u{1B}[2K" + text
        _ = line.withCString { rawWrite(STDERR_FILENO, $0, strlen($0)) }
    }

    func clear() { show("") }
}

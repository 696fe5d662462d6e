// multipart/form-data bodies (RFC 7578): what clients send to upload a file.
//
//   --BOUNDARY\r\n
//   Content-Disposition: form-data; name="snapshot"; filename="x.snapshot"\r\n
//   Content-Type: application/octet-stream\r\n
//   \r\n
//   <bytes>\r\n
//   --BOUNDARY--\r\n

import CVQSupport

/// One part of a multipart/form-data body.
package struct FormPart: Sendable {
    /// The form field's name (Content-Disposition's `name`).
    package var name: String
    package var filename: String?
    /// Where the part's bytes lie in the body.
    package var range: Range<Int>
}

package enum Multipart {
    /// The boundary of a `multipart/form-data` Content-Type, nil for any other type.
    package static func boundary(contentType: String?) -> String? {
        guard let contentType else { return nil }
        let fields = contentType.split(separator: ";").map { $0.trimmingSpaces }
        guard fields.first?.lowercased() == "multipart/form-data" else { return nil }
        for f in fields.dropFirst() {
            let kv = f.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, kv[0].trimmingSpaces.lowercased() == "boundary" else { continue }
            var b = kv[1].trimmingSpaces
            if b.count >= 2 && b.hasPrefix("\"") && b.hasSuffix("\"") { b = String(b.dropFirst().dropLast()) }
            return b.isEmpty || b.utf8.count > 200 ? nil : b
        }
        return nil
    }

    /// The parts of `body`.
    /// - Throws: a message naming what is malformed.
    package static func parts(_ body: [UInt8], boundary: String) throws(MultipartError) -> [FormPart] {
        let dash = Array(("--" + boundary).utf8)
        let delimiter = Array(("\r\n--" + boundary).utf8)
        guard let first = find(dash, in: body, from: 0) else { throw MultipartError("body has no boundary \"\(boundary)\"") }
        var at = first + dash.count
        var parts: [FormPart] = []
        while true {
            // After a boundary: "--" ends the body, "\r\n" starts a part.
            if at + 2 <= body.count && body[at] == 0x2D && body[at + 1] == 0x2D { return parts }
            guard at + 2 <= body.count, body[at] == 13, body[at + 1] == 10 else { throw MultipartError("a boundary is not followed by CRLF") }
            at += 2
            guard let headEnd = find([13, 10, 13, 10], in: body, from: at) else { throw MultipartError("a part's headers do not end") }
            let head = String(decoding: body[at..<headEnd], as: UTF8.self)
            let start = headEnd + 4
            guard let end = find(delimiter, in: body, from: start) else { throw MultipartError("a part does not end with the boundary") }
            var name: String?
            var filename: String?
            for line in head.split(separator: "\r\n") {
                let kv = line.split(separator: ":", maxSplits: 1)
                guard kv.count == 2, kv[0].trimmingSpaces.lowercased() == "content-disposition" else { continue }
                for param in kv[1].split(separator: ";").dropFirst() {
                    let p = param.split(separator: "=", maxSplits: 1).map { $0.trimmingSpaces }
                    guard p.count == 2 else { continue }
                    var v = p[1]
                    if v.count >= 2 && v.hasPrefix("\"") && v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
                    switch p[0].lowercased() {
                    case "name": name = v
                    case "filename": filename = v
                    default: break
                    }
                }
            }
            guard let name else { throw MultipartError("a part has no Content-Disposition name") }
            parts.append(FormPart(name: name, filename: filename, range: start..<end))
            guard parts.count <= 64 else { throw MultipartError("more than 64 parts") }
            at = end + delimiter.count
        }
    }

    /// The first index of `needle` in `hay` at or after `from` (libc's `memmem`, through CVQSupport: linear, whatever
    /// an upload's bytes are, where a naive scan is quadratic on a body full of near-boundaries).
    private static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, from >= 0, from <= hay.count else { return nil }
        return hay.withUnsafeBytes { h in
            needle.withUnsafeBytes { n in
                cvq_memmem(h.baseAddress! + from, h.count - from, n.baseAddress!, n.count).map { $0 - UnsafeRawPointer(h.baseAddress!) }
            }
        }
    }
}

package struct MultipartError: Error, CustomStringConvertible {
    package let description: String
    init(_ description: String) { self.description = description }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return String(s)
    }
}

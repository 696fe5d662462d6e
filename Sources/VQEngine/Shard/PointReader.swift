// Readers for the files `vq upsert` and `vq search` take: JSON Lines, .fvecs, .npy.
//
// Each reader yields one record at a time with its line (JSONL) or row number
// (fvecs/npy, 1-based in messages), reading the input in 1 MiB blocks so a pipe
// of any length streams through in constant memory.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The input formats.
package enum PointFormat: String, Sendable, CaseIterable {
    case jsonl, fvecs, npy

    /// The format a file name implies (`.jsonl`, `.json`, `.ndjson`, `.fvecs`, `.npy`); nil if none.
    package init?(path: String) {
        let lower = path.lowercased()
        if lower.hasSuffix(".jsonl") || lower.hasSuffix(".ndjson") || lower.hasSuffix(".json") { self = .jsonl }
        else if lower.hasSuffix(".fvecs") { self = .fvecs }
        else if lower.hasSuffix(".npy") { self = .npy }
        else { return nil }
    }
}

/// An error in the input, with the 1-based line or record number it is on.
package struct InputError: Error, CustomStringConvertible, Sendable {
    package var line: Int
    package var unit: String
    package var message: String
    package var description: String { "\(unit) \(line): \(message)" }

    package init(line: Int, unit: String, message: String) {
        self.line = line
        self.unit = unit
        self.message = message
    }
}

/// Reads a file descriptor in blocks and hands out lines or byte runs.
package final class BlockReader {
    private let fd: Int32
    private let ownsFD: Bool
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var eof = false
    package private(set) var bytesConsumed = 0
    package let path: String

    /// Opens `path` ("-" = standard input).
    package init(path: String) throws {
        self.path = path
        if path == "-" {
            fd = STDIN_FILENO
            ownsFD = false
        } else {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw VQError.invalid("cannot open \(path): \(errnoText())") }
            self.fd = fd
            ownsFD = true
        }
        buffer = [UInt8](repeating: 0, count: 1 << 20)
    }

    deinit { if ownsFD { close(fd) } }

    /// The file's size, if it is a regular file.
    package var totalBytes: Int? {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(st.st_size)
    }

    /// Reads more input, keeping unconsumed bytes; returns false at end of input.
    private func fill() throws -> Bool {
        if eof { return false }
        if start > 0 {
            let n = end - start
            if n > 0 { buffer.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: $0.baseAddress! + start, byteCount: n) } }
            end = n
            start = 0
        }
        if end == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
        while true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + end, $0.count - end) }
            if got < 0 {
                if errno == EINTR { continue }
                throw VQError(.io, "reading \(path == "-" ? "standard input" : path) failed: \(errnoText())")
            }
            if got == 0 { eof = true; return false }
            end += got
            return true
        }
    }

    /// Calls `body` with the next line (without its newline); returns false at end of input.
    package func nextLine<T>(_ body: (UnsafeBufferPointer<UInt8>) throws -> T) throws -> T? {
        var scanFrom = start
        while true {
            let found: Int? = buffer.withUnsafeBufferPointer { b in
                guard scanFrom < end else { return nil }
                if let p = memchr(b.baseAddress! + scanFrom, 0x0A, end - scanFrom) {
                    return b.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
                }
                return nil
            }
            if let nl = found {
                let lineStart = start
                start = nl + 1
                bytesConsumed += nl + 1 - lineStart
                var lineEnd = nl
                if lineEnd > lineStart && buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                return try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[lineStart..<lineEnd])) }
            }
            scanFrom = end - start
            let more = try fill()
            scanFrom = start + scanFrom
            if !more {
                guard start < end else { return nil }
                let lineStart = start, lineEnd = end
                start = end
                bytesConsumed += lineEnd - lineStart
                return try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[lineStart..<lineEnd])) }
            }
        }
    }

    /// Calls `body` with exactly `count` bytes; nil at a clean end of input.
    /// - Throws: when the input ends part-way through.
    package func nextBytes<T>(_ count: Int, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T? {
        while end - start < count {
            if !(try fill()) {
                if start == end { return nil }
                throw VQError.invalid("\(path == "-" ? "standard input" : path) ends part-way through a record (\(end - start) of \(count) bytes)")
            }
        }
        let s = start
        start += count
        bytesConsumed += count
        return try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[s..<(s + count)])) }
    }
}

/// One point read from input.
package struct InputPoint {
    package var id: PointID
    package var payload: [UInt8]?
}

/// Reads points for upsert: ids, vectors (appended to a flat buffer) and payloads.
package final class PointReader {
    package let format: PointFormat
    /// The collection's vectors: one unnamed (`"vector": [...]`), or named (`"vector": {name: [...]}`,
    /// JSONL only).
    package let layout: VectorLayout
    package var dim: Int { layout[0].dim }
    private let input: BlockReader
    private let idOffset: UInt64
    package private(set) var recordNumber = 0
    /// Keys of Qdrant's scroll records that carry nothing vq stores (`shard_key`, `order_value`),
    /// skipped where they occurred; in order of first sight.
    package private(set) var ignoredKeys: [String] = []
    /// The text of the last JSONL line refused (for a rejects file).
    package private(set) var rejectedLine: [UInt8] = []
    private var npyRemaining = 0
    /// A named-vector line's vectors, by VectorLayout number, and its sparse ones.
    private var named: [[Float]?] = []
    private var namedSparse: [SparseVector?] = []
    private var namedMulti: [[Float]?] = []

    /// - Parameters:
    ///   - vectors: the collection's vectors; each must have its dimension.
    ///   - idOffset: added to row numbers for fvecs/npy ids.
    /// - Throws: `.invalidInput` for an fvecs or npy file and a collection of named vectors.
    package init(path: String, format: PointFormat, vectors: VectorLayout, idOffset: UInt64 = 0) throws {
        self.format = format
        self.layout = vectors
        self.idOffset = idOffset
        if vectors.named && format != .jsonl {
            throw VQError.invalid("\(format) files hold one unnamed vector per point; this collection has named vectors (\(vectors.namesText)): "
                                  + "give JSONL lines with \"vector\": {name: [...]}")
        }
        input = try BlockReader(path: path)
        if format == .npy { try readNpyHeader() }
    }

    /// Reads the next point and appends it (id, vectors, payload) to `batch`.
    /// - Returns: false at the end of input.
    /// - Throws: `InputError` naming the line or record; nothing of that point is appended.
    package func next(into batch: inout PointBatch) throws -> Bool {
        guard layout.named else {
            guard let point = try next(into: &batch.vectors[0]) else { return false }
            batch.ids.append(point.id)
            batch.payloads.append(point.payload)
            return true
        }
        var scratch: [Float] = []
        guard let point = try next(into: &scratch) else { return false }
        withOptionalBuffers(named) { batch.append(id: point.id, vectors: $0, sparse: namedSparse, multi: namedMulti, payload: point.payload) }
        return true
    }

    /// Passes over the lines (records) before `line` (1-based) without reading their points:
    /// a resumed run (`vq upsert --start-line`).
    /// - Returns: false when the input ended first.
    package func skip(toLine line: Int) throws -> Bool {
        var scratch: [Float] = []
        while recordNumber < line - 1 {
            if format == .jsonl {
                guard try input.nextLine({ _ in () }) != nil else { return false }
                recordNumber += 1
            } else {
                scratch.removeAll(keepingCapacity: true)
                guard try next(into: &scratch) != nil else { return false }
            }
        }
        return true
    }

    package var totalBytes: Int? { input.totalBytes }
    package var bytesRead: Int { input.bytesConsumed }

    private func fail(_ message: String) -> InputError {
        InputError(line: recordNumber, unit: format == .jsonl ? "line" : "record", message: message)
    }

    /// Reads the next point, appending its vector to `vectors`.
    /// - Returns: nil at the end of input.
    /// - Throws: `InputError` naming the line or record.
    package func next(into vectors: inout [Float]) throws -> InputPoint? {
        switch format {
        case .jsonl:
            while true {
                recordNumber += 1
                let before = vectors.count
                let result: InputPoint?? = try input.nextLine { line -> InputPoint? in
                    if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
                    do {
                        return try parsePointLine(line, into: &vectors)
                    } catch let e as JSONParseError {
                        vectors.removeLast(vectors.count - before)
                        rejectedLine = Array(line)
                        throw fail("invalid JSON: \(e)")
                    } catch let e as VQError {
                        vectors.removeLast(vectors.count - before)
                        rejectedLine = Array(line)
                        throw fail(e.message)
                    }
                }
                guard let result else { return nil }
                if let point = result { return point }
            }
        case .fvecs:
            recordNumber += 1
            let record = 4 + dim * 4
            let id = UInt64(recordNumber - 1) &+ idOffset
            let found: Int? = try input.nextBytes(4) { raw in
                Int(Int32(littleEndian: raw.loadUnaligned(as: Int32.self)))
            }
            guard let found else { return nil }
            if found != dim {
                throw fail("vector has \(dimensions(found)); the collection expects \(dim)")
            }
            try readFloats(record - 4, into: &vectors)
            return InputPoint(id: .number(id), payload: nil)
        case .npy:
            guard npyRemaining > 0 else { return nil }
            npyRemaining -= 1
            recordNumber += 1
            let id = UInt64(recordNumber - 1) &+ idOffset
            try readFloats(dim * 4, into: &vectors)
            return InputPoint(id: .number(id), payload: nil)
        }
    }

    private func readFloats(_ bytes: Int, into vectors: inout [Float]) throws {
        let before = vectors.count
        let got: Void? = try input.nextBytes(bytes) { raw in
            vectors.append(contentsOf: repeatElement(0, count: bytes / 4))
            vectors.withUnsafeMutableBytes { dst in
                (dst.baseAddress! + before * 4).copyMemory(from: raw.baseAddress!, byteCount: bytes)
            }
        }
        if got == nil { throw fail("the input ends part-way through the record") }
        for i in before..<vectors.count where !vectors[i].isFinite {
            let bad = vectors[i]
            vectors.removeLast(vectors.count - before)
            throw fail("vector element \(i - before) is \(bad); expected a finite number")
        }
    }

    /// Parses `{"id": ..., "vector": [...], "payload": {...}}`.
    private func parsePointLine(_ line: UnsafeBufferPointer<UInt8>, into vectors: inout [Float]) throws -> InputPoint {
        var p = JSONParser(line)
        try p.expect(UInt8(ascii: "{"))
        var id: PointID?
        var payload: [UInt8]?
        var sawVector = false
        let before = vectors.count
        if !p.consume(UInt8(ascii: "}")) {
            repeat {
                let key = try p.parseString()
                try p.expect(UInt8(ascii: ":"))
                switch key {
                case "id":
                    id = try PointID(json: try p.parseValue())
                case "vector" where layout.named:
                    named = Array(repeating: nil, count: layout.count)
                    namedSparse = Array(repeating: nil, count: layout.sparse.count)
                    namedMulti = Array(repeating: nil, count: layout.multi.count)
                    guard p.peek() == UInt8(ascii: "{") else {
                        throw VQError.invalid("\"vector\" must be an object of named vectors (\(layout.namesText)), e.g. {\"\(layout.specs.first?.name ?? layout.sparse.first?.name ?? "name")\": ...}")
                    }
                    try p.expect(UInt8(ascii: "{"))
                    if !p.consume(UInt8(ascii: "}")) {
                        repeat {
                            let name = try p.parseString()
                            try p.expect(UInt8(ascii: ":"))
                            if case .sparse(let k) = try layout.ref(name) {
                                guard namedSparse[k] == nil else { throw VQError.invalid("\"vector\" names \"\(name)\" twice") }
                                namedSparse[k] = try SparseVector(json: try p.parseValue(), "vector \"\(name)\"")
                                continue
                            }
                            if case .multi(let k) = try layout.ref(name) {
                                guard namedMulti[k] == nil else { throw VQError.invalid("\"vector\" names \"\(name)\" twice") }
                                let dim = layout.multi[k].dim
                                guard case .array(let rows) = try p.parseValue(), !rows.isEmpty, rows.count <= MultiStore.maxVectors else {
                                    throw VQError.invalid("vector \"\(name)\" must be 1 to \(MultiStore.maxVectors) arrays of \(dim) numbers (a multi-vector)")
                                }
                                var flat: [Float] = []
                                for row in rows {
                                    guard let items = row.arrayValue, items.count == dim else {
                                        throw VQError.invalid("vector \"\(name)\" has a row that is not \(dim) numbers")
                                    }
                                    for e in items {
                                        guard let d = e.doubleValue, Float(d).isFinite else { throw VQError.invalid("vector \"\(name)\" has an element that is not a finite number") }
                                        flat.append(Float(d))
                                    }
                                }
                                namedMulti[k] = flat
                                continue
                            }
                            let k = try layout.index(name)
                            guard named[k] == nil else { throw VQError.invalid("\"vector\" names \"\(name)\" twice") }
                            guard p.peek() == UInt8(ascii: "[") else {
                                throw VQError.invalid("vector \"\(name)\" must be an array of \(layout[k].dim) numbers (sparse and multi-vectors are not supported)")
                            }
                            var v: [Float] = []
                            let n = try p.parseFloatArray(into: &v)
                            guard n == layout[k].dim else {
                                throw VQError.invalid("vector \"\(name)\" has \(dimensions(n)); the collection expects \(layout[k].dim)")
                            }
                            named[k] = v
                        } while p.consume(UInt8(ascii: ","))
                        try p.expect(UInt8(ascii: "}"))
                    }
                    sawVector = true
                case "vector":
                    guard p.peek() == UInt8(ascii: "[") else {
                        throw VQError.invalid("\"vector\" must be an array of \(dim) numbers")
                    }
                    let n = try p.parseFloatArray(into: &vectors)
                    guard n == dim else {
                        throw VQError.invalid("vector has \(dimensions(n)); the collection expects \(dim)")
                    }
                    sawVector = true
                case "payload":
                    let v = try p.parseValue()
                    switch v {
                    case .null: payload = nil
                    case .object: payload = JSONWriter.bytes(v)
                    default: throw VQError.invalid("\"payload\" is \(v.typeName); expected an object or null")
                    }
                case "shard_key", "order_value":
                    // A Qdrant export's: vq places points by id and orders scrolls by id.
                    _ = try p.parseValue()
                    if !ignoredKeys.contains(key) { ignoredKeys.append(key) }
                default:
                    throw VQError.invalid("unknown key \"\(key)\"; expected \"id\", \"vector\" and optionally \"payload\"")
                }
            } while p.consume(UInt8(ascii: ","))
            try p.expect(UInt8(ascii: "}"))
        }
        try p.expectEnd()
        guard let id else { throw VQError.invalid("missing \"id\"; expected an unsigned integer or a UUID string") }
        guard sawVector else {
            throw VQError.invalid(layout.named ? "missing \"vector\"; expected {name: [...]} of \(layout.namesText)"
                                  : "missing \"vector\"; expected an array of \(dim) numbers")
        }
        _ = before
        return InputPoint(id: id, payload: payload)
    }

    /// Parses the .npy header: little-endian float32, C order, two dimensions matching `dim`.
    private func readNpyHeader() throws {
        func bad(_ why: String) -> VQError { VQError.invalid("\(input.path) is not a usable .npy file: \(why)") }
        guard let prefix: [UInt8] = try input.nextBytes(10, { Array($0) }) else { throw bad("it is empty") }
        guard prefix[0] == 0x93, Array(prefix[1..<6]) == Array("NUMPY".utf8) else { throw bad("no NUMPY magic") }
        let major = prefix[6]
        var headerLength = Int(prefix[8]) | Int(prefix[9]) << 8
        if major >= 2 {
            guard let more: [UInt8] = try input.nextBytes(2, { Array($0) }) else { throw bad("truncated header") }
            headerLength |= Int(more[0]) << 16 | Int(more[1]) << 24
        }
        guard let header: String = try input.nextBytes(headerLength, { String(decoding: $0, as: UTF8.self) }) else {
            throw bad("truncated header")
        }
        let compact = header.filter { !$0.isWhitespace }
        guard compact.contains("'descr':'<f4'") || compact.contains("'descr':'|f4'") else {
            throw bad("dtype is not little-endian float32 ('<f4'); convert with array.astype('<f4')")
        }
        guard compact.contains("'fortran_order':False") else { throw bad("Fortran order; save a C-ordered array") }
        guard let open = compact.range(of: "'shape':("), let close = compact[open.upperBound...].firstIndex(of: ")") else {
            throw bad("no shape in header")
        }
        let dims = compact[open.upperBound..<close].split(separator: ",").compactMap { Int($0) }
        guard dims.count == 2 else { throw bad("shape has \(dims.count) dimensions; expected 2 (rows, dim)") }
        guard dims[1] == dim else {
            throw VQError.invalid("\(input.path) has \(dims[1])-dimensional vectors; the collection expects \(dim)")
        }
        npyRemaining = dims[0]
    }
}

/// Reads query vectors: JSONL lines with a "vector" (or a bare array), or .fvecs records.
package final class QueryReader {
    private let input: BlockReader
    private let fvecs: Bool
    package private(set) var recordNumber = 0

    package init(path: String) throws {
        input = try BlockReader(path: path)
        fvecs = PointFormat(path: path) == .fvecs
    }

    /// The next query vector; nil at the end.
    /// - Throws: `InputError` naming the line or record.
    package func next() throws -> [Float]? {
        recordNumber += 1
        if fvecs {
            guard let dim: Int = try input.nextBytes(4, { Int(Int32(littleEndian: $0.loadUnaligned(as: Int32.self))) }) else { return nil }
            guard dim > 0 && dim <= 65_536 else { throw InputError(line: recordNumber, unit: "record", message: "dimension \(dim) is out of range") }
            return try input.nextBytes(dim * 4) { raw in (0..<dim).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
        }
        while true {
            let line: [Float]?? = try input.nextLine { line -> [Float]? in
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return nil }
                do {
                    let json = try JSONParser.parse(Array(line))
                    let v = json.arrayValue ?? json["vector"]?.arrayValue
                    guard let v else { throw VQError.invalid("expected an object with a \"vector\" array, or an array") }
                    return try v.enumerated().map { i, e in
                        guard let d = e.doubleValue else { throw VQError.invalid("vector element \(i) is \(e.typeName); expected a number") }
                        return Float(d)
                    }
                } catch let e as JSONParseError {
                    throw InputError(line: recordNumber, unit: "line", message: "invalid JSON: \(e)")
                } catch let e as VQError {
                    throw InputError(line: recordNumber, unit: "line", message: e.message)
                }
            }
            guard let line else { return nil }
            if let v = line { return v }
            recordNumber += 1
        }
    }
}

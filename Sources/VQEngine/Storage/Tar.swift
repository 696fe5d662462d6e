// Snapshot archives: POSIX ustar, so `tar tf` lists one and `tar xf` unpacks it.
//
//   archive:  (header block, file bytes padded to 512)* , two zero blocks
//   header:   | name 100 | mode 8 | uid 8 | gid 8 | size 12 | mtime 12 | chksum 8 | type 1 |
//             | linkname 100 | magic "ustar\0" | version "00" | uname 32 | gname 32 |
//             | devmajor 8 | devminor 8 | prefix 155 | pad 12 |
//   numbers are octal text; a size of 8 GiB or more is base-256 (first byte 0x80), as GNU tar
//   writes it. Paths longer than 100 bytes split at a '/' into prefix and name.
//
// The writer streams files into `NAME.tmp` while it hashes what it writes (SHA-256), then
// fsyncs and renames: a snapshot that did not finish never appears under its name.
// The reader is for bytes from outside (an upload, a download, a file someone gave us): every
// header's checksum, type, size and path is checked before anything is written, paths may
// hold only plain names (no "..", no absolute paths, no links), and nothing lands outside the
// target directory.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a tar archive to a file, hashing it as it goes.
package final class TarWriter {
    package let path: String
    private let tmp: String
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var hasher = SHA256()
    private var written = 0
    private var finished = false
    private let mtime: Int

    private static let bufferBytes = 1 << 20

    /// Starts `path` (written as `path.tmp` until `finish`).
    /// - Throws: `.conflict` when `path` or `path.tmp` exists (another writer has the name).
    package init(path: String) throws {
        self.path = path
        tmp = path + ".tmp"
        guard !FileIO.exists(path) else { throw VQError(.conflict, "\(path) exists") }
        let fd = FileIO.openFD(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw errno == EEXIST ? VQError(.conflict, "\(tmp) exists") : ioError("create", tmp) }
        self.fd = fd
        mtime = Int(time(nil))
        buffer.reserveCapacity(TarWriter.bufferBytes)
    }

    deinit {
        if !finished {
            close(fd)
            FileIO.remove(tmp)
        }
    }

    /// Adds a directory entry.
    package func addDirectory(_ name: String) throws {
        try emit(try header(name: name.hasSuffix("/") ? name : name + "/", size: 0, type: 0x35, mode: 0o755))
    }

    /// Adds a file holding `contents`.
    package func addFile(_ name: String, contents: [UInt8]) throws {
        try emit(try header(name: name, size: contents.count, type: 0x30, mode: 0o644))
        try emit(contents)
        try pad(contents.count)
    }

    /// Adds the file at `source`, streamed.
    /// - Throws: `.io` when it cannot be read or changes length while read.
    package func addFile(_ name: String, from source: String) throws {
        let src = FileIO.openFD(source, O_RDONLY | O_CLOEXEC)
        guard src >= 0 else { throw ioError("open", source) }
        defer { close(src) }
        var st = stat()
        guard fstat(src, &st) == 0 else { throw ioError("stat", source) }
        let size = Int(st.st_size)
        try emit(try header(name: name, size: size, type: 0x30, mode: 0o644))
        try flushBuffer()
        var chunk = [UInt8](repeating: 0, count: TarWriter.bufferBytes)
        var done = 0
        while done < size {
            let want = min(chunk.count, size - done)
            let n = try chunk.withUnsafeMutableBytes { try FileIO.readFull(src, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]), at: done, path: source) }
            if n == 0 { throw VQError(.io, "\(source) became shorter while it was copied into \(path)") }
            try chunk.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            done += n
        }
        try pad(size)
    }

    /// Ends the archive, makes it durable and gives it its name.
    /// - Returns: its size in bytes and SHA-256 (hex).
    package func finish() throws -> (size: Int, sha256: String) {
        try emit([UInt8](repeating: 0, count: 1024))
        try flushBuffer()
        try FileIO.sync(fd, path: tmp)
        close(fd)
        finished = true
        guard rename(tmp, path) == 0 else {
            FileIO.remove(tmp)
            throw ioError("rename", tmp)
        }
        try FileIO.syncDirectory(FileIO.directoryOf(path))
        return (written, hasher.finalizeHex())
    }

    private func pad(_ size: Int) throws {
        let rest = (512 - size % 512) % 512
        if rest > 0 { try emit([UInt8](repeating: 0, count: rest)) }
    }

    private func emit(_ bytes: [UInt8]) throws {
        if buffer.count + bytes.count > TarWriter.bufferBytes { try flushBuffer() }
        if bytes.count >= TarWriter.bufferBytes {
            try bytes.withUnsafeBytes { try write($0) }
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    private func flushBuffer() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try write($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func write(_ bytes: UnsafeRawBufferPointer) throws {
        hasher.update(bytes)
        try FileIO.writeAll(fd, bytes, path: tmp)
        written += bytes.count
    }

    private func header(name: String, size: Int, type: UInt8, mode: Int) throws -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        let (prefix, base) = try TarWriter.split(name)
        func put(_ offset: Int, _ text: [UInt8]) { for (i, b) in text.enumerated() { h[offset + i] = b } }
        func octal(_ offset: Int, _ width: Int, _ value: Int) {
            let digits = Array(String(value, radix: 8).utf8)
            put(offset, [UInt8](repeating: 0x30, count: width - 1 - digits.count) + digits)
        }
        put(0, Array(base.utf8))
        octal(100, 8, mode)
        octal(108, 8, 0)
        octal(116, 8, 0)
        if size < 1 << 33 {
            octal(124, 12, size)
        } else {
            h[124] = 0x80
            for i in 0..<8 { h[135 - i] = UInt8(truncatingIfNeeded: size >> (8 * i)) }
        }
        octal(136, 12, mtime)
        h[156] = type
        put(257, Array("ustar".utf8) + [0, 0x30, 0x30])
        put(345, Array(prefix.utf8))
        for i in 148..<156 { h[i] = 0x20 }
        let sum = h.reduce(0) { $0 + Int($1) }
        let digits = Array(String(sum, radix: 8).utf8)
        put(148, [UInt8](repeating: 0x30, count: 6 - digits.count) + digits + [0, 0x20])
        return h
    }

    /// ustar's split of a long path into prefix (at most 155 bytes) and name (at most 100).
    private static func split(_ name: String) throws -> (prefix: String, name: String) {
        let bytes = Array(name.utf8)
        if bytes.count <= 100 { return ("", name) }
        for i in stride(from: min(bytes.count - 1, 155), to: 0, by: -1) where bytes[i] == 0x2F && bytes.count - i - 1 <= 100 {
            return (String(decoding: bytes[..<i], as: UTF8.self), String(decoding: bytes[(i + 1)...], as: UTF8.self))
        }
        throw VQError(.internal, "path \(name) is too long for a tar header")
    }
}

/// Unpacks a tar archive from outside, checking everything.
package enum TarReader {
    /// The most entries an archive may hold.
    package static let maxEntries = 1_000_000

    /// Unpacks the archive at `path` into the directory `target` (which must be empty or absent).
    /// - Returns: the relative paths of the files it held, in archive order.
    /// - Throws: `.invalidInput` naming the entry and what was wrong (a damaged or foreign
    ///   archive); `.io` when the disk refuses.
    package static func extract(_ path: String, into target: String, what: String) throws -> [String] {
        let fd = FileIO.openFD(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("open", path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ioError("stat", path) }
        let total = Int(st.st_size)
        try FileIO.makeDirectories(target)
        func bad(_ message: String) -> VQError {
            VQError.invalid("\(what): \(message); expected a vq snapshot (a tar archive made by vq snapshot create)")
        }
        var offset = 0
        var files: [String] = []
        var seen = Set<String>()
        var block = [UInt8](repeating: 0, count: 512)
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            guard offset + 512 <= total else {
                throw bad(offset == 0 ? "it is empty" : "it ends at byte \(total) without the end-of-archive blocks (truncated)")
            }
            try readExactly(fd, &block, at: offset, path: path)
            offset += 512
            if block.allSatisfy({ $0 == 0 }) { break }
            guard seen.count < maxEntries else { throw bad("it holds more than \(maxEntries) entries") }
            // Header checksum: the sum of its bytes with the checksum field counted as spaces.
            var sum = 0
            for (i, b) in block.enumerated() { sum += (148..<156).contains(i) ? 0x20 : Int(b) }
            guard let stored = octal(block[148..<156]), stored == sum else {
                throw bad("the header at byte \(offset - 512) has a wrong checksum")
            }
            guard block[257..<262].elementsEqual("ustar".utf8) else { throw bad("the header at byte \(offset - 512) is not a ustar header") }
            let name = cString(block[0..<100])
            let prefix = cString(block[345..<500])
            let full = prefix.isEmpty ? name : prefix + "/" + name
            let isDirectory = block[156] == 0x35
            guard block[156] == 0x30 || block[156] == 0 || isDirectory else {
                throw bad("entry \"\(full)\" is of tar type '\(Character(Unicode.Scalar(block[156])))'; only files and directories are expected")
            }
            guard let size = sizeField(block[124..<136]), size >= 0 else { throw bad("entry \"\(full)\" has an unreadable size") }
            let relative = try checkedPath(full, isDirectory: isDirectory, bad: bad)
            guard seen.insert(relative).inserted else { throw bad("entry \"\(relative)\" appears twice") }
            if isDirectory {
                // A directory's data would otherwise be read as the next headers.
                guard size == 0 else { throw bad("directory \"\(relative)\" claims \(size) bytes of data") }
                try FileIO.makeDirectories(target + "/" + relative)
                continue
            }
            // Checked before any arithmetic on it: a base-256 size can be near Int.max.
            guard size <= total - offset, case let padded = size + (512 - size % 512) % 512, padded <= total - offset else {
                throw bad("entry \"\(relative)\" claims \(size) bytes but the archive ends \(total - offset) bytes later (truncated)")
            }
            let dest = target + "/" + relative
            try FileIO.makeDirectories(FileIO.directoryOf(dest))
            let out = FileIO.openFD(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard out >= 0 else { throw ioError("create", dest) }
            defer { close(out) }
            var done = 0
            while done < size {
                let n = min(chunk.count, size - done)
                try readExactly(fd, &chunk, count: n, at: offset + done, path: path)
                try chunk.withUnsafeBytes { try FileIO.writeAll(out, UnsafeRawBufferPointer(rebasing: $0[0..<n]), path: dest) }
                done += n
            }
            try FileIO.sync(out, path: dest)
            offset += padded
            files.append(relative)
        }
        return files
    }

    /// `full` as a relative path of plain names ([A-Za-z0-9._-], not "." or ".."), at most 16 deep.
    private static func checkedPath(_ full: String, isDirectory: Bool, bad: (String) -> VQError) throws -> String {
        var parts = full.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if isDirectory && parts.last == "" { parts.removeLast() }
        if parts.first == "." { parts.removeFirst() }
        let ok = !parts.isEmpty && parts.count <= 16 && parts.allSatisfy { part in
            !part.isEmpty && part != "." && part != ".." && part.utf8.count <= 255 && part.utf8.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E
            }
        }
        guard ok else { throw bad("entry \"\(full)\" is not a plain relative path") }
        return parts.joined(separator: "/")
    }

    private static func cString(_ field: ArraySlice<UInt8>) -> String {
        String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
    }

    private static func octal(_ field: ArraySlice<UInt8>) -> Int? {
        var value = 0
        var any = false
        for b in field {
            if b == 0 || b == 0x20 { if any { break } else { continue } }
            guard b >= 0x30 && b <= 0x37 else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 8)
            guard !o1 else { return nil }
            value = m + Int(b - 0x30)
            any = true
        }
        return any ? value : nil
    }

    private static func sizeField(_ field: ArraySlice<UInt8>) -> Int? {
        guard let first = field.first else { return nil }
        if first & 0x80 == 0 { return octal(field) }
        // Base-256: the rest is a big-endian number (a leading 0xFF would be negative).
        guard first == 0x80 else { return nil }
        var value = 0
        for b in field.dropFirst() {
            let (m, o) = value.multipliedReportingOverflow(by: 256)
            guard !o else { return nil }
            value = m | Int(b)
        }
        return value
    }

    private static func readExactly(_ fd: Int32, _ buffer: inout [UInt8], count: Int? = nil, at offset: Int, path: String) throws {
        let want = count ?? buffer.count
        let done = try buffer.withUnsafeMutableBytes { try FileIO.readFull(fd, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]), at: offset, path: path) }
        if done < want { throw VQError.invalid("\(path) ends early, at byte \(offset + done)") }
    }
}

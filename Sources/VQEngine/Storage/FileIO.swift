// Small POSIX file helpers: whole-file reads, atomic replacement, directory fsync.
//
// Every file that is replaced is written to `NAME.tmp`, fsynced, renamed over
// `NAME`, and its directory fsynced, so a crash leaves the old or the new file,
// never a mix.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

package enum FileIO {
    /// open(2), for types whose own `open` would shadow it.
    package static func openFD(_ path: String, _ flags: Int32, _ mode: mode_t = 0o644) -> Int32 {
        open(path, flags, mode)
    }

    package static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    package static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// `mkdir -p`.
    package static func makeDirectories(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw VQError(.io, "cannot create directory \(path): \(error.localizedDescription)")
        }
    }

    /// The names in a directory (not `.` or `..`), sorted; empty if it does not exist.
    package static func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    package static func readAll(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("open", path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ioError("stat", path) }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        let done = try out.withUnsafeMutableBytes { try readFull(fd, into: $0, at: 0, path: path) }
        if done < out.count { out.removeLast(out.count - done) }
        return out
    }

    /// Reads from `offset` into `buffer` until it is full or the file ends, retrying short reads
    /// and interrupted calls. - Returns: the bytes read (fewer than the buffer only at the end).
    package static func readFull(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 { if errno == EINTR { continue }; throw ioError("read", path) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes all of `bytes` at the file's current offset, retrying short writes.
    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 { if errno == EINTR { continue }; throw ioError("write", path) }
            done += n
        }
    }

    /// Writes all of `bytes` at `offset`, retrying short writes.
    package static func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 { if errno == EINTR { continue }; throw ioError("write", path) }
            done += n
        }
    }

    /// Flushes a file's data to stable storage.
    package static func sync(_ fd: Int32, path: String) throws {
        #if os(Linux)
        let rc = fdatasync(fd)
        #else
        let rc = fsync(fd)
        #endif
        if rc != 0 { throw ioError("fsync", path) }
    }

    /// fsyncs every directory under `path` and `path` itself, deepest first: the entries of a
    /// tree written file by file (each file synced as written) are on disk before it is renamed
    /// into place.
    package static func syncTree(_ path: String) throws {
        for entry in list(path) where isDirectory(path + "/" + entry) { try syncTree(path + "/" + entry) }
        try syncDirectory(path)
    }

    /// Makes a directory's entries (creations, renames, removals) durable.
    package static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("open directory", path) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw ioError("fsync directory", path) }
    }

    /// Replaces `path` with `bytes` atomically and durably.
    /// - Parameter mode: the new file's permissions (0o600 for secrets: never readable by others,
    ///   not even between create and rename).
    package static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let tmp = path + ".tmp"
        remove(tmp)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ioError("create", tmp) }
        do {
            try bytes.withUnsafeBytes { raw in try writeAll(fd, raw, path: tmp) }
            try sync(fd, path: tmp)
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        guard rename(tmp, path) == 0 else { throw ioError("rename", tmp) }
        try syncDirectory(directoryOf(path))
    }

    package static func directoryOf(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    package static func remove(_ path: String) {
        unlink(path)
    }

    /// Renames `from` to `to` (same file system; a directory to a name that does not exist).
    package static func move(_ from: String, to: String) throws {
        guard rename(from, to) == 0 else { throw ioError("rename", from) }
    }

    /// `rm -rf`.
    package static func removeTree(_ path: String) throws {
        guard exists(path) else { return }
        do { try FileManager.default.removeItem(atPath: path) } catch {
            throw VQError(.io, "cannot remove \(path): \(error.localizedDescription)")
        }
    }

    package static func fileSize(_ path: String) -> Int? {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : nil
    }

    /// Bytes an unprivileged writer may still use on the file system holding `path`, and its
    /// size; nil when it cannot be asked.
    /// Free bytes this process keeps on a disk of `total` bytes for its own writes (WALs,
    /// flushes) when it takes in copies, snapshots and downloads: 1%, at least 64 MiB.
    package static func reserve(total: Int) -> Int { max(64 << 20, total / 100) }

    package static func space(_ path: String) -> (free: Int, total: Int)? {
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else { return nil }
        let unit = Int(fs.f_frsize)
        return (Int(fs.f_bavail) * unit, Int(fs.f_blocks) * unit)
    }
}

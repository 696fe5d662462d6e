// Little-endian binary encoding for WAL records, file headers and peer messages.
//
// ByteReader reads bytes that may come from a damaged file or a hostile peer: every read
// checks the remaining length first, and callers check a claimed count against `remaining`
// (with overflow-checked arithmetic) before they allocate for it.

/// Appends little-endian integers and byte strings to a buffer.
package struct ByteWriter {
    package var bytes: [UInt8] = []

    package init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    @inline(__always)
    package mutating func u8(_ v: UInt8) { bytes.append(v) }

    @inline(__always)
    package mutating func u32(_ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    package mutating func u64(_ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A length-prefixed (u32) byte string.
    package mutating func blob(_ b: [UInt8]) {
        u32(UInt32(b.count))
        bytes.append(contentsOf: b)
    }

    package mutating func floats(_ f: UnsafeBufferPointer<Float>) {
        bytes.append(contentsOf: UnsafeRawBufferPointer(f))
    }
}

/// Reads what `ByteWriter` wrote; every read checks the remaining length.
package struct ByteReader {
    private let bytes: UnsafeRawBufferPointer
    package private(set) var offset = 0

    package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    package var remaining: Int { bytes.count - offset }

    private mutating func need(_ n: Int) throws {
        if n < 0 || remaining < n { throw VQError(.corrupt, "record ends early: needed \(n) bytes, \(remaining) left") }
    }

    package mutating func u8() throws -> UInt8 {
        try need(1)
        defer { offset += 1 }
        return bytes[offset]
    }

    package mutating func u32() throws -> UInt32 {
        try need(4)
        defer { offset += 4 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    package mutating func u64() throws -> UInt64 {
        try need(8)
        defer { offset += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    package mutating func blob() throws -> [UInt8] {
        try rawBlob(Int(try u32()))
    }

    /// The next `n` bytes.
    package mutating func rawBlob(_ n: Int) throws -> [UInt8] {
        try need(n)
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    package mutating func floats(_ count: Int, into out: inout [Float]) throws {
        let (size, overflow) = count.multipliedReportingOverflow(by: 4)
        if overflow || count < 0 { throw VQError(.corrupt, "record claims \(count) floats") }
        try need(size)
        guard count > 0 else { return }
        let old = out.count
        out.append(contentsOf: repeatElement(0, count: count))
        let src = bytes.baseAddress! + offset
        out.withUnsafeMutableBytes { dst in
            (dst.baseAddress! + old * 4).copyMemory(from: src, byteCount: count * 4)
        }
        offset += count * 4
    }
}

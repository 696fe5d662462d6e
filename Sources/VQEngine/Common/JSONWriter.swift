/// Writes JSON compactly into a byte buffer.
package struct JSONWriter {
    package var bytes: [UInt8] = []

    package init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// The compact text of `value`.
    package static func string(_ value: JSON) -> String {
        var w = JSONWriter()
        w.write(value)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    /// The compact UTF-8 bytes of `value`.
    package static func bytes(_ value: JSON) -> [UInt8] {
        var w = JSONWriter()
        w.write(value)
        return w.bytes
    }

    package mutating func write(_ value: JSON) {
        switch value {
        case .null: raw("null")
        case .bool(let b): raw(b ? "true" : "false")
        case .int(let v): raw(String(v))
        case .uint(let v): raw(String(v))
        case .double(let v): writeDouble(v)
        case .string(let s): writeString(s)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                write(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                writeString(k)
                bytes.append(UInt8(ascii: ":"))
                write(v)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    package mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

    /// Doubles print in their shortest round-trip form; non-finite values (never parsed) print as null.
    package mutating func writeDouble(_ v: Double) {
        guard v.isFinite else { raw("null"); return }
        raw(v.description)
    }

    /// A float score in its shortest round-trip form.
    package mutating func writeFloat(_ v: Float) {
        guard v.isFinite else { raw("null"); return }
        raw(v.description)
    }

    package mutating func writeString(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                raw("\\u00")
                bytes.append(hex[Int(c >> 4)])
                bytes.append(hex[Int(c & 0xF)])
            default: bytes.append(c)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

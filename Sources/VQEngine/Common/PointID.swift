// Point ids, as Qdrant has them: an unsigned 64-bit integer or a UUID.

/// A point's external id: a `UInt64` or a UUID, never both.
///
/// The string "42" is not an id: Qdrant accepts numbers as JSON numbers only,
/// and UUID strings in any case, printed back lowercase and hyphenated.
package enum PointID: Hashable, Sendable, Comparable, CustomStringConvertible {
    case number(UInt64)
    case uuid(UInt64, UInt64)

    /// Parses a UUID in its 36-character hyphenated form (any case), or 32 hex digits.
    package init?(uuidString s: String) {
        var hex: [UInt8] = []
        hex.reserveCapacity(32)
        let utf8 = Array(s.utf8)
        if utf8.count == 36 {
            for (i, c) in utf8.enumerated() {
                if i == 8 || i == 13 || i == 18 || i == 23 {
                    if c != UInt8(ascii: "-") { return nil }
                } else { hex.append(c) }
            }
        } else if utf8.count == 32 {
            hex = utf8
        } else {
            return nil
        }
        var hi: UInt64 = 0, lo: UInt64 = 0
        for (i, c) in hex.enumerated() {
            guard let v = PointID.hexValue(c) else { return nil }
            if i < 16 { hi = hi << 4 | UInt64(v) } else { lo = lo << 4 | UInt64(v) }
        }
        self = .uuid(hi, lo)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// The id as Qdrant prints it: a number, or a lowercase hyphenated UUID.
    package var description: String {
        switch self {
        case .number(let n): return String(n)
        case .uuid(let hi, let lo):
            let digits = Array("0123456789abcdef".utf8)
            var out: [UInt8] = []
            out.reserveCapacity(36)
            for i in 0..<32 {
                if i == 8 || i == 12 || i == 16 || i == 20 { out.append(UInt8(ascii: "-")) }
                let word = i < 16 ? hi : lo
                let shift = UInt64((15 - i % 16) * 4)
                out.append(digits[Int((word >> shift) & 0xF)])
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// The id as a JSON value: a number or a string.
    package var json: JSON {
        switch self {
        case .number(let n): return n <= UInt64(Int64.max) ? .int(Int64(n)) : .uint(n)
        case .uuid: return .string(description)
        }
    }

    /// Reads an id from JSON: a non-negative integer or a UUID string.
    /// - Throws: `VQError.invalidInput` naming the value and what was expected.
    package init(json: JSON) throws {
        switch json {
        case .int(let v) where v >= 0: self = .number(UInt64(v))
        case .uint(let v): self = .number(v)
        case .string(let s):
            guard let id = PointID(uuidString: s) else {
                throw VQError.invalid("point id \"\(s)\" is not a UUID; expected an unsigned integer or a UUID string")
            }
            self = id
        default:
            throw VQError.invalid("point id \(json.compactText) is invalid; expected an unsigned integer or a UUID string")
        }
    }

    /// A stable 64-bit hash (independent of Swift's per-process seeded hashing), for shard routing.
    package var stableHash: UInt64 {
        switch self {
        case .number(let n): return mix64(n)
        case .uuid(let hi, let lo): return mix64(hi ^ mix64(lo))
        }
    }

    package static func < (a: PointID, b: PointID) -> Bool {
        switch (a, b) {
        case (.number(let x), .number(let y)): return x < y
        case (.number, .uuid): return true
        case (.uuid, .number): return false
        case (.uuid(let a1, let a2), .uuid(let b1, let b2)): return (a1, a2) < (b1, b2)
        }
    }
}

/// SplitMix64's finaliser: a fixed, well-mixed 64-bit permutation.
@inline(__always)
package func mix64(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

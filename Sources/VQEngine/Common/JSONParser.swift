#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a JSON text did not parse, and where (a byte offset into the input).
package struct JSONParseError: Error, CustomStringConvertible, Sendable {
    package var offset: Int
    package var message: String
    package var description: String { "\(message) at byte \(offset + 1)" }
}

/// A strict RFC 8259 parser over bytes.
///
/// Rejects trailing commas, comments, NaN/Infinity, leading zeros, unescaped
/// control characters and nesting deeper than `maxDepth`. Besides whole values
/// it exposes the pieces (`expect`, `parseString`, `parseFloatArray`) so hot
/// decoders, such as the JSONL point reader, can skip building a `JSON` tree.
package struct JSONParser: ~Copyable {
    private let base: UnsafeBufferPointer<UInt8>
    package private(set) var position = 0
    package var maxDepth = 128
    /// Fractional numbers with up to 19 significant digits take the fast path (one multiply or
    /// divide by an exact power of ten): within one unit in the last place of a Double, not always
    /// the nearest. For request bodies, whose long number arrays are float32 vectors; stored
    /// documents keep exact rounding.
    package var fastDoubles = false
    private var depth = 0

    package init(_ buffer: UnsafeBufferPointer<UInt8>) { base = buffer }

    /// Parses a whole document: one value and nothing but whitespace after it.
    package static func parse(_ bytes: [UInt8]) throws -> JSON {
        try bytes.withUnsafeBufferPointer { (buf) throws -> JSON in
            var p = JSONParser(buf)
            let v = try p.parseValue()
            try p.expectEnd()
            return v
        }
    }

    package static func parse(_ text: String) throws -> JSON {
        try parse(Array(text.utf8))
    }

    /// Parses a request body: like `parse`, with `fastDoubles`.
    package static func parseRequest(_ bytes: [UInt8]) throws -> JSON {
        try bytes.withUnsafeBufferPointer { buf -> JSON in
            var p = JSONParser(buf)
            p.fastDoubles = true
            let v = try p.parseValue()
            try p.expectEnd()
            return v
        }
    }

    // MARK: pieces

    package var atEnd: Bool { position >= base.count }

    package func error(_ message: String) -> JSONParseError {
        JSONParseError(offset: position, message: message)
    }

    @inline(__always)
    package mutating func skipWhitespace() {
        while position < base.count {
            let c = base[position]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { position += 1 } else { break }
        }
    }

    /// The next non-whitespace byte, not consumed; nil at the end.
    package mutating func peek() -> UInt8? {
        skipWhitespace()
        return position < base.count ? base[position] : nil
    }

    /// Consumes `byte` (after whitespace) or throws naming what was found.
    package mutating func expect(_ byte: UInt8) throws {
        skipWhitespace()
        guard position < base.count else { throw error("expected '\(Character(Unicode.Scalar(byte)))' but the input ended") }
        guard base[position] == byte else {
            throw error("expected '\(Character(Unicode.Scalar(byte)))' but found '\(Character(Unicode.Scalar(base[position])))'")
        }
        position += 1
    }

    /// Consumes `byte` if it is next (after whitespace).
    package mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        if position < base.count && base[position] == byte { position += 1; return true }
        return false
    }

    package mutating func expectEnd() throws {
        skipWhitespace()
        if position < base.count { throw error("unexpected text after the JSON value") }
    }

    // MARK: values

    package mutating func parseValue() throws -> JSON {
        skipWhitespace()
        guard position < base.count else { throw error("expected a JSON value but the input ended") }
        switch base[position] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character '\(Character(Unicode.Scalar(base[position])))'; expected a JSON value")
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard position + n <= base.count else { throw error("invalid literal") }
        let p = word.utf8Start
        for i in 0..<n where base[position + i] != p[i] { throw error("invalid literal") }
        position += n
    }

    private mutating func enter() throws {
        depth += 1
        if depth > maxDepth { throw error("JSON nested deeper than \(maxDepth) levels") }
    }

    private mutating func parseObject() throws -> JSON {
        try enter()
        defer { depth -= 1 }
        position += 1
        var members: [(String, JSON)] = []
        if consume(UInt8(ascii: "}")) { return .object(members) }
        while true {
            skipWhitespace()
            guard position < base.count, base[position] == UInt8(ascii: "\"") else { throw error("expected a string key in object") }
            let key = try parseString()
            try expect(UInt8(ascii: ":"))
            let value = try parseValue()
            members.append((key, value))
            if consume(UInt8(ascii: ",")) { continue }
            try expect(UInt8(ascii: "}"))
            return .object(members)
        }
    }

    private mutating func parseArray() throws -> JSON {
        try enter()
        defer { depth -= 1 }
        position += 1
        var items: [JSON] = []
        if consume(UInt8(ascii: "]")) { return .array(items) }
        while true {
            items.append(try parseValue())
            if consume(UInt8(ascii: ",")) { continue }
            try expect(UInt8(ascii: "]"))
            return .array(items)
        }
    }

    /// Parses a string starting at the opening quote (after whitespace).
    package mutating func parseString() throws -> String {
        skipWhitespace()
        guard position < base.count, base[position] == UInt8(ascii: "\"") else { throw error("expected a string") }
        position += 1
        let start = position
        // Fast path: no escapes.
        while position < base.count {
            let c = base[position]
            if c == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: base[start..<position]), as: UTF8.self)
                position += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw error("unescaped control character in string") }
            position += 1
        }
        var out = Array(base[start..<position])
        while position < base.count {
            let c = base[position]
            position += 1
            if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            if c < 0x20 { position -= 1; throw error("unescaped control character in string") }
            if c != UInt8(ascii: "\\") { out.append(c); continue }
            guard position < base.count else { break }
            let e = base[position]
            position += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    guard position + 1 < base.count, base[position] == UInt8(ascii: "\\"), base[position + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired UTF-16 surrogate in string")
                    }
                    position += 2
                    let low = try hex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw error("unpaired UTF-16 surrogate in string") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    throw error("unpaired UTF-16 surrogate in string")
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid unicode escape") }
                out.append(contentsOf: String(Character(u)).utf8)
            default:
                position -= 1
                throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))' in string")
            }
        }
        throw error("unterminated string")
    }

    private mutating func hex4() throws -> UInt32 {
        guard position + 4 <= base.count else { throw error("truncated unicode escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = base[position]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("invalid hex digit in unicode escape")
            }
            v = v << 4 | d
            position += 1
        }
        return v
    }

    // MARK: numbers

    /// The pieces of a decimal number as scanned: sign, up to 19 significant digits, power of ten.
    private struct Decimal {
        var negative = false
        var mantissa: UInt64 = 0
        var exponent = 0
        var isInteger = true
        var digitsDropped = false
        var start = 0
        var end = 0
    }

    private mutating func scanNumber() throws -> Decimal {
        var d = Decimal()
        d.start = position
        if position < base.count && base[position] == UInt8(ascii: "-") { d.negative = true; position += 1 }
        guard position < base.count, base[position] &- 0x30 < 10 else { throw error("invalid number") }
        var significant = 0
        if base[position] == UInt8(ascii: "0") {
            position += 1
            if position < base.count && base[position] &- 0x30 < 10 { throw error("invalid number: leading zero") }
        } else {
            while position < base.count {
                let digit = base[position] &- 0x30
                if digit >= 10 { break }
                if significant < 19 {
                    d.mantissa = d.mantissa &* 10 &+ UInt64(digit)
                    if d.mantissa != 0 { significant += 1 }
                } else {
                    d.exponent += 1
                    d.digitsDropped = true
                }
                position += 1
            }
        }
        if position < base.count && base[position] == UInt8(ascii: ".") {
            d.isInteger = false
            position += 1
            guard position < base.count, base[position] &- 0x30 < 10 else { throw error("invalid number: expected a digit after '.'") }
            while position < base.count {
                let digit = base[position] &- 0x30
                if digit >= 10 { break }
                if significant < 19 {
                    d.mantissa = d.mantissa &* 10 &+ UInt64(digit)
                    d.exponent -= 1
                    if d.mantissa != 0 { significant += 1 }
                } else {
                    d.digitsDropped = true
                }
                position += 1
            }
        }
        if position < base.count && (base[position] == UInt8(ascii: "e") || base[position] == UInt8(ascii: "E")) {
            d.isInteger = false
            position += 1
            var expNegative = false
            if position < base.count && (base[position] == UInt8(ascii: "+") || base[position] == UInt8(ascii: "-")) {
                expNegative = base[position] == UInt8(ascii: "-")
                position += 1
            }
            guard position < base.count, base[position] &- 0x30 < 10 else { throw error("invalid number: expected a digit in the exponent") }
            var e = 0
            while position < base.count {
                let digit = base[position] &- 0x30
                if digit >= 10 { break }
                if e < 100_000 { e = e * 10 + Int(digit) }
                position += 1
            }
            d.exponent += expNegative ? -e : e
        }
        d.end = position
        return d
    }

    private static let powersOfTen: [Double] = (0...22).map { i in
        var p = 1.0
        for _ in 0..<i { p *= 10 }
        return p
    }

    /// Exact when the mantissa has at most 15 digits and the power is small (Clinger's fast path);
    /// otherwise falls back to `strtod` on the original text, which is correctly rounded.
    private func exactDouble(_ d: Decimal) -> Double {
        if !d.digitsDropped && d.mantissa < (1 << 53) && abs(d.exponent) <= 22 {
            let m = Double(d.mantissa)
            let v = d.exponent >= 0 ? m * JSONParser.powersOfTen[d.exponent] : m / JSONParser.powersOfTen[-d.exponent]
            return d.negative ? -v : v
        }
        var text = Array(base[d.start..<d.end])
        text.append(0)
        return text.withUnsafeBufferPointer { strtod(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), nil) }
    }

    package mutating func parseNumber() throws -> JSON {
        let d = try scanNumber()
        if d.isInteger && !d.digitsDropped {
            if d.negative {
                if d.mantissa <= UInt64(Int64.max) { return .int(-Int64(d.mantissa)) }
                if d.mantissa == UInt64(Int64.max) + 1 { return .int(Int64.min) }
            } else {
                if d.mantissa <= UInt64(Int64.max) { return .int(Int64(d.mantissa)) }
                return .uint(d.mantissa)
            }
        }
        if d.isInteger && d.digitsDropped && !d.negative {
            // 20+ digit integers: exact only if it still fits UInt64.
            let text = String(decoding: UnsafeBufferPointer(rebasing: base[d.start..<d.end]), as: UTF8.self)
            if let v = UInt64(text) { return .uint(v) }
        }
        var v: Double
        if fastDoubles && abs(d.exponent) <= 22 {
            let m = Double(d.mantissa)
            v = d.exponent >= 0 ? m * JSONParser.powersOfTen[d.exponent] : m / JSONParser.powersOfTen[-d.exponent]
            if d.negative { v = -v }
        } else {
            v = exactDouble(d)
        }
        guard v.isFinite else {
            throw JSONParseError(offset: d.start, message: "number is out of range")
        }
        return .double(v)
    }

    /// The value of eight ASCII digits packed little-endian in `chunk`, or nil if any byte is not a digit.
    @inline(__always)
    static func eightDigits(_ chunk: UInt64) -> UInt64? {
        let allDigits = (chunk & 0xF0F0_F0F0_F0F0_F0F0) | (((chunk &+ 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4)
        guard allDigits == 0x3333_3333_3333_3333 else { return nil }
        var x = chunk &- 0x3030_3030_3030_3030
        x = (x &* 10) &+ (x >> 8)
        x = (((x & 0x0000_00FF_0000_00FF) &* (100 &+ (1_000_000 << 32)))
            &+ (((x >> 16) & 0x0000_00FF_0000_00FF) &* (1 &+ (10_000 << 32)))) >> 32
        return x
    }

    /// Parses `[n, n, ...]` appending each number as a `Float` to `out`.
    ///
    /// The hot path of JSONL ingest: one pass over raw bytes per number, the
    /// mantissa in a `UInt64` (19 significant digits), one multiply or divide by
    /// an exact power of ten, and strict JSON number syntax. Exact for up to 15
    /// digits; with more, the Double can be one unit in its last place off before
    /// rounding to Float, which changes the Float only in rare halfway cases.
    /// - Returns: the number of elements read.
    /// - Throws: on anything but numbers, naming the element's index; on values that overflow `Float`.
    package mutating func parseFloatArray(into out: inout [Float]) throws -> Int {
        try expect(UInt8(ascii: "["))
        if consume(UInt8(ascii: "]")) { return 0 }
        let bytes = base.baseAddress!
        let count = base.count
        var n = 0
        var i = position
        @inline(__always) func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }
        while true {
            while i < count && isSpace(bytes[i]) { i += 1 }
            let start = i
            var negative = false
            if i < count && bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 }
            guard i < count, bytes[i] &- 0x30 < 10 else {
                position = start
                throw error("vector element \(n) is not a number")
            }
            var mantissa: UInt64 = 0
            var significant = 0
            var exponent = 0
            if bytes[i] == UInt8(ascii: "0") {
                i += 1
                if i < count && bytes[i] &- 0x30 < 10 { position = i; throw error("invalid number: leading zero") }
            } else {
                while i < count {
                    let d = bytes[i] &- 0x30
                    if d >= 10 { break }
                    if significant < 19 { mantissa = mantissa &* 10 &+ UInt64(d); significant += 1 } else { exponent += 1 }
                    i += 1
                }
            }
            if i < count && bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard i < count, bytes[i] &- 0x30 < 10 else { position = i; throw error("invalid number: expected a digit after '.'") }
                if mantissa == 0 {
                    while i < count && bytes[i] == UInt8(ascii: "0") { exponent -= 1; i += 1 }
                }
                // Eight digits at a time while they fit the 19-digit mantissa.
                while significant <= 11 && i + 8 <= count {
                    let chunk = UnsafeRawPointer(bytes + i).loadUnaligned(as: UInt64.self).littleEndian
                    guard let value = JSONParser.eightDigits(chunk) else { break }
                    mantissa = mantissa &* 100_000_000 &+ value
                    significant += 8
                    exponent -= 8
                    i += 8
                }
                while i < count {
                    let d = bytes[i] &- 0x30
                    if d >= 10 { break }
                    if significant < 19 {
                        mantissa = mantissa &* 10 &+ UInt64(d)
                        exponent -= 1
                        if mantissa != 0 { significant += 1 }
                    }
                    i += 1
                }
            }
            if i < count && (bytes[i] | 0x20) == UInt8(ascii: "e") {
                i += 1
                var expNegative = false
                if i < count && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) {
                    expNegative = bytes[i] == UInt8(ascii: "-")
                    i += 1
                }
                guard i < count, bytes[i] &- 0x30 < 10 else { position = i; throw error("invalid number: expected a digit in the exponent") }
                var e = 0
                while i < count {
                    let d = bytes[i] &- 0x30
                    if d >= 10 { break }
                    if e < 100_000 { e = e * 10 + Int(d) }
                    i += 1
                }
                exponent += expNegative ? -e : e
            }
            var v: Double
            if mantissa == 0 {
                v = 0
            } else if exponent >= -22 && exponent <= 22 {
                let m = Double(mantissa)
                v = exponent >= 0 ? m * JSONParser.powersOfTen[exponent] : m / JSONParser.powersOfTen[-exponent]
            } else {
                position = start
                v = abs(exactDouble(Decimal(negative: false, mantissa: mantissa, exponent: exponent, isInteger: false,
                                            digitsDropped: true, start: start, end: i)))
            }
            let f = Float(negative ? -v : v)
            guard f.isFinite else {
                position = start
                throw JSONParseError(offset: start, message: "vector element \(n) is out of the float32 range")
            }
            out.append(f)
            n += 1
            while i < count && isSpace(bytes[i]) { i += 1 }
            guard i < count else { position = i; throw error("array ended early") }
            let sep = bytes[i]
            i += 1
            if sep == UInt8(ascii: ",") { continue }
            if sep == UInt8(ascii: "]") { position = i; return n }
            position = i - 1
            throw error("expected ',' or ']' in vector")
        }
    }
}

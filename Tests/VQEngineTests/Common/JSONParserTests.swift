import Foundation
import Testing
@testable import VQEngine

@Suite struct JSONParserTests {
    @Test("parses and writes back every kind of value")
    func roundTrip() throws {
        let text = #"{"a":1,"b":-2.5,"c":"x\"y\n\u00e9","d":[true,false,null],"e":{},"f":18446744073709551615,"g":-9223372036854775808}"#
        let v = try JSONParser.parse(text)
        #expect(v["a"] == .int(1))
        #expect(v["b"] == .double(-2.5))
        #expect(v["c"] == .string("x\"y\né"))
        #expect(v["f"] == .uint(UInt64.max))
        #expect(v["g"] == .int(Int64.min))
        let again = try JSONParser.parse(JSONWriter.string(v))
        #expect(again == v)
    }

    @Test("rejects what RFC 8259 rejects", arguments: [
        "[1,]", "{\"a\":1,}", "01", "NaN", "Infinity", "[1 2]", "\"a\tb\"", "{a:1}", "1.", ".5", "1e", "tru", "\"\\x\"", "[", "",
        "\"\\ud800\"", "1 2",
    ])
    func rejects(text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test("nesting deeper than the limit is an error, not a crash")
    func depthLimit() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
    }

    @Test("float arrays parse to the nearest float for typical inputs")
    func floatArrays() throws {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<200 {
            let values = (0..<50).map { _ in Float.random(in: -10...10, using: &rng) * powf(10, Float(Int.random(in: -8...8, using: &rng))) }
            // Written as doubles with 17 digits, the way numpy's tolist() prints float32 values.
            let text = "[" + values.map { String(Double($0)) }.joined(separator: ", ") + "]"
            var out: [Float] = []
            let bytes = Array(text.utf8)
            let n = try bytes.withUnsafeBufferPointer { buf in
                var p = JSONParser(buf)
                return try p.parseFloatArray(into: &out)
            }
            #expect(n == values.count)
            #expect(out == values)
        }
    }

    @Test("float array errors name the element", arguments: [("[1, \"x\"]", "element 1"), ("[1e39]", "element 0"), ("[1, 2", "ended")])
    func floatArrayErrors(text: String, fragment: String) {
        let bytes = Array(text.utf8)
        do {
            var out: [Float] = []
            _ = try bytes.withUnsafeBufferPointer { buf in
                var p = JSONParser(buf)
                return try p.parseFloatArray(into: &out)
            }
            Issue.record("expected an error for \(text)")
        } catch {
            #expect("\(error)".contains(fragment))
        }
    }

    @Test("eight-digit SWAR conversion matches the digits")
    func eightDigits() {
        for value in [0, 1, 12_345_678, 99_999_999, 10_000_000, 7_923_295] as [UInt64] {
            let text = String(format: "%08llu", value)
            let chunk = Array(text.utf8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            #expect(JSONParser.eightDigits(chunk) == value)
        }
        let notDigits = Array("1234567e".utf8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(JSONParser.eightDigits(notDigits) == nil)
    }
}

@Suite struct PointIDTests {
    @Test("UUIDs parse in any case and print lowercase hyphenated")
    func uuid() throws {
        let id = try #require(PointID(uuidString: "550E8400-E29B-41D4-A716-446655440000"))
        #expect(id.description == "550e8400-e29b-41d4-a716-446655440000")
        #expect(PointID(uuidString: "550e8400e29b41d4a716446655440000") == id)
        #expect(PointID(uuidString: "not-a-uuid") == nil)
    }

    @Test("ids come from unsigned integers or UUID strings only", arguments: [
        JSON.int(-1), .string("42"), .double(1.5), .null, .bool(true),
    ])
    func rejects(value: JSON) {
        #expect(throws: VQError.self) { try PointID(json: value) }
    }

    @Test("accepts the full u64 range")
    func accepts() throws {
        #expect(try PointID(json: .int(0)) == .number(0))
        #expect(try PointID(json: .uint(UInt64.max)) == .number(UInt64.max))
        #expect(PointID.number(UInt64.max).json == .uint(UInt64.max))
    }
}

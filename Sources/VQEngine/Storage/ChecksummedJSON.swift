// JSON files with a checksum trailer: config.json and shard.json.
//
//   {"format":"vq-shard","version":1,...}\n
//   #crc32c:1a2b3c4d\n            CRC-32C of every byte before this line

/// Reads and writes JSON documents guarded by a CRC-32C trailer line.
package enum ChecksummedJSON {
    private static let marker = Array("#crc32c:".utf8)

    package static func write(_ path: String, _ value: JSON) throws {
        try FileIO.writeAtomically(path, encode(value))
    }

    /// The file's bytes: the JSON, a newline, the trailer.
    package static func encode(_ value: JSON) -> [UInt8] {
        var body = JSONWriter.bytes(value)
        body.append(0x0A)
        let crc = CRC32C.checksum(body)
        let hex = String(crc, radix: 16)
        body.append(contentsOf: marker)
        body.append(contentsOf: (String(repeating: "0", count: 8 - hex.count) + hex).utf8)
        body.append(0x0A)
        return body
    }

    /// - Throws: `.corrupt` when the trailer is missing, the checksum differs or the JSON is invalid.
    package static func read(_ path: String) throws -> JSON {
        let bytes = try FileIO.readAll(path)
        // Trailer: "#crc32c:" + 8 hex + "\n" = 17 bytes.
        let trailer = marker.count + 9
        guard bytes.count > trailer, Array(bytes[(bytes.count - trailer)..<(bytes.count - 9)]) == marker,
              let stored = UInt32(String(decoding: bytes[(bytes.count - 9)..<(bytes.count - 1)], as: UTF8.self), radix: 16)
        else {
            throw VQError(.corrupt, "\(path) has no checksum trailer; the file is damaged or was not written by vq")
        }
        let body = Array(bytes[0..<(bytes.count - trailer)])
        guard CRC32C.checksum(body) == stored else {
            throw VQError(.corrupt, "\(path) fails its checksum; the file is damaged")
        }
        do { return try JSONParser.parse(body) } catch {
            throw VQError(.corrupt, "\(path) is not valid JSON: \(error)")
        }
    }
}

import Foundation
import Testing
@testable import VQEngine

@Suite struct SnapshotFormatTests {
    @Test("SHA-256 matches FIPS 180-4's examples, whatever the update sizes")
    func sha256Vectors() throws {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let two = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hex(two) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // One million 'a', fed in uneven pieces (block boundaries fall inside updates).
        var h = SHA256()
        let piece = [UInt8](repeating: 0x61, count: 997)
        var left = 1_000_000
        while left > 0 {
            let n = min(left, piece.count)
            piece.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            left -= n
        }
        #expect(h.finalizeHex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        let tmp = TempDir()
        try FileIO.writeAtomically(tmp.path + "/f", Array("abc".utf8))
        #expect(try SHA256.hex(file: tmp.path + "/f") == SHA256.hex(Array("abc".utf8)))
    }

    @Test("a tar written here unpacks to the same files, long paths and all, and its sum is the file's")
    func tarRoundTrip() throws {
        let tmp = TempDir()
        var rng = SplitMix64(seed: 7)
        let big = (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        try FileIO.writeAtomically(tmp.path + "/big.bin", big)
        let long = String(repeating: "d", count: 90) + "/" + String(repeating: "e", count: 60) + "/file.bin"
        let writer = try TarWriter(path: tmp.path + "/a.tar")
        try writer.addDirectory("dir")
        try writer.addFile("dir/small.json", contents: Array("{}".utf8))
        try writer.addFile("big.bin", from: tmp.path + "/big.bin")
        try writer.addFile(long, contents: [1, 2, 3])
        try writer.addFile("empty", contents: [])
        let (size, sha) = try writer.finish()
        #expect(size % 512 == 0 && FileIO.fileSize(tmp.path + "/a.tar") == size)
        #expect(try SHA256.hex(file: tmp.path + "/a.tar") == sha)
        #expect(!FileIO.exists(tmp.path + "/a.tar.tmp"))
        let files = try TarReader.extract(tmp.path + "/a.tar", into: tmp.path + "/out", what: "test")
        #expect(files == ["dir/small.json", "big.bin", long, "empty"])
        #expect(try FileIO.readAll(tmp.path + "/out/big.bin") == big)
        #expect(try FileIO.readAll(tmp.path + "/out/" + long) == [1, 2, 3])
        #expect(try FileIO.readAll(tmp.path + "/out/empty") == [])
    }

    @Test("an archive from outside is refused, naming the fault, before anything lands outside the target",
          arguments: ["traversal", "absolute", "symlink", "checksum", "truncated", "duplicate", "empty", "no end", "huge size",
                     "directory with data"])
    func tarRefusals(_ fault: String) throws {
        let tmp = TempDir()
        func header(_ name: String, size: Int, type: UInt8 = 0x30) -> [UInt8] {
            var h = [UInt8](repeating: 0, count: 512)
            for (i, b) in name.utf8.enumerated() { h[i] = b }
            for (i, b) in "0000644\0".utf8.enumerated() { h[100 + i] = b }
            let sizeText = String(size, radix: 8)
            for (i, b) in (String(repeating: "0", count: 11 - sizeText.count) + sizeText).utf8.enumerated() { h[124 + i] = b }
            h[156] = type
            for (i, b) in "ustar\u{0}00".utf8.enumerated() { h[257 + i] = b }
            for i in 148..<156 { h[i] = 0x20 }
            let sum = String(h.reduce(0) { $0 + Int($1) }, radix: 8)
            for (i, b) in (String(repeating: "0", count: 6 - sum.count) + sum + "\0 ").utf8.enumerated() { h[148 + i] = b }
            return h
        }
        func entry(_ name: String, _ body: [UInt8], type: UInt8 = 0x30) -> [UInt8] {
            header(name, size: body.count, type: type) + body + [UInt8](repeating: 0, count: (512 - body.count % 512) % 512)
        }
        let end = [UInt8](repeating: 0, count: 1024)
        let archive: [UInt8]
        let expected: String
        switch fault {
        case "traversal": archive = entry("a/../../escape", [1]) + end; expected = "not a plain relative path"
        case "absolute": archive = entry("/tmp/escape", [1]) + end; expected = "not a plain relative path"
        case "symlink": archive = entry("link", [], type: 0x32) + end; expected = "only files and directories"
        case "checksum":
            var e = entry("ok", [1, 2, 3])
            e[0] = 0x70
            archive = e + end
            expected = "wrong checksum"
        case "truncated": archive = Array(entry("big", [UInt8](repeating: 9, count: 4000)).prefix(2048)); expected = "truncated"
        case "duplicate": archive = entry("twice", [1]) + entry("twice", [2]) + end; expected = "appears twice"
        case "directory with data":
            // Its data block would otherwise be read as the next header.
            archive = entry("dir/", [UInt8](repeating: 7, count: 10), type: 0x35) + end; expected = "claims 10 bytes"
        case "empty": archive = []; expected = "empty"
        case "huge size":
            // A base-256 size near Int.max (padding it to 512 would overflow), checksum made good.
            var h = header("big", size: 0)
            h[124] = 0x80
            for i in 125..<128 { h[i] = 0 }
            h[128] = 0x7F  // Int.max in the last eight bytes
            for i in 129..<136 { h[i] = 0xFF }
            for i in 148..<156 { h[i] = 0x20 }
            let sum = String(h.reduce(0) { $0 + Int($1) }, radix: 8)
            for (i, b) in (String(repeating: "0", count: 6 - sum.count) + sum + "\0 ").utf8.enumerated() { h[148 + i] = b }
            archive = h + end
            expected = "truncated"
        default: archive = entry("ok", [1]); expected = "without the end-of-archive"
        }
        try FileIO.writeAtomically(tmp.path + "/x.tar", archive)
        let target = tmp.path + "/sub/target"
        do {
            _ = try TarReader.extract(tmp.path + "/x.tar", into: target, what: "upload")
            Issue.record("\(fault): accepted")
        } catch let e as VQError {
            #expect(e.kind == .invalidInput && e.message.contains(expected) && e.message.hasPrefix("upload"), "\(fault): \(e.message)")
        }
        #expect(!FileIO.exists(tmp.path + "/escape") && !FileIO.exists(tmp.path + "/sub/escape"))
    }

    @Test("multipart/form-data: the boundary from the Content-Type, parts with names and exact byte ranges; malformed bodies named")
    func multipart() throws {
        #expect(Multipart.boundary(contentType: "multipart/form-data; boundary=\"ab c\"") == "ab c")
        #expect(Multipart.boundary(contentType: "Multipart/Form-Data;boundary=xyz") == "xyz")
        #expect(Multipart.boundary(contentType: "application/json") == nil)
        let payload: [UInt8] = [0, 13, 10, 45, 45, 255] + Array("--xyz not the end".utf8)
        let body = Array("preamble\r\n--xyz\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--xyz\r\n".utf8)
            + Array("Content-Disposition: form-data; name=\"snapshot\"; filename=\"a.snapshot\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
            + payload + Array("\r\n--xyz--\r\n".utf8)
        let parts = try Multipart.parts(body, boundary: "xyz")
        #expect(parts.map(\.name) == ["note", "snapshot"] && parts[1].filename == "a.snapshot")
        #expect(Array(body[parts[0].range]) == Array("hi".utf8) && Array(body[parts[1].range]) == payload)
        for bad in ["no boundary here", "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
                    "--xyz\r\nX: y\r\n\r\nbody\r\n--xyz--"] {
            #expect(throws: MultipartError.self) { _ = try Multipart.parts(Array(bad.utf8), boundary: "xyz") }
        }
    }
}

import Foundation
import Testing

/// man/ and completions/ are generated from CommandSpec; the committed copies must match.
@Suite struct GeneratedFilesTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test("committed man pages and completions equal what the command table generates")
    func upToDate() throws {
        let s = Scratch()
        let run = try vq(["--generate", "all", s.path])
        #expect(run.status == 0, "\(run.stderr)")
        var generated: [String] = []
        for dir in ["man", "completions"] {
            for name in try FileManager.default.contentsOfDirectory(atPath: s.path + "/" + dir).sorted() {
                let rel = dir + "/" + name
                generated.append(rel)
                let fresh = try String(contentsOfFile: s.path + "/" + rel, encoding: .utf8)
                let committed = try? String(contentsOfFile: Self.repo + "/" + rel, encoding: .utf8)
                #expect(committed == fresh, "\(rel) is stale: run `vq --generate all .` and commit it")
            }
        }
        #expect(generated.contains("man/vq.1"))
        #expect(generated.contains("man/vq-upsert.1"))
        #expect(generated.contains("completions/_vq"))
    }

    @Test("every man page renders cleanly with groff -man -ww")
    func manRenders() throws {
        let groff = ["/usr/bin/groff", "/usr/local/bin/groff", "/opt/homebrew/bin/groff"].first { FileManager.default.isExecutableFile(atPath: $0) }
        try #require(groff != nil, "groff is not installed; .ci/run installs it")
        for name in try FileManager.default.contentsOfDirectory(atPath: Self.repo + "/man") where name.hasSuffix(".1") {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: groff!)
            p.arguments = ["-man", "-ww", "-z", Self.repo + "/man/" + name]
            let err = Pipe()
            p.standardError = err
            try p.run()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus == 0 && text.isEmpty, "\(name): \(text)")
        }
    }

    @Test("every subcommand has a man page with the required sections")
    func sections() throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: Self.repo + "/man") where name.hasSuffix(".1") {
            let text = try String(contentsOfFile: Self.repo + "/man/" + name, encoding: .utf8)
            for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"] {
                #expect(text.contains(".SH \(section)"), "\(name) lacks \(section)")
            }
        }
    }
}

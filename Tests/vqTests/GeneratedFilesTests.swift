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

    @Test("scripts/install.sh puts vq, its man pages and completions where man and bash find them")
    func install() throws {
        let s = Scratch()
        let prefix = s.path + "/prefix"
        let script = Process()
        script.executableURL = URL(fileURLWithPath: "/bin/bash")
        script.arguments = [Self.repo + "/scripts/install.sh", prefix]
        script.environment = ProcessInfo.processInfo.environment.merging(["VQ_BINARY": vqBinary.path]) { $1 }
        script.standardOutput = FileHandle.nullDevice
        script.standardError = FileHandle.nullDevice
        try script.run()
        script.waitUntilExit()
        #expect(script.terminationStatus == 0)
        #expect(FileManager.default.isExecutableFile(atPath: prefix + "/bin/vq"))
        func shell(_ command: String, _ env: [String: String] = [:]) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = ["-c", command]
            p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // man finds the pages under the prefix (man -w: where it would read them).
        #expect(try shell("man -w vq-upsert", ["MANPATH": prefix + "/share/man"]) == prefix + "/share/man/man1/vq-upsert.1")
        #expect(try shell("man -w vq", ["MANPATH": prefix + "/share/man"]) == prefix + "/share/man/man1/vq.1")
        // bash completes commands from the installed file.
        let words = try shell("source \(prefix)/share/bash-completion/completions/vq; COMP_WORDS=(vq delete); COMP_CWORD=1; _vq; echo ${COMPREPLY[*]}")
        #expect(Set(words.split(separator: " ")) == ["delete-index", "delete", "delete-collection"], "\(words)")
        let actions = try shell("source \(prefix)/share/bash-completion/completions/vq; COMP_WORDS=(vq cluster re); COMP_CWORD=2; _vq; echo ${COMPREPLY[*]}")
        #expect(Set(actions.split(separator: " ")) == ["remove-peer", "repair", "rebalance"], "cluster actions: \(actions)")
        #expect(try shell("\(prefix)/bin/vq --version").hasPrefix("vq "))
    }
}

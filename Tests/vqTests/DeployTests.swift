import Foundation
import Testing

/// deploy/: the Dockerfile and the Kubernetes manifests name only flags and VQ_* variables that
/// vq has (checked against the man pages, which GeneratedFilesTests keeps equal to CommandSpec),
/// and the manifests parse as YAML.
@Suite struct DeployTests {
    static let repo = GeneratedFilesTests.repo

    /// Flags and environment variables the man page of each command documents.
    func documented(_ commands: [String]) throws -> (flags: Set<String>, env: Set<String>) {
        var flags = Set<String>(), env = Set<String>()
        for c in commands {
            let page = try String(contentsOfFile: Self.repo + "/man/vq-\(c).1", encoding: .utf8).replacingOccurrences(of: "\\-", with: "-")
            for m in page.matches(of: /\\fB--([a-z0-9-]+)\\fR/) { flags.insert(String(m.1)) }
            for m in page.matches(of: /\[env: (VQ_[A-Z_]+)\]/) { env.insert(String(m.1)) }
        }
        return (flags, env)
    }

    @Test("every flag and VQ_* variable in deploy/ exists; the manifests name the objects a deployment needs")
    func references() throws {
        let (flags, env) = try documented(["serve", "join"])
        #expect(flags.contains("listen") && env.contains("VQ_CLUSTER_SECRET"))
        for file in ["deploy/Dockerfile", "deploy/k8s/vq.yaml"] {
            let text = try String(contentsOfFile: Self.repo + "/" + file, encoding: .utf8)
            // Lines that run vq: its flags follow `vq serve` / `vq join`.
            for line in text.split(separator: "\n") where line.contains("vq serve") || line.contains("vq join") {
                let command = line[line.range(of: "vq ")!.lowerBound...]
                for m in command.matches(of: /\s--([a-z][a-z0-9-]*)/) {
                    #expect(flags.contains(String(m.1)), "\(file): --\(m.1) is no flag of vq serve or join")
                }
            }
            for m in text.matches(of: /\b(VQ_[A-Z_]+)\b/) {
                #expect(env.contains(String(m.1)), "\(file): \(m.1) is not a variable vq reads")
            }
        }
        let yaml = try String(contentsOfFile: Self.repo + "/deploy/k8s/vq.yaml", encoding: .utf8)
        for kind in ["StatefulSet", "Service", "Secret", "PodDisruptionBudget"] { #expect(yaml.contains("kind: \(kind)")) }
        for probe in ["/livez", "/readyz"] { #expect(yaml.contains("path: \(probe)")) }
    }

    /// A real YAML parser: the test venv's (.ci/run installs PyYAML beside qdrant-client); reported
    /// as skipped without it rather than passing silently.
    @Test("the Kubernetes manifests parse as YAML into the objects a deployment needs",
          .enabled(if: ProcessInfo.processInfo.environment["VQ_COMPAT_PYTHON"] != nil, "needs VQ_COMPAT_PYTHON (a Python with PyYAML)"))
    func manifestsParse() throws {
        let python = ProcessInfo.processInfo.environment["VQ_COMPAT_PYTHON"]!
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", "import sys, yaml; docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]; "
                       + "print(' '.join(sorted(d['kind'] for d in docs)))", Self.repo + "/deploy/k8s/vq.yaml"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let kinds = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0 && kinds.trimmingCharacters(in: .whitespacesAndNewlines)
                == "PodDisruptionBudget Secret Service Service StatefulSet", "\(kinds)")
    }
}

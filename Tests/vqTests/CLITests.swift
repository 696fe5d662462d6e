import Foundation
import Testing

@Suite struct CLITests {
    @Test("--version, --help, help CMD and CMD --help print on stdout and exit 0")
    func help() throws {
        #expect(try vq(["--version"]).stdout == "vq 0.1.0\n")
        let main = try vq(["--help"])
        #expect(main.status == 0 && main.stdout.contains("create-collection"))
        let viaHelp = try vq(["help", "upsert"])
        let viaFlag = try vq(["upsert", "--help"])
        #expect(viaHelp.status == 0 && viaFlag.status == 0)
        #expect(viaHelp.stdout == viaFlag.stdout)
        #expect(viaFlag.stdout.contains("--batch-size N"))
        // `vq --help upsert` is upsert's help; `vq help help` the overview, not an error.
        #expect(try vq(["--help", "upsert"]).stdout == viaHelp.stdout)
        let helpHelp = try vq(["help", "help"])
        #expect(helpHelp.status == 0 && helpHelp.stdout == main.stdout)
    }

    @Test("usage mistakes exit 2 with one line naming the closest valid name", arguments: [
        (["serch"], "unknown command 'serch'; did you mean 'search'?"),
        (["create-collection", "c", "--dimm", "3"], "unknown option '--dimm' for 'vq create-collection'; did you mean '--dim'?"),
        (["create-collection", "c"], "'vq create-collection' needs --dim"),
        (["create-collection", "c", "--dim", "zero"], "--dim is 'zero'; expected an integer from 1 to 65536"),
        (["create-collection", "c", "--dim", "3", "--distance", "cosin"], "did you mean 'cosine'?"),
        (["search", "c"], "needs exactly one of --vector JSON, --sparse JSON or --queries FILE"),
        (["upsert"], "'vq upsert' needs NAME"),
        (["search", "c", "--limit"], "option '--limit' needs a value (K)"),
        (["search", "c", "--vector", "[1]", "-k", "abc"], "-k is 'abc'; expected an integer"),
        (["bench", "--synthetic", "100,4", "-k", "0"], "-k is '0'; expected an integer from 1 to 1000"),
    ])
    func usageErrors(args: [String], message: String) throws {
        let s = Scratch()
        let run = try vq(args + ["--data-dir", s.data])
        #expect(run.status == 2)
        #expect(run.stderr.hasPrefix("vq: error: "))
        #expect(run.stderr.contains(message))
        #expect(run.stdout.isEmpty)
    }

    @Test("vq cluster without a running peer says how to reach one and exits 1")
    func clusterWithoutServer() throws {
        let s = Scratch()
        let run = try vq(["cluster", "--data-dir", s.data])
        #expect(run.status == 1)
        #expect(run.stderr.contains("needs a running peer") && run.stderr.contains("--url"), "\(run.stderr)")
        #expect(try vq(["cluster", "frobnicate", "--url", "http://127.0.0.1:1"]).status == 2)
    }

    @Test("VQ_DATA_DIR is the default data directory")
    func environment() throws {
        let s = Scratch()
        #expect(try vq(["create-collection", "e", "--dim", "2"], env: ["VQ_DATA_DIR": s.data]).status == 0)
        #expect(try vq(["collections"], env: ["VQ_DATA_DIR": s.data]).stdout == "e\n")
        #expect(try vq(["collections", "--data-dir", s.path + "/none"]).stdout == "")
    }
}

@Suite struct ClusterFlagTests {
    @Test("vq cluster refuses flags that do not apply to the action instead of ignoring them")
    func refused() throws {
        let force = try vq(["cluster", "status", "--force", "--url", "http://127.0.0.1:1"])
        #expect(force.status == 2 && force.stderr.contains("--force applies to remove-peer only"), "\(force.stderr)")
        let format = try vq(["cluster", "remove-peer", "7", "--format", "json", "--url", "http://127.0.0.1:1"])
        #expect(format.status == 2 && format.stderr.contains("--format applies to status only"), "\(format.stderr)")
        let token = try vq(["cluster", "token", "--url", "http://127.0.0.1:1"])
        #expect(token.status == 2 && token.stderr.contains("never served over HTTP"), "\(token.stderr)")
        // VQ_URL in the environment is a default, not a request: token still reads the directory.
        let env = try vq(["cluster", "token", "--data-dir", Scratch().data], env: ["VQ_URL": "http://127.0.0.1:1"])
        #expect(env.status == 1 && env.stderr.contains("not the data directory of a cluster peer"), "\(env.stderr)")
    }
}

@Suite struct RemoteCreateFlagTests {
    @Test("create-collection --url refuses the queue bounds the REST API does not take instead of dropping them")
    func refused() throws {
        for flag in ["--update-queue-size", "--update-queue-bytes"] {
            let r = try vq(["create-collection", "x", "--dim", "4", flag, "2000000", "--url", "http://127.0.0.1:1"])
            #expect(r.status == 2 && r.stderr.contains("applies to embedded collections"), "\(flag): \(r.stderr)")
        }
    }
}

// vq: one executable, one subcommand per file.
//
//   main.swift              dispatch, exit codes
//   CommandSpec.swift       the table of commands and flags
//   Arguments.swift         parsing against the table
//   Help.swift, Generate.swift   --help, man pages, completions
//   Output.swift            stdout/stderr, progress bar
//   CreateCollection.swift Upsert.swift Search.swift Collections.swift Info.swift
//   Optimize.swift UpdateCollection.swift Serve.swift (serve and join) Cluster.swift
//   Bench.swift BenchDataset.swift BenchWriteLoad.swift BenchRemote.swift (vq bench --url)
//   Remote.swift            --url / served directories: the same commands over HTTP
//   Client.swift Points.swift   the REST API in-process or over HTTP; get, count, export, delete, delete-collection
//   Snapshot.swift          snapshot create, list, download, delete, restore (Qdrant's snapshot API)

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import VQEngine

/// Runs vq with `argv` (without the program name) and returns the exit status.
func runVQ(_ argv: [String], environment: [String: String]) -> Int32 {
    guard let first = argv.first else {
        printError(Help.main)
        return 2
    }
    do {
        switch first {
        case "-h", "--help":
            // `vq --help upsert` is `vq help upsert`.
            if argv.count > 1, let spec = CommandSpec.named(argv[1]) {
                standardOutput.write(Help.command(spec))
            } else {
                standardOutput.write(Help.main)
            }
            return 0
        case "-V", "--version":
            standardOutput.write("vq \(CommandSpec.version)\n")
            return 0
        case "--generate":
            return try generate(Array(argv.dropFirst()))
        case "help":
            // `vq help` and `vq help help`: the overview (help is no command with options of its own).
            guard argv.count > 1, argv[1] != "help" else { standardOutput.write(Help.main); return 0 }
            guard let spec = CommandSpec.named(argv[1]) else { throw unknownCommand(argv[1]) }
            standardOutput.write(Help.command(spec))
            return 0
        default:
            break
        }
        guard let spec = CommandSpec.named(first) else {
            if first.hasPrefix("-") {
                throw UsageError(message: "unknown option '\(first)'" + suggestion(first, ["--help", "--version"]) + "; expected a command first")
            }
            throw unknownCommand(first)
        }
        let args = try Arguments(spec: spec, args: Array(argv.dropFirst()), environment: environment)
        if args.has("help") {
            standardOutput.write(Help.command(spec))
            return 0
        }
        try args.checkPositionalCount()
        guard spec.built else {
            reportError("'vq \(spec.name)' is not built yet in vq \(CommandSpec.version)")
            return 1
        }
        let remoteCapable: Set<String> = ["create-collection", "upsert", "search", "collections", "info", "optimize", "cluster", "update-collection",
                                          "check", "create-index", "delete-index", "get", "count", "export", "delete", "delete-collection", "snapshot"]
        // `vq cluster token` reads the data directory even while a server holds it (never over HTTP).
        let local = spec.name == "cluster" && args.positionals.first == "token"
        let target: Target = remoteCapable.contains(spec.name) && !local ? try resolveTarget(args) : .embedded
        // A key or timeout given on the command line is for a server: with none, refused (from
        // the environment or the client config file they are defaults, and stay quiet).
        // (bench with a url from the client config file runs locally too: see its dispatch below.)
        if case .embedded = target, !spec.peer, spec.name != "bench" || args.source("url") == nil || args.source("url") == .file {
            for name in ["api-key", "timeout"] where args.source(name) == .flag {
                throw UsageError(message: "--\(name) applies when talking to a server (--url); this command opens \(args.dataDir) itself")
            }
        }
        switch spec.name {
        case "create-collection": return try createCollection(args, target)
        case "upsert": return try upsert(args, target)
        case "search": return try search(args, target)
        case "collections": return try listCollections(args, target)
        case "info": return try info(args, target)
        case "optimize": return try optimize(args, target)
        case "bench":
            // A url in the client config file does not turn a local benchmark into a remote one.
            if let source = args.source("url"), source != .file, case .remote(let client) = try resolveTarget(args) {
                return try benchRemote(args, client)
            }
            return try bench(args)
        case "serve": return try serve(args)
        case "join": return try serve(args, join: try args.positional(0))
        case "cluster": return try cluster(args, target)
        case "check": return try check(args, target)
        case "update-collection": return try updateCollection(args, target)
        case "create-index": return try createIndex(args, target, delete: false)
        case "delete-index": return try createIndex(args, target, delete: true)
        case "get": return try getPoints(args, target)
        case "count": return try countPoints(args, target)
        case "export": return try exportPoints(args, target)
        case "delete": return try deletePoints(args, target)
        case "delete-collection": return try deleteCollection(args, target)
        case "snapshot": return try snapshot(args, target)
        default:
            reportError("'vq \(spec.name)' is not built yet in vq \(CommandSpec.version)")
            return 1
        }
    } catch let e as UsageError {
        reportError(e.message)
        return 2
    } catch let e as InputError {
        reportError(e.description)
        return 2
    } catch let e as VQError {
        reportError(e.message, hint: e.hint)
        return exitCode(e.kind)
    } catch {
        reportError("\(error)")
        return 1
    }
}

/// Exit status for an engine error: bad input is the caller's mistake (2), everything else a runtime failure (1).
func exitCode(_ kind: VQErrorKind) -> Int32 {
    switch kind {
    case .invalidInput, .methodNotAllowed: return 2
    case .unauthorized, .forbidden, .notFound, .conflict, .gone, .notPrimary, .busy, .rateLimited, .insufficientStorage, .unreachable, .corrupt, .io,
         .cancelled, .internal: return 1
    }
}

func unknownCommand(_ name: String) -> UsageError {
    UsageError(message: "unknown command '\(name)'" + suggestion(name, CommandSpec.commands.map(\.name) + ["help"]))
}

/// Opens the data directory for a command; read-only commands refuse to create it.
func openEngine(_ args: Arguments, create: Bool) throws -> Engine {
    let path = args.dataDir
    if !create && !FileIO.isDirectory(path) {
        throw VQError(.notFound, "data directory \(path) does not exist", hint: "create a collection first, or pass --data-dir")
    }
    return try Engine(path: path) { warning in printError("vq: warning: \(warning)") }
}

/// `vq --generate man|bash|zsh|fish|all [DIR]`: writes generated files under DIR (default: print to stdout).
func generate(_ args: [String]) throws -> Int32 {
    guard let kind = args.first else { throw UsageError(message: "--generate needs a kind: man, bash, zsh, fish or all") }
    let files: [(String, String)]
    switch kind {
    case "man": files = Generate.allFiles.filter { $0.0.hasPrefix("man/") }
    case "bash": files = [("completions/vq.bash", Generate.bash)]
    case "zsh": files = [("completions/_vq", Generate.zsh)]
    case "fish": files = [("completions/vq.fish", Generate.fish)]
    case "all": files = Generate.allFiles
    default: throw UsageError(message: "--generate kind '\(kind)' is unknown" + suggestion(kind, ["man", "bash", "zsh", "fish", "all"]))
    }
    guard args.count > 1 else {
        for (_, text) in files { standardOutput.write(text) }
        return 0
    }
    let root = args[1]
    for (path, text) in files {
        let full = root + "/" + path
        try FileIO.makeDirectories(FileIO.directoryOf(full))
        try FileIO.writeAtomically(full, Array(text.utf8))
    }
    return 0
}

signal(SIGPIPE, SIG_DFL)
let status = runVQ(Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment)
standardOutput.flush()
exit(status)

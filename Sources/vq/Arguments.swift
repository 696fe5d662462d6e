// Hand-written argument parsing, driven by CommandSpec.
//
// Accepts `--name value`, `--name=value`, `-s value`, `-svalue`, flags, and
// positionals; `--` ends options. Unknown names fail with the closest valid one.

import VQEngine

/// A mistake in how vq was called: exit status 2.
struct UsageError: Error, CustomStringConvertible {
    var message: String
    var command: String?
    var description: String { message }
}

/// The parsed command line of one subcommand.
struct Arguments {
    let spec: CommandSpec
    private(set) var values: [String: String] = [:]
    private(set) var flags: Set<String> = []
    private(set) var positionals: [String] = []
    private let environment: [String: String]
    /// The client config file's settings, by option name (commands that may talk to a server).
    private var fileValues: [String: String] = [:]
    /// How each option given was spelt (`-k` or `--limit`), for messages.
    private var spelled: [String: String] = [:]

    /// Where an option's value came from: precedence is flag, then environment, then file.
    enum Source { case flag, environment, file }

    /// Parses `args` (after the subcommand name) against `spec`.
    init(spec: CommandSpec, args: [String], environment: [String: String]) throws {
        self.spec = spec
        self.environment = environment
        if spec.usesData && !spec.peer { fileValues = try ClientConfig.load(environment) }
        let options = spec.allOptions
        var i = 0
        var onlyPositionals = false
        func option(long: String) throws -> OptionSpec {
            if let o = options.first(where: { $0.long == long }) { return o }
            let names = options.filter { !$0.hidden }.map { "--" + $0.long }
            throw UsageError(message: "unknown option '--\(long)' for 'vq \(spec.name)'" + suggestion("--" + long, names), command: spec.name)
        }
        while i < args.count {
            let arg = args[i]
            i += 1
            if onlyPositionals || arg == "-" || !arg.hasPrefix("-") {
                positionals.append(arg)
                continue
            }
            if arg == "--" { onlyPositionals = true; continue }
            var spec: OptionSpec
            var inline: String?
            if arg.hasPrefix("--") {
                let body = arg.dropFirst(2)
                if let eq = body.firstIndex(of: "=") {
                    spec = try option(long: String(body[..<eq]))
                    inline = String(body[body.index(after: eq)...])
                } else {
                    spec = try option(long: String(body))
                }
            } else {
                let letter = arg[arg.index(after: arg.startIndex)]
                guard let o = options.first(where: { $0.short == letter }) else {
                    if arg.count > 1, Double(arg) != nil {
                        positionals.append(arg)  // a negative number
                        continue
                    }
                    let names = options.compactMap { $0.short.map { "-\($0)" } }
                    throw UsageError(message: "unknown option '\(arg)' for 'vq \(self.spec.name)'" + suggestion(arg, names), command: self.spec.name)
                }
                spec = o
                let rest = arg.dropFirst(2)
                if !rest.isEmpty { inline = String(rest) }
            }
            if let valueName = spec.value {
                let value: String
                if let inline {
                    value = inline
                } else {
                    // "--limit --data-dir x" is a missing value, not a limit of "--data-dir".
                    guard i < args.count, !(args[i].hasPrefix("--") && args[i].count > 2) else {
                        throw UsageError(message: "option '--\(spec.long)' needs a value (\(valueName))", command: self.spec.name)
                    }
                    value = args[i]
                    i += 1
                }
                values[spec.long] = value
                spelled[spec.long] = arg.hasPrefix("--") ? "--" + spec.long : "-" + String(spec.short!)
            } else {
                if inline != nil {
                    throw UsageError(message: "option '--\(spec.long)' takes no value", command: self.spec.name)
                }
                flags.insert(spec.long)
            }
        }
    }

    func has(_ flag: String) -> Bool { flags.contains(flag) }

    /// Whether the option was given on the command line (not only through the environment).
    func given(_ name: String) -> Bool { values[name] != nil }

    /// Refuses options this form of the command has no use for, naming the first one given.
    func refuse(_ names: [String], _ why: String) throws {
        if let name = names.first(where: { has($0) || given($0) }) {
            throw UsageError(message: "--\(name) does not apply \(why)", command: spec.name)
        }
    }

    /// The option's value, else its environment variable's, else the client config file's.
    func string(_ name: String) -> String? {
        source(name).flatMap { source in
            switch source {
            case .flag: return values[name]
            case .environment: return spec.allOptions.first { $0.long == name }?.env.flatMap { environment[$0] }
            case .file: return fileValues[name]
            }
        }
    }

    /// The option as the user gave it, for messages: `-k`, `--limit`, `VQ_TIMEOUT`, or the config file's key.
    func label(_ name: String) -> String {
        switch source(name) {
        case .environment?: return spec.allOptions.first { $0.long == name }?.env ?? "--" + name
        case .file?: return "\(ClientConfig.keys.first { $0.value == name }?.key ?? name) in the client config"
        default: return spelled[name] ?? "--" + name
        }
    }

    /// Where `string(name)` comes from; nil when unset.
    func source(_ name: String) -> Source? {
        if values[name] != nil { return .flag }
        if let env = spec.allOptions.first(where: { $0.long == name })?.env, let v = environment[env], !v.isEmpty { return .environment }
        return fileValues[name] != nil ? .file : nil
    }

    /// An integer option within `range`, or `fallback` when absent.
    func int(_ name: String, default fallback: Int, in range: ClosedRange<Int> = Int.min...Int.max) throws -> Int {
        guard let text = string(name) else { return fallback }
        guard let v = Int(text), range.contains(v) else {
            let expected = range == Int.min...Int.max ? "an integer"
                : range.upperBound == Int.max ? "an integer of at least \(range.lowerBound)" : "an integer from \(range.lowerBound) to \(range.upperBound)"
            throw UsageError(message: "\(label(name)) is '\(text)'; expected \(expected)", command: spec.name)
        }
        return v
    }

    /// A number option (present: callers check), within `range`.
    func double(_ name: String, in range: ClosedRange<Double>) throws -> Double {
        let text = string(name) ?? ""
        guard let v = Double(text), v.isFinite, range.contains(v) else {
            throw UsageError(message: "\(label(name)) is '\(text)'; expected a number from \(range.lowerBound) to \(range.upperBound)", command: spec.name)
        }
        return v
    }

    /// A required integer option.
    func requiredInt(_ name: String, in range: ClosedRange<Int>) throws -> Int {
        guard string(name) != nil else {
            throw UsageError(message: "'vq \(spec.name)' needs --\(name)", command: spec.name)
        }
        return try int(name, default: 0, in: range)
    }

    /// Positional argument `index`, or a usage error naming it.
    func positional(_ index: Int) throws -> String {
        guard index < positionals.count else {
            throw UsageError(message: "'vq \(spec.name)' needs \(spec.arguments[index].name)", command: spec.name)
        }
        return positionals[index]
    }

    /// Fails on more positionals than the spec names.
    func checkPositionalCount() throws {
        // A last argument named `X...` takes any number.
        if positionals.count > spec.arguments.count && spec.arguments.last?.name.hasSuffix("...") != true {
            let extra = positionals[spec.arguments.count]
            throw UsageError(message: "unexpected argument '\(extra)' for 'vq \(spec.name)'", command: spec.name)
        }
    }

    var dataDir: String { string("data-dir") ?? "./vq-data" }
    /// Where vq bench keeps what it builds: only a directory named for it (flag or VQ_DATA_DIR),
    /// never the client config file's data_dir, which holds someone's collections.
    var benchDataDir: String? { source("data-dir") == .file ? nil : string("data-dir") }
    var quiet: Bool { has("quiet") }
}

/// "; did you mean 'X'?" for the closest candidate within a small edit distance, else "".
func suggestion(_ word: String, _ candidates: [String]) -> String {
    var best: (String, Int)?
    for c in candidates {
        let d = editDistance(word, c)
        if best == nil || d < best!.1 { best = (c, d) }
    }
    guard let best, best.1 <= max(2, word.count / 3) else { return "" }
    return "; did you mean '\(best.0)'?"
}

/// Levenshtein distance.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}

/// The client config file: `VQ_CONFIG`, else `~/.config/vq/config.json` when it exists. A JSON
/// object of `url`, `api_key`, `data_dir` and `timeout`; anything else is refused by name.
enum ClientConfig {
    static let keys: [String: String] = ["url": "url", "api_key": "api-key", "data_dir": "data-dir", "timeout": "timeout"]

    /// The file's settings by option name.
    static func load(_ environment: [String: String]) throws -> [String: String] {
        let path: String
        if let p = environment["VQ_CONFIG"], !p.isEmpty {
            guard FileIO.exists(p) else { throw UsageError(message: "VQ_CONFIG names \(p), which does not exist") }
            path = p
        } else if let home = environment["HOME"], !home.isEmpty, FileIO.exists(home + "/.config/vq/config.json") {
            path = home + "/.config/vq/config.json"
        } else {
            return [:]
        }
        let json: JSON
        do { json = try JSONParser.parse(try FileIO.readAll(path)) } catch {
            throw UsageError(message: "the client config \(path) is not valid JSON: \(error)")
        }
        guard case .object(let members) = json else { throw UsageError(message: "the client config \(path) is \(json.typeName); expected a JSON object") }
        var out: [String: String] = [:]
        for (key, value) in members {
            guard let option = keys[key] else {
                throw UsageError(message: "the client config \(path) has an unknown key \"\(key)\"" + suggestion(key, Array(keys.keys))
                                 + "; expected url, api_key, data_dir or timeout")
            }
            switch (key, value) {
            case ("timeout", _):
                guard let d = value.doubleValue else { throw UsageError(message: "the client config \(path): timeout is \(value.typeName); expected seconds") }
                out[option] = String(d)
            case (_, .string(let s)): out[option] = s
            default: throw UsageError(message: "the client config \(path): \(key) is \(value.typeName); expected a string")
            }
        }
        return out
    }
}

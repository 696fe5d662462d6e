// `--help` text, generated from CommandSpec.

enum Help {
    static let exitStatus: [(String, String)] = [
        ("0", "Success."),
        ("1", "Runtime failure: a missing collection, a locked data directory, an I/O error."),
        ("2", "Usage error or bad input: an unknown flag, a malformed value, a bad line in an input file."),
    ]

    /// Wraps `text` to `width` columns, indenting continuation lines by `indent`.
    static func wrap(_ text: String, width: Int = 80, indent: Int = 0, firstIndent: Int? = nil) -> String {
        var lines: [String] = []
        var line = String(repeating: " ", count: firstIndent ?? indent)
        var lineHasWord = false
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            if lineHasWord && line.count + 1 + word.count > width {
                lines.append(line)
                line = String(repeating: " ", count: indent)
                lineHasWord = false
            }
            if lineHasWord { line += " " }
            line += word
            lineHasWord = true
        }
        lines.append(line)
        return lines.joined(separator: "\n")
    }

    static func optionLabel(_ o: OptionSpec) -> String {
        var s = o.short.map { "-\($0), " } ?? "    "
        s += "--" + o.long
        if let v = o.value { s += " " + v }
        return s
    }

    static func optionHelp(_ o: OptionSpec) -> String {
        var s = o.help
        if let env = o.env { s += " [env: \(env)]" }
        if let d = o.defaultText { s += " [default: \(d)]" }
        return s
    }

    /// Help for one subcommand.
    static func command(_ spec: CommandSpec) -> String {
        var out = "vq \(spec.name): \(spec.summary)\n\nUsage: \(spec.synopsis)\n\n"
        out += wrap(spec.description) + "\n"
        if !spec.arguments.isEmpty {
            out += "\nArguments:\n"
            for a in spec.arguments { out += row("  " + a.name, a.help) }
        }
        out += "\nOptions:\n"
        for o in spec.allOptions where !o.hidden { out += row("  " + optionLabel(o), optionHelp(o)) }
        if !spec.examples.isEmpty {
            out += "\nExamples:\n"
            for (what, cmd) in spec.examples { out += "  # \(what)\n  \(cmd)\n" }
        }
        if !spec.built { out += "\nNot built yet in vq \(CommandSpec.version).\n" }
        return out
    }

    private static func row(_ label: String, _ help: String) -> String {
        let column = 36
        if label.count + 2 <= column {
            // Wrap as if the first line were indented too, then put the label in that indent.
            let text = wrap(help, indent: column, firstIndent: column)
            return label + String(repeating: " ", count: column - label.count) + text.dropFirst(column) + "\n"
        }
        return label + "\n" + wrap(help, indent: column) + "\n"
    }

    /// Help for `vq` itself.
    static var main: String {
        var out = "vq \(CommandSpec.version): a distributed vector search engine\n\nUsage: vq COMMAND [ARGS] [OPTIONS]\n\nCommands:\n"
        for c in CommandSpec.commands {
            out += "  " + c.name + String(repeating: " ", count: max(2, 20 - c.name.count)) + c.summary + (c.built ? "" : " (not built yet)") + "\n"
        }
        out += "  help COMMAND        Show a command's help\n"
        out += "\nOptions:\n"
        out += row("  -h, --help", "Show this help and exit.")
        out += row("      --version", "Print the version and exit.")
        out += "\nData lives in --data-dir (env VQ_DATA_DIR, default ./vq-data). Data goes to stdout, diagnostics to stderr.\n"
        out += "Run 'vq help COMMAND' or 'vq COMMAND --help' for a command's options; 'man vq' for more.\n"
        return out
    }
}

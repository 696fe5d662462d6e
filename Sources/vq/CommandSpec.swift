// The one table of vq's commands and flags.
//
// It drives argument parsing (Arguments.swift), `--help` (Help.swift), the man
// pages and the shell completions (Generate.swift). Add a flag here and every
// one of them learns it; CI fails if the committed man/ and completions/ files
// differ from what this table generates.

/// What a shell should offer when completing a value.
enum CompletionKind: Equatable {
    case none
    case file
    case directory
    case choices([String])
    case collection
}

/// One `--long`/`-s` option.
struct OptionSpec {
    var long: String
    var short: Character? = nil
    /// The value's name in help (`DIR`, `N`); nil for a flag that takes no value.
    var value: String? = nil
    var help: String
    var env: String? = nil
    var defaultText: String? = nil
    var completion: CompletionKind = .none
    var hidden = false
}

/// One positional argument.
struct ArgumentSpec {
    var name: String
    var help: String
    var optional = false
    var completion: CompletionKind = .none
}

/// One subcommand.
struct CommandSpec {
    var name: String
    var summary: String
    var description: String
    var arguments: [ArgumentSpec] = []
    var options: [OptionSpec] = []
    var examples: [(String, String)] = []
    /// False for commands a later release fills in; they say so and exit 1.
    var built = true
    /// Whether the data-directory options apply.
    var usesData = true
    /// A peer (serve, join): it has a data directory but is no client of another server.
    var peer = false

    var allOptions: [OptionSpec] {
        let data = !usesData ? [] : peer ? [CommandSpec.dataOptions[0]] : CommandSpec.dataOptions + CommandSpec.clientOptions
        return options + data + CommandSpec.globalOptions
    }

    var synopsis: String {
        var parts = ["vq", name]
        for a in arguments { parts.append(a.optional ? "[\(a.name)]" : a.name) }
        parts.append("[OPTIONS]")
        return parts.joined(separator: " ")
    }
}

extension CommandSpec {
    static let version = "0.1.0"

    static let dataOptions: [OptionSpec] = [
        OptionSpec(long: "data-dir", value: "DIR", help: "Data directory to open (embedded mode).", env: "VQ_DATA_DIR",
                   defaultText: "./vq-data", completion: .directory),
        OptionSpec(long: "url", value: "URL", help: "Talk to the vq server or cluster at URL instead of opening a data directory.",
                   env: "VQ_URL"),
    ]

    /// How a command reaches a server (with --url, or the server holding the data directory).
    /// Each may also come from the client config file (VQ_CONFIG, else ~/.config/vq/config.json).
    static let clientOptions: [OptionSpec] = [
        OptionSpec(long: "api-key", value: "KEY", help: "API key the server requires (sent as the api-key header).", env: "VQ_API_KEY"),
        OptionSpec(long: "timeout", value: "S", help: "Seconds to wait for the server's answer to one request.", env: "VQ_TIMEOUT",
                   defaultText: "30; 3600 for vq snapshot, cluster repair and cluster rebalance"),
    ]

    /// `--quantile Q`, for the commands that take `--quantization int8`.
    static let quantileOption = OptionSpec(long: "quantile", value: "Q", help: "With --quantization int8: the share of values the code range covers.",
                                           defaultText: "0.99")

    static let globalOptions: [OptionSpec] = [
        OptionSpec(long: "quiet", short: "q", help: "Print no progress or summaries on stderr; errors still print."),
        OptionSpec(long: "help", short: "h", help: "Show this help and exit."),
    ]

    /// Options of a peer: `serve` and `join` take the same.
    static let serveOptions: [OptionSpec] = [
        OptionSpec(long: "listen", value: "HOST:PORT", help: "Address to listen on (port 0 picks a free one).", env: "VQ_LISTEN",
                   defaultText: "127.0.0.1:6333"),
        OptionSpec(long: "api-key", value: "KEY", help: "Require this key (api-key header or Authorization: Bearer) on every route but health.",
                   env: "VQ_API_KEY"),
        OptionSpec(long: "read-only-api-key", value: "KEY", help: "A second key that may only read.", env: "VQ_READ_ONLY_API_KEY"),
        OptionSpec(long: "config", value: "FILE", help: "JSON file of settings (lower precedence than flags and environment).",
                   completion: .file),
        OptionSpec(long: "max-body-bytes", value: "N", help: "Largest request body; larger gets 413.", defaultText: "33554432"),
        OptionSpec(long: "max-header-bytes", value: "N", help: "Largest request head; larger gets 431.", defaultText: "16384"),
        OptionSpec(long: "max-connections", value: "N", help: "Open connections before new ones get 503.", defaultText: "20000"),
        OptionSpec(long: "header-timeout", value: "S", help: "Seconds a request's head may take to arrive.", defaultText: "10"),
        OptionSpec(long: "idle-timeout", value: "S", help: "Seconds an idle keep-alive connection is kept.", defaultText: "120"),
        OptionSpec(long: "write-timeout", value: "S", help: "Seconds a write may wait on a full update queue before 429.",
                   defaultText: "5"),
        OptionSpec(long: "prevent-unoptimized", help: "Default prevent_unoptimized for collections created through this server."),
        OptionSpec(long: "update-queue-size", value: "N",
                   help: "Default bound of each shard's update queue for collections created through this server.",
                   defaultText: "1000000"),
        OptionSpec(long: "update-queue-bytes", value: "N",
                   help: "Default bound in bytes of each shard's update queue for collections created through this server.",
                   defaultText: "1073741824"),
        OptionSpec(long: "replication-history-bytes", value: "N",
                   help: "Bytes of recent operations each shard keeps (in memory, and logged so a restart keeps them) so a replica "
                       + "that missed some catches up with just those.",
                   defaultText: "16777216"),
        OptionSpec(long: "peer-timeout", value: "S",
                   help: "Seconds a call to another peer may take: a read moves on to another replica, and a replica that has "
                       + "not taken a write by then is marked Dead (sooner, --replica-lag-timeout, once write_consistency_factor "
                       + "replicas have it).",
                   defaultText: "10"),
        OptionSpec(long: "replica-lag-timeout", value: "S",
                   help: "Seconds a shard's primary waits for a replica that has not taken a write once write_consistency_factor "
                       + "replicas have it (at least 4 times the slowest that did), before marking it Dead and answering; "
                       + "writes to the shard wait meanwhile. A primary that leaves a forwarded write or a catch-up request "
                       + "unanswered for half of it, then a ping for the other half, is taken as gone. At most --peer-timeout.",
                   defaultText: "1"),
        OptionSpec(long: "anti-entropy-interval", value: "S",
                   help: "Seconds between anti-entropy passes: each shard's primary compares its replicas with its copy and "
                       + "repairs what differs (0: only on demand, vq cluster repair).",
                   defaultText: "300"),
        OptionSpec(long: "auto-rebalance",
                   help: "When a peer joins or is removed, the Raft leader moves replicas until every peer holds an even share "
                       + "(give it to every peer; otherwise run vq cluster rebalance)."),
        OptionSpec(long: "max-buffered-bytes", value: "N",
                   help: "Request input all connections together may hold; past it the largest unfinished request gets 503.",
                   defaultText: "268435456"),
        OptionSpec(long: "advertise", value: "URL", help: "The URL other peers reach this one at.", env: "VQ_ADVERTISE",
                   defaultText: "http://LISTEN"),
        OptionSpec(long: "cluster-secret", value: "SECRET",
                   help: "Shared secret (16 to 256 printable characters) required on every peer-to-peer (/internal/) request; "
                       + "kept in DIR/cluster/secret. A founding peer without one generates it; vq join needs it.",
                   env: "VQ_CLUSTER_SECRET"),
        OptionSpec(long: "read-replica-choice", value: "HOW",
                   help: "Which replica a read asks first after the local one: latency (fewest outstanding, then recent EWMA) or round-robin.",
                   defaultText: "latency", completion: .choices(["latency", "round-robin"])),
        OptionSpec(long: "log-format", value: "FORMAT", help: "text or json (one object per line).", env: "VQ_LOG_FORMAT", defaultText: "text",
                   completion: .choices(["text", "json"])),
        OptionSpec(long: "shard-transfer", value: "HOW",
                   help: "How a whole shard is copied to a replica: files (its segment files, graphs included) or records "
                       + "(every point, indexed again there; benchmarks).",
                   defaultText: "files", completion: .choices(["files", "records"]), hidden: true),
        OptionSpec(long: "raft-compact-entries", value: "N", help: "Metadata log entries kept before a snapshot replaces them (tests).",
                   defaultText: "2000", hidden: true),
        OptionSpec(long: "log-requests", help: "Log one line per request: method, path, status, response bytes, microseconds."),
        OptionSpec(long: "verbose", short: "v", help: "Log more: every request (as --log-requests)."),
    ]

    static let commands: [CommandSpec] = [
        CommandSpec(
            name: "create-collection",
            summary: "Create a collection of vectors",
            description: """
            Creates collection NAME for vectors of --dim dimensions. The parameters are stored in the \
            collection's config and keep their Qdrant names; sizes are kilobytes of vector data, as in Qdrant. \
            Prints {"collection":NAME,"created":true} on stdout; with --if-not-exists an existing collection is \
            left as it is and {"collection":NAME,"created":false} printed.
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection name: letters, digits, '-' and '_'.")],
            options: [
                OptionSpec(long: "if-not-exists", help: "Succeed without changes when the collection exists (its settings are not compared)."),
                OptionSpec(long: "dim", value: "N", help: "Vector dimension (required)."),
                OptionSpec(long: "distance", value: "METRIC", help: "cosine, dot, euclid or manhattan.", defaultText: "cosine",
                           completion: .choices(["cosine", "dot", "euclid", "manhattan"])),
                OptionSpec(long: "shards", value: "N", help: "Number of shards (shard_number).", defaultText: "1"),
                OptionSpec(long: "replication-factor", value: "N", help: "Replicas of each shard (replication_factor).", defaultText: "1"),
                OptionSpec(long: "write-consistency-factor", value: "N",
                           help: "Replicas that must confirm a write (write_consistency_factor).", defaultText: "1"),
                OptionSpec(long: "read-fan-out-delay-ms", value: "MS",
                           help: "Ask another replica when one has not answered after MS milliseconds; 0 = off (read_fan_out_delay_ms).",
                           defaultText: "0"),
                OptionSpec(long: "read-fan-out-factor", value: "N", help: "Extra replicas every read asks (read_fan_out_factor).",
                           defaultText: "0"),
                OptionSpec(long: "m", value: "N", help: "HNSW links per node (hnsw_config.m); 0 = no index.", defaultText: "16"),
                OptionSpec(long: "ef-construct", value: "N", help: "HNSW build beam width (hnsw_config.ef_construct).", defaultText: "100"),
                OptionSpec(long: "full-scan-threshold", value: "KB",
                           help: "Segments with less vector data are searched by exact scan (hnsw_config.full_scan_threshold).",
                           defaultText: "10000"),
                OptionSpec(long: "indexing-threshold", value: "KB",
                           help: "Vector data at which a segment is indexed; 0 = never (optimizer_config.indexing_threshold).",
                           defaultText: "10000"),
                OptionSpec(long: "max-segment-size", value: "KB",
                           help: "Most vector data one segment holds (optimizer_config.max_segment_size).", defaultText: "200000"),
                OptionSpec(long: "max-indexing-threads", value: "N",
                           help: "Threads that build one HNSW graph; 0 = all cores (hnsw_config.max_indexing_threads).", defaultText: "0"),
                OptionSpec(long: "default-segment-number", value: "N",
                           help: "Segments the merger aims for; 0 = automatic (optimizer_config.default_segment_number).", defaultText: "0"),
                OptionSpec(long: "quantization", value: "KIND", help: "Quantize the vectors: int8 (scalar, 1 byte a value) or turbo4 (TurboQuant, 4 bits a value after a rotation); codes in RAM, graphs walked on them, re-scored exactly.",
                           completion: .choices(["int8", "turbo4"])),
                quantileOption,
                OptionSpec(long: "prevent-unoptimized",
                           help: "Apply updates no faster than they are indexed (optimizer_config.prevent_unoptimized)."),
                OptionSpec(long: "update-queue-size", value: "N",
                           help: "Pending updates per shard before writers wait (update_queue_size).", defaultText: "1000000"),
                OptionSpec(long: "update-queue-bytes", value: "N",
                           help: "Bytes of pending updates per shard before writers wait (update_queue_bytes).", defaultText: "1073741824"),
            ],
            examples: [
                ("Create a collection for 384-dimensional sentence embeddings:", "vq create-collection docs --dim 384"),
                ("Three shards, two replicas each, delayed fan-out after 20 ms:",
                 "vq create-collection docs --dim 384 --shards 3 --replication-factor 2 --read-fan-out-delay-ms 20"),
            ]
        ),
        CommandSpec(
            name: "upsert",
            summary: "Insert or replace points from a file or standard input",
            description: """
            Reads points from FILE (or standard input when FILE is '-' or absent) and upserts them in batches. \
            JSON Lines take one {"id": ID, "vector": [...], "payload": {...}} per line; ids are unsigned integers \
            or UUID strings. A collection with named vectors takes "vector": {"NAME": [...], "SPARSE": {"indices": [...], \
            "values": [...]}}, each optional. In .fvecs and .npy (float32, 2-D) files the id of row i is i plus --id-offset. \
            A progress bar shows on stderr when it is a terminal; a one-line JSON summary goes to stdout in every \
            outcome: points stored, lines rejected, the last line read into a point, "status" ok or failed. \
            Exit status 0 means every point read is durable, and indexed as the collection's thresholds ask \
            (embedded or through a server alike; --no-optimize skips the wait). A bad line stops the run with exit \
            status 2 and names the line; every point before it is stored, so re-running after a fix is safe \
            (upsert is idempotent). With --max-errors N up to N bad JSON lines are skipped, each named on stderr \
            (and written whole to --rejects FILE); --start-line resumes a run part-way through its input.
            """,
            arguments: [
                ArgumentSpec(name: "NAME", help: "Collection to write to.", completion: .collection),
                ArgumentSpec(name: "FILE", help: "Input file, or '-' for standard input.", optional: true, completion: .file),
            ],
            options: [
                OptionSpec(long: "format", value: "FORMAT", help: "jsonl, fvecs or npy; by default from FILE's extension, else jsonl.",
                           completion: .choices(["jsonl", "fvecs", "npy"])),
                OptionSpec(long: "batch-size", value: "N", help: "Points per batch.", defaultText: "256"),
                OptionSpec(long: "id-offset", value: "N", help: "Added to row numbers to make ids (fvecs, npy).", defaultText: "0"),
                OptionSpec(long: "no-optimize",
                           help: "Exit once the points are durable, without waiting for the optimizer to index them."),
                OptionSpec(long: "max-errors", value: "N", help: "Skip up to N bad JSON lines (each named on stderr) instead of stopping at the first.",
                           defaultText: "0"),
                OptionSpec(long: "rejects", value: "FILE", help: "With --max-errors: write each skipped line to FILE.", completion: .file),
                OptionSpec(long: "start-line", value: "N", help: "Begin at line (record) N of the input: resume an interrupted run.",
                           defaultText: "1"),
            ],
            examples: [
                ("Upsert a JSON Lines file:", "vq upsert docs points.jsonl"),
                ("From a pipeline:", "gen-embeddings | vq upsert docs -"),
                ("A second .fvecs file after the first million rows:", "vq upsert docs part2.fvecs --id-offset 1000000"),
                ("A nightly batch that tolerates a few bad lines:", "vq upsert docs nightly.jsonl --max-errors 100 --rejects bad.jsonl"),
                ("Resume it after line 25000:", "vq upsert docs nightly.jsonl --max-errors 100 --start-line 25001"),
            ]
        ),
        CommandSpec(
            name: "search",
            summary: "Find the nearest points to query vectors",
            description: """
            Searches collection NAME with one --vector, or with every query in --queries FILE (JSON Lines with a \
            "vector", bare JSON arrays, or .fvecs). Prints one JSON line per query: \
            {"results":[{"id":ID,"score":SCORE}, ...]}. Scores follow Qdrant: similarity for cosine and dot \
            (highest first), distance for euclid and manhattan (lowest first).
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection to search.", completion: .collection)],
            options: [
                OptionSpec(long: "vector", value: "JSON", help: "One query vector as a JSON array."),
                OptionSpec(long: "queries", value: "FILE", help: "Query file (JSON Lines or .fvecs), or '-' for standard input.",
                           completion: .file),
                OptionSpec(long: "limit", short: "k", value: "K", help: "Results per query.", defaultText: "10"),
                OptionSpec(long: "with-payload", help: "Include each point's payload."),
                OptionSpec(long: "filter", value: "JSON",
                           help: #"Only points passing this Qdrant filter, e.g. '{"must":[{"key":"city","match":{"value":"Oslo"}}]}'."#),
                OptionSpec(long: "exact", help: "Exact (brute-force) search, bypassing any index."),
                OptionSpec(long: "oversampling", value: "X", help: "Quantized collections: re-score X times the limit from the codes' best.", defaultText: "1"),
                OptionSpec(long: "no-rescore", help: "Quantized collections: answer with the codes' scores, not re-scored exactly."),
                OptionSpec(long: "no-quantization", help: "Quantized collections: walk the float vectors, not the codes."),
                OptionSpec(long: "using", value: "NAME", help: "Search this named vector (collections with named vectors)."),
                OptionSpec(long: "sparse", value: "JSON", help: #"A sparse query, '{"indices": [...], "values": [...]}', for the sparse vector --using names."#),
                OptionSpec(long: "prefetch", value: "JSON",
                           help: #"Hybrid search: Qdrant's prefetch list, e.g. '[{"query": [...], "using": "dense", "limit": 20}, {"query": {"indices": [...], "values": [...]}, "using": "text", "limit": 20}]'; fused by --fusion or re-ranked by --vector/--sparse."#),
                OptionSpec(long: "fusion", value: "NAME", help: "With --prefetch: fuse the prefetched lists by rrf or dbsf.",
                           completion: .choices(["rrf", "dbsf"])),
                OptionSpec(long: "hnsw-ef", value: "N", help: "HNSW beam width: higher is more accurate and slower.",
                           defaultText: "max(ef_construct, limit)"),
                OptionSpec(long: "indexed-only",
                           help: "Search indexed segments only (and unindexed ones small enough for a full scan); "
                               + "each result line says how many points were left out (unindexed_skipped)."),
                OptionSpec(long: "format", value: "FORMAT", help: "json (JSON Lines) or table (for people).", defaultText: "json",
                           completion: .choices(["json", "table"])),
            ],
            examples: [
                ("Ten nearest points to one vector:", "vq search docs --vector '[0.1, 0.2, 0.3]'"),
                ("Every query in a file, five results each, as a table:", "vq search docs --queries q.jsonl -k 5 --format table"),
                ("Only points in Oslo:", #"vq search docs --vector '[0.1, 0.2, 0.3]' --filter '{"must":[{"key":"city","match":{"value":"Oslo"}}]}'"#),
            ]
        ),
        CommandSpec(
            name: "update-collection",
            summary: "Change a collection's read fan-out, write consistency or optimizer settings",
            description: """
            Changes the named settings of collection NAME and leaves the others (PATCH /collections/NAME). Read \
            fan-out and write consistency take effect at once, on every peer of a cluster, without reopening \
            anything; optimizer and index settings reopen the collection's shards. Prints \
            {"collection":NAME,"updated":{...}} with what was set, in PATCH's shape.
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection to change.", completion: .collection)],
            options: [
                OptionSpec(long: "read-fan-out-delay-ms", value: "MS",
                           help: "Ask another replica when one has not answered after MS milliseconds; 0 = off."),
                OptionSpec(long: "read-fan-out-factor", value: "N", help: "Extra replicas every read asks."),
                OptionSpec(long: "write-consistency-factor", value: "N", help: "Replicas that must confirm a write."),
                OptionSpec(long: "indexing-threshold", value: "KB", help: "Vector data at which a segment is indexed; 0 = never."),
                OptionSpec(long: "prevent-unoptimized", value: "BOOL", help: "true or false.", completion: .choices(["true", "false"])),
                OptionSpec(long: "quantization", value: "KIND", help: "int8, turbo4 or none: replaces the quantization; indexed segments make their codes again.",
                           completion: .choices(["int8", "turbo4", "none"])),
                quantileOption,
            ],
            examples: [("Fan reads out after 20 ms on every peer:", "vq update-collection docs --read-fan-out-delay-ms 20 --url http://127.0.0.1:6333"),
                       ("Switch to 4-bit codes:", "vq update-collection docs --quantization turbo4")]
        ),
        CommandSpec(
            name: "create-index",
            summary: "Index a payload field for fast filtered searches, counts, facets and order_by",
            description: """
            Indexes payload field FIELD of collection NAME (PUT /collections/NAME/index). TYPE is keyword, integer, \
            float, bool, datetime, uuid, text or geo, or Qdrant's field_schema object as JSON, such as \
            '{"type":"text","tokenizer":"word","min_token_len":2}' or '{"type":"integer","lookup":false}'. FIELD is \
            a payload path: "city", "meta.lang", "tags[]". Every segment builds the index at once (a cluster's \
            peers each build theirs); filters on the field then read it instead of every point's JSON. Prints \
            {"collection":NAME,"field":FIELD,"field_schema":...}.
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection.", completion: .collection),
                        ArgumentSpec(name: "FIELD", help: "Payload field path."),
                        ArgumentSpec(name: "TYPE", help: "Index type, or a field_schema JSON object.",
                                     completion: .choices(["keyword", "integer", "float", "bool", "datetime", "uuid", "text", "geo"]))],
            examples: [("Index the city field for filters and facets:", "vq create-index docs city keyword"),
                       ("Full-text index with words of 2 characters or more:",
                        #"vq create-index docs body '{"type":"text","tokenizer":"word","min_token_len":2}'"#)]
        ),
        CommandSpec(
            name: "delete-index",
            summary: "Stop indexing a payload field",
            description: """
            Drops the index of payload field FIELD of collection NAME (DELETE /collections/NAME/index/FIELD); \
            filters on it then check each point's JSON. Prints {"collection":NAME,"field":FIELD,"deleted":true}.
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection.", completion: .collection),
                        ArgumentSpec(name: "FIELD", help: "Payload field path.")],
            examples: [("Drop the index of city:", "vq delete-index docs city")]
        ),
        CommandSpec(
            name: "collections",
            summary: "List collections",
            description: "Prints the name of every collection, one per line.",
            examples: [("List collections in ./vq-data:", "vq collections")]
        ),
        CommandSpec(
            name: "info",
            summary: "Show a collection's config, points, segments and queues",
            description: """
            Prints one JSON object: the collection's config, its point count, its segments, the update queue depth \
            and how many points are not yet indexed.
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection to describe.", completion: .collection)],
            examples: [("Describe a collection:", "vq info docs")]
        ),
        CommandSpec(
            name: "get",
            summary: "Print points by id",
            description: """
            Prints each point asked for as one JSON line, {"id","payload"} (and "vector" with --with-vectors), \
            in the order given: the form vq upsert reads. Ids not in the collection are named on stderr and make \
            the exit status 1.
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection to read.", completion: .collection),
                        ArgumentSpec(name: "ID...", help: "Point ids: unsigned integers or UUIDs.")],
            options: [OptionSpec(long: "with-vectors", help: "Include each point's vectors.")],
            examples: [("Two points with their vectors:", "vq get docs 7 42 --with-vectors")]
        ),
        CommandSpec(
            name: "count",
            summary: "Count points, all or those matching a filter",
            description: """
            Prints {"collection":NAME,"count":N}, counted exactly; --filter takes a Qdrant filter object.
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection to count.", completion: .collection)],
            options: [OptionSpec(long: "filter", value: "JSON", help: "Count only points matching this Qdrant filter.")],
            examples: [("Points of one category:", #"vq count docs --filter '{"must":[{"key":"lang","match":{"value":"en"}}]}'"#)]
        ),
        CommandSpec(
            name: "export",
            summary: "Print every point as JSONL that vq upsert reads back",
            description: """
            Prints every point (or those matching --filter) as one JSON line in id order, {"id","vector","payload"} \
            with --with-vectors, paged through the scroll API. `vq export A --with-vectors | vq upsert B -` copies \
            a collection. The count goes to stderr.
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection to export.", completion: .collection)],
            options: [
                OptionSpec(long: "filter", value: "JSON", help: "Export only points matching this Qdrant filter."),
                OptionSpec(long: "with-vectors", help: "Include the vectors (needed to upsert the output again)."),
                OptionSpec(long: "batch-size", value: "N", help: "Points per scroll request.", defaultText: "1000"),
            ],
            examples: [("Back up a collection:", "vq export docs --with-vectors > docs.jsonl"),
                       ("Copy one into another:", "vq export docs --with-vectors | vq upsert docs2 -")]
        ),
        CommandSpec(
            name: "delete",
            summary: "Delete points by id or by filter",
            description: """
            Deletes the points given by --ids or matching --filter (one of them) and waits until it is applied. \
            Prints {"collection":NAME,"deleted":N}, N the points that matched just before.
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection to delete from.", completion: .collection)],
            options: [
                OptionSpec(long: "ids", value: "ID,...", help: "Point ids separated by commas."),
                OptionSpec(long: "filter", value: "JSON", help: "Delete the points matching this Qdrant filter."),
            ],
            examples: [("Prune stale points in a nightly job:", #"vq delete docs --filter '{"must":[{"key":"day","range":{"lt":20261101}}]}'"#)]
        ),
        CommandSpec(
            name: "snapshot",
            summary: "Create, list, download, delete or restore snapshots (backups)",
            description: """
            Qdrant's snapshots, embedded or through a server (--url, or the server holding --data-dir). A \
            collection's snapshot is one file (a tar archive) holding its config and every shard's segments as of \
            one moment, taken while writes and searches go on; it lands in DIR/snapshots/NAME/ (the server's \
            directory when remote) beside NAME.snapshot.checksum, its SHA-256. create NAME prints \
            {"name","creation_time","size","checksum"}; --output FILE (or - for stdout) also copies the file out, and \
            --keep N then deletes all but the newest N of NAME's snapshots. create --full snapshots every collection \
            and the aliases into DIR/snapshots/. list [NAME] prints one JSON line per snapshot, oldest first (without \
            NAME: the full ones). download NAME SNAPSHOT copies one to --output (default: a file named SNAPSHOT). \
            delete NAME SNAPSHOT removes one. restore NAME FILE checks FILE whole (every tar header and every block \
            checksum of every segment, and --checksum when given) and only then replaces collection NAME with it, \
            creating it if absent; through a server the file is uploaded (at most 200 MiB; larger ones: put the \
            file in the server's snapshots directory and PUT /collections/NAME/snapshots/recover with its file:// \
            location). restore --full FILE restores every collection of a full snapshot, and its aliases, into \
            --data-dir (no server may hold it). With --full, download and delete take a full snapshot's name.
            """,
            arguments: [ArgumentSpec(name: "ACTION", help: "create, list, download, delete or restore.",
                                     completion: .choices(["create", "list", "download", "delete", "restore"])),
                        ArgumentSpec(name: "NAME", help: "The collection (not with --full).", optional: true, completion: .collection),
                        ArgumentSpec(name: "FILE", help: "restore: the snapshot file; download, delete: the snapshot's name.",
                                     optional: true, completion: .file)],
            options: [
                OptionSpec(long: "full", help: "The whole storage: every collection and the aliases."),
                OptionSpec(long: "output", value: "FILE", help: "create, download: copy the snapshot to FILE (- for stdout).",
                           completion: .file),
                OptionSpec(long: "keep", value: "N", help: "create: then delete all but the newest N snapshots of the collection."),
                OptionSpec(long: "checksum", value: "SHA256", help: "restore: refuse FILE unless its SHA-256 is this."),
            ],
            examples: [("Nightly backup of a collection, keeping a week:",
                        "vq snapshot create docs --url http://127.0.0.1:6333 --output /backup/docs-$(date +%F).snapshot --keep 7"),
                       ("Restore it into a fresh data directory, then serve it:",
                        "vq snapshot restore docs /backup/docs-2026-11-29.snapshot --data-dir restored && vq serve --data-dir restored"),
                       ("List a server's snapshots of docs:", "vq snapshot list docs --url http://127.0.0.1:6333")]
        ),
        CommandSpec(
            name: "delete-collection",
            summary: "Delete a collection and its data",
            description: """
            Deletes collection NAME with all its points. Prints {"collection":NAME,"deleted":true}; a collection \
            that does not exist is an error (exit 1) unless --if-exists.
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection to delete.", completion: .collection)],
            options: [OptionSpec(long: "if-exists", help: "Succeed (printing \"deleted\":false) when there is no such collection.")],
            examples: [("Drop a scratch collection:", "vq delete-collection scratch --if-exists")]
        ),
        CommandSpec(
            name: "check",
            summary: "Verify a data directory's checksums",
            description: """
            Verifies collection NAME (or every collection): each shard opens (its manifest and write-ahead log \
            check themselves), and every segment file matches the block checksums recorded when it was last \
            flushed (CRC-32C per 64 KiB, also for files that still change: deletions, the appendable segment). \
            Prints one JSON line per collection: {"collection", "ok", "problems": [...]}, each problem naming the \
            damaged file. Exit status 1 when anything is damaged. Through a server (--url, or the server holding \
            --data-dir) the server checks its own files. Run it after a crash or a disk problem.
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection to check (default: all).", optional: true, completion: .collection)],
            examples: [("Check everything in ./vq-data:", "vq check"), ("One collection of a running server:", "vq check docs --url http://127.0.0.1:6333")]
        ),
        CommandSpec(
            name: "optimize",
            summary: "Seal, index, merge and vacuum segments now",
            description: """
            Runs the optimizer on collection NAME now: seals the appendable segment, builds HNSW graphs for every \
            sealed segment, merges segments down to default_segment_number (within max_segment_size) and vacuums \
            deleted points. Searches and writes go on meanwhile. Prints a JSON summary: segments before and after, \
            points indexed, seconds. An embedded run always waits for the result; --wait is accepted for scripts \
            that also talk to servers.
            """,
            arguments: [ArgumentSpec(name: "NAME", help: "Collection to optimize.", completion: .collection)],
            options: [OptionSpec(long: "wait", help: "Return once optimization has finished: vq always does; accepted for scripts written for it.")],
            examples: [("Index everything now:", "vq optimize docs")]
        ),
        CommandSpec(
            name: "serve",
            summary: "Run a peer: the Qdrant-compatible HTTP API over a data directory",
            description: """
            Serves the REST API (Qdrant's paths and JSON shapes) over the data directory until SIGINT or SIGTERM, \
            then stops accepting, finishes requests in flight, flushes and releases the directory. The lock file \
            records the address, so embedded commands on the same directory are told where the server is. \
            Settings come from flags, then VQ_* environment variables (VQ_LISTEN, VQ_API_KEY, ...), then --config \
            FILE (a JSON object with the same names in snake_case; an unknown name is refused), then defaults. \
            Logs go to stderr, one line per event with an ISO-8601 UTC time (--log-format json: one JSON object \
            per line); --log-requests (or -v) adds one per request.
            """,
            options: serveOptions,
            examples: [
                ("Serve ./vq-data on the default port:", "vq serve"),
                ("On all interfaces with an API key from the environment:", "VQ_API_KEY=secret vq serve --listen 0.0.0.0:6333"),
            ],
            peer: true
        ),
        CommandSpec(
            name: "join",
            summary: "Start a peer and join it to a cluster",
            description: """
            Starts a new peer on an empty data directory (the same settings as serve) and asks the member at URL \
            to add it; the request is forwarded to the Raft leader, which commits the peer's address, replicates the \
            metadata log to it as a non-voting learner and, once it has caught up, makes it a voter (a joiner that \
            cannot be reached never changes the quorum). Needs the cluster secret (--cluster-secret or \
            VQ_CLUSTER_SECRET; 'vq cluster token --data-dir DIR' prints it on a member). Once joined, restart it \
            with 'vq serve' on the same directory: it rejoins by itself.
            """,
            arguments: [ArgumentSpec(name: "URL", help: "Any member of the cluster.")],
            options: serveOptions,
            examples: [("Join the cluster of a local peer:",
                        "VQ_CLUSTER_SECRET=$(vq cluster token --data-dir peer1) vq join http://127.0.0.1:6333 --data-dir peer2 --listen 127.0.0.1:6334")],
            peer: true
        ),
        CommandSpec(
            name: "cluster",
            summary: "Show the cluster's peers, remove a peer, repair or rebalance replicas, or print the cluster secret",
            description: """
            Asks a running peer (--url, or the server holding --data-dir) about its cluster. With no ACTION (or \
            status) prints one line per peer: id, URI, role as this peer sees it (leader, follower, or learner: a \
            joined peer that has not caught up yet and does not vote), and whether it answers its health check; then \
            the term, the commit index and whether a majority of voters answers (surviving one failed peer takes \
            three voters). remove-peer ID takes a peer out of the cluster through the Raft leader (refused for the \
            last peer, and for a peer holding replicas unless --force, which first moves each replica to a peer that \
            has none of its shard, or drops it where no such peer exists); the removed peer stops. repair COLLECTION \
            runs anti-entropy now: each shard's primary compares every active replica with its copy (digests over \
            256 ranges of point ids, then the points of the ranges that differ) and repairs the difference; prints \
            each shard's report (servers also do this every --anti-entropy-interval seconds). rebalance [COLLECTION] \
            moves replicas, one shard transfer at a time while serving, until every voting peer holds an even share \
            of each collection's; prints the moves (--dry-run: only plans them). token prints the cluster secret \
            kept in --data-dir (the founding peer generates it); 'vq join' needs it, and it is never served over HTTP.
            """,
            arguments: [ArgumentSpec(name: "ACTION", help: "status (default), remove-peer, repair, rebalance or token.", optional: true,
                                     completion: .choices(["status", "remove-peer", "repair", "rebalance", "token"])),
                        ArgumentSpec(name: "ID|COLLECTION", help: "The peer to remove (remove-peer); the collection (repair, rebalance).",
                                     optional: true)],
            options: [OptionSpec(long: "format", value: "FORMAT", help: "table (for people) or json (GET /cluster's result).",
                                 defaultText: "table on a terminal, else json", completion: .choices(["table", "json"])),
                      OptionSpec(long: "force", help: "remove-peer: move or drop the peer's replicas first instead of refusing."),
                      OptionSpec(long: "shard", value: "N", help: "repair: this shard only."),
                      OptionSpec(long: "dry-run", help: "rebalance: print the moves without making them.")],
            examples: [("Peers of the local server:", "vq cluster --url http://127.0.0.1:6333"),
                       ("Remove a peer:", "vq cluster remove-peer 6560429430443668 --url http://127.0.0.1:6333"),
                       ("Compare and repair the replicas of a collection:", "vq cluster repair docs --url http://127.0.0.1:6333"),
                       ("Spread replicas over a peer that just joined:", "vq cluster rebalance --url http://127.0.0.1:6333"),
                       ("Start a second peer with the founder's secret:",
                        "VQ_CLUSTER_SECRET=$(vq cluster token --data-dir p1) vq join http://127.0.0.1:6333 --data-dir p2 --listen 127.0.0.1:6334")]
        ),
        CommandSpec(
            name: "bench",
            summary: "Measure build time, recall, throughput and latency",
            description: """
            Builds a collection from a dataset in a temporary data directory (or --data-dir) through the engine \
            (WAL, update queue, segments, then HNSW indexing) and reports the build time, then for each --ef: \
            recall@k against exact ground truth, queries per second with 1 and with --threads threads, and latency \
            percentiles. DIR holds base.fvecs, query.fvecs and groundtruth.ivecs (TEXMEX layout); --base and \
            --queries name files (.fvecs or .npy) and the ground truth is computed when absent; --synthetic N,DIM \
            generates clustered data (seeded). --scenario write-load instead measures search latency while a writer \
            upserts at full speed, three ways: default, indexed_only, and indexed_only with prevent_unoptimized. \
            --scenario filter gives every point a generated payload (a keyword whose values hold 0.1%, 1%, 10% and \
            50% of the points, a uniform integer) and reports, per filter (keyword matches, integer ranges from 1% \
            to 90%), recall@k against the exact filtered neighbours and the QPS with payload indexes, without them \
            (each point's JSON checked), and of the same queries with no filter; --ef defaults to 64 there. \
            With --url, nothing is built: --clients threads search collection --collection of a running server or \
            cluster with DIR's query.fvecs (or --queries) for --duration seconds, and the QPS and latency \
            percentiles the clients saw are reported.
            """,
            arguments: [ArgumentSpec(name: "DIR", help: "Dataset directory (base.fvecs, query.fvecs, groundtruth.ivecs).",
                                     optional: true, completion: .directory)],
            options: [
                OptionSpec(long: "base", value: "FILE", help: "Base vectors (.fvecs or .npy).", completion: .file),
                OptionSpec(long: "queries", value: "FILE", help: "Query vectors (.fvecs or .npy).", completion: .file),
                OptionSpec(long: "groundtruth", value: "FILE", help: "Exact neighbours (.ivecs); computed when absent.", completion: .file),
                OptionSpec(long: "synthetic", value: "N,DIM",
                           help: "Generate N clustered DIM-dimensional points instead (--scenario sparse: N documents over a DIM-term vocabulary; "
                               + "multi: N documents of DIM-dimensional token vectors)."),
                OptionSpec(long: "queries-count", value: "N", help: "Queries to generate with --synthetic.", defaultText: "1000"),
                OptionSpec(long: "seed", value: "N", help: "Seed for --synthetic.", defaultText: "42"),
                OptionSpec(long: "save-dataset", value: "DIR", help: "Also write the dataset (and ground truth) as .fvecs/.ivecs to DIR.",
                           completion: .directory),
                OptionSpec(long: "distance", value: "METRIC", help: "cosine, dot, euclid or manhattan.", defaultText: "cosine",
                           completion: .choices(["cosine", "dot", "euclid", "manhattan"])),
                OptionSpec(long: "limit", short: "k", value: "K", help: "Neighbours per query (recall@K), as vq search --limit.", defaultText: "10"),
                OptionSpec(long: "ef", value: "LIST", help: "hnsw_ef values to sweep, comma-separated.", defaultText: "16,32,48,64,96,128"),
                OptionSpec(long: "m", value: "N", help: "HNSW links per node.", defaultText: "16"),
                OptionSpec(long: "ef-construct", value: "N", help: "HNSW build beam width.", defaultText: "100"),
                OptionSpec(long: "threads", value: "N", help: "Threads for indexing and for the multi-threaded QPS.", defaultText: "all cores"),
                OptionSpec(long: "full-scan-threshold", value: "KB",
                           help: "hnsw_config.full_scan_threshold: filtered searches allowing fewer points' vectors than this are exact.",
                           defaultText: "10000"),
                OptionSpec(long: "quantization", value: "KIND", help: "recall: quantize (int8 or turbo4), walk the codes and re-score exactly.",
                           completion: .choices(["int8", "turbo4"])),
                quantileOption,
                OptionSpec(long: "oversampling", value: "X", help: "With --quantization: re-score X times k candidates exactly.", defaultText: "1"),
                OptionSpec(long: "default-path",
                           help: "recall: build as a user does (default collection settings, indexing while ingesting, every core) instead of a bulk load."),
                OptionSpec(long: "default-segment-number", value: "N",
                           help: "With --default-path: optimizers_config.default_segment_number (0: automatic, one segment).", defaultText: "0"),
                OptionSpec(long: "named-vectors",
                           help: "recall: store the dataset as named vector \"dense\" beside an 8-d named vector \"extra\", and search \"dense\"."),
                OptionSpec(long: "scenario", value: "NAME", help: "recall (default), filter, sparse, multi or write-load.", defaultText: "recall",
                           completion: .choices(["recall", "filter", "sparse", "multi", "write-load"])),
                OptionSpec(long: "duration", value: "S", help: "Seconds of writing per write-load run; with --url, seconds of searching.",
                           defaultText: "10"),
                OptionSpec(long: "json", help: "Print one JSON object instead of a table."),
                OptionSpec(long: "collection", value: "NAME", help: "With --url: the collection to search."),
                OptionSpec(long: "clients", value: "N", help: "With --url: concurrent clients, one connection each.", defaultText: "8"),
                OptionSpec(long: "rate", value: "R",
                           help: "With --url: send R requests per second in all (open loop; latency counted from when each was due)."),
            ],
            examples: [
                ("Search latency against a running cluster:",
                 "vq bench ../shared/data/minilm-20k --url http://127.0.0.1:6333 --collection docs --clients 8 --duration 10"),
                ("Recall and speed on a TEXMEX-style dataset:", "vq bench ../shared/data/minilm-20k --ef 16,32,64"),
                ("200,000 synthetic 128-d points, machine-readable:", "vq bench --synthetic 200000,128 --json"),
                ("Search latency under a full-speed writer:", "vq bench ../shared/data/minilm-20k --scenario write-load --duration 10"),
            ]
        ),
    ]

    static func named(_ name: String) -> CommandSpec? {
        commands.first { $0.name == name }
    }
}

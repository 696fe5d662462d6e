// The engine facade: a locked data directory and the collections in it.
//
// The CLI's embedded mode and (later) the server use only this type.

import Foundation

/// An open data directory: its lock and its collections.
package final class Engine: @unchecked Sendable {
    package let directory: DataDirectory
    private let lock: DirectoryLock
    private let mutex = NSLock()
    private var open: [String: VectorCollection] = [:]
    /// Collections unpacked from a snapshot, waiting for the cluster's create to adopt them
    /// (guarded by `mutex`): name -> staged directory.
    private var staged: [String: String] = [:]
    private let warn: @Sendable (String) -> Void
    /// A peer's cluster placement, given to every collection it opens (nil: all shards local).
    package let placement: (any ReplicaPlacement)?
    /// Background graph builds use every core, not all but one (a CLI process that holds the data
    /// directory alone: nothing else searches it). Set before collections open.
    package var indexWithEveryCore = false

    /// Opens (creating if needed) a data directory and takes its lock.
    /// - Throws: `.busy` naming the holder when another process has it.
    package convenience init(path: String, address: String? = nil, warn: @escaping @Sendable (String) -> Void) throws {
        let (directory, lock) = try Engine.lock(path: path, address: address)
        self.init(directory: directory, lock: lock, placement: nil, warn: warn)
    }

    /// An engine over a directory already locked (`vq serve` locks first, then opens its cluster
    /// state, then the engine with the cluster's placement).
    package init(directory: DataDirectory, lock: DirectoryLock, placement: (any ReplicaPlacement)?, warn: @escaping @Sendable (String) -> Void) {
        self.directory = directory
        self.lock = lock
        self.placement = placement
        self.warn = warn
    }

    /// Creates the data directory if needed and takes its lock.
    /// - Throws: `.busy` naming the holder when another process has it.
    package static func lock(path: String, address: String?) throws -> (DataDirectory, DirectoryLock) {
        let directory = DataDirectory(path)
        if FileIO.exists(path) && !FileIO.isDirectory(path) {
            throw VQError.invalid("data directory \(path) is a file; expected a directory")
        }
        try FileIO.makeDirectories(path)
        let lock = try DirectoryLock(directory, address: address)
        try directory.prepare()
        return (directory, lock)
    }

    /// Collection names are letters, digits, '-' and '_', 1 to 200 characters (a file name is at
    /// most 255 bytes, and the staging directory adds a prefix). The cluster's metadata state
    /// machine checks the same, so no name commits that a peer could not create.
    package static let maxNameLength = 200

    package static func validateName(_ name: String) throws {
        let ok = !name.isEmpty && name.utf8.count <= Engine.maxNameLength && name.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F
        }
        if !ok {
            throw VQError.invalid("collection name \"\(name)\" is invalid; expected 1 to \(Engine.maxNameLength) letters, digits, '-' or '_'")
        }
    }

    /// The names of the collections, sorted.
    package func collectionNames() -> [String] {
        FileIO.list(directory.collectionsDir).filter { !$0.hasPrefix(".") && FileIO.exists(directory.collectionConfig($0)) }
    }

    /// Whether collection `name` exists: an open one, else one stat of its config (no directory
    /// listing; requests ask this).
    package func hasCollection(_ name: String) -> Bool {
        mutex.lock()
        let isOpen = open[name] != nil
        mutex.unlock()
        return isOpen || ((try? Engine.validateName(name)) != nil && FileIO.exists(directory.collectionConfig(name)))
    }

    /// Creates a collection: its config and shard directories appear at once (a rename), or not at all.
    /// - Throws: `.conflict`, or `.invalidInput` for a bad name or config.
    package func createCollection(_ name: String, config: CollectionConfig) throws {
        try Engine.validateName(name)
        try config.validate()
        mutex.lock()
        defer { mutex.unlock() }
        let target = directory.collectionDir(name)
        if FileIO.exists(target) {
            throw VQError(.conflict, "collection \"\(name)\" already exists in \(directory.root)")
        }
        if (try? loadedAliases())?[name] != nil {
            throw VQError(.conflict, "\"\(name)\" is an alias; choose another collection name", hint: "or delete the alias first")
        }
        // A snapshot being recovered under this name brings its shards (see `stage`).
        let adopted = staged.removeValue(forKey: name)
        let staging = adopted ?? directory.collectionsDir + "/.creating-" + name
        if adopted == nil { try FileIO.removeTree(staging) }
        do {
            try FileIO.makeDirectories(staging + "/shards")
            try ChecksummedJSON.write(staging + "/config.json", config.json)
            guard rename(staging, target) == 0 else { throw ioError("rename", staging) }
        } catch {
            // A create that fails (a full disk) leaves nothing behind.
            try? FileIO.removeTree(staging)
            throw error
        }
        try FileIO.syncDirectory(directory.collectionsDir)
    }

    /// Opens a collection (once per process; later calls return the same one).
    /// - Throws: `.notFound` naming the collection.
    package func collection(_ name: String) throws -> VectorCollection {
        try Engine.validateName(name)
        mutex.lock()
        defer { mutex.unlock() }
        if let c = open[name] { return c }
        let path = directory.collectionConfig(name)
        guard FileIO.exists(path) else {
            let known = collectionNames()
            throw VQError(.notFound, "collection \"\(name)\" does not exist in \(directory.root)",
                          hint: known.isEmpty ? "create it with: vq create-collection \(name) --dim N" : "collections: \(known.joined(separator: ", "))")
        }
        let config = try CollectionConfig(json: try ChecksummedJSON.read(path), path: path)
        let c = try VectorCollection(name: name, config: config, directory: directory, placement: placement,
                                               everyCore: indexWithEveryCore, warn: warn)
        open[name] = c
        return c
    }

    /// The collections this process has open, by name (opening none).
    package func openCollections() -> [(String, VectorCollection)] {
        mutex.lock()
        defer { mutex.unlock() }
        return open.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The stored config of a collection, without opening its shards.
    package func config(of name: String) throws -> CollectionConfig {
        try Engine.validateName(name)
        let path = directory.collectionConfig(name)
        guard FileIO.exists(path) else { throw VQError(.notFound, "collection \"\(name)\" does not exist in \(directory.root)") }
        return try CollectionConfig(json: try ChecksummedJSON.read(path), path: path)
    }

    /// Deletes a collection and its files.
    /// - Throws: `.notFound` when there is none by that name.
    package func deleteCollection(_ name: String) throws {
        try Engine.validateName(name)
        mutex.lock()
        defer { mutex.unlock() }
        guard FileIO.exists(directory.collectionConfig(name)) else {
            throw VQError(.notFound, "collection \"\(name)\" does not exist in \(directory.root)")
        }
        if let c = open.removeValue(forKey: name) { try? c.close() }
        let doomed = directory.deletingDir(name)
        try FileIO.removeTree(doomed)
        guard rename(directory.collectionDir(name), doomed) == 0 else { throw ioError("rename", directory.collectionDir(name)) }
        try FileIO.syncDirectory(directory.collectionsDir)
        try FileIO.removeTree(doomed)
        // The collection is gone; a damaged aliases.json must not make that look like a failure.
        try? dropAliases(of: name)
    }

    /// Makes `dir` (a checked, unpacked snapshot) the data of the next `createCollection(name)`.
    package func stage(_ name: String, _ dir: String) {
        mutex.withLock { staged[name] = dir }
    }

    /// Whether a snapshot is still staged for `name` (no create has adopted it).
    package func isStaged(_ name: String) -> Bool {
        mutex.withLock { staged[name] != nil }
    }

    /// Forgets a staged snapshot that no create adopted, and removes its files.
    package func unstage(_ name: String) {
        if let dir = mutex.withLock({ staged.removeValue(forKey: name) }) { try? FileIO.removeTree(dir) }
    }

    /// Replaces collection `name` (if any) with the collection unpacked in `dir`, at once (a rename).
    /// The old collection is moved aside first; a crash before the new one is in place puts it
    /// back when the directory is next opened (`DataDirectory.finishReplacements`).
    /// - Throws: `.conflict` when `name` is an alias.
    package func install(_ name: String, from dir: String) throws {
        try Engine.validateName(name)
        // Every entry of the new tree is on disk before the old one is moved aside for it (the
        // staged tree is this call's own: synced before the engine's lock is taken).
        try FileIO.syncTree(dir)
        mutex.lock()
        defer { mutex.unlock() }
        if (try? loadedAliases())?[name] != nil {
            throw VQError(.conflict, "\"\(name)\" is an alias; recover the snapshot under the collection's name")
        }
        if let c = open.removeValue(forKey: name) { try? c.close() }
        let target = directory.collectionDir(name)
        let aside = directory.replacedDir(name)
        try FileIO.removeTree(aside)
        if FileIO.exists(target) {
            guard rename(target, aside) == 0 else { throw ioError("rename", target) }
        }
        guard rename(dir, target) == 0 else {
            let failure = ioError("rename", dir)
            if FileIO.exists(aside) { _ = rename(aside, target) }  // the old collection stays
            throw failure
        }
        try FileIO.syncDirectory(directory.collectionsDir)
        // Replaced: the old copy becomes a delete under way (never to come back in its place),
        // removed now, or when the directory is next opened if that fails.
        let doomed = directory.deletingDir(name)
        try? FileIO.removeTree(doomed)
        if FileIO.exists(aside) && rename(aside, doomed) != 0 {
            warn("could not move \(aside) to \(doomed): \(String(cString: strerror(errno)))")
        }
        try? FileIO.removeTree(doomed)
    }

    // MARK: aliases

    /// Alias -> collection (guarded by `mutex`; loaded on first use).
    private var aliasMap: [String: String]?

    private func loadedAliases() throws -> [String: String] {
        if let aliasMap { return aliasMap }
        let path = directory.aliases
        let map = FileIO.exists(path) ? try AliasAction.map(try ChecksummedJSON.read(path), what: path) : [:]
        aliasMap = map
        return map
    }

    /// Every alias and the collection it names.
    package func aliases() throws -> [String: String] {
        mutex.lock()
        defer { mutex.unlock() }
        return try loadedAliases()
    }

    /// Applies alias changes, all or nothing, durably.
    package func changeAliases(_ actions: [AliasAction]) throws {
        mutex.lock()
        defer { mutex.unlock() }
        let new = try AliasAction.apply(actions, to: try loadedAliases()) { FileIO.exists(directory.collectionConfig($0)) }
        try ChecksummedJSON.write(directory.aliases, AliasAction.json(new))
        aliasMap = new
    }

    /// Drops the aliases of a deleted collection (caller holds `mutex`).
    private func dropAliases(of name: String) throws {
        let map = try loadedAliases()
        guard map.values.contains(name) else { return }
        let kept = map.filter { $0.value != name }
        try ChecksummedJSON.write(directory.aliases, AliasAction.json(kept))
        aliasMap = kept
    }

    /// Changes a collection's stored config and reopens it with the new one.
    ///
    /// Writes in flight on the old instance finish or fail with "closing"; nothing acknowledged is lost.
    /// - Parameter waitForIndexes: build new payload indexes before returning (else in the
    ///   background, as `?wait=false` asks).
    package func updateCollection(_ name: String, waitForIndexes: Bool = true,
                                  _ change: (inout CollectionConfig) throws -> Void) throws -> CollectionConfig {
        try Engine.validateName(name)
        // Payload indexes are built after the engine's lock is let go (every request takes it
        // to find its collection); the collection applies its latest schema, in order.
        var rebuild: VectorCollection?
        defer {
            if let rebuild {
                if waitForIndexes { rebuild.applyPayloadSchema() } else { DispatchQueue.global(qos: .utility).async { rebuild.applyPayloadSchema() } }
            }
        }
        mutex.lock()
        defer { mutex.unlock() }
        let path = directory.collectionConfig(name)
        guard FileIO.exists(path) else { throw VQError(.notFound, "collection \"\(name)\" does not exist in \(directory.root)") }
        var config = try CollectionConfig(json: try ChecksummedJSON.read(path), path: path)
        let before = config
        try change(&config)
        try config.validate()
        guard config.vectors.sameStorage(before.vectors), config.shardNumber == before.shardNumber else {
            throw VQError.invalid("vector names, sizes, distances and shard_number cannot change; create a new collection")
        }
        try ChecksummedJSON.write(path, config.json)
        // Read fan-out and replication settings are read per request, payload indexes are built
        // in the open shards: they change in place, with no reopen. Anything else a shard was
        // opened with reopens the collection.
        var shardSide = config
        shardSide.readFanOutDelayMs = before.readFanOutDelayMs
        shardSide.readFanOutFactor = before.readFanOutFactor
        shardSide.replicationFactor = before.replicationFactor
        shardSide.writeConsistencyFactor = before.writeConsistencyFactor
        shardSide.payloadSchema = before.payloadSchema
        shardSide.quantizationAlwaysRam = before.quantizationAlwaysRam  // reported only: nothing to reopen for
        if shardSide == before {
            open[name]?.updateLive(config)
            rebuild = open[name]
        } else if let c = open.removeValue(forKey: name) {
            try c.close()
            open[name] = try VectorCollection(name: name, config: config, directory: directory, placement: placement,
                                               everyCore: indexWithEveryCore, warn: warn)
        }
        return config
    }

    /// Closes every open collection (drain, flush).
    package func close() throws {
        mutex.lock()
        let all = Array(open.values)
        open.removeAll()
        mutex.unlock()
        var first: (any Error)?
        for c in all {
            do { try c.close() } catch { if first == nil { first = error } }
        }
        if let first { throw first }
    }
}

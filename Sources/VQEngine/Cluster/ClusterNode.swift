// A peer's membership in the cluster: drives the Raft core with a 10 ms clock, carries its
// messages over HTTP (`POST /internal/raft`), applies committed metadata to `ClusterState`,
// and turns "change the metadata" into "commit it through the leader and wait until applied
// here" (`propose`), from any peer.
//
//   DATA/cluster/peer.json   this peer's id (written once)
//   DATA/cluster/raft/       term, vote, log, snapshot (FileRaftStorage)
//
// Locking: one NSCondition guards the Raft node and the state; Raft's storage writes (fsync)
// happen under it, which is fine for metadata. Sends never happen under it: each peer has a
// serial queue with a bounded backlog (Raft tolerates the drops).

import Foundation
import Synchronization

package struct ClusterOptions: Sendable {
    /// The URI other peers reach this one at.
    package var uri: String
    /// Required on every /internal/ request when set.
    package var secret: String?
    package var tickMilliseconds = 10
    package var timing = RaftTiming()

    package init(uri: String, secret: String? = nil) {
        self.uri = uri
        self.secret = secret
    }
}

package final class ClusterNode: @unchecked Sendable {
    package let id: PeerID
    package let options: ClusterOptions
    private let lock = NSCondition()
    private let raft: RaftNode
    private var state = ClusterState()
    /// `state` as last applied, for readers that must not take `lock`.
    private let view = Mutex(ClusterState())
    private var applied: UInt64 = 0
    /// Terms of recently applied entries, so a proposer can tell its entry from a replacement.
    private var appliedTerms: [UInt64: UInt64] = [:]
    /// Addresses learned from peers' requests (a joining peer knows no state yet).
    private var learned: [PeerID: String] = [:]
    /// Addresses in the log as it was on open (a restarted peer's state is empty until it hears
    /// from a leader).
    private let bootAddresses: [PeerID: String]
    private var senders: [PeerID: PeerSender] = [:]
    private var lastLeader: PeerID?
    /// The last log index whose effect on local data was carried out (`cluster/effects`). Entries
    /// are applied to the state again after a restart, their effects are not: replaying an old
    /// delete after a newer create of the same name would destroy data.
    private var effectsDone: UInt64 = 0
    private var effectsPath = ""
    /// The index of the last snapshot restored (on open or from the leader).
    private var restoredIndex: UInt64 = 0
    /// Called, under the cluster lock and in log order, with what each applied command means for
    /// local data (nil after a snapshot restore: reconcile with the whole state).
    package var effects: (@Sendable (ClusterEffect?, ClusterState) -> Void)?
    private var stopped = false
    private var ticker: Thread?
    private let log: @Sendable (String, [(String, JSON)]) -> Void

    package static let secretHeader = "x-vq-cluster-secret"
    package static let peerHeader = "x-vq-peer"

    /// Whether the data directory belongs to a cluster: it has a Raft log (it founded or joined,
    /// rather than only tried to join).
    package static func hasLog(_ directory: DataDirectory) -> Bool {
        let dir = directory.root + "/cluster/raft"
        return (FileIO.fileSize(dir + "/log") ?? 0) > 0 || FileIO.exists(dir + "/snapshot")
    }

    /// Opens this peer's cluster state, founding a cluster of one when there is none and
    /// `joining` is false. A joining peer starts with no configuration and waits for a leader.
    package init(directory: DataDirectory, options: ClusterOptions, joining: Bool,
                 log: @escaping @Sendable (String, [(String, JSON)]) -> Void) throws {
        self.options = options
        self.log = log
        let dir = directory.root + "/cluster"
        effectsPath = dir + "/effects"
        if let data = try? FileIO.readAll(effectsPath), data.count == 8 {
            effectsDone = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        }
        try FileIO.makeDirectories(dir)
        let idPath = dir + "/peer.json"
        if FileIO.exists(idPath) {
            guard let stored = try ChecksummedJSON.read(idPath)["id"]?.uint64Value, stored > 0 else {
                throw VQError(.corrupt, "\(idPath) lacks a peer id")
            }
            id = stored
        } else {
            // Random ids below 2^53 stay exact in every JSON client.
            id = UInt64.random(in: 1..<(1 << 53))
            try ChecksummedJSON.write(idPath, .object([("id", .uint(id))]))
        }
        let storage = try FileRaftStorage(dir: dir + "/raft") { message in log("warning", [("message", .string(message))]) }
        let fresh = storage.snapshot == nil && storage.entries.isEmpty
        // Addresses from everything logged, committed or not: after a restart the commit index
        // is unknown until a leader is heard from, and reaching one needs its address.
        var logged = ClusterState()
        if let s = storage.snapshot, let restored = try? ClusterState(json: try JSONParser.parse(s.data)) { logged = restored }
        for e in storage.entries where !e.data.isEmpty { _ = try? logged.apply(e.data) }
        bootAddresses = logged.peers
        raft = try RaftNode(id: id, storage: storage, timing: options.timing, seed: UInt64.random(in: 0...UInt64.max),
                            voters: fresh && !joining ? [id] : [])
        lock.lock()
        try process()
        lock.unlock()
    }

    /// Starts the clock, and makes sure the state has this peer's current address.
    package func start() {
        // Local data catches up with the metadata as it stood on open (a restart, a snapshot).
        // A snapshot newer than the effects carried out here (a peer that was away while the log
        // was compacted): bring local data in line with it once. Otherwise the entries after
        // `effectsDone` replay with their effects, in order.
        lock.withLock { reconcile(upTo: restoredIndex) }
        let t = Thread { [self] in runTicker() }
        t.name = "vq-raft"
        ticker = t
        t.start()
        Thread.detachNewThread { [self] in
            // Founding, or restarted at a new address: record where this peer is.
            for _ in 0..<600 {
                if lock.withLock({ stopped || state.peers[id] == options.uri }) { return }
                if lock.withLock({ raft.voters.contains(id) }) {
                    if (try? propose(ClusterState.addPeer(id, uri: options.uri), timeout: 5)) != nil { return }
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    package func stop() {
        lock.withLock {
            stopped = true
            lock.broadcast()
        }
        while ticker?.isFinished == false { Thread.sleep(forTimeInterval: 0.005) }
    }

    private func runTicker() {
        let interval = Double(options.tickMilliseconds) / 1000
        var next = Date()
        while true {
            next = next.addingTimeInterval(interval)
            if next < Date() { next = Date() }
            Thread.sleep(until: next)
            lock.lock()
            if stopped { lock.unlock(); return }
            do {
                try raft.tick()
                try process()
            } catch {
                log("error", [("message", .string("raft: \(error)"))])
            }
            lock.unlock()
        }
    }

    /// Runs the whole-state effect for a restored snapshot newer than the effects done here.
    private func reconcile(upTo index: UInt64) {
        guard index > effectsDone, let effects else { return }
        effects(nil, state)
        markEffects(index)
    }

    private func markEffects(_ index: UInt64) {
        effectsDone = index
        var v = effectsDone.littleEndian
        try? FileIO.writeAtomically(effectsPath, withUnsafeBytes(of: &v) { Array($0) })
    }

    /// Sends, restores, applies what the Raft node produced. Called with the lock held.
    private func process() throws {
        let ready = raft.takeReady()
        if let s = ready.restore {
            state = try ClusterState(json: try JSONParser.parse(s.data))
            applied = s.index
        }
        if let restored = ready.restore {
            restoredIndex = restored.index
            if effects != nil { reconcile(upTo: restored.index) }
        }
        for e in ready.committed {
            if !e.data.isEmpty {
                do {
                    if let effect = try state.apply(e.data), e.index > effectsDone {
                        effects?(effect, state)
                        markEffects(e.index)
                    }
                } catch {
                    log("warning", [("message", .string("raft entry \(e.index) ignored: \(error)"))])
                }
            }
            applied = e.index
            appliedTerms[e.index] = e.term
        }
        if appliedTerms.count > 4096 { appliedTerms = appliedTerms.filter { $0.key + 1024 > applied } }
        if !ready.committed.isEmpty || ready.restore != nil {
            view.withLock { $0 = state }
            lock.broadcast()
        }
        if raft.logLength > 2000 {
            try raft.compact(upTo: applied, data: Array(JSONWriter.string(state.json).utf8))
        }
        if raft.leader != lastLeader {
            lastLeader = raft.leader
            if let l = raft.leader {
                log(l == id ? "raft leader (this peer)" : "raft leader", [("peer", .uint(l)), ("term", .uint(raft.term))])
            }
        }
        var byPeer: [PeerID: [RaftEnvelope]] = [:]
        for m in ready.messages { byPeer[m.to, default: []].append(m) }
        for (peer, messages) in byPeer {
            // What a peer said of itself is fresher than the state (a restarted peer at a new
            // port is heard from before its new address commits).
            guard let uri = address(peer) else { continue }
            sender(peer, uri).send(RaftCodec.encode(messages))
        }
    }

    /// Where to reach `peer`: what it said of itself, else the state, else the log on open.
    private func address(_ peer: PeerID) -> String? {
        learned[peer] ?? state.peers[peer] ?? bootAddresses[peer]
    }

    private func sender(_ peer: PeerID, _ uri: String) -> PeerSender {
        if let s = senders[peer], s.uri == uri { return s }
        let s = PeerSender(uri: uri, headers: internalHeaders)
        senders[peer] = s
        return s
    }

    /// Headers every internal request carries: who is calling, and the secret.
    package var internalHeaders: [(String, String)] {
        var h = [(ClusterNode.peerHeader, "\(id) \(options.uri)")]
        if let secret = options.secret { h.append((ClusterNode.secretHeader, secret)) }
        return h
    }

    // MARK: incoming

    /// `POST /internal/raft`: a batch of messages from a peer.
    package func receive(_ body: [UInt8], peerHeader: String?) throws {
        let messages: [RaftEnvelope]
        do { messages = try RaftCodec.decode(body) } catch let e as VQError {
            throw VQError.invalid("raft messages are malformed: \(e.message)")
        }
        lock.lock()
        defer { lock.unlock() }
        if let h = peerHeader, let space = h.firstIndex(of: " "), let from = PeerID(h[..<space]) {
            learned[from] = String(h[h.index(after: space)...])
        }
        for m in messages where m.to == id { try raft.step(m) }
        try process()
    }

    // MARK: changing metadata

    /// Commits `command` through the leader and waits until this peer has applied it.
    /// - Throws: `.busy` when no leader could commit it before `timeout`.
    package func propose(_ command: JSON, timeout: Double = 10) throws {
        let bytes = Array(JSONWriter.string(command).utf8)
        // Refuse here, with the reason, what the state machine would ignore as things stand.
        var probe = lock.withLock { state }
        _ = try probe.apply(bytes)
        let deadline = Date().addingTimeInterval(timeout)
        try untilCommitted(deadline, what: "the metadata change") { [self] in
            if let p = try raft.propose(bytes) { return p }
            return nil
        } forward: { [self] client in
            try client.send("POST", "/internal/propose", body: bytes, headers: internalHeaders)
        }
    }

    /// `POST /internal/propose` on the leader (or forwarded on): commit and answer the index.
    package func proposeHere(_ body: [UInt8]) throws -> UInt64 {
        let command = try JSONParser.parse(body)
        try propose(command, timeout: 10)
        return lock.withLock { applied }
    }

    /// Adds a peer: records its address, then makes it a voter. Idempotent.
    package func addPeer(_ peer: PeerID, uri: String, timeout: Double = 20) throws {
        try propose(ClusterState.addPeer(peer, uri: uri), timeout: timeout)
        try changeVoters(timeout: timeout) { $0.insert(peer) }
    }

    /// Removes a peer: drops it from the voters, then forgets its address.
    /// - Throws: `.invalidInput` for an unknown peer or the last one.
    package func removePeer(_ peer: PeerID, timeout: Double = 20) throws {
        let (voters, known) = lock.withLock { (raft.voters, state.peers[peer] != nil) }
        guard voters.contains(peer) || known else { throw VQError(.notFound, "peer \(peer) is not in the cluster") }
        guard voters != [peer] else { throw VQError.invalid("peer \(peer) is the only peer; a cluster cannot remove its last peer") }
        let sole = lock.withLock { state.soleReplicas(of: peer) }
        guard sole.isEmpty else {
            throw VQError.invalid("peer \(peer) holds the only active replica of \(sole.joined(separator: ", ")); "
                                  + "replicate those shards to another peer first (POST /collections/NAME/cluster)")
        }
        try changeVoters(timeout: timeout) { $0.remove(peer) }
        try propose(ClusterState.removePeer(peer), timeout: timeout)
    }

    private func changeVoters(timeout: Double, _ change: @escaping (inout Set<PeerID>) -> Void) throws {
        let deadline = Date().addingTimeInterval(timeout)
        try untilCommitted(deadline, what: "the membership change") { [self] in
            var voters = Set(raft.voters)
            let before = voters
            change(&voters)
            if voters == before { return (raft.commitIndex, 0) }  // nothing to do
            do {
                return try raft.proposeVoters(Array(voters))
            } catch let e as VQError where e.kind == .busy {
                return nil
            }
        } forward: { [self] client in
            var voters = Set(lock.withLock { raft.voters })
            change(&voters)
            let body = JSON.object([("voters", .array(voters.sorted().map { .uint($0) }))])
            return try client.send("POST", "/internal/voters", body: Array(JSONWriter.string(body).utf8), headers: internalHeaders)
        }
    }

    /// `POST /internal/voters` on the leader: set the voters (one peer different).
    package func setVotersHere(_ body: [UInt8]) throws -> UInt64 {
        guard let list = try JSONParser.parse(body)["voters"]?.arrayValue else { throw VQError.invalid("expected {\"voters\": [ids]}") }
        let target = Set(try list.map { v -> PeerID in
            guard let id = v.uint64Value else { throw VQError.invalid("voter \(v.compactText) is not a peer id") }
            return id
        })
        try changeVoters(timeout: 10) { $0 = target }
        return lock.withLock { applied }
    }

    /// Runs `attempt` on the leader (this peer) or `forward` to the leader until the entry it
    /// created is applied here.
    private func untilCommitted(_ deadline: Date, what: String, attempt: @escaping () throws -> (index: UInt64, term: UInt64)?,
                                forward: @escaping (HTTPClient) throws -> HTTPResponse) throws {
        var lastError = "no leader is elected"
        while Date() < deadline {
            lock.lock()
            if stopped { lock.unlock(); throw VQError(.cancelled, "the peer is stopping") }
            if raft.role == .leader {
                let proposed: (index: UInt64, term: UInt64)?
                do {
                    proposed = try attempt()
                    try process()
                } catch {
                    lock.unlock()
                    throw error
                }
                if let p = proposed {
                    while applied < p.index && Date() < deadline && !stopped && raft.role == .leader { _ = lock.wait(until: min(deadline, Date().addingTimeInterval(0.05))) }
                    let ok = applied >= p.index && (p.term == 0 || appliedTerms[p.index] == p.term)
                    lock.unlock()
                    if ok { return }
                    lastError = "leadership changed before it committed"
                    continue
                }
                lock.unlock()
                Thread.sleep(forTimeInterval: 0.02)
                continue
            }
            let leaderURI = raft.leader.flatMap { address($0) }
            lock.unlock()
            guard let leaderURI else {
                Thread.sleep(forTimeInterval: 0.05)
                continue
            }
            do {
                let client = try HTTPClient(url: leaderURI, timeout: max(0.5, deadline.timeIntervalSinceNow))
                let r = try forward(client)
                guard r.status == 200, let index = (try? JSONParser.parse(r.body))?["result"]?["index"]?.uint64Value else {
                    lastError = "the leader at \(leaderURI) answered \(r.status): \(String(decoding: r.body.prefix(300), as: UTF8.self))"
                    if r.status == 400 || r.status == 404 { throw VQError.invalid(lastError) }
                    Thread.sleep(forTimeInterval: 0.05)
                    continue
                }
                // Read-your-writes: wait until this peer has applied it too.
                lock.lock()
                while applied < index && Date() < deadline && !stopped { _ = lock.wait(until: min(deadline, Date().addingTimeInterval(0.05))) }
                let ok = applied >= index
                lock.unlock()
                if ok { return }
            } catch let e as VQError where e.kind == .invalidInput {
                throw e
            } catch {
                lastError = "the leader at \(leaderURI) is unreachable: \(error)"
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        throw VQError(.busy, "\(what) did not commit in time: \(lastError)")
    }

    // MARK: reading

    package struct Status: Sendable {
        package var id: PeerID
        package var term: UInt64
        package var commit: UInt64
        package var applied: UInt64
        package var role: RaftRole
        package var leader: PeerID?
        package var voters: [PeerID]
        package var peers: [PeerID: String]
    }

    /// The applied metadata (a copy).
    package var metadata: ClusterState { view.withLock { $0 } }

    /// A distributed collection's placement and config, nil for a local-only one.
    /// (From the published copy: request paths, event loops included, never wait behind Raft's
    /// fsyncs or a collection being created under the cluster lock.)
    package func collectionMeta(_ name: String) -> CollectionMeta? { view.withLock { $0.collections[name] } }

    /// Where `peer` is reached.
    package func address(of peer: PeerID) -> String? { lock.withLock { address(peer) } }

    package var isStopped: Bool { lock.withLock { stopped } }

    /// Header carrying the sender's applied index: a peer's shard call waits until the receiver
    /// has applied as much metadata (a new replica, a new collection), so peers agree on it.
    package static let appliedHeader = "x-vq-applied"

    package var appliedIndex: UInt64 { lock.withLock { applied } }

    /// Waits until this peer has applied everything the leader had committed when asked
    /// (Raft's read index, bounded to a few seconds). - Returns: whether it caught up.
    @discardableResult
    package func catchUp(timeout: Double = 5) -> Bool {
        let (isLeader, leaderURI) = lock.withLock { (raft.role == .leader, raft.leader.flatMap { address($0) }) }
        if isLeader { return true }
        guard let leaderURI, let client = try? HTTPClient(url: leaderURI, timeout: timeout),
              let r = try? client.send("POST", "/internal/commit", body: [], headers: internalHeaders), r.status == 200,
              let index = (try? JSONParser.parse(r.body))?["result"]?["index"]?.uint64Value else { return false }
        waitApplied(index, timeout: timeout)
        return appliedIndex >= index
    }

    /// Waits (bounded) until this peer has applied the metadata log up to `index`.
    package func waitApplied(_ index: UInt64, timeout: Double = 5) {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        while applied < index && !stopped && Date() < deadline { _ = lock.wait(until: min(deadline, Date().addingTimeInterval(0.05))) }
        lock.unlock()
    }

    package func logEvent(_ event: String, _ fields: [(String, JSON)]) { log(event, fields) }

    package var status: Status {
        lock.withLock {
            Status(id: id, term: raft.term, commit: raft.commitIndex, applied: applied, role: raft.role, leader: raft.leader,
                   voters: raft.voters, peers: state.peers)
        }
    }

    /// Checks the cluster secret of an internal request (constant time).
    package func authorized(_ presented: String?) -> Bool {
        guard let secret = options.secret else { return true }
        guard let presented else { return false }
        return constantTimeEqual(presented, secret)
    }
}

/// Posts Raft batches to one peer, in order, on its own queue; drops when too far behind.
final class PeerSender: @unchecked Sendable {
    let uri: String
    private let headers: [(String, String)]
    private let queue: DispatchQueue
    private let backlog = Atomic<Int>(0)
    private let client: HTTPClient?

    init(uri: String, headers: [(String, String)]) {
        self.uri = uri
        self.headers = headers
        queue = DispatchQueue(label: "vq-raft-send")
        client = try? HTTPClient(url: uri, timeout: 1)
    }

    func send(_ body: [UInt8]) {
        guard let client, backlog.load(ordering: .relaxed) < 64 else { return }
        backlog.add(1, ordering: .relaxed)
        queue.async { [self] in
            _ = try? client.send("POST", "/internal/raft", body: body, headers: headers)
            backlog.subtract(1, ordering: .relaxed)
        }
    }
}

import Foundation
import Testing
@testable import VQEngine

/// Raft under a virtual clock and network: message loss, duplication, reordering and delay,
/// partitions, crashes with restarts from persisted state only, membership changes and log
/// compaction, over many seeds. Everything is driven by the seed, so a failure reproduces:
///
///   VQ_RAFT_SEED=1234 swift test --filter RaftSimulation
///
/// Checked on every step: at most one leader per term; an index once applied anywhere is
/// applied everywhere with the same term and content (committed entries are never lost or
/// changed); every peer applies the same sequence (in order, no gaps, snapshots equal to the
/// prefix they replace). At the end the network heals and the cluster must commit again.
@Suite struct RaftSimulationTests {
    @Test("safety and progress over thousands of seeded fault schedules")
    func simulation() throws {
        let env = ProcessInfo.processInfo.environment
        let seeds: [UInt64]
        if let one = env["VQ_RAFT_SEED"].flatMap(UInt64.init) {
            seeds = [one]
        } else {
            seeds = Array(0..<(env["VQ_RAFT_SEEDS"].flatMap(UInt64.init) ?? 2000))
        }
        var failures: [String] = []
        var stats = RaftSimulation.Stats()
        for seed in seeds {
            var sim = RaftSimulation(seed: seed)
            do {
                try sim.run()
                stats.add(sim.stats)
            } catch {
                failures.append("seed \(seed): \(error) (rerun: VQ_RAFT_SEED=\(seed) swift test --filter RaftSimulation)")
                if failures.count >= 5 { break }
            }
        }
        print("raft simulation: \(seeds.count) seeds, \(stats)")
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        // The schedules really exercised what they claim to (a test that cannot fail is no test).
        if seeds.count >= 100 {
            #expect(stats.elections > seeds.count && stats.crashes > seeds.count && stats.partitions > seeds.count)
            #expect(stats.snapshotsInstalled > 0 && stats.membershipChanges > seeds.count / 2 && stats.committed > seeds.count * 20)
        }
    }

    @Test("pre-vote: a peer cut off from the others keeps its term, and on its return the leader stays")
    func preVote() throws {
        let timing = RaftTiming(electionTicks: 5, heartbeatTicks: 1)
        let nodes = try (1...3).map { try RaftNode(id: PeerID($0), storage: MemoryRaftStorage(), timing: timing, seed: UInt64($0) * 11, voters: [1, 2, 3]) }
        /// One tick everywhere, then messages delivered until none are left; `cut`'s are dropped.
        func round(cut: PeerID?) throws {
            for n in nodes { try n.tick() }
            for _ in 0..<20 {
                var delivered = false
                for n in nodes {
                    for m in n.takeReady().messages where m.from != cut && m.to != cut {
                        delivered = true
                        try nodes[Int(m.to) - 1].step(m)
                    }
                }
                if !delivered { break }
            }
        }
        for _ in 0..<100 where !nodes.contains(where: { $0.role == .leader }) { try round(cut: nil) }
        let leader = try #require(nodes.first { $0.role == .leader })
        let term = leader.term
        let isolated = nodes.first { $0.id != leader.id }!
        // Many election timeouts alone: it asks for pre-votes, gets none, never enters a new term.
        for _ in 0..<200 { try round(cut: isolated.id) }
        #expect(isolated.term == term && isolated.role != .leader, "isolated at term \(isolated.term), cluster at \(term)")
        #expect(leader.role == .leader && leader.term == term)
        // Back: it follows the leader it finds; no election, no new term.
        for _ in 0..<50 { try round(cut: nil) }
        #expect(leader.role == .leader && nodes.allSatisfy { $0.term == term } && isolated.leader == leader.id)
    }

    @Test("a single founding peer elects itself and commits alone; a joining peer learns the log")
    func founderAndJoiner() throws {
        let s1 = MemoryRaftStorage()
        let a = try RaftNode(id: 1, storage: s1, timing: RaftTiming(electionTicks: 3, heartbeatTicks: 1), seed: 7, voters: [1])
        for _ in 0..<10 where a.role != .leader { try a.tick() }
        #expect(a.role == .leader)
        let p = try #require(try a.propose([42]))
        let applied = a.takeReady().committed
        #expect(applied.last?.index == p.index && applied.last?.data == [42])
        // Peer 2 joins: the leader adds it; messages flow until 2 holds every entry.
        let b = try RaftNode(id: 2, storage: MemoryRaftStorage(), timing: RaftTiming(electionTicks: 3, heartbeatTicks: 1), seed: 8)
        _ = try a.proposeVoters([1, 2])
        #expect(throws: VQError.self) { _ = try a.proposeVoters([1, 2, 3]) }
        var bApplied: [RaftEntry] = []
        for _ in 0..<20 {
            for m in a.takeReady().messages { try b.step(m) }
            let rb = b.takeReady()
            bApplied += rb.committed
            for m in rb.messages { try a.step(m) }
            try a.tick()
        }
        #expect(a.voters == [1, 2] && b.voters == [1, 2])
        #expect(bApplied.map(\.index) == Array(1...a.commitIndex))
        #expect(bApplied.contains { $0.data == [42] })
        #expect(b.leader == 1 && b.role == .follower)
    }
}

/// One seeded run.
struct RaftSimulation {
    struct Stats {
        var elections = 0, crashes = 0, partitions = 0, snapshotsInstalled = 0, membershipChanges = 0, committed = 0
        mutating func add(_ o: Stats) {
            elections += o.elections; crashes += o.crashes; partitions += o.partitions
            snapshotsInstalled += o.snapshotsInstalled; membershipChanges += o.membershipChanges; committed += o.committed
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// A peer's applied state: the commands in order, and the index applied up to.
    struct Machine {
        var commands: [UInt64] = []
        var applied: UInt64 = 0
        var voters: [PeerID] = []

        static func decode(_ bytes: [UInt8]) -> [UInt64] {
            stride(from: 0, to: bytes.count, by: 8).map { i in bytes[i..<i + 8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } }
        }
        var encoded: [UInt8] { commands.flatMap { c in (0..<8).map { UInt8(truncatingIfNeeded: c >> (8 * $0)) } } }
    }

    struct InFlight {
        var at: Int
        var envelope: RaftEnvelope
    }

    let seed: UInt64
    var rng: SplitMix
    /// Small appends, so catching up takes many messages that the network can reorder.
    let timing = RaftTiming(electionTicks: 10, heartbeatTicks: 2, maxAppendEntries: 3)
    let allPeers: [PeerID] = [1, 2, 3, 4, 5]
    var storages: [PeerID: MemoryRaftStorage] = [:]
    var nodes: [PeerID: RaftNode] = [:]
    var machines: [PeerID: Machine] = [:]
    var crashedUntil: [PeerID: Int] = [:]
    var network: [InFlight] = []
    var group: [PeerID: Int] = [:]
    var partitionUntil = 0
    var now = 0
    var nextCommand: UInt64 = 1
    var lossRate = 0.0
    var maxDelay = 3
    var crashRate = 0.0
    var stats = Stats()

    // The global record every check compares against.
    var leaderOfTerm: [UInt64: PeerID] = [:]
    var committedAt: [UInt64: RaftEntry] = [:]

    init(seed: UInt64) {
        self.seed = seed
        rng = SplitMix(seed: seed &* 0x2545_F491_4F6C_DD1D &+ 1)
    }

    mutating func chance(_ p: Double) -> Bool { Double(rng.next() % 1_000_000) / 1_000_000 < p }
    mutating func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }

    func fail(_ what: String) -> Failure { Failure(description: "tick \(now): \(what)") }

    mutating func start(_ id: PeerID, founding: [PeerID]) throws {
        let storage = storages[id] ?? MemoryRaftStorage()
        storages[id] = storage
        nodes[id] = try RaftNode(id: id, storage: storage, timing: timing, seed: seed &+ UInt64(now), voters: founding)
        machines[id] = Machine()
    }

    mutating func run() throws {
        // Three founders share the same initial configuration; 4 and 5 may join later.
        for id: PeerID in [1, 2, 3] { try start(id, founding: [1, 2, 3]) }
        // Each seed draws its own weather: loss, delay (up to past an election timeout) and crash rate.
        lossRate = pick([0.01, 0.1, 0.3])
        maxDelay = pick([3, 8, 16])
        crashRate = pick([0.002, 0.01, 0.03])
        for _ in 0..<1500 {
            try faults()
            try step()
        }
        lossRate = 0
        maxDelay = 3
        // Heal: everyone up, no partitions or loss; the cluster must commit a fresh command.
        for id in crashedUntil.keys { try start(id, founding: []) }
        crashedUntil = [:]
        group = [:]
        partitionUntil = 0
        var marker: (index: UInt64, term: UInt64)?
        for _ in 0..<1500 {
            try step()
            if let (_, leader) = currentLeader() {
                // (Re)propose when none is pending in this leader's term: a marker proposed in an
                // earlier term may have been truncated away.
                if marker == nil || (committedAt[marker!.index] == nil && marker!.term != leader.term)
                    || committedAt[marker!.index].map({ $0.term != marker!.term }) == true {
                    marker = try leader.propose(Array("end".utf8))
                }
            }
            if let m = marker, let e = committedAt[m.index], e.term == m.term,
               let (_, leader) = currentLeader(), nodes.keys.allSatisfy({ !leader.voters.contains($0) || machines[$0]!.applied >= m.index }) {
                try checkSameSequence()
                return
            }
        }
        let peers = nodes.keys.sorted().map { id in
            let n = nodes[id]!
            return "\(id): \(n.role) term \(n.term) leader \(n.leader.map(String.init) ?? "-") voters \(n.voters) last \(n.lastIndex) commit \(n.commitIndex)"
        }
        throw fail("no progress after healing; peers: \(peers.joined(separator: "; "))")
    }

    func currentLeader() -> (PeerID, RaftNode)? {
        let leaders = nodes.values.filter { $0.role == .leader }.sorted { $0.term > $1.term }
        return leaders.first.map { ($0.id, $0) }
    }

    mutating func faults() throws {
        // Crash a running peer (rarely), restart crashed ones when their time is up.
        if chance(crashRate), let victim = nodes.keys.sorted().randomElement(using: &rng) {
            nodes[victim] = nil
            machines[victim] = nil
            crashedUntil[victim] = now + 5 + Int(rng.next() % 100)
            stats.crashes += 1
        }
        for (id, until) in crashedUntil where until <= now {
            crashedUntil[id] = nil
            try start(id, founding: [])
        }
        // Partitions: split the peers into two sides for a while.
        if now >= partitionUntil {
            group = [:]
            if chance(0.01) {
                for p in allPeers { group[p] = Int(rng.next() % 2) }
                partitionUntil = now + 20 + Int(rng.next() % 150)
                stats.partitions += 1
            }
        }
        // Clients propose at whichever peer leads; membership changes now and then.
        if let (_, leader) = currentLeader() {
            if chance(0.15) {
                var bytes: [UInt8] = []
                for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: nextCommand >> (8 * UInt64(i)))) }
                nextCommand += 1
                _ = try leader.propose(bytes)
            }
            if chance(0.01) {
                var voters = Set(leader.voters)
                let outside = allPeers.filter { !voters.contains($0) }
                if voters.count > 2 && (outside.isEmpty || chance(0.5)) {
                    voters.remove(pick(Array(voters).sorted()))
                } else if let add = outside.randomElement(using: &rng) {
                    voters.insert(add)
                    if nodes[add] == nil && crashedUntil[add] == nil { try start(add, founding: []) }
                }
                do {
                    if try leader.proposeVoters(Array(voters)) != nil { stats.membershipChanges += 1 }
                } catch let e as VQError where e.kind == .busy {}
            }
        }
    }

    mutating func step() throws {
        now += 1
        for id in nodes.keys.sorted() { try nodes[id]!.tick() }
        // Deliver what is due, in a shuffled order.
        var due: [InFlight] = []
        network.removeAll { m in
            if m.at <= now { due.append(m); return true }
            return false
        }
        due.shuffle(using: &rng)
        for m in due {
            guard let node = nodes[m.envelope.to] else { continue }
            try node.step(m.envelope)
        }
        for id in nodes.keys.sorted() { try drain(id) }
        try checkLeaders()
    }

    mutating func drain(_ id: PeerID) throws {
        guard let node = nodes[id] else { return }
        let ready = node.takeReady()
        var machine = machines[id]!
        if let s = ready.restore {
            machine.commands = Machine.decode(s.data)
            machine.applied = s.index
            machine.voters = s.voters
            // The snapshot must equal the committed prefix it replaces.
            let expected = (1...max(1, s.index)).compactMap { committedAt[$0] }.filter(\.isCommand).map { Machine.decode($0.data)[0] }
            if s.index > 0 && committedAt[s.index] != nil && machine.commands != expected {
                throw fail("peer \(id) restored a snapshot at \(s.index) that differs from the committed prefix")
            }
            stats.snapshotsInstalled += 1
        }
        for e in ready.committed {
            guard e.index == machine.applied + 1 else { throw fail("peer \(id) applied \(e.index) after \(machine.applied)") }
            if let known = committedAt[e.index] {
                guard known == e else { throw fail("peer \(id) applied \(e) at \(e.index) where \(known) was committed") }
            } else {
                committedAt[e.index] = e
                stats.committed += 1
            }
            if let v = e.voters { machine.voters = v }
            if e.isCommand { machine.commands.append(Machine.decode(e.data)[0]) }
            machine.applied = e.index
        }
        machines[id] = machine
        if node.logLength > 40 && machine.applied > 0 {
            try node.compact(upTo: machine.applied, data: machine.encoded)
        }
        for m in ready.messages {
            if let a = group[m.from], let b = group[m.to], a != b { continue }
            if chance(lossRate) { continue }
            network.append(InFlight(at: now + 1 + Int(rng.next() % UInt64(maxDelay)), envelope: m))
            if chance(0.02) { network.append(InFlight(at: now + 1 + Int(rng.next() % UInt64(2 * maxDelay)), envelope: m)) }
        }
    }

    mutating func checkLeaders() throws {
        for node in nodes.values where node.role == .leader {
            if let other = leaderOfTerm[node.term], other != node.id {
                throw fail("two leaders in term \(node.term): \(other) and \(node.id)")
            }
            if leaderOfTerm[node.term] == nil { stats.elections += 1 }
            leaderOfTerm[node.term] = node.id
        }
    }

    func checkSameSequence() throws {
        let reference = machines.values.max { $0.applied < $1.applied }!
        for (id, m) in machines where m.applied == reference.applied {
            guard m.commands == reference.commands else { throw fail("peer \(id) applied a different sequence") }
        }
        let everything = committedAt.keys.sorted().compactMap { committedAt[$0] }.filter(\.isCommand).map { Machine.decode($0.data)[0] }
        guard reference.commands == everything else { throw fail("the applied sequence lost or reordered committed commands") }
    }
}

extension SplitMix: RandomNumberGenerator {}

extension RaftEntry {
    /// A client command of the simulation (8 bytes), not a no-op, config or end marker.
    var isCommand: Bool { data.count == 8 }
}

// Raft consensus for cluster metadata: a deterministic core with no clock, threads or I/O.
//
// The driver feeds it ticks, messages and proposals, and takes back messages to send and
// committed entries to apply:
//
//   node.tick() / node.step(message) / node.propose(data)
//   let ready = node.takeReady()     // messages, entries to apply, snapshot to restore
//
// Everything a message promises (term, vote, log) is written to `RaftStorage` before the
// message leaves the node: storage calls are synchronous and durable, so "persisted before
// answering" holds by construction. The same core runs in `vq serve` (file storage, HTTP)
// and in the simulation test (memory storage, a virtual network and clock).
//
// Extensions to the paper, all from the Raft dissertation: learners (non-voting peers the
// leader replicates to, chosen by the driver: a joining peer catches up as one before it
// becomes a voter, so an unreachable joiner never costs the cluster its quorum), a new leader's no-op entry,
// single-server membership changes (a config entry takes effect when appended; one
// uncommitted change at a time, and only once the leader has committed an entry of its term),
// check-quorum (a leader that has not heard from a majority for an election timeout steps down)
// with sticky leaders (votes are ignored while a leader was heard from recently, so a removed
// peer's vote requests do not disrupt; there is no pre-vote, so a partitioned voter that comes
// back with a higher term does make the leader step down once), snapshots with
// log compaction and InstallSnapshot, and fast log backtracking by conflicting term.

/// One entry of the replicated log.
package struct RaftEntry: Sendable, Equatable {
    package var term: UInt64
    package var index: UInt64
    /// The voters from this entry on, for a membership change; nil for a normal entry.
    package var voters: [PeerID]?
    /// The state machine's command (empty for the leader's no-op).
    package var data: [UInt8]

    package init(term: UInt64, index: UInt64, voters: [PeerID]? = nil, data: [UInt8] = []) {
        self.term = term
        self.index = index
        self.voters = voters
        self.data = data
    }
}

/// A compacted prefix of the log: the state machine as of `index`.
package struct RaftSnapshot: Sendable, Equatable {
    package var index: UInt64
    package var term: UInt64
    package var voters: [PeerID]
    package var data: [UInt8]

    package init(index: UInt64, term: UInt64, voters: [PeerID], data: [UInt8]) {
        self.index = index
        self.term = term
        self.voters = voters
        self.data = data
    }
}

/// What Raft must not forget across a crash, besides the log.
package struct RaftHardState: Sendable, Equatable {
    package var term: UInt64 = 0
    package var votedFor: PeerID? = nil
    package init(term: UInt64 = 0, votedFor: PeerID? = nil) {
        self.term = term
        self.votedFor = votedFor
    }
}

/// Durable Raft state. Every call returns only once its change would survive a crash.
package protocol RaftStorage: AnyObject {
    var hardState: RaftHardState { get }
    var snapshot: RaftSnapshot? { get }
    /// The entries after the snapshot, consecutive.
    var entries: [RaftEntry] { get }
    func saveHardState(_ state: RaftHardState) throws
    /// Removes entries from `index` on, then appends `entries` (which start at `index`).
    func replaceEntries(from index: UInt64, with entries: [RaftEntry]) throws
    /// Stores `snapshot` and drops the entries it covers; entries after it stay.
    func saveSnapshot(_ snapshot: RaftSnapshot) throws
}

/// A message between peers.
package enum RaftMessage: Sendable, Equatable {
    case requestVote(lastIndex: UInt64, lastTerm: UInt64)
    case vote(granted: Bool)
    case append(prevIndex: UInt64, prevTerm: UInt64, entries: [RaftEntry], commit: UInt64)
    /// `match` on success; on failure `hint` is the index the leader should try next.
    case appendResponse(success: Bool, match: UInt64, hint: UInt64)
    case installSnapshot(RaftSnapshot)
    case snapshotResponse(match: UInt64)
    /// Pre-vote (Ongaro's thesis, 9.6): "would you vote for me in the envelope's term?", asked
    /// before campaigning; answering changes nothing on the receiver.
    case preVote(lastIndex: UInt64, lastTerm: UInt64)
    case preVoteResponse(granted: Bool)
}

/// A message with its routing.
package struct RaftEnvelope: Sendable, Equatable {
    package var from: PeerID
    package var to: PeerID
    package var term: UInt64
    package var message: RaftMessage

    package init(from: PeerID, to: PeerID, term: UInt64, message: RaftMessage) {
        self.from = from
        self.to = to
        self.term = term
        self.message = message
    }
}

/// Ticks, in the driver's unit (`vq serve` ticks every 10 ms).
package struct RaftTiming: Sendable {
    /// Elections start after a random timeout in [min, 2 min).
    package var electionTicks = 30
    package var heartbeatTicks = 5
    /// Entries per append message.
    package var maxAppendEntries = 256
    package init(electionTicks: Int = 30, heartbeatTicks: Int = 5, maxAppendEntries: Int = 256) {
        self.electionTicks = electionTicks
        self.heartbeatTicks = heartbeatTicks
        self.maxAppendEntries = maxAppendEntries
    }
}

package enum RaftRole: String, Sendable { case follower, candidate, leader }

/// What the driver must do after feeding the node: send, then apply, in this order.
package struct RaftReady: Sendable {
    package var messages: [RaftEnvelope] = []
    /// Restore the state machine from this before applying `committed`.
    package var restore: RaftSnapshot? = nil
    package var committed: [RaftEntry] = []
    package var isEmpty: Bool { messages.isEmpty && restore == nil && committed.isEmpty }
}

/// A Raft peer's state machine of roles, terms and logs.
package final class RaftNode {
    package let id: PeerID
    private let storage: any RaftStorage
    private let timing: RaftTiming
    private var rng: SplitMix

    package private(set) var term: UInt64
    private var votedFor: PeerID?
    package private(set) var role: RaftRole = .follower
    package private(set) var leader: PeerID?
    package private(set) var commitIndex: UInt64
    private var appliedIndex: UInt64
    private var snapshot: RaftSnapshot?
    /// Entries after the snapshot; `log[i].index == firstIndex + i`.
    private var log: [RaftEntry]
    package private(set) var voters: [PeerID] = []
    /// Peers that receive the log but neither vote nor count toward commits (set by the driver;
    /// voters are never learners).
    package var learners: Set<PeerID> = [] {
        didSet { configurationChanged() }
    }

    private var electionElapsed = 0
    private var electionTimeout = 0
    private var heartbeatElapsed = 0
    private var votes: Set<PeerID> = []
    /// Pre-vote grants for the term after `term` while this follower asks (nil when not asking).
    private var preVotes: Set<PeerID>? = nil
    private var nextIndex: [PeerID: UInt64] = [:]
    private var matchIndex: [PeerID: UInt64] = [:]
    /// Peers heard from since the last check-quorum round (leader).
    private var recentlyActive: Set<PeerID> = []

    private var ready = RaftReady()

    /// Opens a peer from its storage (empty for a new peer).
    /// - Parameter voters: the initial configuration when storage is empty and this peer founds
    ///   the cluster (`[id]`); a joining peer passes `[]` and learns it from the leader.
    package init(id: PeerID, storage: any RaftStorage, timing: RaftTiming = RaftTiming(), seed: UInt64, voters initial: [PeerID] = []) throws {
        self.id = id
        self.storage = storage
        self.timing = timing
        self.rng = SplitMix(seed: seed ^ id)
        let hard = storage.hardState
        term = hard.term
        votedFor = hard.votedFor
        snapshot = storage.snapshot
        log = storage.entries
        commitIndex = snapshot?.index ?? 0
        appliedIndex = commitIndex
        if let s = snapshot { ready.restore = s }
        if snapshot == nil && log.isEmpty && !initial.isEmpty {
            // Founding: the first entry is the configuration, committed by this peer alone.
            let first = RaftEntry(term: 0, index: 1, voters: initial)
            try storage.replaceEntries(from: 1, with: [first])
            log = [first]
        }
        voters = currentVoters()
        resetElectionTimer()
    }

    // MARK: log access

    private var firstIndex: UInt64 { (snapshot?.index ?? 0) + 1 }
    package var lastIndex: UInt64 { (snapshot?.index ?? 0) + UInt64(log.count) }
    private var lastTerm: UInt64 { log.last?.term ?? snapshot?.term ?? 0 }

    /// Whether this peer leads and has committed an entry of its own term (so everything an
    /// earlier leader committed is committed and applied in order here too).
    package var leadsWithCurrentCommit: Bool { role == .leader && termAt(commitIndex) == term }

    /// The term of the entry at `index`, nil when compacted away (below the snapshot) or absent.
    private func termAt(_ index: UInt64) -> UInt64? {
        if index == 0 { return 0 }
        if let s = snapshot, index == s.index { return s.term }
        guard index >= firstIndex, index <= lastIndex else { return nil }
        return log[Int(index - firstIndex)].term
    }

    private func entries(from index: UInt64, max: Int) -> [RaftEntry] {
        guard index <= lastIndex else { return [] }
        let start = Int(index - firstIndex)
        return Array(log[start..<min(log.count, start + max)])
    }

    /// The voters of the newest config entry in the log, else of the snapshot.
    private func currentVoters() -> [PeerID] {
        if let e = log.last(where: { $0.voters != nil }) { return e.voters! }
        return snapshot?.voters ?? []
    }

    /// The newest config entry's index (0 if none in the log).
    private var lastConfigIndex: UInt64 { log.last(where: { $0.voters != nil })?.index ?? 0 }

    private var quorum: Int { voters.count / 2 + 1 }

    /// Voters and learners: everyone the leader replicates to.
    private var replicas: [PeerID] { voters + learners.subtracting(voters).sorted() }

    /// The highest index `peer` is known to hold (leader only; 0 when unknown).
    package func matchIndex(of peer: PeerID) -> UInt64 { peer == id ? lastIndex : matchIndex[peer] ?? 0 }

    /// Voters the leader heard from in its last check-quorum round, itself included (0 on others).
    package private(set) var activeVoters = 0

    // MARK: driver interface

    /// Everything produced since the last call.
    package func takeReady() -> RaftReady {
        if appliedIndex < commitIndex {
            ready.committed.append(contentsOf: entries(from: appliedIndex + 1, max: Int(commitIndex - appliedIndex)))
            appliedIndex = commitIndex
        }
        defer { ready = RaftReady() }
        return ready
    }

    /// Advances the clock one tick.
    package func tick() throws {
        electionElapsed += 1
        if role == .leader {
            heartbeatElapsed += 1
            if heartbeatElapsed >= timing.heartbeatTicks {
                heartbeatElapsed = 0
                broadcastAppend()
            }
            // Check-quorum: a leader cut off from a majority steps down (its lease ends).
            if electionElapsed >= timing.electionTicks {
                electionElapsed = 0
                recentlyActive.insert(id)
                let active = voters.filter { recentlyActive.contains($0) }.count
                activeVoters = active
                recentlyActive = []
                if active < quorum { try becomeFollower(term: term, leader: nil) }
            }
        } else if electionElapsed >= electionTimeout && voters.contains(id) {
            // Follower or candidate whose election timed out: first ask whether it could win (a
            // candidate cut off mid-election must not keep raising its term either).
            try preCampaign()
        }
    }

    /// Appends a command to the log if this peer leads.
    /// - Returns: the entry's index and term (it is committed once applied with that term),
    ///   or nil when not the leader.
    package func propose(_ data: [UInt8]) throws -> (index: UInt64, term: UInt64)? {
        guard role == .leader else { return nil }
        let e = RaftEntry(term: term, index: lastIndex + 1, data: data)
        try appendLocal([e])
        broadcastAppend()
        return (e.index, e.term)
    }

    /// Proposes adding or removing one voter.
    /// - Throws: `.invalidInput` when the change is not a single peer, `.busy` while another
    ///   change is uncommitted.
    package func proposeVoters(_ new: [PeerID]) throws -> (index: UInt64, term: UInt64)? {
        guard role == .leader else { return nil }
        let old = Set(voters), next = Set(new)
        guard old.symmetricDifference(next).count == 1 else {
            throw VQError.invalid("a membership change adds or removes exactly one peer")
        }
        guard lastConfigIndex <= commitIndex else { throw VQError(.busy, "another membership change is in progress") }
        // Not before this leader has committed an entry of its own term (its no-op): otherwise a
        // change could overlap one an earlier leader left uncommitted (Ongaro, 2015).
        guard termAt(commitIndex) == term else { throw VQError(.busy, "the new leader has not committed its first entry yet") }
        let e = RaftEntry(term: term, index: lastIndex + 1, voters: new.sorted())
        try appendLocal([e])
        broadcastAppend()
        return (e.index, e.term)
    }

    /// Replaces the log up to `index` with `data`, the driver's state machine with every entry
    /// up to `index` applied (and none after). Followers further behind get the snapshot.
    package func compact(upTo index: UInt64, data: [UInt8]) throws {
        guard index <= appliedIndex, index > (snapshot?.index ?? 0), let t = termAt(index) else { return }
        let votersThen = log.prefix(Int(index - firstIndex) + 1).last(where: { $0.voters != nil })?.voters ?? snapshot?.voters ?? []
        let s = RaftSnapshot(index: index, term: t, voters: votersThen, data: data)
        try storage.saveSnapshot(s)
        log.removeFirst(Int(index - firstIndex) + 1)
        snapshot = s
    }

    /// Entries in the log after the snapshot (for deciding when to compact).
    package var logLength: Int { log.count }

    /// Terms past this are refused: no real cluster gets near it, and `term + 1` must not overflow.
    static let maxTerm: UInt64 = 1 << 62

    /// Whether a message is well formed: indexes and terms a leader or follower could have sent
    /// (peers' bytes are input; arithmetic on them must not overflow or break the log's order).
    private func wellFormed(_ m: RaftEnvelope) -> Bool {
        // Terms grow by one per election: a jump of billions is not a peer's, and letting it in
        // would bring every term to the bound, where no one could campaign.
        guard m.term <= RaftNode.maxTerm, m.term <= term + (1 << 32), m.from != id else { return false }
        switch m.message {
        case let .requestVote(lastIndex, lastTerm), let .preVote(lastIndex, lastTerm):
            return lastIndex < UInt64.max / 2 && lastTerm <= m.term
        case .vote, .preVoteResponse:
            return true
        case let .append(prevIndex, prevTerm, entries, _):
            guard prevIndex < UInt64.max / 2, prevTerm <= m.term else { return false }
            for (i, e) in entries.enumerated() where e.index != prevIndex + 1 + UInt64(i) || e.term > m.term || e.term < prevTerm {
                return false
            }
            return true
        case let .appendResponse(success, match, _):
            // A follower cannot have matched more than this leader has.
            return !success || match <= lastIndex
        case let .installSnapshot(s):
            return s.index > 0 && s.index < UInt64.max / 2 && s.term <= m.term && !s.voters.isEmpty
        case let .snapshotResponse(match):
            return match <= lastIndex
        }
    }

    /// Handles a message from a peer; a malformed one is dropped (Raft tolerates lost messages).
    package func step(_ m: RaftEnvelope) throws {
        guard wellFormed(m) else { return }
        // Pre-votes move no terms: the question is about a term nobody has entered yet.
        switch m.message {
        case let .preVote(lastIndex: li, lastTerm: lt):
            // Granted for a later term to an up-to-date log, unless a leader was heard within
            // the election timeout (it is alive: no election is needed).
            let upToDate = lt > lastTerm || (lt == lastTerm && li >= lastIndex)
            let leaderAlive = leader != nil && electionElapsed < timing.electionTicks
            let granted = m.term > term && upToDate && !leaderAlive
            // A refusal carries this peer's term, so a pre-candidate behind it catches up.
            ready.messages.append(RaftEnvelope(from: id, to: m.from, term: granted ? m.term : term, message: .preVoteResponse(granted: granted)))
            return
        case let .preVoteResponse(granted):
            if granted {
                guard m.term == term + 1, var grants = preVotes else { return }
                grants.insert(m.from)
                preVotes = grants
                if voters.filter({ grants.contains($0) }).count >= quorum { try campaign() }
                return
            }
            if m.term > term { try becomeFollower(term: m.term, leader: nil) }
            return
        default:
            break
        }
        if m.term > term {
            // A vote request while a leader is known and recently heard: ignore (sticky leader).
            if case .requestVote = m.message, leader != nil, electionElapsed < timing.electionTicks { return }
            let leaderNow: PeerID? = {
                switch m.message {
                case .append, .installSnapshot: return m.from
                default: return nil
                }
            }()
            try becomeFollower(term: m.term, leader: leaderNow)
        } else if m.term < term {
            // Stale sender: tell it the current term so it steps down.
            switch m.message {
            case .requestVote: send(m.from, .vote(granted: false))
            case .append: send(m.from, .appendResponse(success: false, match: 0, hint: 0))
            case .installSnapshot: send(m.from, .snapshotResponse(match: 0))
            default: break
            }
            return
        }
        switch m.message {
        case let .requestVote(lastIndex: li, lastTerm: lt):
            let upToDate = lt > lastTerm || (lt == lastTerm && li >= lastIndex)
            let canVote = votedFor == nil || votedFor == m.from
            if upToDate && canVote && leader == nil {
                votedFor = m.from
                try storage.saveHardState(RaftHardState(term: term, votedFor: votedFor))
                resetElectionTimer()
                send(m.from, .vote(granted: true))
            } else {
                send(m.from, .vote(granted: false))
            }
        case let .vote(granted):
            guard role == .candidate, granted else { return }
            votes.insert(m.from)
            if voters.filter({ votes.contains($0) }).count >= quorum { try becomeLeader() }
        case let .append(prevIndex, prevTerm, entries, commit):
            try acceptLeader(m.from)
            try handleAppend(from: m.from, prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit)
        case let .appendResponse(success, match, hint):
            guard role == .leader else { return }
            recentlyActive.insert(m.from)
            if success {
                if match > (matchIndex[m.from] ?? 0) { matchIndex[m.from] = match }
                nextIndex[m.from] = max(nextIndex[m.from] ?? 1, match + 1)
                try advanceCommit()
                if (nextIndex[m.from] ?? 1) <= lastIndex { sendAppend(to: m.from) }
            } else {
                let floor = (matchIndex[m.from] ?? 0) + 1
                nextIndex[m.from] = max(floor, min(hint, (nextIndex[m.from] ?? 1) - 1, lastIndex + 1))
                sendAppend(to: m.from)
            }
        case let .installSnapshot(s):
            try acceptLeader(m.from)
            try handleSnapshot(from: m.from, s)
        case let .snapshotResponse(match):
            guard role == .leader else { return }
            recentlyActive.insert(m.from)
            if match > (matchIndex[m.from] ?? 0) { matchIndex[m.from] = match }
            nextIndex[m.from] = max(nextIndex[m.from] ?? 1, match + 1)
            try advanceCommit()
            if (nextIndex[m.from] ?? 1) <= lastIndex { sendAppend(to: m.from) }
        case .preVote, .preVoteResponse:
            break  // answered above, before any term change
        }
    }

    // MARK: roles

    private func resetElectionTimer() {
        electionElapsed = 0
        electionTimeout = timing.electionTicks + Int(rng.next() % UInt64(timing.electionTicks))
    }

    private func becomeFollower(term newTerm: UInt64, leader newLeader: PeerID?) throws {
        if newTerm != term {
            term = newTerm
            votedFor = nil
            try storage.saveHardState(RaftHardState(term: term, votedFor: nil))
        }
        role = .follower
        leader = newLeader
        votes = []
        preVotes = nil
        activeVoters = 0
        resetElectionTimer()
    }

    /// A valid append or snapshot in the current term comes from its one leader.
    private func acceptLeader(_ from: PeerID) throws {
        preVotes = nil
        if role != .follower || leader != from {
            role = .follower
            leader = from
            votes = []
            activeVoters = 0
        }
        electionElapsed = 0
    }

    /// Asks the voters whether they would elect this peer in the next term, without entering
    /// it: a peer cut off from the others (or a returning one) cannot push the cluster's term up
    /// and depose a working leader; it campaigns only once a majority would vote for it.
    private func preCampaign() throws {
        guard term < RaftNode.maxTerm else { return }
        preVotes = [id]
        // The leader has not been heard from for an election timeout: no longer counted alive,
        // so this peer grants others' pre-votes and votes while it asks for its own.
        leader = nil
        resetElectionTimer()
        if voters.filter({ preVotes!.contains($0) }).count >= quorum { try campaign(); return }
        for p in voters where p != id {
            ready.messages.append(RaftEnvelope(from: id, to: p, term: term + 1, message: .preVote(lastIndex: lastIndex, lastTerm: lastTerm)))
        }
    }

    private func campaign() throws {
        guard term < RaftNode.maxTerm else { return }
        preVotes = nil
        term += 1
        votedFor = id
        try storage.saveHardState(RaftHardState(term: term, votedFor: id))
        role = .candidate
        leader = nil
        votes = [id]
        resetElectionTimer()
        if voters.filter({ votes.contains($0) }).count >= quorum { try becomeLeader(); return }
        for p in voters where p != id { send(p, .requestVote(lastIndex: lastIndex, lastTerm: lastTerm)) }
    }

    private func becomeLeader() throws {
        role = .leader
        leader = id
        votes = []
        nextIndex = [:]
        matchIndex = [:]
        recentlyActive = []
        electionElapsed = 0
        heartbeatElapsed = 0
        activeVoters = voters.count
        for p in replicas where p != id { nextIndex[p] = lastIndex + 1 }
        // The no-op commits everything before it once replicated (leaders only count their term).
        try appendLocal([RaftEntry(term: term, index: lastIndex + 1)])
        broadcastAppend()
    }

    // MARK: replication

    private func appendLocal(_ new: [RaftEntry]) throws {
        guard let first = new.first else { return }
        try storage.replaceEntries(from: first.index, with: new)
        log.append(contentsOf: new)
        if new.contains(where: { $0.voters != nil }) { configurationChanged() }
        try advanceCommit()
    }

    private func configurationChanged() {
        voters = currentVoters()
        guard role == .leader else { return }
        let all = replicas
        for p in all where p != id && nextIndex[p] == nil {
            nextIndex[p] = lastIndex + 1
            sendAppend(to: p)
        }
        for p in Array(nextIndex.keys) where !all.contains(p) {
            nextIndex[p] = nil
            matchIndex[p] = nil
        }
    }

    private func broadcastAppend() {
        for p in replicas where p != id { sendAppend(to: p) }
    }

    private func sendAppend(to p: PeerID) {
        let next = nextIndex[p] ?? lastIndex + 1
        if let s = snapshot, next <= s.index {
            send(p, .installSnapshot(s))
            return
        }
        let prev = next - 1
        guard let prevTerm = termAt(prev) else { return }
        send(p, .append(prevIndex: prev, prevTerm: prevTerm, entries: entries(from: next, max: timing.maxAppendEntries), commit: commitIndex))
    }

    private func advanceCommit() throws {
        guard role == .leader else { return }
        var n = lastIndex
        while n > commitIndex {
            // Only entries of the current term are committed by counting (Raft §5.4.2).
            guard termAt(n) == term else { break }
            let acks = voters.filter { $0 == id ? true : (matchIndex[$0] ?? 0) >= n }.count
            if acks >= quorum {
                commitIndex = n
                break
            }
            n -= 1
        }
        // A leader that committed its own removal steps down.
        if !voters.contains(id) && lastConfigIndex <= commitIndex {
            try becomeFollower(term: term, leader: nil)
        }
    }

    private func handleAppend(from leaderID: PeerID, prevIndex: UInt64, prevTerm: UInt64, entries: [RaftEntry], commit: UInt64) throws {
        let snapIndex = snapshot?.index ?? 0
        if prevIndex > lastIndex {
            send(leaderID, .appendResponse(success: false, match: 0, hint: lastIndex + 1))
            return
        }
        if prevIndex >= snapIndex, let t = termAt(prevIndex), t != prevTerm {
            // Back up over the whole conflicting term at once.
            var hint = prevIndex
            while hint > max(snapIndex, commitIndex) + 1, termAt(hint - 1) == t { hint -= 1 }
            send(leaderID, .appendResponse(success: false, match: 0, hint: hint))
            return
        }
        // prevIndex matches (or lies inside the snapshot, which is committed and so matches).
        var toAppend: [RaftEntry] = []
        for e in entries where e.index > snapIndex {
            if toAppend.isEmpty, let t = termAt(e.index) {
                if t == e.term { continue }
                guard e.index > commitIndex else {
                    throw VQError(.internal, "raft: leader \(leaderID) sent entry \(e.index) in term \(e.term), which conflicts with a committed entry")
                }
                try storage.replaceEntries(from: e.index, with: [])
                log.removeLast(Int(lastIndex - e.index + 1))
                // A truncated config entry no longer applies.
                voters = currentVoters()
            }
            toAppend.append(e)
        }
        try appendLocal(toAppend)
        let matched = prevIndex + UInt64(entries.count)
        if commit > commitIndex { commitIndex = max(commitIndex, min(commit, matched)) }
        send(leaderID, .appendResponse(success: true, match: matched, hint: 0))
    }

    private func handleSnapshot(from leaderID: PeerID, _ s: RaftSnapshot) throws {
        if s.index <= commitIndex {
            send(leaderID, .snapshotResponse(match: commitIndex))
            return
        }
        // Keep the entries after the snapshot when they agree with it; otherwise drop the log.
        if let t = termAt(s.index), t == s.term {
            log.removeFirst(Int(s.index - firstIndex) + 1)
        } else {
            log = []
        }
        try storage.saveSnapshot(s)
        if log.isEmpty { try storage.replaceEntries(from: s.index + 1, with: []) }
        snapshot = s
        commitIndex = s.index
        appliedIndex = s.index
        ready.restore = s
        voters = currentVoters()
        send(leaderID, .snapshotResponse(match: s.index))
    }

    private func send(_ to: PeerID, _ message: RaftMessage) {
        ready.messages.append(RaftEnvelope(from: id, to: to, term: term, message: message))
    }
}

/// A small seeded generator (Raft's election jitter must be reproducible in the simulation).
struct SplitMix {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// Raft storage in memory: for the simulation test, where a "crash" discards the node and keeps
// this object, which then holds exactly what a synchronous disk would.

package final class MemoryRaftStorage: RaftStorage {
    package private(set) var hardState = RaftHardState()
    package private(set) var snapshot: RaftSnapshot?
    package private(set) var entries: [RaftEntry] = []

    package init() {}

    package func saveHardState(_ state: RaftHardState) throws { hardState = state }

    package func replaceEntries(from index: UInt64, with new: [RaftEntry]) throws {
        let first = (snapshot?.index ?? 0) + 1
        precondition(index >= first && index <= first + UInt64(entries.count), "raft storage: replace from \(index) leaves a gap")
        entries.removeLast(entries.count - Int(index - first))
        entries.append(contentsOf: new)
    }

    package func saveSnapshot(_ s: RaftSnapshot) throws {
        entries.removeAll { $0.index <= s.index }
        snapshot = s
    }
}

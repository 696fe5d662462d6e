// A first-in, first-out queue in one array that releases what it hands out.
//
// Taking from the front leaves a nil slot (the element is released at once) and advances a head
// index; the array is reset when it drains and compacted when the taken prefix is more than half
// of it. So memory follows what is queued now, not what went through (a queue that kept taken
// slots until 1,024 had gone by held gigabytes of request bodies and batches).

struct Fifo<Element> {
    private var slots: [Element?] = []
    private var head = 0

    var count: Int { slots.count - head }
    var isEmpty: Bool { head == slots.count }

    mutating func append(_ element: Element) { slots.append(element) }

    /// The oldest element, removed; nil when empty.
    mutating func popFirst() -> Element? {
        guard head < slots.count else { return nil }
        let element = slots[head]
        slots[head] = nil
        head += 1
        if head == slots.count {
            slots.removeAll(keepingCapacity: slots.capacity <= 4096)
            head = 0
        } else if head > 64 && head * 2 > slots.count {
            slots.removeFirst(head)
            head = 0
        }
        return element
    }
}

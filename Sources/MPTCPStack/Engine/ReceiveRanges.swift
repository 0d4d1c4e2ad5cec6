/// The ranges a subflow received above its next expected sequence number,
/// the most recently grown first: the order SACK blocks are announced in
/// (RFC 2018 §4). Bounded: beyond `limit` ranges the oldest is forgotten
/// (the peer resends it; the data level has it).
package struct ReceiveRanges {
    package private(set) var blocks: [SACKBlock] = []

    package init() {}

    package var count: Int { blocks.count }
    package var isEmpty: Bool { blocks.isEmpty }
    package subscript(i: Int) -> SACKBlock { blocks[i] }

    /// Records `left ..< right`, merged with every range it overlaps or
    /// touches, as the most recent range.
    package mutating func add(_ l: TCPSeq, _ r: TCPSeq, limit: Int) {
        var left = l, right = r
        var i = 0
        while i < blocks.count {
            let b = blocks[i]
            if !(right < b.left) && !(b.right < left) {
                if b.left < left { left = b.left }
                if right < b.right { right = b.right }
                blocks.remove(at: i)
            } else {
                i += 1
            }
        }
        blocks.insert(SACKBlock(left: left, right: right), at: 0)
        if blocks.count > limit { blocks.removeLast() }
    }

    /// Takes every range `next` has reached: `next` moves to the end of the
    /// data now in order, and those ranges go.
    package mutating func absorb(into next: inout TCPSeq) {
        var changed = true
        while changed {
            changed = false
            var i = 0
            while i < blocks.count {
                let b = blocks[i]
                if !(next < b.left) {
                    if next < b.right { next = b.right }
                    blocks.remove(at: i)
                    changed = true
                } else {
                    i += 1
                }
            }
        }
    }
}

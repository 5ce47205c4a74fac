/// Compares two byte strings in time that depends only on their lengths, never on where they first differ: for
/// secrets (tokens, codes, MACs) compared with what a client sent.
public func constantTimeEqual<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for (x, y) in zip(a, b) { difference |= x ^ y }
    return difference == 0
}

import Crypto

/// SHA-256 for PKCE, kept behind one name so the flows do not import Crypto directly.
enum SHA256Digest {
    static func of(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
}

import Crypto
import Foundation
import KeylessCore
import _CryptoExtras

/// Password hashes in a PHC-style string: `$scrypt$ln=15,r=8,p=1$SALT$HASH` (unpadded base64).
/// Only hashes live in `idp.yaml`; `keyless idp hash-password` makes them.
public struct PasswordHash: Sendable, Equatable, CustomStringConvertible {
    /// log2 of scrypt's N.
    public let logN: Int
    /// scrypt's block size.
    public let r: Int
    /// scrypt's parallelism.
    public let p: Int
    public let salt: [UInt8]
    /// The derived key.
    public let hash: [UInt8]

    /// The cost used for new hashes: N = 2^15, r = 8, p = 1 (32 MiB, about 0.1 s here).
    public static let defaultCost = (logN: 15, r: 8, p: 1)

    /// Hashes `password` with a fresh random salt.
    public static func make(
        _ password: String, logN: Int = defaultCost.logN, r: Int = defaultCost.r, p: Int = defaultCost.p
    ) throws -> PasswordHash {
        var rng = SystemRandomNumberGenerator()
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return PasswordHash(
            logN: logN, r: r, p: p, salt: salt, hash: try derive(password, salt: salt, logN: logN, r: r, p: p))
    }

    /// Parses a stored hash; `nil` when it is not one.
    public init?(_ text: String) {
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "scrypt" else { return nil }
        var values: [String: Int] = [:]
        for pair in parts[2].split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, let value = Int(kv[1]) else { return nil }
            values[String(kv[0])] = value
        }
        guard let logN = values["ln"], let r = values["r"], let p = values["p"], (10...22).contains(logN),
            (1...32).contains(r), (1...16).contains(p),
            let salt = Self.decode(parts[3]), salt.count >= 8, let hash = Self.decode(parts[4]), hash.count >= 16
        else { return nil }
        self.init(logN: logN, r: r, p: p, salt: salt, hash: hash)
    }

    init(logN: Int, r: Int, p: Int, salt: [UInt8], hash: [UInt8]) {
        self.logN = logN
        self.r = r
        self.p = p
        self.salt = salt
        self.hash = hash
    }

    /// The stored form.
    public var description: String {
        "$scrypt$ln=\(logN),r=\(r),p=\(p)$\(Self.encode(salt))$\(Self.encode(hash))"
    }

    /// Whether `password` matches, compared in constant time.
    public func verify(_ password: String) -> Bool {
        guard let candidate = try? Self.derive(password, salt: salt, logN: logN, r: r, p: p, length: hash.count) else {
            return false
        }
        var difference: UInt8 = 0
        for (a, b) in zip(candidate, hash) { difference |= a ^ b }
        return difference == 0 && candidate.count == hash.count
    }

    static func derive(_ password: String, salt: [UInt8], logN: Int, r: Int, p: Int, length: Int = 32) throws -> [UInt8]
    {
        let key = try KDF.Scrypt.deriveKey(
            from: Array(password.utf8), salt: salt, outputByteCount: length, rounds: 1 << logN, blockSize: r,
            parallelism: p)
        return key.withUnsafeBytes { Array($0) }
    }

    static func encode(_ bytes: [UInt8]) -> String {
        var text = Data(bytes).base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }

    static func decode(_ text: Substring) -> [UInt8]? {
        var padded = String(text)
        while padded.count % 4 != 0 { padded += "=" }
        return Data(base64Encoded: padded).map(Array.init)
    }
}

extension PasswordHash {
    /// `verify` on a Dispatch worker instead of a Swift-concurrency thread: scrypt holds a thread for ~0.1 s, and the
    /// server's few cooperative threads must keep answering other requests meanwhile.
    public func verifyOffloaded(_ password: String) async -> Bool {
        await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async { continuation.resume(returning: self.verify(password)) }
        }
    }
}

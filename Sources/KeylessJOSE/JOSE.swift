import CKeylessSys
import Crypto
import Foundation
import KeylessCore
import _CryptoExtras

/// An RSA key also loaded into the system's OpenSSL, which signs it more than twice as fast as BoringSSL on CPUs with
/// AVX512-IFMA. PKCS#1 v1.5 signatures are deterministic, so both produce the same bytes (a test checks it).
public final class OpenSSLRSAKey: @unchecked Sendable {
    // @unchecked: the EVP_PKEY is never changed after loading, and OpenSSL 3 allows concurrent signing with one key.
    /// The same key in swift-crypto (public key, DER).
    public let key: _RSA.Signing.PrivateKey
    private let handle: UnsafeMutableRawPointer

    /// Loads `key` into OpenSSL; nil when libcrypto.so.3 is missing or refuses the key.
    public init?(_ key: _RSA.Signing.PrivateKey) {
        let der = Array(key.derRepresentation)
        guard let handle = keyless_openssl_rsa_load(der, der.count) else { return nil }
        self.key = key
        self.handle = handle
    }

    deinit { keyless_openssl_rsa_free(handle) }

    /// An RS256 signature.
    public func sign(_ input: [UInt8]) throws -> Data {
        var signature = [UInt8](repeating: 0, count: key.keySizeInBits / 8 + 16)
        var length = signature.count
        guard keyless_openssl_rsa_sign_sha256(handle, input, input.count, &signature, &length) == 1 else {
            // Fail over, never fail open.
            return try key.signature(for: input, padding: .insecurePKCS1v1_5).rawRepresentation
        }
        return Data(signature[..<length])
    }
}

/// A private key that signs JWS compact tokens: RS256 (RSA PKCS#1 v1.5, SHA-256) or ES256 (P-256, SHA-256).
public enum SigningKey: Sendable {
    case rsa(_RSA.Signing.PrivateKey)
    /// An RSA key that signs through the system's OpenSSL.
    case rsaOpenSSL(OpenSSLRSAKey)
    case ec(P256.Signing.PrivateKey)

    /// This key signing through the system's OpenSSL when it is available (RSA only; unchanged otherwise).
    public func accelerated() -> SigningKey {
        if case .rsa(let key) = self, let fast = OpenSSLRSAKey(key) { return .rsaOpenSSL(fast) }
        return self
    }

    /// The RSA key, whichever library signs with it.
    var rsaKey: _RSA.Signing.PrivateKey? {
        switch self {
        case .rsa(let key): return key
        case .rsaOpenSSL(let fast): return fast.key
        case .ec: return nil
        }
    }

    /// A new key for `algorithm` (`RS256`: 2048-bit RSA; `ES256`: P-256).
    public static func generate(algorithm: String) throws -> SigningKey {
        switch algorithm {
        case "RS256": return .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048))
        case "ES256": return .ec(P256.Signing.PrivateKey())
        default:
            throw KeylessError(
                .configInvalid, "signing algorithm \(algorithm) is not supported.", hint: "Use RS256 or ES256.")
        }
    }

    /// Reads a key from its DER (PKCS#8 or PKCS#1 for RSA, SEC1/PKCS#8 for EC).
    public init(algorithm: String, der: Data) throws {
        switch algorithm {
        case "RS256": self = .rsa(try _RSA.Signing.PrivateKey(derRepresentation: der))
        case "ES256": self = .ec(try P256.Signing.PrivateKey(derRepresentation: der))
        default:
            throw KeylessError(
                .configInvalid, "signing algorithm \(algorithm) is not supported.", hint: "Use RS256 or ES256.")
        }
    }

    /// The JWS `alg`.
    public var algorithm: String {
        switch self {
        case .rsa, .rsaOpenSSL: return "RS256"
        case .ec: return "ES256"
        }
    }

    /// The private key's DER, for sealing into the store.
    public var der: Data {
        if let key = rsaKey { return key.derRepresentation }
        guard case .ec(let key) = self else { return Data() }
        return key.derRepresentation
    }

    /// The public key as JWK members (without `kid`, `use`, `alg`).
    public func publicJWKMembers() throws -> [String: String] {
        if let key = rsaKey {
            let primitives = try key.publicKey.getKeyPrimitives()
            return [
                "kty": "RSA", "n": Base64URL.encode(primitives.modulus),
                "e": Base64URL.encode(primitives.publicExponent),
            ]
        }
        guard case .ec(let key) = self else { return [:] }
        let raw = key.publicKey.rawRepresentation
        return [
            "kty": "EC", "crv": "P-256", "x": Base64URL.encode(raw.prefix(32)), "y": Base64URL.encode(raw.suffix(32)),
        ]
    }

    /// The RFC 7638 thumbprint of the public key, used as `kid`.
    public func thumbprint() throws -> String {
        let m = try publicJWKMembers()
        // RFC 7638: required members only, lexicographic order, no whitespace.
        let canonical =
            m["kty"] == "RSA"
            ? "{\"e\":\"\(m["e"]!)\",\"kty\":\"RSA\",\"n\":\"\(m["n"]!)\"}"
            : "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"\(m["x"]!)\",\"y\":\"\(m["y"]!)\"}"
        return Base64URL.encode(Array(SHA256.hash(data: Data(canonical.utf8))))
    }

    /// Signs `input` (the JWS signing input) and returns the JWS signature bytes.
    public func sign(_ input: [UInt8]) throws -> Data {
        switch self {
        case .rsa(let key): return try key.signature(for: input, padding: .insecurePKCS1v1_5).rawRepresentation
        case .rsaOpenSSL(let fast): return try fast.sign(input)
        case .ec(let key): return try key.signature(for: input).rawRepresentation
        }
    }
}

/// JWS compact serialisation.
public enum JWS {
    /// `header.payload.signature` for a JSON `header` and `payload`.
    public static func sign(header: [UInt8], payload: [UInt8], key: SigningKey) throws -> String {
        let input = Base64URL.encode(header) + "." + Base64URL.encode(payload)
        let signature = try key.sign(Array(input.utf8))
        return input + "." + Base64URL.encode(signature)
    }

    /// The JOSE header members this provider reads.
    public struct Header: Codable, Sendable {
        /// Algorithm.
        public var alg: String
        /// Key id.
        public var kid: String?
        /// Type.
        public var typ: String?
    }

    /// The parts of a compact JWS: header, payload bytes, signing input and signature.
    public struct Parts: Sendable {
        /// The protected header.
        public var header: Header
        /// The payload (JSON) bytes.
        public var payload: Data
        /// `header.payload` as sent.
        public var signingInput: [UInt8]
        /// The signature bytes.
        public var signature: Data
    }

    /// Splits and decodes a compact JWS without checking its signature; nil when malformed or over 16 KiB.
    public static func parse(_ token: String) -> Parts? {
        guard token.utf8.count <= 16 * 1024 else { return nil }
        let segments = token.split(separator: ".", omittingEmptySubsequences: false)
        guard segments.count == 3,
            let headerData = Base64URL.decode(segments[0]), let payload = Base64URL.decode(segments[1]),
            let signature = Base64URL.decode(segments[2]),
            let header = try? JSONDecoder().decode(Header.self, from: headerData)
        else { return nil }
        return Parts(
            header: header, payload: payload, signingInput: Array((segments[0] + "." + segments[1]).utf8),
            signature: signature)
    }
}

/// A public key that verifies JWS signatures, pinned to one algorithm by its key type.
public enum VerificationKey: Sendable {
    case rsa(_RSA.Signing.PublicKey)
    case ec(P256.Signing.PublicKey)

    /// The only algorithm this key verifies; the token's own `alg` must equal it.
    public var algorithm: String {
        switch self {
        case .rsa: return "RS256"
        case .ec: return "ES256"
        }
    }

    /// Whether `signature` is valid for `input`.
    public func verify(_ signature: Data, for input: [UInt8]) -> Bool {
        switch self {
        case .rsa(let key):
            return key.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: signature), for: input, padding: .insecurePKCS1v1_5)
        case .ec(let key):
            guard let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: input)
        }
    }

    /// A key from one JWK object; nil for key types other than RSA (≥ 2048 bits) and EC P-256.
    public init?(jwk: [String: Any]) {
        switch jwk["kty"] as? String {
        case "RSA":
            guard let n = (jwk["n"] as? String).flatMap(Base64URL.decode),
                let e = (jwk["e"] as? String).flatMap(Base64URL.decode),
                let key = try? _RSA.Signing.PublicKey(n: n, e: e), key.keySizeInBits >= 2048
            else { return nil }
            self = .rsa(key)
        case "EC":
            guard jwk["crv"] as? String == "P-256", let x = (jwk["x"] as? String).flatMap(Base64URL.decode),
                let y = (jwk["y"] as? String).flatMap(Base64URL.decode), x.count == 32, y.count == 32,
                let key = try? P256.Signing.PublicKey(rawRepresentation: x + y)
            else { return nil }
            self = .ec(key)
        default:
            return nil
        }
    }
}

/// A confidential client's public keys for `private_key_jwt`, from its inline JWKS.
public struct ClientKeys: Sendable {
    /// Keys with their `kid` (nil when the JWK has none).
    public let keys: [(kid: String?, key: VerificationKey)]

    /// Parses `{"keys": [...]}`; throws when no usable key is in it.
    public init(jwks: String) throws {
        guard let list = JWKSet(json: Array(jwks.utf8))?.keys else {
            throw KeylessError(
                .configInvalid, "a client jwks is not a JSON object with a keys array.", hint: "Paste the JWKS as JSON."
            )
        }
        keys = list.compactMap { jwk in
            VerificationKey(jwk: JWKSet.stringMembers(jwk)).map { (kid: jwk["kid"]?.string, key: $0) }
        }
        guard !keys.isEmpty else {
            throw KeylessError(
                .configInvalid, "a client jwks holds no RSA or P-256 key.", hint: "Add the client's public key.")
        }
    }

    /// The keys a token with this header may be checked with: by `kid` when it has one, else every key.
    public func candidates(kid: String?) -> [VerificationKey] {
        guard let kid else { return keys.map(\.key) }
        return keys.filter { $0.kid == kid }.map(\.key)
    }
}

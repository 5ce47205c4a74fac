import Crypto
import _CryptoExtras

/// A credential public key as WebAuthn carries it: a COSE_Key (RFC 9052 §7, RFC 9053) in the authenticator data.
/// ES256 (EC2, P-256), ES384 (P-384), ES512 (P-521), RS256 (RSA, at least 2048 bits, PKCS#1 v1.5) and EdDSA (OKP,
/// Ed25519); nothing else.
public enum COSEKey: Sendable {
    case es256(P256.Signing.PublicKey)
    case es384(P384.Signing.PublicKey)
    case es512(P521.Signing.PublicKey)
    case rs256(_RSA.Signing.PublicKey)
    case ed25519(Curve25519.Signing.PublicKey)

    /// COSE algorithm identifiers (IANA "COSE Algorithms").
    public static let es256Algorithm = -7
    public static let es384Algorithm = -35
    public static let es512Algorithm = -36
    public static let rs256Algorithm = -257
    public static let edDSAAlgorithm = -8

    /// The algorithm identifier (`alg`, label 3).
    public var algorithm: Int {
        switch self {
        case .es256: Self.es256Algorithm
        case .es384: Self.es384Algorithm
        case .es512: Self.es512Algorithm
        case .rs256: Self.rs256Algorithm
        case .ed25519: Self.edDSAAlgorithm
        }
    }

    /// Reads a COSE_Key map: `kty` (1) and `alg` (3) must agree with the key's parameters (EC2: crv −1 = 1 (P-256),
    /// 2 (P-384) or 3 (P-521) as the algorithm names it, x −2 and y −3 of the curve's size; RSA: n −1, e −2; OKP: crv −1 = 6 (Ed25519), x −2 of 32 bytes).
    public init(_ cbor: CBORValue) throws {
        func fail(_ reason: String) -> CBORError { CBORError(.malformed, "COSE key: \(reason)") }
        guard case .map = cbor, let kty = cbor[int: 1]?.int, let alg = cbor[int: 3]?.int else {
            throw fail("not a map with kty (1) and alg (3)")
        }
        switch (kty, alg) {
        case (2, Self.es256Algorithm):
            guard cbor[int: -1]?.int == 1, let x = cbor[int: -2]?.bytes, let y = cbor[int: -3]?.bytes, x.count == 32,
                y.count == 32, let key = try? P256.Signing.PublicKey(rawRepresentation: x + y)
            else { throw fail("an ES256 key needs crv 1 (P-256) and a point (x, y) on the curve") }
            self = .es256(key)
        case (2, Self.es384Algorithm):
            guard cbor[int: -1]?.int == 2, let x = cbor[int: -2]?.bytes, let y = cbor[int: -3]?.bytes, x.count == 48,
                y.count == 48, let key = try? P384.Signing.PublicKey(rawRepresentation: x + y)
            else { throw fail("an ES384 key needs crv 2 (P-384) and a point (x, y) on the curve") }
            self = .es384(key)
        case (2, Self.es512Algorithm):
            guard cbor[int: -1]?.int == 3, let x = cbor[int: -2]?.bytes, let y = cbor[int: -3]?.bytes, x.count == 66,
                y.count == 66, let key = try? P521.Signing.PublicKey(rawRepresentation: x + y)
            else { throw fail("an ES512 key needs crv 3 (P-521) and a point (x, y) on the curve") }
            self = .es512(key)
        case (3, Self.rs256Algorithm):
            guard let n = cbor[int: -1]?.bytes, let e = cbor[int: -2]?.bytes,
                let key = try? _RSA.Signing.PublicKey(n: n, e: e)
            else { throw fail("an RS256 key needs n (-1) and e (-2)") }
            guard key.keySizeInBits >= 2048 else { throw fail("an RSA key of \(key.keySizeInBits) bits is too short") }
            self = .rs256(key)
        case (1, Self.edDSAAlgorithm):
            guard cbor[int: -1]?.int == 6, let x = cbor[int: -2]?.bytes, x.count == 32,
                let key = try? Curve25519.Signing.PublicKey(rawRepresentation: x)
            else { throw fail("an EdDSA key needs crv 6 (Ed25519) and x of 32 bytes") }
            self = .ed25519(key)
        default:
            throw CBORError(
                .unsupported,
                "COSE key: key type \(kty) with algorithm \(alg) (ES256, ES384, ES512, RS256 and EdDSA are supported)")
        }
    }

    /// Whether `signature` signs `data` (WebAuthn: authenticatorData ‖ SHA-256(clientDataJSON)). ECDSA signatures
    /// are DER (WebAuthn §6.5.6) over SHA-256, SHA-384 or SHA-512 as the algorithm says, RS256 PKCS#1 v1.5 with SHA-256, EdDSA Ed25519's 64 bytes.
    public func isValidSignature(_ signature: [UInt8], for data: [UInt8]) -> Bool {
        switch self {
        case .es256(let key):
            guard let parsed = try? P256.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: data)
        case .es384(let key):
            guard let parsed = try? P384.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: data)
        case .es512(let key):
            guard let parsed = try? P521.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: data)
        case .rs256(let key):
            return key.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: signature), for: data, padding: .insecurePKCS1v1_5)
        case .ed25519(let key):
            return key.isValidSignature(signature, for: data)
        }
    }
}

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
import KeylessCore

/// The client data the browser collected and the authenticator's signature covers (WebAuthn §5.8.1): which ceremony,
/// which challenge, and which page asked.
public struct CollectedClientData: Sendable, Equatable {
    public let type: String
    public let challenge: [UInt8]
    public let origin: String
    public let crossOrigin: Bool
    public let topOrigin: String?

    private struct Wire: Decodable {
        var type: String
        var challenge: String
        var origin: String
        var crossOrigin: Bool?
        var topOrigin: String?
    }

    /// Parses clientDataJSON (UTF-8 JSON; members other than these are ignored, as §5.8.1 asks).
    public init(json bytes: [UInt8]) throws {
        guard bytes.count <= 64 * 1024, let wire = try? JSONDecoder().decode(Wire.self, from: Data(bytes)) else {
            throw WebAuthnError(
                .malformed, "clientDataJSON is not a JSON object with a type, a challenge and an origin")
        }
        guard let challenge = Base64URL.decode(wire.challenge) else {
            throw WebAuthnError(.malformed, "clientDataJSON's challenge is not base64url")
        }
        type = wire.type
        self.challenge = Array(challenge)
        origin = wire.origin
        crossOrigin = wire.crossOrigin ?? false
        topOrigin = wire.topOrigin
    }
}

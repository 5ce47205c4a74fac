import Foundation
import KeylessCore
import KeylessYAML
import Yams

extension IdPConfiguration {
    /// `passkeys:` in idp.yaml: how the provider acts as a WebAuthn relying party. Every setting has a default, so
    /// passkeys work without this section (the RP ID is the issuer's host).
    public struct Passkeys: Codable, Sendable, Equatable {
        /// The RP ID passkeys are scoped to: the issuer's host (the default) or a registrable suffix of it. Changing it
        /// later makes every registered passkey unusable.
        public var rpID: String?
        /// The name browsers show when registering ("keyless" by default).
        public var rpName: String?
        /// Origins besides the issuer's that serve the provider's pages (another port or host behind the same RP ID).
        public var origins: [String]?
        /// Authenticator models (AAGUIDs) allowed to register; with it, `attestation_roots` is required.
        public var allowedAuthenticators: [String]?
        /// A PEM file of the vendors' attestation root certificates, which allowed authenticators must chain to.
        public var attestationRoots: String?
        /// What a signature counter that did not increase does: `refuse` (default) or `report` (accept, log a warning).
        public var signatureCounter: String?

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case origins
            case rpID = "rp_id", rpName = "rp_name", allowedAuthenticators = "allowed_authenticators"
            case attestationRoots = "attestation_roots", signatureCounter = "signature_counter"
        }
    }

    /// The RP ID passkeys use with this issuer: `passkeys.rp_id`, else the issuer's host; nil when that is an IP
    /// address, which browsers refuse as an RP ID (WebAuthn Level 3 §5.1.3: a valid domain), so passkeys are off.
    public func passkeyRPID(issuer: String) -> String? {
        let id = passkeys?.rpID ?? URL(string: issuer)?.host ?? ""
        return id.isEmpty || Self.isIPAddress(id) ? nil : id
    }

    /// Why passkeys are off for `issuer`, or nil when they are on.
    public func passkeysOff(issuer: String) -> String? {
        passkeyRPID(issuer: issuer) == nil
            ? "passkeys are off: the issuer's host is an IP address, which browsers refuse for passkeys; use a host name (http://localhost:PORT on one machine)"
            : nil
    }

    /// An IPv4 or IPv6 literal (with or without brackets).
    static func isIPAddress(_ host: String) -> Bool {
        if host.contains(":") || host.hasPrefix("[") { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
    }

    func checkPasskeys(root: Node, path: String) throws {
        guard let passkeys else { return }
        func fail(_ key: String, _ reason: String, _ hint: String) -> KeylessError {
            YAMLFile.error(Self.node(at: ["passkeys", key], in: root), in: path, reason, hint: hint)
        }
        let keys = Self.node(at: ["passkeys"], in: root)?.mapping?.keys.compactMap(\.string) ?? []
        let known = Set(Passkeys.CodingKeys.allCases.map(\.rawValue))
        for key in keys where !known.contains(key) {
            throw YAMLFile.error(
                Self.node(at: ["passkeys", key], in: root), in: path, "passkeys: has no setting '\(key)'.",
                hint: "Use \(known.sorted().joined(separator: ", ")).")
        }
        if let rpID = passkeys.rpID, Self.isIPAddress(rpID) {
            throw fail(
                "rp_id", "rp_id '\(rpID)' is an IP address; browsers accept passkeys only for domain names.",
                "Use a host name the provider is reached at (localhost on one machine).")
        }
        if let rpID = passkeys.rpID {
            let host = issuer.flatMap { URL(string: $0)?.host }
            guard !rpID.isEmpty, !rpID.contains("/"), !rpID.contains(":"),
                host.map({ $0 == rpID || $0.hasSuffix("." + rpID) }) ?? true
            else {
                throw fail(
                    "rp_id", "rp_id '\(rpID)' is not the issuer's host or a domain it is under.",
                    "Use the issuer's host name (\(host ?? "the host people reach the provider at")) or a parent domain of it; browsers refuse anything else."
                )
            }
        }
        for origin in passkeys.origins ?? [] {
            guard let url = URL(string: origin), let scheme = url.scheme, url.host != nil, url.path.isEmpty,
                scheme == "https" || (scheme == "http" && ["127.0.0.1", "localhost"].contains(url.host!))
            else {
                throw fail(
                    "origins", "origin '\(origin)' is not an https://host[:port] origin.",
                    "Write origins as the browser shows them, without a path: https://login.example.com.")
            }
        }
        for aaguid in passkeys.allowedAuthenticators ?? [] where UUID(uuidString: aaguid) == nil {
            throw fail(
                "allowed_authenticators",
                "'\(aaguid)' is not an AAGUID (a UUID such as cb69481e-8ff7-4039-93ec-0a2729a154a8).",
                "Copy the AAGUIDs from the vendor's documentation or the FIDO Metadata Service.")
        }
        if passkeys.allowedAuthenticators != nil && passkeys.attestationRoots == nil {
            throw fail(
                "allowed_authenticators",
                "allowed_authenticators needs attestation_roots: without a vendor's certificate an authenticator's model is only its own claim.",
                "Add attestation_roots: with a PEM file of the vendors' attestation root certificates.")
        }
        if let counter = passkeys.signatureCounter, !["refuse", "report"].contains(counter) {
            throw fail(
                "signature_counter", "signature_counter must be refuse or report, not '\(counter)'.",
                "Use refuse (the default: a counter that goes backwards may be a copied key) or report.")
        }
    }
}

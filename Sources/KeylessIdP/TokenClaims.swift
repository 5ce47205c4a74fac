import Crypto
import Foundation
import KeylessCore
import KeylessJOSE
import KeylessStorage

/// Signing: the claims the provider puts in its tokens, and how it signs them.
extension OAuthEngine {
    // MARK: Tokens and helpers

    func sign(_ claims: some TokenClaims, typ: String, kid: String, key: SigningKey) throws -> String {
        let payload = Array(claims.jsonText.utf8)
        let header =
            "{\"alg\":\"" + key.algorithm + "\",\"kid\":" + jsonString(kid) + ",\"typ\":" + jsonString(typ) + "}"
        return try JWS.sign(header: Array(header.utf8), payload: payload, key: key)
    }

    /// SHA-256 (hex) of a secret, as stores keep it.
    public static func hash(_ secret: String) -> String {
        Hex.encode(SHA256.hash(data: Data(secret.utf8)))
    }

    static func userCode() -> String {
        // RFC 8628 §6.1: consonants only (no vowels to spell words, no look-alikes): 20^8 ≈ 2^34.6.
        let alphabet = Array("BCDFGHJKLMNPQRSTVWXZ")
        var rng = SystemRandomNumberGenerator()
        return String((0..<8).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] })
    }

    static func seconds(_ date: Date) -> Int { Int(date.timeIntervalSince1970) }

    static func appendQuery(_ base: String, _ items: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let query = items.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(
            separator: "&")
        return base + (base.contains("?") ? "&" : "?") + query
    }
}

/// The user claims a grant's scopes release (OpenID Connect Core §5.4): `email` and `email_verified` for `email`,
/// `preferred_username` and `name` for `profile`, `groups` for `groups`. With `openid` alone a token names only its
/// subject. They come from idp.yaml for its users, and from the directory (as last asked) for a connector's.
/// `email_verified` is true: the address is the one the provider's administrator wrote in idp.yaml, or the
/// organisation's directory holds.
struct ReleasedClaims {
    var email: String?
    var preferredUsername: String?
    var name: String?
    var groups: [String]?
    var extra: [String: String]?

    init(authentication: Authentication, config: IdPConfiguration, scope: String) {
        let scopes = Set(scope.split(separator: " "))
        let (username, mail, fullName, memberOf): (String?, String?, String?, [String])
        if let identity = authentication.identity {
            (username, mail, fullName, memberOf) = (identity.username, identity.email, identity.name, identity.groups)
        } else {
            let user = config.user(subject: authentication.subject)
            (username, mail, fullName, memberOf) = (user?.username, user?.email, nil, user?.groups ?? [])
        }
        email = scopes.contains("email") ? mail : nil
        preferredUsername = scopes.contains("profile") ? username : nil
        name = scopes.contains("profile") ? fullName : nil
        groups = scopes.contains("groups") ? memberOf : nil
        extra = scopes.contains("profile") ? authentication.identity?.extraClaims : nil
    }
}

/// Claims the provider signs, written as JSON directly: a JSONEncoder per token had cost more than the rest of the
/// token's assembly on the token endpoint. Each type's tests hold its text to its Codable encoding.
protocol TokenClaims {
    /// The claims as a JSON object (same members and values as the Codable encoding; absent optionals left out).
    var jsonText: String { get }
}

/// A JSON array of strings.
private func jsonList(_ values: [String]) -> String { "[" + values.map(jsonString).joined(separator: ",") + "]" }

/// ID-token claims.
struct IDClaims: Codable, TokenClaims {
    var iss: String, sub: String, aud: String, exp: Int, iat: Int, auth_time: Int
    var nonce: String?
    var amr: [String]
    /// The authentication context class: `phrh` / `phr` for passkey sign-ins (`Authentication.acr(amr:)`).
    var acr: String?
    var azp: String
    var email: String?
    var email_verified: Bool?
    var preferred_username: String?
    var name: String?
    var groups: [String]?
    /// AWS session tags for `AssumeRoleWithWebIdentity` (docs.aws.amazon.com/IAM/latest/UserGuide/
    /// id_session-tags.html, "Passing session tags using AssumeRoleWithWebIdentity"): each value a one-string list.
    var awsTags: AWSTagsClaim?
    /// The AWS source identity CloudTrail records for the session (docs.aws.amazon.com/IAM/latest/UserGuide/
    /// id_credentials_temp_control-access_monitor.html).
    var awsSourceIdentity: String?
    /// A connector's `extra_claims` (released with `profile`); written after the others, never replacing one. Not part
    /// of the Codable form.
    var extra: [String: String]? = nil
    /// The members written above, which an extra claim may never repeat (the configuration refuses them too).
    static let written: Set<String> = Set(CodingKeys.allCases.map(\.rawValue))

    enum CodingKeys: String, CodingKey, CaseIterable {
        case iss, sub, aud, exp, iat, auth_time, nonce, amr, acr, azp, email, email_verified, preferred_username, name
        case groups
        case awsTags = "https://aws.amazon.com/tags"
        case awsSourceIdentity = "https://aws.amazon.com/source_identity"
    }

    var jsonText: String {
        var text = "{\"iss\":" + jsonString(iss) + ",\"sub\":" + jsonString(sub) + ",\"aud\":" + jsonString(aud)
        text += ",\"exp\":" + String(exp) + ",\"iat\":" + String(iat) + ",\"auth_time\":" + String(auth_time)
        if let nonce { text += ",\"nonce\":" + jsonString(nonce) }
        text += ",\"amr\":" + jsonList(amr)
        if let acr { text += ",\"acr\":" + jsonString(acr) }
        text += ",\"azp\":" + jsonString(azp)
        if let email { text += ",\"email\":" + jsonString(email) }
        if let email_verified { text += ",\"email_verified\":" + (email_verified ? "true" : "false") }
        if let preferred_username { text += ",\"preferred_username\":" + jsonString(preferred_username) }
        if let name { text += ",\"name\":" + jsonString(name) }
        if let groups { text += ",\"groups\":" + jsonList(groups) }
        if let awsTags { text += ",\"https://aws.amazon.com/tags\":" + awsTags.jsonText }
        if let awsSourceIdentity {
            text += ",\"https://aws.amazon.com/source_identity\":" + jsonString(awsSourceIdentity)
        }
        for (key, value) in (extra ?? [:]).sorted(by: { $0.key < $1.key }) where !Self.written.contains(key) {
            text += "," + jsonString(key) + ":" + jsonString(value)
        }
        return text + "}"
    }
}

/// The `https://aws.amazon.com/tags` claim: `{"principal_tags": {"Key": ["value"]}, "transitive_tag_keys": [...]}`.
struct AWSTagsClaim: Codable, Equatable {
    var principal_tags: [String: [String]]
    var transitive_tag_keys: [String]?

    init(tags: [String: String], transitive: [String]?) {
        principal_tags = tags.mapValues { [$0] }
        transitive_tag_keys = transitive.flatMap { $0.isEmpty ? nil : $0 }
    }

    var jsonText: String {
        let members = principal_tags.keys.sorted().map { jsonString($0) + ":" + jsonList(principal_tags[$0] ?? []) }
        var text = "{\"principal_tags\":{" + members.joined(separator: ",") + "}"
        if let transitive_tag_keys { text += ",\"transitive_tag_keys\":" + jsonList(transitive_tag_keys) }
        return text + "}"
    }
}

/// Access-token claims (RFC 9068).
public struct AccessClaims: Codable, Sendable, TokenClaims {
    /// Issuer.
    public var iss: String
    /// Subject: the user, or the client for client_credentials.
    public var sub: String
    /// AudienceList.
    public var aud: AudienceList
    /// Expiry (seconds since 1970).
    public var exp: Int
    /// Issued at.
    public var iat: Int
    /// Token id.
    public var jti: String
    /// The client it was issued to.
    public var client_id: String
    /// Granted scopes.
    public var scope: String
    /// When the user authenticated (user grants).
    public var auth_time: Int?
    /// How the user authenticated (user grants).
    public var amr: [String]?
    /// The authentication context class (passkey sign-ins).
    public var acr: String? = nil
    /// The user's groups (user grants).
    public var groups: [String]?
    /// A directory's person only: the claims the scopes release (RFC 9068 §2.2.3.1), which userinfo answers from (the
    /// users of idp.yaml are looked up there instead).
    public var email: String?
    public var preferred_username: String?
    public var name: String?

    var jsonText: String {
        var text = "{\"iss\":" + jsonString(iss) + ",\"sub\":" + jsonString(sub)
        text += ",\"aud\":" + (aud.values.count == 1 ? jsonString(aud.values[0]) : jsonList(aud.values))
        text += ",\"exp\":" + String(exp) + ",\"iat\":" + String(iat) + ",\"jti\":" + jsonString(jti)
        text += ",\"client_id\":" + jsonString(client_id) + ",\"scope\":" + jsonString(scope)
        if let auth_time { text += ",\"auth_time\":" + String(auth_time) }
        if let amr { text += ",\"amr\":" + jsonList(amr) }
        if let acr { text += ",\"acr\":" + jsonString(acr) }
        if let groups { text += ",\"groups\":" + jsonList(groups) }
        if let email { text += ",\"email\":" + jsonString(email) }
        if let preferred_username { text += ",\"preferred_username\":" + jsonString(preferred_username) }
        if let name { text += ",\"name\":" + jsonString(name) }
        return text + "}"
    }
}

import Foundation
import KeylessCore
import KeylessHTTP
import KeylessJOSE
import KeylessOIDC
import Logging

/// The `client_credentials` grant at any OpenID Provider: discovery, then the token endpoint, authenticated with
/// `client_secret_basic` or `private_key_jwt`. The ID token is used when the provider returns one, else the access token.
public struct ClientCredentialsSource: WorkloadTokenSource {
    public let issuer: String
    /// The client id.
    public let clientID: String
    /// How the client authenticates.
    public let authentication: WorkloadSource.ClientAuthentication
    /// Scopes to request (none: the provider's default for the client).
    public let scopes: [String]
    let http: any HTTPTransport
    let clock: WallClock

    public init(
        issuer: String, clientID: String, authentication: WorkloadSource.ClientAuthentication, scopes: [String],
        http: any HTTPTransport, clock: WallClock
    ) {
        self.issuer = Discovery.normalize(issuer)
        self.clientID = clientID
        self.authentication = authentication
        self.scopes = scopes
        self.http = http
        self.clock = clock
    }

    public func token(logger: Logger) async throws -> String {
        // The local checks first: a secret file others can read is refused before anything goes on the network.
        let secret: String?
        let key: SigningKey?
        switch authentication {
        case .secretFile(let path):
            secret = String(decoding: try PrivateFile.read(path, what: "client secret file"), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            guard secret?.isEmpty == false else {
                throw KeylessError(
                    .configInvalid, "The client secret file \(path) is empty.", hint: "Write the client secret into it."
                )
            }
            key = nil
        case .privateKeyFile(let path):
            key = try ClientAssertion.key(pem: try PrivateFile.read(path, what: "client key file"), path: path)
            secret = nil
        }
        let metadata = try await Discovery.fetch(issuer: issuer, http: http, logger: logger)
        var form = [("grant_type", "client_credentials")]
        if !scopes.isEmpty { form.append(("scope", scopes.joined(separator: " "))) }
        var headers = ["content-type": "application/x-www-form-urlencoded", "accept": "application/json"]
        if let secret {
            // RFC 6749 §2.3.1: both parts form-encoded, then Basic.
            let pair = FormEncoding.escape(clientID) + ":" + FormEncoding.escape(secret)
            headers["authorization"] = "Basic " + Data(pair.utf8).base64EncodedString()
        } else if let key {
            form += [
                ("client_id", clientID),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                (
                    "client_assertion",
                    try ClientAssertion.make(
                        clientID: clientID, audience: metadata.tokenEndpoint, key: key, now: clock.now())
                ),
            ]
        }
        logger.debug(
            "client_credentials request",
            metadata: ["oidc.url": "\(metadata.tokenEndpoint)", "oidc.client_id": "\(clientID)"])
        let response: HTTPResponseData
        do {
            response = try await http.send(
                method: "POST", url: metadata.tokenEndpoint, headers: headers,
                body: Array(FormEncoding.encode(form).utf8))
        } catch {
            throw KeylessError(
                .idpUnreachable, "Cannot reach the token endpoint \(metadata.tokenEndpoint): \(error).",
                hint: "Check the network and that \(issuer) is up, then retry.")
        }
        let body = JSONValue.members(of: response.body)
        guard response.status == 200 else {
            let error = body["error"]?.string ?? "HTTP \(response.status)"
            let description = (body["error_description"]?.string).map { " (\($0))" } ?? ""
            let hint: String
            switch error {
            case "invalid_client":
                hint = "Check --client-id and the client's secret or registered public key at \(issuer)."
            case "unauthorized_client", "unsupported_grant_type":
                hint = "The provider must allow client \(clientID) the client_credentials grant."
            case "invalid_scope":
                hint = "Request only scopes the client may have (--scopes), or none for the provider's default."
            default:
                hint = "Check the client's settings at \(issuer)."
            }
            throw KeylessError(
                .idpError,
                "The identity provider refused the client_credentials grant for \(clientID): \(error)\(description).",
                hint: hint)
        }
        if let idToken = body["id_token"]?.string { return idToken }
        guard let accessToken = body["access_token"]?.string else {
            throw KeylessError(
                .idpError, "The identity provider answered the client_credentials grant without a token.",
                hint: "Check the client's settings at \(issuer).")
        }
        guard UnverifiedJWT.claims(accessToken, as: WorkloadClaims.self) != nil else {
            throw KeylessError(
                .tokenInvalid,
                "\(issuer) returned no id_token and an access_token that is not a JWT, which AssumeRoleWithWebIdentity cannot use.",
                hint:
                    "Configure the client to get JWT access tokens whose aud is a client id the IAM OIDC provider for \(issuer) lists."
            )
        }
        return accessToken
    }
}

/// `private_key_jwt` client assertions (RFC 7523): `iss` and `sub` the client, `aud` the token endpoint, a unique `jti`,
/// and a one-minute life.
enum ClientAssertion {
    /// How long an assertion is valid.
    static let lifetime: TimeInterval = 60

    /// The signed assertion.
    static func make(clientID: String, audience: String, key: SigningKey, now: Date) throws -> String {
        let issuedAt = Int(now.timeIntervalSince1970)
        let header = try JSONWriter.bytes(["alg": key.algorithm, "typ": "JWT"])
        let payload = try JSONWriter.bytes(
            AssertionClaims(
                iss: clientID, sub: clientID, aud: audience, jti: UUID().uuidString, iat: issuedAt,
                exp: issuedAt + Int(lifetime)))
        return try JWS.sign(header: header, payload: payload, key: key)
    }

    /// The claims RFC 7523 §3 asks of a client assertion.
    struct AssertionClaims: Encodable {
        let iss: String, sub: String, aud: String, jti: String
        let iat: Int, exp: Int
    }

    /// The signing key in a PEM file: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
    static func key(pem: [UInt8], path: String) throws -> SigningKey {
        let text = String(decoding: pem, as: UTF8.self)
        let unreadable = KeylessError(
            .configInvalid, "The client key file \(path) holds no PEM RSA or P-256 private key.",
            hint: "Use a PEM private key, e.g. from: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256")
        guard let begin = text.range(of: "-----BEGIN "), let labelEnd = text[begin.upperBound...].range(of: "-----")
        else { throw unreadable }
        let label = String(text[begin.upperBound..<labelEnd.lowerBound])
        guard let end = text[labelEnd.upperBound...].range(of: "-----END " + label + "-----"),
            let der = Data(base64Encoded: text[labelEnd.upperBound..<end.lowerBound].filter { !$0.isWhitespace })
        else { throw unreadable }
        let algorithms: [String]
        switch label {
        case "RSA PRIVATE KEY": algorithms = ["RS256"]
        case "EC PRIVATE KEY": algorithms = ["ES256"]
        case "PRIVATE KEY": algorithms = ["ES256", "RS256"]
        default: throw unreadable
        }
        for algorithm in algorithms {
            if let key = try? SigningKey(algorithm: algorithm, der: der) { return key }
        }
        throw unreadable
    }
}

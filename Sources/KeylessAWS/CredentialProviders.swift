import Foundation
import KeylessAWSConfig
import KeylessCore
import KeylessHTTP
import KeylessSigV4
import Logging
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `~/.aws/credentials` and `~/.aws/config` as botocore finds and merges them.
struct SharedFiles {
    /// AWS_SHARED_CREDENTIALS_FILE, else HOME/.aws/credentials.
    let credentialsPath: String
    /// AWS_CONFIG_FILE, else HOME/.aws/config.
    let configPath: String

    init(environment: Environment, home: String) {
        credentialsPath = Self.expand(environment["AWS_SHARED_CREDENTIALS_FILE"] ?? "~/.aws/credentials", home: home)
        configPath = Self.expand(environment["AWS_CONFIG_FILE"] ?? "~/.aws/config", home: home)
    }

    /// `~` and `~/…` against `home`, as Python's `os.path.expanduser` does with HOME set.
    static func expand(_ path: String, home: String) -> String {
        if path == "~" { return home }
        if path.hasPrefix("~/") { return home + path.dropFirst() }
        return path
    }

    /// Reads one file; a file botocore would refuse fails here too, so the server never disagrees with the AWS CLI.
    static func document(_ path: String) throws -> AWSConfigDocument {
        let document = try AWSConfigDocument.load(path)
        if let problem = document.problems.first {
            throw KeylessError(
                .configInvalid, "The AWS file \(path) cannot be read: \(problem).",
                hint: "Fix that line; the AWS CLI and botocore refuse the whole file until it is fixed.")
        }
        return document
    }

    /// The section of the credentials file whose raw header is `[name]` (botocore matches it verbatim: `[profile x]`
    /// there is a profile called "profile x").
    static func credentialsSection(_ document: AWSConfigDocument, name: String) -> [String: String]? {
        document.values(in: rawSectionKind(name))
    }

    /// How `AWSConfigDocument` classifies a header `[name]` (the same rules as botocore's `build_profile_map`).
    static func rawSectionKind(_ name: String) -> AWSConfigDocument.SectionKind {
        let named: [(String, (String) -> AWSConfigDocument.SectionKind)] = [
            ("profile", { .profile($0) }), ("sso-session", { .ssoSession($0) }), ("services", { .services($0) }),
        ]
        for (prefix, make) in named where name.unicodeScalars.starts(with: prefix.unicodeScalars) {
            if let words = try? ShellWords.split(name), words.count == 2 { return make(words[1]) }
            return .unnamed(name)
        }
        return name == "default" ? .default : .other(name)
    }

    /// The profile's settings as botocore's `session.full_config` has them: the config file's `[profile name]`
    /// (or `[default]`), overlaid by the credentials file's `[name]`; nil when neither file has it.
    func profile(_ name: String) throws -> [String: String]? {
        let config = try Self.document(configPath).values(profile: name)
        let credentials = Self.credentialsSection(try Self.document(credentialsPath), name: name)
        if config == nil && credentials == nil { return nil }
        return (config ?? [:]).merging(credentials ?? [:]) { $1 }
    }

    /// Static keys in the credentials file's `[name]` (botocore's `shared-credentials-file`).
    func staticKeys(inCredentialsFile name: String) throws -> ResolvedCredentials? {
        guard let section = Self.credentialsSection(try Self.document(credentialsPath), name: name) else { return nil }
        return try Self.staticKeys(section, profile: name, path: credentialsPath)
    }

    /// Static keys in the config file's profile `name` (botocore's `config-file`).
    func staticKeys(inConfigFile name: String) throws -> ResolvedCredentials? {
        guard let section = try Self.document(configPath).values(profile: name) else { return nil }
        return try Self.staticKeys(section, profile: name, path: configPath)
    }

    private static func staticKeys(_ section: [String: String], profile: String, path: String) throws
        -> ResolvedCredentials?
    {
        guard let accessKey = section["aws_access_key_id"] else { return nil }
        guard !accessKey.isEmpty, let secret = section["aws_secret_access_key"], !secret.isEmpty else {
            throw KeylessError(
                .configInvalid,
                "Profile '\(profile)' in \(path) sets aws_access_key_id without aws_secret_access_key (or with an empty value).",
                hint: "Give the profile both aws_access_key_id and aws_secret_access_key, or remove both.")
        }
        // botocore's order: the legacy name first.
        let token = [section["aws_security_token"], section["aws_session_token"]].compactMap { $0 }.first {
            !$0.isEmpty
        }
        return ResolvedCredentials(
            credentials: SigV4Credentials(accessKeyID: accessKey, secretAccessKey: secret, sessionToken: token),
            expiration: nil, source: "profile \(profile)")
    }
}

/// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (botocore's `env`).
enum EnvironmentCredentials {
    static func load(_ environment: Environment) throws -> ResolvedCredentials? {
        let accessKey = environment["AWS_ACCESS_KEY_ID"]
        let secret = environment["AWS_SECRET_ACCESS_KEY"]
        switch (accessKey, secret) {
        case (nil, nil):
            return nil
        case (.some, nil):
            throw KeylessError(
                .configInvalid, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not.",
                hint:
                    "Set both (and AWS_SESSION_TOKEN for temporary keys), or unset AWS_ACCESS_KEY_ID to use another credential source."
            )
        case (nil, .some):
            throw KeylessError(
                .configInvalid, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not.",
                hint:
                    "Set both (and AWS_SESSION_TOKEN for temporary keys), or unset AWS_SECRET_ACCESS_KEY to use another credential source."
            )
        case (.some(let accessKey), .some(let secret)):
            var expiration: Date?
            if let text = environment["AWS_CREDENTIAL_EXPIRATION"] {
                guard let date = STSClient.parseDate(text) else {
                    throw KeylessError(
                        .configInvalid, "AWS_CREDENTIAL_EXPIRATION (\(text)) is not an ISO 8601 date and time.",
                        hint: "Use the form 2026-01-01T12:00:00Z, or unset it for long-lived keys.")
                }
                expiration = date
            }
            // botocore's order: the legacy name first.
            let token = environment["AWS_SECURITY_TOKEN"] ?? environment["AWS_SESSION_TOKEN"]
            return ResolvedCredentials(
                credentials: SigV4Credentials(accessKeyID: accessKey, secretAccessKey: secret, sessionToken: token),
                expiration: expiration, source: "environment")
        }
    }
}

/// Profile settings botocore acts on that the server refuses, checked where botocore would use them.
enum Unsupported {
    static let hint =
        "Give the server its own credentials (environment keys, static keys in a profile, AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, a container or an instance role); keyless's own AssumeRole does the role switching."

    /// botocore's `assume-role`: `role_arn` without `web_identity_token_file`.
    static func checkRoleChaining(_ settings: [String: String], profile: String) throws {
        guard settings["role_arn"] != nil, settings["web_identity_token_file"] == nil else { return }
        throw KeylessError(
            .configInvalid,
            "Profile '\(profile)' assumes a role through source_profile or credential_source; the keyless server does not support role chaining in its own credentials.",
            hint: hint)
    }

    /// botocore's `sso`: `sso_role_name` or `sso_account_id`.
    static func checkSSO(_ settings: [String: String], profile: String) throws {
        guard settings["sso_role_name"] != nil || settings["sso_account_id"] != nil else { return }
        throw KeylessError(
            .configInvalid,
            "Profile '\(profile)' uses IAM Identity Center (SSO), which the keyless server does not support for its own credentials.",
            hint: hint)
    }

    /// botocore's `login` and `custom-process`, which it tries after the credentials file and before the config file's keys.
    static func checkLoginAndProcess(_ settings: [String: String], profile: String) throws {
        if settings["login_session"] != nil {
            throw KeylessError(
                .configInvalid,
                "Profile '\(profile)' uses login_session, which the keyless server does not support for its own credentials.",
                hint: hint)
        }
        if settings["credential_process"] != nil {
            throw KeylessError(
                .configInvalid,
                "Profile '\(profile)' uses credential_process, which the keyless server does not support for its own credentials.",
                hint: hint)
        }
    }
}

/// AssumeRoleWithWebIdentity with a token file (botocore's `assume-role-with-web-identity`); each setting comes from
/// the environment when set there, else from the profile, as in botocore.
struct WebIdentityCredentials {
    let tokenFile: String
    let roleArn: String
    let sessionName: String

    static func configuration(
        environment: Environment, profile: [String: String], profileName: String, home: String,
        clock: WallClock
    ) throws -> WebIdentityCredentials? {
        func setting(_ key: String, _ variable: String) -> String? {
            environment[variable] ?? profile[key].flatMap { $0.isEmpty ? nil : $0 }
        }
        guard let tokenFile = setting("web_identity_token_file", "AWS_WEB_IDENTITY_TOKEN_FILE") else { return nil }
        guard let roleArn = setting("role_arn", "AWS_ROLE_ARN") else {
            throw KeylessError(
                .configInvalid,
                "A web identity token file is configured (AWS_WEB_IDENTITY_TOKEN_FILE or web_identity_token_file in profile '\(profileName)') but no role to assume.",
                hint: "Set AWS_ROLE_ARN, or role_arn in the profile.")
        }
        let sessionName =
            setting("role_session_name", "AWS_ROLE_SESSION_NAME")
            ?? "keyless-server-\(Int(clock.now().timeIntervalSince1970))"
        return WebIdentityCredentials(
            tokenFile: SharedFiles.expand(tokenFile, home: home), roleArn: roleArn,
            sessionName: SessionName.sanitize(sessionName))
    }

    /// Reads the token file (it is rotated on disk, so on every call) and asks STS.
    func fetch(region: String?, environment: Environment, http: any HTTPTransport, logger: Logger) async throws
        -> ResolvedCredentials
    {
        guard let bytes = try Files.read(tokenFile) else {
            throw KeylessError(
                .configInvalid, "The web identity token file \(tokenFile) does not exist.",
                hint:
                    "Check AWS_WEB_IDENTITY_TOKEN_FILE (or web_identity_token_file) and that the token volume is mounted."
            )
        }
        let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else {
            throw KeylessError(
                .configInvalid, "The web identity token file \(tokenFile) is empty.",
                hint: "Check that whatever writes the token (the kubelet, an agent) has written it.")
        }
        let endpoint = STSEndpoint.resolve(explicit: nil, region: region, environment: environment)
        let client = STSClient(endpoint: endpoint, http: http, logger: logger)
        let request = WebIdentityRequest(
            roleArn: roleArn, sessionName: sessionName, webIdentityToken: token, durationSeconds: nil,
            issuer: "the web identity token in \(tokenFile)")
        let answer: AWSCredentials
        do {
            answer = try await client.assumeRoleWithWebIdentity(request)
        } catch let error as KeylessError where error.code == .usage {
            throw KeylessError(.configInvalid, error.reason, hint: "Fix AWS_ROLE_ARN (or role_arn in the profile).")
        }
        return ResolvedCredentials(
            credentials: SigV4Credentials(
                accessKeyID: answer.accessKeyId, secretAccessKey: answer.secretAccessKey,
                sessionToken: answer.sessionToken),
            expiration: answer.expiration, source: "web-identity")
    }
}

/// The ECS / EKS Pod Identity credentials endpoint (botocore's `container-role`).
struct ContainerCredentials {
    /// The ECS agent's address, which AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is relative to.
    static let relativeBase = "http://169.254.170.2"
    /// Hosts botocore allows over plain HTTP besides loopback addresses: the ECS and EKS Pod Identity agents.
    static let allowedHosts: Set<String> = ["169.254.170.2", "169.254.170.23", "fd00:ec2::23", "localhost"]
    static let timeout: Double = 2

    enum Authorization {
        case value(String)
        case file(String)
    }

    let url: String
    let authorization: Authorization?

    static func configuration(_ environment: Environment) throws -> ContainerCredentials? {
        let url: String
        if let relative = environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] {
            url = relativeBase + relative
        } else if let full = environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"] {
            try validateFullURI(full)
            url = full
        } else {
            return nil
        }
        // botocore reads the file when both are set.
        let authorization =
            environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"].map(Authorization.file)
            ?? environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"].map(Authorization.value)
        return ContainerCredentials(url: url, authorization: authorization)
    }

    /// Plain HTTP only to a loopback address or the agents' addresses, so credentials never cross a network in clear.
    static func validateFullURI(_ uri: String) throws {
        guard let components = URLComponents(string: uri), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https",
            var host = components.host, !host.isEmpty
        else {
            throw KeylessError(
                .configInvalid, "AWS_CONTAINER_CREDENTIALS_FULL_URI (\(uri)) is not an http or https URL.",
                hint: "Use the URL the container runtime set, such as http://169.254.170.23/v1/credentials.")
        }
        if scheme == "https" { return }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if isLoopback(host) || allowedHosts.contains(host.lowercased()) { return }
        throw KeylessError(
            .configInvalid,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI points at \(host) over plain HTTP; credentials are fetched over HTTP only from a loopback address or \(allowedHosts.sorted().joined(separator: ", ")).",
            hint: "Use https, or the address of the ECS or EKS Pod Identity agent.")
    }

    /// Python's `ipaddress.ip_address(host).is_loopback`: 127.0.0.0/8 and ::1, literal addresses only.
    static func isLoopback(_ host: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
        }
        return false
    }

    func authorizationValue() throws -> String? {
        let value: String
        switch authorization {
        case nil:
            return nil
        case .value(let token):
            value = token
        case .file(let path):
            // Re-read on every call: EKS Pod Identity rotates the token in place.
            guard let bytes = try Files.read(path) else {
                throw KeylessError(
                    .configInvalid, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names \(path), which does not exist.",
                    hint: "Check that the token volume is mounted, or unset the variable.")
            }
            // A final line break is an editor's, not the token's.
            value = String(
                String(decoding: bytes, as: UTF8.self).reversed().drop { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
                    .reversed())
        }
        guard !value.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else {
            throw KeylessError(
                .configInvalid,
                "The container authorization token contains a line break, which cannot go in an HTTP header.",
                hint:
                    "Check AWS_CONTAINER_AUTHORIZATION_TOKEN or the file AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names.")
        }
        return value
    }

    func fetch(http: any HTTPTransport) async throws -> ResolvedCredentials {
        var headers = ["accept": "application/json"]
        if let authorization = try authorizationValue() { headers["authorization"] = authorization }
        let response: HTTPResponseData
        do {
            response = try await withTimeout(seconds: Self.timeout) { [headers, url] in
                try await http.send(method: "GET", url: url, headers: headers, body: nil)
            }
        } catch {
            throw KeylessError(
                .stsUnreachable, "Cannot reach the container credentials endpoint \(url): \(error).",
                hint:
                    "Check that the ECS agent or EKS Pod Identity agent is running, or unset AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / AWS_CONTAINER_CREDENTIALS_FULL_URI."
            )
        }
        guard response.status == 200 else {
            throw KeylessError(
                .stsError, "The container credentials endpoint \(url) answered HTTP \(response.status).",
                hint: response.status == 401 || response.status == 403
                    ? "Check AWS_CONTAINER_AUTHORIZATION_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE."
                    : "Check the task role or pod identity association, then retry.")
        }
        guard let found = MetadataCredentials.parse(response.body, source: "container") else {
            throw KeylessError(
                .stsError,
                "The container credentials endpoint \(url) answered without AccessKeyId, SecretAccessKey, Token and Expiration.",
                hint: "Check that the URL is the credentials endpoint, then retry.")
        }
        return found
    }
}

/// The JSON the container endpoint and IMDS answer with.
struct MetadataCredentials: Decodable {
    var AccessKeyId: String?
    var SecretAccessKey: String?
    var Token: String?
    var Expiration: String?

    static func parse(_ body: [UInt8], source: String) -> ResolvedCredentials? {
        guard let decoded = try? JSONDecoder().decode(MetadataCredentials.self, from: Data(body)),
            let accessKey = decoded.AccessKeyId, !accessKey.isEmpty, let secret = decoded.SecretAccessKey,
            !secret.isEmpty,
            let token = decoded.Token, let expirationText = decoded.Expiration,
            let expiration = STSClient.parseDate(expirationText)
        else { return nil }
        return ResolvedCredentials(
            credentials: SigV4Credentials(
                accessKeyID: accessKey, secretAccessKey: secret, sessionToken: token.isEmpty ? nil : token),
            expiration: expiration, source: source)
    }
}

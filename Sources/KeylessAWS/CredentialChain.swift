import Foundation
import KeylessAWSConfig
import KeylessCore
import KeylessHTTP
import KeylessSigV4
import Logging

/// AWS credentials a provider found, when they stop working, and where they came from.
public struct ResolvedCredentials: Sendable, Equatable, CustomStringConvertible {
    /// The keys to sign with.
    public var credentials: SigV4Credentials
    /// When they stop working; nil for long-lived static keys.
    public var expiration: Date?
    /// Where they came from: "environment", "profile NAME", "web-identity", "container" or "instance-metadata".
    public var source: String

    /// Credentials from `source`.
    public init(credentials: SigV4Credentials, expiration: Date?, source: String) {
        self.credentials = credentials
        self.expiration = expiration
        self.source = source
    }

    /// The access key id and the source only: the secret and the session token never reach a log line through this.
    public var description: String {
        "ResolvedCredentials(accessKeyID: \(credentials.accessKeyID), source: \(source), expiration: \(expiration.map { "\($0)" } ?? "none"))"
    }
}

/// Finds AWS credentials; one method so tests can substitute a closure.
public protocol AWSCredentialProvider: Sendable {
    /// The credentials, or an error that says what was tried and what to do.
    func resolve(logger: Logger) async throws -> ResolvedCredentials
}

/// The credential chain botocore (and so the AWS CLI) uses, in botocore's order, for the access server's own AWS
/// identity: environment keys, the profile's role settings, web identity, static keys in the shared credentials file,
/// static keys in the config file, the container endpoint, then EC2 instance metadata (IMDSv2 only).
///
/// Profile kinds botocore supports but the server does not (role chaining with `source_profile` or
/// `credential_source`, SSO, `login_session`, `credential_process`) fail with `configInvalid` at the point where
/// botocore would use them, so the server never signs with keys other than the ones the AWS CLI would pick.
public struct DefaultCredentialChain: AWSCredentialProvider {
    let environment: Environment
    let home: String
    let http: any HTTPTransport
    let clock: WallClock
    let explicitProfile: String?

    /// A chain over `environment`, the shared files under `home` (unless AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE
    /// name others), endpoints reached through `http`; `profile` overrides AWS_PROFILE and, as in botocore, makes the
    /// chain ignore credentials and web-identity settings in the environment.
    public init(
        environment: Environment, home: String, http: any HTTPTransport, clock: WallClock, profile: String? = nil
    ) {
        self.environment = environment
        self.home = home
        self.http = http
        self.clock = clock
        self.explicitProfile = profile.flatMap { $0.isEmpty ? nil : $0 }
    }

    public func resolve(logger: Logger) async throws -> ResolvedCredentials {
        let resolved = try await find(logger: logger)
        logger.info(
            "aws credentials resolved",
            metadata: [
                "aws.credentials.source": "\(resolved.source)",
                "aws.credentials.expiration": "\(resolved.expiration.map { "\($0)" } ?? "none")",
            ])
        return resolved
    }

    private func find(logger: Logger) async throws -> ResolvedCredentials {
        let files = SharedFiles(environment: environment, home: home)
        let namedProfile = explicitProfile ?? environment["AWS_PROFILE"]
        let profileName = namedProfile ?? "default"
        let useEnvironment = explicitProfile == nil
        let profile = try files.profile(profileName)
        // As in botocore: a profile someone named must exist (even "default"); an unnamed default may be absent.
        if profile == nil, namedProfile != nil {
            let via = explicitProfile == nil ? "AWS_PROFILE names" : "The server is configured with"
            throw KeylessError(
                .configInvalid,
                "\(via) the AWS profile '\(profileName)', which is in neither \(files.credentialsPath) nor \(files.configPath).",
                hint:
                    "Add [\(profileName)] to the credentials file or [profile \(profileName)] to the config file, or name an existing profile."
            )
        }
        let settings = profile ?? [:]

        if useEnvironment, let found = try EnvironmentCredentials.load(environment) {
            logger.debug("aws credentials found", metadata: ["aws.credentials.source": "environment"])
            return found
        }
        try Unsupported.checkRoleChaining(settings, profile: profileName)
        if let webIdentity = try WebIdentityCredentials.configuration(
            environment: useEnvironment ? environment : Environment(), profile: settings,
            profileName: profileName, home: home, clock: clock)
        {
            let region = AWSRegionResolver.resolve(
                environment: environment, home: home, profile: profileName, files: files)
            logger.debug(
                "aws credentials: assuming role with web identity", metadata: ["aws.role": "\(webIdentity.roleArn)"])
            return try await webIdentity.fetch(region: region, environment: environment, http: http, logger: logger)
        }
        try Unsupported.checkSSO(settings, profile: profileName)
        if let found = try files.staticKeys(inCredentialsFile: profileName) {
            return found
        }
        try Unsupported.checkLoginAndProcess(settings, profile: profileName)
        if let found = try files.staticKeys(inConfigFile: profileName) {
            return found
        }
        if let container = try ContainerCredentials.configuration(environment) {
            logger.debug(
                "aws credentials: asking the container endpoint", metadata: ["aws.endpoint": "\(container.url)"])
            return try await container.fetch(http: http)
        }
        var imdsNote = "instance metadata is disabled by AWS_EC2_METADATA_DISABLED"
        if !InstanceMetadata.isDisabled(environment) {
            let imds = InstanceMetadata(environment: environment)
            switch await imds.fetch(http: http, logger: logger) {
            case .found(let found): return found
            case .notFound(let reason): imdsNote = reason
            }
        }
        throw KeylessError(
            .configInvalid,
            "No AWS credentials for the server: none in the environment, none for profile '\(profileName)' in \(files.credentialsPath) or \(files.configPath), no web identity or container settings, and \(imdsNote).",
            hint:
                "Give the server an AWS identity: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, put aws_access_key_id/aws_secret_access_key in profile '\(profileName)', set AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (EKS IRSA), or run it on ECS/EKS/EC2 with a role attached (IMDSv2)."
        )
    }
}

/// Caches another provider's answer and asks again `refreshBefore` seconds before it expires, with exactly one
/// request to the base provider in flight (soto's `ExpiringValue`): while a refresh runs, callers get the current
/// credentials if they are still valid, else wait for that refresh.
public actor RefreshingCredentialProvider: AWSCredentialProvider {
    private enum State {
        /// Nothing yet, or the last attempt failed with nothing valid to fall back on.
        case noValue
        /// The first answer (or one after expiry) is on its way; every caller waits for it.
        case waitingForValue(Task<ResolvedCredentials, Error>)
        /// An answer to hand out.
        case withValue(ResolvedCredentials)
        /// An answer still valid but close to expiry, and its replacement on its way.
        case withValueAndWaiting(ResolvedCredentials, Task<ResolvedCredentials, Error>)
    }

    private let base: any AWSCredentialProvider
    private let clock: WallClock
    private let refreshBefore: TimeInterval
    private var state: State = .noValue

    /// Wraps `base`; `clock` decides when an answer is due for refresh.
    public init(_ base: any AWSCredentialProvider, clock: WallClock, refreshBefore: TimeInterval = 300) {
        self.base = base
        self.clock = clock
        self.refreshBefore = refreshBefore
    }

    public func resolve(logger: Logger) async throws -> ResolvedCredentials {
        let now = clock.now()
        switch state {
        case .noValue:
            return try await startRefresh(logger: logger, keeping: nil).value
        case .waitingForValue(let task):
            return try await task.value
        case .withValue(let current):
            guard let expiration = current.expiration, now >= expiration.addingTimeInterval(-refreshBefore) else {
                return current
            }
            if now < expiration {
                logger.debug(
                    "aws credentials near expiry, refreshing", metadata: ["aws.credentials.source": "\(current.source)"]
                )
                _ = startRefresh(logger: logger, keeping: current)
                return current
            }
            return try await startRefresh(logger: logger, keeping: nil).value
        case .withValueAndWaiting(let current, let task):
            if let expiration = current.expiration, now < expiration { return current }
            return try await task.value
        }
    }

    /// Starts the one refresh and records it in the state before any other caller can run on this actor.
    private func startRefresh(logger: Logger, keeping current: ResolvedCredentials?) -> Task<ResolvedCredentials, Error>
    {
        // The task inherits this actor's isolation, so `refresh` updates the state when the base answers.
        let task = Task { try await self.refresh(logger: logger) }
        state = current.map { .withValueAndWaiting($0, task) } ?? .waitingForValue(task)
        return task
    }

    private func refresh(logger: Logger) async throws -> ResolvedCredentials {
        do {
            let fresh = try await base.resolve(logger: logger)
            state = .withValue(fresh)
            return fresh
        } catch {
            if case .withValueAndWaiting(let current, _) = state, let expiration = current.expiration,
                clock.now() < expiration
            {
                // Keep serving what still works; the next call tries again.
                state = .withValue(current)
            } else {
                state = .noValue
            }
            logger.warning("aws credentials refresh failed", metadata: ["aws.error": "\(error)"])
            throw error
        }
    }
}

/// The region the server's own AWS calls use.
public enum AWSRegionResolver {
    /// AWS_REGION, then AWS_DEFAULT_REGION, then `region` of the profile (`profile`, else AWS_PROFILE, else default);
    /// nil when none is set or the shared files cannot be read.
    public static func resolve(environment: Environment, home: String, profile: String?) -> String? {
        let name = profile ?? environment["AWS_PROFILE"] ?? "default"
        return resolve(
            environment: environment, home: home, profile: name,
            files: SharedFiles(environment: environment, home: home))
    }

    static func resolve(environment: Environment, home: String, profile: String, files: SharedFiles) -> String? {
        if let region = environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] { return region }
        guard let settings = try? files.profile(profile), let region = settings["region"], !region.isEmpty else {
            return nil
        }
        return region
    }
}

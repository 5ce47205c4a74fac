import ArgumentParser
import Foundation
import KeylessAWS
import KeylessClient
import KeylessCore
import KeylessOIDC
import KeylessTLS
import KeylessTrust

extension Keyless {
    /// `keyless bootstrap`: the IAM OIDC provider and roles that trust it, as code or applied directly.
    struct Bootstrap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Set up AWS's trust in an OIDC issuer: write Terraform, CloudFormation or JSON, or apply it through IAM.",
            discussion: """
                Examples:
                  keyless bootstrap terraform --issuer-url https://id.example.com --client-id keyless-cli --role dev:arn:aws:iam::aws:policy/ReadOnlyAccess
                  keyless bootstrap cloudformation --github-repo acme/api --github-ref refs/heads/main --role deploy
                  keyless bootstrap apply --issuer keyless-idp --issuer-url https://id.example.com --role dev --require-mfa
                """,
            subcommands: [Terraform.self, CloudFormation.self, JSON.self, Apply.self])
    }
}

/// The flags every `bootstrap` subcommand shares: the issuer (or a preset), its audiences and thumbprints, and the roles.
struct BootstrapOptions: ParsableArguments {
    @Option(name: .customLong("issuer-url"), help: "The issuer URL, as tokens carry it in iss.")
    var issuerURL: String?

    @Option(
        name: .customLong("issuer"),
        help: "A preset: keyless-idp (keyless's own provider at --issuer-url; audience keyless-cli unless --client-id)."
    )
    var issuerPreset: String?

    @Option(
        name: .customLong("client-id"),
        help: "A client id the provider trusts (the tokens' aud); repeat for several. Presets have a default.")
    var clientIDs: [String] = []

    @Option(
        name: .customLong("github-repo"),
        help: "Preset for GitHub Actions: trust token.actions.githubusercontent.com for ORG/REPO.")
    var githubRepo: String?

    @Option(
        name: .customLong("github-ref"),
        help: "With --github-repo: only this ref, e.g. refs/heads/main (default: any ref, repo:ORG/REPO:*).")
    var githubRef: String?

    @Option(name: .customLong("role"), help: "A role: NAME or NAME:POLICY_ARN[,POLICY_ARN...]; repeat for several.")
    var roles: [String] = []

    @Option(
        name: .customLong("sub"),
        help: "A sub pattern (StringLike: * and ? wildcards) every role requires; repeat for several.")
    var subPatterns: [String] = []

    @Flag(name: .customLong("require-mfa"), help: "Require the token's amr to contain mfa.")
    var requireMFA = false

    @Flag(
        name: .customLong("session-tags"),
        help:
            "Allow sts:TagSession and sts:SetSourceIdentity too: for tokens with AWS claims (keyless idp's connectors with aws:), which STS refuses otherwise."
    )
    var sessionTags = false

    @Option(name: .customLong("max-session"), help: "The roles' longest session in seconds (3600 to 43200).")
    var maxSession = 3600

    @Option(
        name: .customLong("thumbprint"),
        help: "The provider's SHA-1 thumbprint (40 hex digits); computed from the JWKS host when left out.")
    var thumbprints: [String] = []

    func validate() throws {
        if githubRepo != nil && (issuerURL != nil || issuerPreset != nil) {
            throw ValidationError("--github-repo sets the issuer: leave out --issuer-url and --issuer")
        }
        if githubRef != nil && githubRepo == nil { throw ValidationError("--github-ref needs --github-repo") }
        if let issuerPreset, issuerPreset != "keyless-idp" {
            throw ValidationError("--issuer knows one preset: keyless-idp")
        }
        if githubRepo == nil && issuerURL == nil {
            throw ValidationError("give --issuer-url (or --github-repo ORG/REPO)")
        }
        if githubRepo == nil && issuerPreset == nil && clientIDs.isEmpty {
            throw ValidationError("give --client-id, the aud your tokens carry")
        }
    }

    /// The roles as the flags describe them.
    func parsedRoles() throws -> [BootstrapRole] {
        try roles.map { text in
            var role = try BootstrapRole.parse(text)
            role.subPatterns = subPatterns
            role.requireMFA = requireMFA
            role.sessionTags = sessionTags
            role.sourceIdentity = sessionTags
            role.maxSessionSeconds = maxSession
            return role
        }
    }

    /// The plan, with the thumbprint computed from the issuer's JWKS host when not given.
    func plan(context: ClientContext) async throws -> BootstrapPlan {
        let roles = try parsedRoles()
        if let githubRepo {
            var plan = try BootstrapPlan.github(repository: githubRepo, ref: githubRef, roles: roles)
            // GitHub lets a workflow ask for another audience (`audience:` in configure-aws-credentials).
            if !clientIDs.isEmpty { plan.clientIDs = clientIDs }
            if !thumbprints.isEmpty { plan.thumbprints = thumbprints.map { $0.lowercased() } }
            try plan.validate()
            return plan
        }
        let issuer = issuerURL!
        let audiences = clientIDs.isEmpty ? [BootstrapPlan.keylessAudience] : clientIDs
        var notes: [String] = []
        var prints = thumbprints
        if BootstrapPlan.isLoopbackHTTP(issuer) {
            notes.append(
                "\(issuer) is plain http on loopback (tests and local demos): IAM stores only https URLs, so the provider is "
                    + "registered as https://\(BootstrapPlan.providerName(issuer)), and AWS itself could never reach it."
            )
            if prints.isEmpty {
                prints = [BootstrapPlan.placeholderThumbprint]
                notes.append(
                    "thumbprint \(BootstrapPlan.placeholderThumbprint) is IAM's placeholder: no TLS certificate to take it from."
                )
            }
        } else if prints.isEmpty {
            prints = [try await computeThumbprint(issuer: issuer, context: context)]
        }
        let plan = try BootstrapPlan(
            issuerURL: issuer, clientIDs: audiences, thumbprints: prints, roles: roles, notes: notes)
        for note in notes { context.terminal.say("note: \(note)") }
        return plan
    }

    /// SHA-1 of the last certificate the JWKS host presents (the URL's own host when discovery fails).
    func computeThumbprint(issuer: String, context: ClientContext) async throws -> String {
        guard let url = URL(string: issuer), let host = url.host else {
            throw KeylessError(.usage, "The issuer \(issuer) is not a URL.", hint: "Pass the https issuer URL.")
        }
        var target = (host: host, port: url.port ?? 443)
        do {
            let metadata = try await Discovery.fetch(issuer: issuer, http: context.http, logger: context.logger)
            if let jwks = URL(string: metadata.jwksURI), let jwksHost = jwks.host {
                target = (jwksHost, jwks.port ?? 443)
            }
        } catch {
            let reason = (error as? KeylessError)?.reason ?? "\(error)"
            context.terminal.say("note: no discovery document (\(reason)); taking the thumbprint from \(host).")
        }
        let report = try await KeylessTLS.Thumbprint.fetch(host: target.host, port: target.port)
        context.terminal.say(
            "thumbprint \(report.thumbprint.sha1) from \(target.host):\(target.port) (\(report.thumbprint.subject))")
        return report.thumbprint.sha1
    }
}

/// `--out FILE` or stdout.
struct BootstrapOutput: ParsableArguments {
    @Option(name: .customLong("out"), help: "Write to this file instead of stdout.")
    var out: String?

    func write(_ text: String, context: ClientContext) throws {
        guard let out else {
            print(text, terminator: "")
            return
        }
        do {
            try text.write(toFile: out, atomically: true, encoding: .utf8)
        } catch {
            throw KeylessError(
                .io, "Cannot write \(out): \(error.localizedDescription).",
                hint: "Check the directory exists and is writable.")
        }
        context.terminal.say("wrote \(out)")
    }
}

extension Keyless.Bootstrap {
    /// `keyless bootstrap terraform`.
    struct Terraform: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Write Terraform: aws_iam_openid_connect_provider, aws_iam_role (trust policy via jsonencode) and policy attachments."
        )
        @OptionGroup var options: BootstrapOptions
        @OptionGroup var output: BootstrapOutput

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live()
                try output.write(
                    BootstrapGenerator.terraform(try await options.plan(context: context)), context: context)
            }
        }
    }

    /// `keyless bootstrap cloudformation`.
    struct CloudFormation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cloudformation",
            abstract:
                "Write a CloudFormation template (YAML); --customer-template writes the one a vendor gives customers to connect their account."
        )
        @OptionGroup var options: BootstrapOptions
        @OptionGroup var output: BootstrapOutput

        @Flag(
            name: .customLong("customer-template"),
            help:
                "The cross-account template: a parameter for the customer's external id (their tokens' sub), the vendor issuer as default."
        )
        var customerTemplate = false

        func validate() throws {
            if customerTemplate && options.roles.isEmpty {
                throw ValidationError("--customer-template needs at least one --role NAME[:POLICY_ARN]")
            }
            if customerTemplate && !options.subPatterns.isEmpty {
                throw ValidationError(
                    "--customer-template takes the sub from the ExternalId parameter: leave out --sub")
            }
        }

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live()
                let plan = try await options.plan(context: context)
                try output.write(
                    customerTemplate
                        ? BootstrapGenerator.customerTemplate(plan) : BootstrapGenerator.cloudFormation(plan),
                    context: context)
            }
        }
    }

    /// `keyless bootstrap json`.
    struct JSON: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the provider and each role's trust policy as JSON, for scripts.")
        @OptionGroup var options: BootstrapOptions
        @OptionGroup var output: BootstrapOutput

        @Option(
            name: .customLong("account"),
            help: "The AWS account id the provider ARN names (default: the placeholder ${account}).")
        var account: String?

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live()
                try output.write(
                    BootstrapGenerator.json(try await options.plan(context: context), account: account),
                    context: context)
            }
        }
    }

    /// `keyless bootstrap apply`.
    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or update the provider and roles through the IAM API, after showing the plan and asking.",
            discussion: """
                Signs with your AWS credentials from the usual chain (environment, --profile / AWS_PROFILE, ...); they need \
                iam:*OpenIDConnectProvider*, iam:GetRole, CreateRole, UpdateRole, UpdateAssumeRolePolicy, ListAttachedRolePolicies \
                and AttachRolePolicy. Idempotent: a second run prints "No changes.". Nothing is deleted or detached.
                """)
        @OptionGroup var options: BootstrapOptions

        @Flag(name: .customLong("yes"), help: "Apply without asking (for scripts).")
        var yes = false

        @Flag(name: .customLong("dry-run"), help: "Print the plan only.")
        var dryRun = false

        @Option(
            name: .customLong("profile"),
            help: "The AWS profile whose credentials sign the IAM calls (default: the usual chain).")
        var profile: String?

        @Option(
            name: .customLong("iam-endpoint"),
            help: "The IAM endpoint (default: AWS_ENDPOINT_URL_IAM, AWS_ENDPOINT_URL, the global one).")
        var iamEndpoint: String?

        func run() async throws {
            var declined = false
            try await reporting {
                let context = try ClientContext.live()
                let plan = try await options.plan(context: context)
                let chain = DefaultCredentialChain(
                    environment: context.environment, home: context.paths.home, http: context.http,
                    clock: context.clock, profile: profile)
                let admin = try await chain.resolve(logger: context.logger)
                let iam = IAMClient(
                    endpoint: IAMClient.endpoint(
                        explicit: iamEndpoint, region: context.environment["AWS_REGION"],
                        environment: context.environment),
                    http: context.http, logger: context.logger)
                let applier = BootstrapApplier(plan: plan, iam: iam, admin: admin, clock: context.clock)
                let current = try await applier.readState()
                var providerARN = applier.providerARN(current)
                let changes = BootstrapChanges.compute(
                    plan: plan, current: current,
                    providerARN: providerARN ?? plan.providerARN(account: "<this account>"))
                guard !changes.isEmpty else {
                    print("No changes.")
                    return
                }
                print("Plan for \(plan.issuerURL): \(changes.count) change\(changes.count == 1 ? "" : "s")")
                for change in changes {
                    print(
                        change.describe(
                            plan: plan, providerARN: providerARN ?? plan.providerARN(account: "<this account>")))
                }
                if dryRun { return }
                if !yes {
                    guard let answer = context.terminal.ask("Apply these \(changes.count) changes? [y/N] ") else {
                        throw KeylessError(
                            .usage, "There is no terminal to confirm the changes on.",
                            hint: "Pass --yes to apply without asking, or --dry-run to see the plan only.")
                    }
                    guard ["y", "yes"].contains(answer.trimmingCharacters(in: .whitespaces).lowercased()) else {
                        context.terminal.say("Nothing was changed.")
                        declined = true
                        return
                    }
                }
                for change in changes {
                    if let created = try await applier.apply(change, providerARN: providerARN) { providerARN = created }
                }
                print("Applied \(changes.count) change\(changes.count == 1 ? "" : "s").")
            }
            if declined { throw ExitCode(1) }
        }
    }
}

/// Reads what IAM holds for a plan and makes one change at a time.
struct BootstrapApplier {
    let plan: BootstrapPlan
    let iam: IAMClient
    let admin: ResolvedCredentials
    let clock: WallClock

    /// The provider for the plan's issuer, and each plan role that exists with its attached policies.
    func readState() async throws -> BootstrapCurrentState {
        let now = clock.now()
        var provider: BootstrapCurrentState.Provider?
        let suffix = ":oidc-provider/" + plan.providerName.lowercased()
        if let arn = try await iam.listOpenIDConnectProviders(credentials: admin.credentials, date: now).first(where: {
            $0.lowercased().hasSuffix(suffix)
        }),
            let found = try await iam.openIDConnectProvider(arn: arn, credentials: admin.credentials, date: now)
        {
            provider = .init(arn: arn, clientIDs: found.clientIDs, thumbprints: found.thumbprints)
        }
        var roles: [String: BootstrapCurrentState.Role] = [:]
        for role in plan.roles {
            guard let found = try await iam.role(named: role.name, credentials: admin.credentials, date: now) else {
                continue
            }
            let attached = try await iam.attachedRolePolicies(
                name: role.name, credentials: admin.credentials, date: now)
            roles[role.name] = .init(
                arn: found.arn, trustPolicy: found.trustPolicy, maxSessionSeconds: found.maxSessionSeconds,
                attachedPolicyARNs: attached)
        }
        return BootstrapCurrentState(provider: provider, roles: roles)
    }

    /// The provider ARN the trust policies name: the existing provider's, else one in the account an existing role shows.
    func providerARN(_ state: BootstrapCurrentState) -> String? {
        if let arn = state.provider?.arn { return arn }
        return state.accountAndPartition.map { plan.providerARN(account: $0.account, partition: $0.partition) }
    }

    /// Makes one change; returns the provider's ARN when it created the provider.
    func apply(_ change: BootstrapChange, providerARN: String?) async throws -> String? {
        let now = clock.now()
        func arn() throws -> String {
            guard let providerARN else {
                throw KeylessError(
                    .stsError, "The provider's ARN is not known, so the trust policy cannot name it.",
                    hint: "Run bootstrap apply again.")
            }
            return providerARN
        }
        switch change {
        case .createProvider(let url, let clientIDs, let thumbprints):
            return try await iam.createOpenIDConnectProvider(
                url: url, clientIDs: clientIDs, thumbprints: thumbprints, credentials: admin.credentials, date: now)
        case .addClientID(let providerARN, let clientID):
            try await iam.addClientID(clientID, providerARN: providerARN, credentials: admin.credentials, date: now)
        case .updateThumbprints(let providerARN, let thumbprints):
            try await iam.updateThumbprints(
                thumbprints, providerARN: providerARN, credentials: admin.credentials, date: now)
        case .createRole(let name, let seconds):
            let role = plan.roles.first { $0.name == name }!
            _ = try await iam.createRole(
                name: name, trustPolicy: plan.trustPolicyJSON(for: role, providerARN: try arn()),
                maxSessionSeconds: seconds,
                description: "keyless: web identities from \(plan.issuerURL)", credentials: admin.credentials, date: now
            )
        case .updateTrustPolicy(let name, _, _):
            let role = plan.roles.first { $0.name == name }!
            try await iam.updateAssumeRolePolicy(
                name: name, trustPolicy: plan.trustPolicyJSON(for: role, providerARN: try arn()),
                credentials: admin.credentials, date: now)
        case .updateMaxSession(let name, _, let seconds):
            try await iam.updateMaxSessionDuration(
                name: name, seconds: seconds, credentials: admin.credentials, date: now)
        case .attachPolicy(let role, let policyARN):
            try await iam.attachRolePolicy(name: role, policyARN: policyARN, credentials: admin.credentials, date: now)
        }
        return nil
    }
}

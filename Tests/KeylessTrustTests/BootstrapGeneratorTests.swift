import Foundation
import KeylessCore
import Testing
@testable import KeylessTrust

private let account = "123456789012"

/// keyless's own provider on https, two roles: one for any subject, one for admins with MFA and a longer session.
private func keylessPlan() throws -> BootstrapPlan {
    try BootstrapPlan(
        issuerURL: "https://id.example.com/", clientIDs: ["keyless-cli"],
        thumbprints: ["9E99A48A9960B14926BB7F3B02E22DA2B0AB7280"],
        roles: [
            BootstrapRole(name: "dev", managedPolicyARNs: ["arn:aws:iam::aws:policy/ReadOnlyAccess"]),
            BootstrapRole(
                name: "admin", managedPolicyARNs: ["arn:aws:iam::aws:policy/AdministratorAccess"],
                subPatterns: ["alice", "bob"],
                requireMFA: true, maxSessionSeconds: 7200),
        ])
}

private func githubPlan() throws -> BootstrapPlan {
    try BootstrapPlan.github(repository: "acme/api", ref: "refs/heads/main", roles: [BootstrapRole(name: "deploy")])
}

private func claims(sub: String, aud: String, amr: [String]? = nil) -> [String: JSONValue] {
    var claims: [String: JSONValue] = ["sub": .string(sub), "aud": .string(aud)]
    if let amr { claims["amr"] = .array(amr.map(JSONValue.string)) }
    return claims
}

@Suite("bootstrap: trust policies, Terraform, CloudFormation and JSON generated from one plan")
struct BootstrapGeneratorTests {
    @Test(
        "the GitHub preset trusts GitHub's issuer for sts.amazonaws.com and repo:ORG/REPO:ref:REF, with GitHub's thumbprint"
    )
    func githubPreset() throws {
        let plan = try githubPlan()
        #expect(plan.issuerURL == "https://token.actions.githubusercontent.com")
        #expect(plan.thumbprints == ["6938fd4d98bab03faadb97b34396831e3780aea1"])
        #expect(
            plan.trustPolicyJSON(for: plan.roles[0], providerARN: plan.providerARN(account: account)) == #"""
                {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"token.actions.githubusercontent.com:aud":"sts.amazonaws.com"},"StringLike":{"token.actions.githubusercontent.com:sub":"repo:acme/api:ref:refs/heads/main"}}}]}
                """#)
    }

    @Test("without --github-ref the GitHub preset allows any ref of the repository: repo:ORG/REPO:*")
    func githubAnyRef() throws {
        let plan = try BootstrapPlan.github(repository: "acme/api", ref: nil, roles: [BootstrapRole(name: "deploy")])
        #expect(plan.roles[0].subPatterns == ["repo:acme/api:*"])
        #expect(throws: KeylessError(.usage, "")) { try BootstrapPlan.github(repository: "acme", ref: nil, roles: []) }
    }

    @Test(
        "an MFA role's trust policy has aud, both sub patterns as a list and ForAnyValue:StringEquals amr mfa, in that order"
    )
    func mfaTrustPolicy() throws {
        let plan = try keylessPlan()
        #expect(plan.providerName == "id.example.com")
        #expect(plan.thumbprints == ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"])
        #expect(
            plan.trustPolicyJSON(for: plan.roles[1], providerARN: plan.providerARN(account: account)) == #"""
                {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/id.example.com"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"id.example.com:aud":"keyless-cli"},"StringLike":{"id.example.com:sub":["alice","bob"]},"ForAnyValue:StringEquals":{"id.example.com:amr":["mfa"]}}}]}
                """#)
        #expect(
            plan.trustPolicyJSON(for: plan.roles[0], providerARN: plan.providerARN(account: account)) == #"""
                {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/id.example.com"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"id.example.com:aud":"keyless-cli"}}}]}
                """#)
    }

    @Test(
        "TrustEvaluator allows the generated policy for the right token and refuses a wrong sub, a wrong aud and a token without MFA"
    )
    func evaluatorCrossCheck() throws {
        let plan = try keylessPlan()
        let admin = try TrustPolicy.parse(
            plan.trustPolicyJSON(for: plan.roles[1], providerARN: plan.providerARN(account: account)))
        let explain = { (claims: [String: JSONValue]) in
            TrustEvaluator.explain(
                admin, context: .forToken(claims: claims, issuer: "https://id.example.com", account: account))
        }
        #expect(explain(claims(sub: "alice", aud: "keyless-cli", amr: ["pwd", "otp", "mfa"])).allowed)
        #expect(!explain(claims(sub: "mallory", aud: "keyless-cli", amr: ["mfa"])).allowed)
        #expect(!explain(claims(sub: "alice", aud: "other-client", amr: ["mfa"])).allowed)
        #expect(!explain(claims(sub: "alice", aud: "keyless-cli", amr: ["pwd"])).allowed)

        let github = try githubPlan()
        let deploy = try TrustPolicy.parse(
            github.trustPolicyJSON(for: github.roles[0], providerARN: github.providerARN(account: account)))
        let ci = { (sub: String, aud: String) in
            TrustEvaluator.explain(
                deploy,
                context: .forToken(claims: claims(sub: sub, aud: aud), issuer: github.issuerURL, account: account)
            ).allowed
        }
        #expect(ci("repo:acme/api:ref:refs/heads/main", "sts.amazonaws.com"))
        #expect(!ci("repo:acme/api:ref:refs/heads/feature", "sts.amazonaws.com"))
        #expect(!ci("repo:acme/other:ref:refs/heads/main", "sts.amazonaws.com"))
        #expect(!ci("repo:acme/api:ref:refs/heads/main", "api://AzureADTokenExchange"))
    }

    @Test(
        "Terraform: the pinned AWS provider, the OIDC provider, the role with a jsonencode'd trust policy naming the provider resource, attachments and outputs"
    )
    func terraform() throws {
        let plan = try BootstrapPlan.github(
            repository: "acme/api", ref: "refs/heads/main",
            roles: [BootstrapRole(name: "deploy", managedPolicyARNs: ["arn:aws:iam::aws:policy/PowerUserAccess"])])
        #expect(
            BootstrapGenerator.terraform(plan) == #"""
                # Generated by `keyless bootstrap terraform`: the IAM OIDC provider for https://token.actions.githubusercontent.com
                # and the roles that trust it (sts:AssumeRoleWithWebIdentity with an aud condition).

                terraform {
                  required_providers {
                    aws = { source = "hashicorp/aws", version = "5.100.0" }
                  }
                }

                resource "aws_iam_openid_connect_provider" "issuer" {
                  url             = "https://token.actions.githubusercontent.com"
                  client_id_list  = ["sts.amazonaws.com"]
                  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1"]
                }

                resource "aws_iam_role" "deploy" {
                  name                 = "deploy"
                  max_session_duration = 3600
                  assume_role_policy = jsonencode({
                    Version = "2012-10-17"
                    Statement = [
                      {
                        Effect = "Allow"
                        Principal = {
                          Federated = aws_iam_openid_connect_provider.issuer.arn
                        }
                        Action = "sts:AssumeRoleWithWebIdentity"
                        Condition = {
                          StringEquals = {
                            "token.actions.githubusercontent.com:aud" = "sts.amazonaws.com"
                          }
                          StringLike = {
                            "token.actions.githubusercontent.com:sub" = "repo:acme/api:ref:refs/heads/main"
                          }
                        }
                      }
                    ]
                  })
                }

                resource "aws_iam_role_policy_attachment" "deploy_1" {
                  role       = aws_iam_role.deploy.name
                  policy_arn = "arn:aws:iam::aws:policy/PowerUserAccess"
                }

                output "oidc_provider_arn" {
                  value = aws_iam_openid_connect_provider.issuer.arn
                }

                output "role_arns" {
                  value = {
                    deploy = aws_iam_role.deploy.arn
                  }
                }

                """#)
    }

    @Test("Terraform keeps ${ and %{ in a sub pattern literal and gives odd role names valid, distinct labels")
    func terraformEscaping() throws {
        let plan = try BootstrapPlan(
            issuerURL: "https://id.example.com", clientIDs: ["c"], thumbprints: [String(repeating: "a", count: 40)],
            roles: [
                BootstrapRole(name: "ci.deploy@x", subPatterns: ["${x}%{y}\"q"]), BootstrapRole(name: "ci_deploy_x"),
            ])
        let text = BootstrapGenerator.terraform(plan)
        #expect(text.contains(#""id.example.com:sub" = "$${x}%%{y}\"q""#), "\(text)")
        #expect(text.contains(#"resource "aws_iam_role" "ci_deploy_x" {"#))
        #expect(text.contains(#"resource "aws_iam_role" "ci_deploy_x_2" {"#))
        #expect(text.contains(#"    "ci.deploy@x" = aws_iam_role.ci_deploy_x.arn"#))
    }

    @Test(
        "CloudFormation: the OIDC provider, each role with its trust policy naming !Ref OIDCProvider, ManagedPolicyArns, MaxSessionDuration and ARN outputs"
    )
    func cloudFormation() throws {
        let plan = try BootstrapPlan(
            issuerURL: "https://id.example.com", clientIDs: ["keyless-cli"],
            thumbprints: [String(repeating: "b", count: 40)],
            roles: [
                BootstrapRole(
                    name: "data-admin", managedPolicyARNs: ["arn:aws:iam::aws:policy/ReadOnlyAccess"], requireMFA: true,
                    maxSessionSeconds: 7200)
            ])
        #expect(
            BootstrapGenerator.cloudFormation(plan) == #"""
                # Generated by `keyless bootstrap cloudformation`.
                AWSTemplateFormatVersion: "2010-09-09"
                Description: "keyless: the IAM OIDC provider for https://id.example.com and the roles that trust it"
                Resources:
                  OIDCProvider:
                    Type: "AWS::IAM::OIDCProvider"
                    Properties:
                      Url: "https://id.example.com"
                      ClientIdList:
                        - "keyless-cli"
                      ThumbprintList:
                        - "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
                  RoleDataAdmin:
                    Type: "AWS::IAM::Role"
                    Properties:
                      RoleName: "data-admin"
                      MaxSessionDuration: 7200
                      AssumeRolePolicyDocument:
                        Version: "2012-10-17"
                        Statement:
                          - Effect: "Allow"
                            Principal:
                              Federated: !Ref OIDCProvider
                            Action: "sts:AssumeRoleWithWebIdentity"
                            Condition:
                              StringEquals:
                                "id.example.com:aud": "keyless-cli"
                              "ForAnyValue:StringEquals":
                                "id.example.com:amr":
                                  - "mfa"
                      ManagedPolicyArns:
                        - "arn:aws:iam::aws:policy/ReadOnlyAccess"
                Outputs:
                  OIDCProviderArn:
                    Description: "The IAM OIDC provider for https://id.example.com"
                    Value: !Ref OIDCProvider
                  RoleDataAdminArn:
                    Description: "The ARN of role data-admin"
                    Value: !GetAtt RoleDataAdmin.Arn

                """#)
    }

    @Test(
        "the customer template takes the external id as a parameter, checks it as the sub, defaults the vendor issuer and can reuse an existing provider"
    )
    func customerTemplate() throws {
        let plan = try BootstrapPlan(
            issuerURL: "https://id.vendor.example", clientIDs: ["vendor-app"],
            thumbprints: [String(repeating: "c", count: 40)],
            roles: [BootstrapRole(name: "VendorAccess", managedPolicyARNs: ["arn:aws:iam::aws:policy/PowerUserAccess"])]
        )
        let text = BootstrapGenerator.customerTemplate(plan)
        for line in [
            "  ExternalId:", #"    Default: "id.vendor.example""#, #"    Default: "vendor-app""#,
            #"  ShouldCreateProvider: !Equals [!Ref CreateProvider, "true"]"#,
            #"      Url: !Sub "https://${VendorIssuerHost}""#,
            #"                  "${VendorIssuerHost}:sub": "${ExternalId}""#,
            #"                  "${VendorIssuerHost}:aud": "${VendorClientId}","#,
            #"            - !Sub "arn:${AWS::Partition}:iam::${AWS::AccountId}:oidc-provider/${VendorIssuerHost}""#,
            "    Value: !GetAtt RoleVendorAccess.Arn",
        ] {
            #expect(text.contains(line + "\n"), "missing \(line) in\n\(text)")
        }
    }

    @Test(
        "JSON: the provider (url, ARN in the account, client ids, thumbprints) and each role's trust policy, equal to the one IAM would get"
    )
    func json() throws {
        let plan = try keylessPlan()
        let text = BootstrapGenerator.json(plan, account: account)
        let document = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        guard case .object(let top) = document, case .object(let provider)? = top["provider"],
            case .array(let roles)? = top["roles"],
            case .object(let admin) = roles[1]
        else {
            Issue.record("unexpected shape:\n\(text)")
            return
        }
        #expect(provider["url"] == .string("https://id.example.com"))
        #expect(provider["arn"] == .string("arn:aws:iam::123456789012:oidc-provider/id.example.com"))
        #expect(provider["clientIds"] == .array([.string("keyless-cli")]))
        #expect(admin["maxSessionDuration"] == .number(7200))
        let expected = try JSONDecoder().decode(
            JSONValue.self,
            from: Data(plan.trustPolicyJSON(for: plan.roles[1], providerARN: plan.providerARN(account: account)).utf8))
        #expect(admin["trustPolicy"] == expected)
        #expect(
            BootstrapGenerator.json(plan, account: nil).contains(
                #""arn": "arn:aws:iam::${account}:oidc-provider/id.example.com""#))
    }

    @Test(
        "a plan IAM would refuse is refused first: http off loopback, a bad thumbprint, a bad role name, a session over 12 h, a non-ARN policy"
    )
    func validation() throws {
        let print40 = [String(repeating: "a", count: 40)]
        let role = [BootstrapRole(name: "dev")]
        let bad: [() throws -> BootstrapPlan] = [
            {
                try BootstrapPlan(
                    issuerURL: "http://id.example.com", clientIDs: ["c"], thumbprints: print40, roles: role)
            },
            {
                try BootstrapPlan(issuerURL: "https://id.example.com", clientIDs: [], thumbprints: print40, roles: role)
            },
            {
                try BootstrapPlan(
                    issuerURL: "https://id.example.com", clientIDs: ["c"], thumbprints: ["abc"], roles: role)
            },
            {
                try BootstrapPlan(
                    issuerURL: "https://id.example.com", clientIDs: ["c"], thumbprints: print40,
                    roles: [BootstrapRole(name: "a b")])
            },
            {
                try BootstrapPlan(
                    issuerURL: "https://id.example.com", clientIDs: ["c"], thumbprints: print40,
                    roles: [BootstrapRole(name: "dev"), BootstrapRole(name: "DEV")])
            },
            {
                try BootstrapPlan(
                    issuerURL: "https://id.example.com", clientIDs: ["c"], thumbprints: print40,
                    roles: [BootstrapRole(name: "dev", maxSessionSeconds: 50_000)])
            },
            {
                try BootstrapPlan(
                    issuerURL: "https://id.example.com", clientIDs: ["c"], thumbprints: print40,
                    roles: [BootstrapRole(name: "dev", managedPolicyARNs: ["ReadOnlyAccess"])])
            },
        ]
        for make in bad { #expect(throws: KeylessError(.usage, "")) { _ = try make() } }
        let loopback = try BootstrapPlan(
            issuerURL: "http://127.0.0.1:8080", clientIDs: ["c"], thumbprints: [BootstrapPlan.placeholderThumbprint],
            roles: role)
        #expect(loopback.providerURL == "https://127.0.0.1:8080")
        #expect(loopback.providerARN(account: account) == "arn:aws:iam::123456789012:oidc-provider/127.0.0.1:8080")
    }

    @Test(
        "--role NAME:POLICY_ARN splits at the first colon, so the ARN's own colons survive; several ARNs are comma-separated"
    )
    func roleParsing() throws {
        #expect(try BootstrapRole.parse("dev") == BootstrapRole(name: "dev"))
        #expect(
            try BootstrapRole.parse("dev:arn:aws:iam::aws:policy/ReadOnlyAccess,arn:aws:iam::123456789012:policy/x")
                .managedPolicyARNs
                == ["arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::123456789012:policy/x"])
    }
}

@Suite("bootstrap apply: the changes that make IAM match a plan")
struct BootstrapChangesTests {
    let plan: BootstrapPlan
    let providerARN: String
    init() throws {
        plan = try keylessPlan()
        providerARN = plan.providerARN(account: account)
    }

    /// IAM holding exactly the plan, trust policies URL-encoded with keys in another order (as IAM and Terraform return them).
    func matching() throws -> BootstrapCurrentState {
        var roles: [String: BootstrapCurrentState.Role] = [:]
        for role in plan.roles {
            let value = try JSONDecoder().decode(
                JSONValue.self, from: Data(plan.trustPolicyJSON(for: role, providerARN: providerARN).utf8))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let sorted = String(decoding: try encoder.encode(value), as: UTF8.self)
            roles[role.name] = .init(
                arn: "arn:aws:iam::\(account):role/\(role.name)",
                trustPolicy: sorted.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!,
                maxSessionSeconds: role.maxSessionSeconds,
                attachedPolicyARNs: role.managedPolicyARNs + ["arn:aws:iam::aws:policy/Extra"])
        }
        return BootstrapCurrentState(
            provider: .init(arn: providerARN, clientIDs: ["keyless-cli", "other"], thumbprints: plan.thumbprints),
            roles: roles)
    }

    @Test("nothing in IAM: create the provider, then each role followed by its policy attachments")
    func fromNothing() throws {
        let changes = BootstrapChanges.compute(
            plan: plan, current: BootstrapCurrentState(provider: nil, roles: [:]), providerARN: providerARN)
        #expect(
            changes == [
                .createProvider(
                    url: "https://id.example.com", clientIDs: ["keyless-cli"],
                    thumbprints: ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]),
                .createRole(name: "dev", maxSessionSeconds: 3600),
                .attachPolicy(role: "dev", policyARN: "arn:aws:iam::aws:policy/ReadOnlyAccess"),
                .createRole(name: "admin", maxSessionSeconds: 7200),
                .attachPolicy(role: "admin", policyARN: "arn:aws:iam::aws:policy/AdministratorAccess"),
            ])
    }

    @Test(
        "IAM already matching (extra client ids and policies left alone, key order and URL encoding ignored) needs no change"
    )
    func noChange() throws {
        let current = try matching()
        #expect(BootstrapChanges.compute(plan: plan, current: current, providerARN: providerARN) == [])
        #expect(current.accountAndPartition?.account == account)
    }

    @Test("a changed sub pattern, session length, missing client id, thumbprint and policy each become one update")
    func updates() throws {
        var current = try matching()
        current.provider = .init(
            arn: providerARN, clientIDs: ["other"], thumbprints: ["1111111111111111111111111111111111111111"])
        current.roles["admin"]!.maxSessionSeconds = 3600
        current.roles["dev"]!.attachedPolicyARNs = []
        var changed = plan
        changed.roles[1].subPatterns = ["alice"]
        let changes = BootstrapChanges.compute(plan: changed, current: current, providerARN: providerARN)
        #expect(changes.count == 5, "\(changes)")
        #expect(changes[0] == .addClientID(providerARN: providerARN, clientID: "keyless-cli"))
        #expect(
            changes[1]
                == .updateThumbprints(
                    providerARN: providerARN,
                    thumbprints: [
                        "1111111111111111111111111111111111111111", "9e99a48a9960b14926bb7f3b02e22da2b0ab7280",
                    ]))
        #expect(changes[2] == .attachPolicy(role: "dev", policyARN: "arn:aws:iam::aws:policy/ReadOnlyAccess"))
        guard case .updateTrustPolicy(let name, _, let new) = changes[3] else {
            Issue.record("expected a trust policy update, got \(changes[3])")
            return
        }
        #expect(name == "admin")
        #expect(new == changed.trustPolicyJSON(for: changed.roles[1], providerARN: providerARN))
        #expect(changes[4] == .updateMaxSession(name: "admin", from: 3600, to: 7200))
        let shown = changes[3].describe(plan: changed, providerARN: providerARN)
        #expect(shown.contains(#"-       "bob""#) || shown.contains(#"- "bob""#), "\(shown)")
        #expect(shown.contains(#"+ "id.example.com:sub" : "alice""#), "\(shown)")
    }
}

@Suite("bootstrap --session-tags: roles whose tokens carry AWS claims")
struct BootstrapSessionTagTests {
    @Test(
        "a role with session tags allows sts:TagSession and sts:SetSourceIdentity beside AssumeRoleWithWebIdentity, in every output; explain then lets a tagged token in"
    )
    func sessionTags() throws {
        var role = BootstrapRole(name: "tagged")
        role.sessionTags = true
        role.sourceIdentity = true
        let plan = try BootstrapPlan(
            issuerURL: "https://id.example.com", clientIDs: ["keyless-cli"],
            thumbprints: ["9E99A48A9960B14926BB7F3B02E22DA2B0AB7280"], roles: [role, BootstrapRole(name: "plain")])
        let arn = "arn:aws:iam::\(account):oidc-provider/id.example.com"
        let tagged = plan.trustPolicyJSON(for: role, providerARN: arn)
        #expect(
            tagged.contains(#""Action":["sts:AssumeRoleWithWebIdentity","sts:TagSession","sts:SetSourceIdentity"]"#),
            "\(tagged)")
        #expect(
            plan.trustPolicyJSON(for: BootstrapRole(name: "plain"), providerARN: arn).contains(
                #""Action":"sts:AssumeRoleWithWebIdentity""#))
        var token = claims(sub: "corp:1", aud: "keyless-cli")
        token["https://aws.amazon.com/tags"] = .object([
            "principal_tags": .object(["Team": .array([.string("ops")])])
        ])
        let context = WebIdentityContext.forToken(claims: token, issuer: "https://id.example.com", account: account)
        #expect(TrustEvaluator.explain(try TrustPolicy.parse(tagged), context: context).allowed)
        #expect(
            !TrustEvaluator.explain(
                try TrustPolicy.parse(plan.trustPolicyJSON(for: BootstrapRole(name: "plain"), providerARN: arn)),
                context: context
            ).allowed)
    }
}

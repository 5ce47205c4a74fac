import Foundation
import KeylessTestSupport
import Testing

/// `keyless bootstrap` end to end: the Terraform it writes applied by the real Terraform against moto and then used by a
/// login through keyless's own provider; its CloudFormation checked by cfn-lint; `bootstrap apply` against moto, idempotent.
@Suite("keyless bootstrap end to end", .serialized)
struct BootstrapTests {
    static let account = "123456789012"
    /// AWS keys for the "admin" who bootstraps (moto accepts any).
    static let admin = ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"]

    /// A customer-managed policy in moto (moto loads no AWS-managed policies by default); its ARN.
    static func createPolicy(_ moto: MotoServer, name: String) async throws -> String {
        let document =
            #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#
        let answer = try await moto.iam([
            ("Action", "CreatePolicy"), ("Version", "2010-05-08"), ("PolicyName", name), ("PolicyDocument", document),
        ])
        #expect(answer.status == 200, "\(answer.text)")
        return "arn:aws:iam::\(account):policy/\(name)"
    }

    /// One element's text in moto's XML answer to an IAM call.
    static func iamElement(_ moto: MotoServer, _ fields: [(String, String)], _ element: String) async throws -> String?
    {
        let answer = try await moto.iam(fields + [("Version", "2010-05-08")])
        guard answer.status == 200, let open = answer.text.range(of: "<\(element)>"),
            let close = answer.text.range(of: "</\(element)>", range: open.upperBound..<answer.text.endIndex)
        else { return nil }
        return String(answer.text[open.upperBound..<close.lowerBound])
    }

    /// The role's trust policy as moto holds it, parsed.
    static func storedTrustPolicy(_ moto: MotoServer, role: String) async throws -> NSDictionary {
        let encoded = try #require(
            try await iamElement(moto, [("Action", "GetRole"), ("RoleName", role)], "AssumeRolePolicyDocument"))
        let text = try #require(encoded.removingPercentEncoding)
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary)
    }

    /// The trust policy `keyless bootstrap json` generates for `role` with the same flags.
    static func generatedTrustPolicy(_ harness: KeylessHarness, _ flags: [String], role: String) throws -> NSDictionary
    {
        let run = try harness.run(["bootstrap", "json", "--account", account] + flags)
        #expect(run.status == 0, "\(run)")
        let document = try credentialJSON(run.stdout)
        let roles = try #require(document["roles"] as? [[String: Any]])
        let entry = try #require(roles.first { $0["name"] as? String == role })
        return try #require(entry["trustPolicy"] as? NSDictionary)
    }

    @Test(
        "Terraform from bootstrap, applied with the real Terraform against moto: the stored trust policy equals the generated one, bootstrap apply then finds nothing to change, and a device login assumes the role through creds-process"
    )
    func terraformAppliedAndUsed() async throws {
        guard Tooling.have("terraform"), FileManager.default.fileExists(atPath: "/opt/tf-plugins") else {
            print(
                "SKIPPED: bootstrap Terraform test: terraform or the AWS provider mirror /opt/tf-plugins is missing on this machine"
            )
            return
        }
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let policy = try await Self.createPolicy(moto, name: "dev-read")
        let harness = try KeylessHarness(moto: moto)
        let flags = [
            "--issuer", "keyless-idp", "--issuer-url", idp.issuer, "--role", "dev:\(policy)", "--sub", "al*",
            "--max-session", "7200",
        ]

        let dir = harness.home + "/tf"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let generate = try harness.run(["bootstrap", "terraform", "--out", dir + "/main.tf"] + flags)
        #expect(generate.status == 0, "\(generate)")
        #expect(
            generate.stderr.contains("0000000000000000000000000000000000000000"),
            "the loopback issuer's placeholder thumbprint is explained: \(generate)")
        try """
        provider "aws" {
          region                      = "us-east-1"
          access_key                  = "testing"
          secret_key                  = "testing"
          skip_credentials_validation = true
          skip_requesting_account_id  = true
          skip_metadata_api_check     = true
          endpoints {
            iam = "\(moto.endpoint)"
            sts = "\(moto.endpoint)"
          }
        }
        """.write(toFile: dir + "/provider.tf", atomically: true, encoding: .utf8)
        let tfEnv = ["TF_IN_AUTOMATION": "1", "TF_CLI_ARGS": "-no-color", "CHECKPOINT_DISABLE": "1"]
        let initRun = try harness.runProgram(
            "terraform", ["-chdir=\(dir)", "init", "-plugin-dir=/opt/tf-plugins", "-input=false"], extra: tfEnv,
            timeout: 300)
        #expect(initRun.status == 0, "\(initRun)")
        let apply = try harness.runProgram(
            "terraform", ["-chdir=\(dir)", "apply", "-auto-approve", "-input=false"], extra: tfEnv, timeout: 300)
        try #require(apply.status == 0, "\(apply)")
        let roleArn = "arn:aws:iam::\(Self.account):role/dev"
        let output = try harness.runProgram(
            "terraform", ["-chdir=\(dir)", "output", "-json", "role_arns"], extra: tfEnv)
        #expect(try credentialJSON(output.stdout)["dev"] as? String == roleArn, "\(output)")

        let stored = try await Self.storedTrustPolicy(moto, role: "dev")
        let generated = try Self.generatedTrustPolicy(harness, flags, role: "dev")
        #expect(stored == generated, "moto holds \(stored), bootstrap json says \(generated)")
        #expect(
            try await Self.iamElement(moto, [("Action", "GetRole"), ("RoleName", "dev")], "MaxSessionDuration")
                == "7200")
        #expect(
            try await Self.iamElement(moto, [("Action", "ListAttachedRolePolicies"), ("RoleName", "dev")], "PolicyArn")
                == policy)

        // bootstrap apply reads what Terraform made and agrees with it.
        let again = try harness.run(["bootstrap", "apply", "--yes"] + flags, extra: Self.admin)
        #expect(again.status == 0, "\(again)")
        #expect(again.stdout == "No changes.\n", "\(again)")

        // A person logs in to keyless idp and assumes the role Terraform created.
        let loggedIn = try await harness.deviceLogin(idp)
        try #require(loggedIn.status == 0, "\(loggedIn)")
        let creds = try harness.run([
            "creds-process", "--issuer-url", idp.issuer, "--client-id", idp.clientID, "--aws-role-arn", roleArn,
            "--no-browser",
        ])
        #expect(creds.status == 0, "\(creds)")
        #expect(try credentialJSON(creds.stdout)["AccessKeyId"] as? String != nil, "\(creds)")

        // explain fetches the created trust policy from IAM and evaluates alice's real ID token against it.
        let token = try harness.run([
            "token", "--issuer-url", idp.issuer, "--client-id", idp.clientID, "--no-browser", "--json",
        ])
        let idToken = try #require(try credentialJSON(token.stdout)["id_token"] as? String, "\(token)")
        let explain = try harness.run(["explain", "--role-arn", roleArn, "--token", idToken], extra: Self.admin)
        #expect(explain.status == 0, "\(explain)")
        #expect(explain.stdout.contains("ALLOWED by statement 1."), "\(explain)")
    }

    @Test("the CloudFormation template and the customer-connects-their-account template both pass cfn-lint")
    func cloudFormationLints() throws {
        let python = Tooling.python()
        guard (try? PartnerProcess.run(python, ["-c", "import cfnlint"], timeout: 60))?.status == 0 else {
            print(
                "SKIPPED: bootstrap cfn-lint test: cfn-lint is not installed for \(python) (scripts/test installs it)")
            return
        }
        let harness = try KeylessHarness(moto: nil)
        let common = [
            "--issuer-url", "https://id.vendor.example", "--client-id", "vendor-app", "--thumbprint",
            "9e99a48a9960b14926bb7f3b02e22da2b0ab7280",
        ]
        let cases: [(String, [String])] = [
            (
                "normal.yaml",
                common + [
                    "--role", "dev:arn:aws:iam::aws:policy/ReadOnlyAccess", "--role", "admin", "--sub", "team-*",
                    "--require-mfa", "--max-session", "7200",
                ]
            ),
            (
                "github.yaml",
                [
                    "--github-repo", "acme/api", "--github-ref", "refs/heads/main", "--role",
                    "deploy:arn:aws:iam::aws:policy/PowerUserAccess",
                ]
            ),
            (
                "customer.yaml",
                common + ["--customer-template", "--role", "VendorAccess:arn:aws:iam::aws:policy/PowerUserAccess"]
            ),
        ]
        for (name, flags) in cases {
            let path = harness.home + "/" + name
            let generate = try harness.run(["bootstrap", "cloudformation", "--out", path] + flags)
            #expect(generate.status == 0, "\(generate)")
            let lint = try PartnerProcess.run(
                python,
                [
                    "-c", "import sys; from cfnlint.runner import main; sys.argv[0] = 'cfn-lint'; sys.exit(main())",
                    path,
                ],
                timeout: 180)
            #expect(
                lint.status == 0,
                "cfn-lint on \(name):\n\(lint.output)\n--- template\n\((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")"
            )
        }
        // cfn-lint can fail: a template with a broken reference is refused.
        let broken = harness.home + "/broken.yaml"
        let text = try String(contentsOfFile: harness.home + "/normal.yaml", encoding: .utf8).replacingOccurrences(
            of: "!Ref OIDCProvider", with: "!Ref NoSuchProvider")
        try text.write(toFile: broken, atomically: true, encoding: .utf8)
        let lint = try PartnerProcess.run(
            python,
            ["-c", "import sys; from cfnlint.runner import main; sys.argv[0] = 'cfn-lint'; sys.exit(main())", broken],
            timeout: 180)
        #expect(lint.status != 0, "\(lint.output)")
    }

    @Test(
        "bootstrap apply --yes against moto creates the provider, role and attachment; a second run says No changes.; a changed sub is shown as an update and applied"
    )
    func applyIsIdempotent() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let policy = try await Self.createPolicy(moto, name: "deploy")
        let harness = try KeylessHarness(moto: moto, extra: Self.admin)
        let base = [
            "--issuer-url", "https://id.example.com", "--client-id", "keyless-cli", "--thumbprint",
            "9e99a48a9960b14926bb7f3b02e22da2b0ab7280",
            "--role", "deploy:\(policy)",
        ]

        let dry = try harness.run(["bootstrap", "apply", "--dry-run", "--sub", "svc-*"] + base)
        #expect(dry.status == 0, "\(dry)")
        #expect(dry.stdout.hasPrefix("Plan for https://id.example.com: 3 changes\n"), "\(dry)")
        #expect(
            try await Self.iamElement(moto, [("Action", "GetRole"), ("RoleName", "deploy")], "Arn") == nil,
            "a dry run changes nothing")

        let unconfirmed = try harness.run(["bootstrap", "apply", "--sub", "svc-*"] + base)
        #expect(unconfirmed.status == 2, "no terminal to ask on and no --yes: refused \(unconfirmed)")
        #expect(unconfirmed.stderr.contains("--yes"), "\(unconfirmed)")
        #expect(try await Self.iamElement(moto, [("Action", "GetRole"), ("RoleName", "deploy")], "Arn") == nil)

        let first = try harness.run(["bootstrap", "apply", "--yes", "--sub", "svc-*"] + base)
        #expect(first.status == 0, "\(first)")
        for line in [
            "+ create OIDC provider https://id.example.com (client ids keyless-cli; thumbprints 9e99a48a9960b14926bb7f3b02e22da2b0ab7280)",
            "+ create role deploy (longest session 3600 s) trusting:", "+ attach \(policy) to role deploy",
            "Applied 3 changes.",
        ] {
            #expect(first.stdout.contains(line + "\n"), "missing \(line):\n\(first)")
        }
        let providerArn = "arn:aws:iam::\(Self.account):oidc-provider/id.example.com"
        #expect(
            try await Self.iamElement(
                moto, [("Action", "GetOpenIDConnectProvider"), ("OpenIDConnectProviderArn", providerArn)],
                "ClientIDList")
                == "<member>keyless-cli</member>")
        #expect(
            try await Self.iamElement(
                moto, [("Action", "ListAttachedRolePolicies"), ("RoleName", "deploy")], "PolicyArn") == policy)
        let stored = try await Self.storedTrustPolicy(moto, role: "deploy")
        #expect(stored == (try Self.generatedTrustPolicy(harness, ["--sub", "svc-*"] + base, role: "deploy")))

        let second = try harness.run(["bootstrap", "apply", "--yes", "--sub", "svc-*"] + base)
        #expect(second.status == 0, "\(second)")
        #expect(second.stdout == "No changes.\n", "\(second)")

        let changed = try harness.run(
            ["bootstrap", "apply", "--yes", "--sub", "svc-deploy", "--max-session", "7200"] + base)
        #expect(changed.status == 0, "\(changed)")
        #expect(changed.stdout.contains("Plan for https://id.example.com: 2 changes\n"), "\(changed)")
        #expect(changed.stdout.contains("~ update trust policy of role deploy:\n"), "\(changed)")
        #expect(changed.stdout.contains(#"- "id.example.com:sub" : "svc-*""#), "\(changed)")
        #expect(changed.stdout.contains(#"+ "id.example.com:sub" : "svc-deploy""#), "\(changed)")
        #expect(
            changed.stdout.contains("~ change longest session of role deploy from 3600 s to 7200 s\n"), "\(changed)")
        let updated = try await Self.storedTrustPolicy(moto, role: "deploy")
        #expect(updated == (try Self.generatedTrustPolicy(harness, ["--sub", "svc-deploy"] + base, role: "deploy")))
        #expect(
            try await Self.iamElement(moto, [("Action", "GetRole"), ("RoleName", "deploy")], "MaxSessionDuration")
                == "7200")

        let third = try harness.run(
            ["bootstrap", "apply", "--yes", "--sub", "svc-deploy", "--max-session", "7200"] + base)
        #expect(third.stdout == "No changes.\n", "\(third)")
    }

    @Test(
        "without --thumbprint, bootstrap takes the thumbprint from the last certificate the issuer's host presents, as openssl fingerprints it"
    )
    func computedThumbprint() async throws {
        guard Tooling.have("openssl") else {
            print("SKIPPED: bootstrap thumbprint test: openssl is missing on this machine")
            return
        }
        let pki = try makeTemporaryDirectory(prefix: "keyless-bootstrap-pki")
        defer { try? FileManager.default.removeItem(atPath: pki) }
        let make = try PartnerProcess.run(
            "/bin/sh",
            [
                "-c",
                """
                cd "$0" && set -e
                openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=Bootstrap Test Root" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
                openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj "/CN=127.0.0.1" 2>/dev/null
                printf 'subjectAltName=IP:127.0.0.1\\n' > leaf.ext
                openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile leaf.ext 2>/dev/null
                openssl x509 -noout -fingerprint -sha1 -in ca.pem
                """, pki,
            ], timeout: 60)
        try #require(make.status == 0, "\(make.output)")
        let expected = (make.output.split(separator: "=").last.map(String.init) ?? "").replacingOccurrences(
            of: ":", with: ""
        )
        .trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let port = try freePort()
        let server = try PartnerProcess(
            executable: Tooling.path(of: "openssl")!,
            arguments: [
                "s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki + "/leaf.pem", "-key", pki + "/leaf.key",
                "-cert_chain", pki + "/ca.pem", "-www", "-quiet",
            ], logPath: pki + "/s_server.log")
        defer { server.stop() }
        var listening = false
        for _ in 0..<100 where !listening {
            listening =
                (try PartnerProcess.run("/bin/bash", ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"], timeout: 5)).status
                == 0
            if !listening { try await Task.sleep(for: .milliseconds(100)) }
        }
        try #require(listening, "openssl s_server did not listen: \(server.logTail())")

        let harness = try KeylessHarness(moto: nil)
        let run = try harness.run(
            ["bootstrap", "json", "--issuer-url", "https://127.0.0.1:\(port)", "--client-id", "c", "--role", "dev"],
            timeout: 60)
        #expect(run.status == 0, "\(run)")
        let provider = try #require(try credentialJSON(run.stdout)["provider"] as? [String: Any], "\(run)")
        #expect(provider["thumbprints"] as? [String] == [expected], "\(run)")
        #expect(run.stderr.contains("thumbprint \(expected) from 127.0.0.1:\(port)"), "\(run)")
    }

    @Test("bootstrap refuses an http issuer off loopback and an unknown preset before contacting anything")
    func badInput() throws {
        let harness = try KeylessHarness(moto: nil)
        let http = try harness.run([
            "bootstrap", "terraform", "--issuer-url", "http://id.example.com", "--client-id", "c", "--thumbprint",
            String(repeating: "a", count: 40),
        ])
        #expect(http.status == 2, "\(http)")
        #expect(http.stderr.contains("IAM only trusts https issuers"), "\(http)")
        let preset = try harness.run([
            "bootstrap", "json", "--issuer", "okta", "--issuer-url", "https://id.example.com",
        ])
        #expect(preset.status != 0, "\(preset)")
        #expect(preset.stderr.contains("keyless-idp"), "\(preset)")
    }
}

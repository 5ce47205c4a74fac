import Foundation
import KeylessTestSupport
import Testing

/// A person's whole path against real partners: glewlwyd as the OpenID Provider, moto as STS,
/// headless Chromium as the browser, and the AWS CLI, boto3 and Terraform as credential consumers.
@Suite("person's credentials end to end", .serialized)
struct EndToEndTests {
    @Test("a browser login through headless Chromium stores tokens, and creds-process then needs no login")
    func browserLogin() async throws {
        guard Tooling.browserLoginAvailable() else {
            Issue.record("Chromium or the Playwright venv is missing: run scripts/test, which installs them")
            return
        }
        let partners = try await Partners.start()
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        let browser = Tooling.browserLoginCommand(user: "alice", password: "alice-password-1")
        let login = try harness.run(
            [
                "login", "--issuer-url", partners.idp.issuer, "--client-id", partners.idp.clientID,
                "--redirect-port", String(partners.idp.redirectPort), "--browser", browser.command,
            ],
            extra: browser.environment)
        #expect(login.status == 0, "\(login)")
        #expect(login.stdout.isEmpty, "login must keep stdout clean")
        #expect(login.stderr.contains("Logged in as alice@example.com"), "\(login)")

        let creds = try harness.run(
            harness.credsProcessArguments(partners.idp, roleArn: partners.roleArn, extra: ["--no-browser"]))
        #expect(creds.status == 0, "\(creds)")
        let json = try credentialJSON(creds.stdout)
        #expect(json["Version"] as? Int == 1)
        #expect((json["AccessKeyId"] as? String)?.hasPrefix("ASIA") == true)
        #expect(json["SessionToken"] is String && json["SecretAccessKey"] is String)
        #expect((json["Expiration"] as? String)?.hasSuffix("Z") == true)
    }

    @Test("a device login approved through glewlwyd's API works, and status shows who without secrets")
    func deviceLogin() async throws {
        let partners = try await Partners.start()
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        let login = try await harness.deviceLogin(partners.idp)
        #expect(login.status == 0, "\(login)")
        let status = try harness.run(["status"])
        #expect(status.status == 0)
        #expect(status.stdout.contains("alice@example.com"), "\(status)")
        #expect(status.stdout.contains("refresh token: yes"), "\(status)")
    }

    @Test("the AWS CLI, boto3 and Terraform see the assumed role through credential_process")
    func realClients() async throws {
        let partners = try await Partners.start()
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        #expect(try await harness.deviceLogin(partners.idp).status == 0)
        try harness.writeProfile("dev", partners.idp, roleArn: partners.roleArn, extra: " --no-browser")
        let expected = "arn:aws:sts::123456789012:assumed-role/dev/alice@example.com"

        let cli = try harness.runProgram(
            "aws", ["sts", "get-caller-identity", "--profile", "dev", "--query", "Arn", "--output", "text"])
        #expect(cli.status == 0, "\(cli)")
        #expect(cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == expected)

        let boto = try harness.runProgram(
            Tooling.python(),
            [
                "-c",
                """
                import boto3, os
                s = boto3.Session(profile_name="dev")
                print(s.client("sts", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).get_caller_identity()["Arn"])
                """,
            ])
        #expect(boto.status == 0, "\(boto)")
        #expect(boto.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == expected)

        guard Tooling.have("terraform"), FileManager.default.fileExists(atPath: "/opt/tf-plugins") else {
            print(
                "SKIPPED: Terraform part of this test: terraform or the provider mirror /opt/tf-plugins is missing on this machine"
            )
            return
        }
        let dir = harness.home + "/tf"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try """
        terraform {
          required_providers {
            aws = { source = "hashicorp/aws", version = "5.100.0" }
          }
        }
        provider "aws" {
          region                      = "us-east-1"
          profile                     = "dev"
          skip_credentials_validation = true
          skip_requesting_account_id  = true
          skip_metadata_api_check     = true
          endpoints { sts = "\(partners.moto.endpoint)" }
        }
        data "aws_caller_identity" "me" {}
        output "arn" { value = data.aws_caller_identity.me.arn }
        """.write(toFile: dir + "/main.tf", atomically: true, encoding: .utf8)
        let tfEnv = ["TF_IN_AUTOMATION": "1", "TF_CLI_ARGS": "-no-color", "CHECKPOINT_DISABLE": "1"]
        let initRun = try harness.runProgram(
            "terraform", ["-chdir=\(dir)", "init", "-plugin-dir=/opt/tf-plugins", "-input=false"], extra: tfEnv,
            timeout: 300)
        #expect(initRun.status == 0, "\(initRun)")
        let apply = try harness.runProgram(
            "terraform", ["-chdir=\(dir)", "apply", "-auto-approve", "-input=false"], extra: tfEnv, timeout: 300)
        #expect(apply.status == 0, "\(apply)")
        let output = try harness.runProgram("terraform", ["-chdir=\(dir)", "output", "-raw", "arn"], extra: tfEnv)
        #expect(output.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == expected, "\(output)")
    }

    @Test("an ID token close to expiry is refreshed with the refresh token, without a login")
    func refreshWithoutLogin() async throws {
        // glewlwyd's ID tokens live as long as its access tokens: 100 s is inside keyless's 120 s refresh margin.
        let partners = try await Partners.start(accessTTL: 100)
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        #expect(try await harness.deviceLogin(partners.idp).status == 0)
        // --no-browser with no terminal: a login would fail, so success proves the refresh path.
        let creds = try harness.run(
            harness.credsProcessArguments(partners.idp, roleArn: partners.roleArn, extra: ["--no-browser", "-v"]))
        #expect(creds.status == 0, "\(creds)")
        #expect(creds.stderr.contains("refreshed tokens"), "\(creds)")
        #expect(!creds.stderr.contains("logging in"), "\(creds)")
    }

    @Test("an expired refresh token leads to a fresh browser login")
    func expiredRefreshTokenRelogin() async throws {
        guard Tooling.browserLoginAvailable() else {
            Issue.record("Chromium or the Playwright venv is missing: run scripts/test, which installs them")
            return
        }
        let partners = try await Partners.start(accessTTL: 100, refreshTTL: 1)
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        #expect(try await harness.deviceLogin(partners.idp).status == 0)
        try await Task.sleep(nanoseconds: 2_500_000_000)  // let the 1 s refresh token expire at the provider
        let browser = Tooling.browserLoginCommand(user: "alice", password: "alice-password-1")
        let creds = try harness.run(
            harness.credsProcessArguments(
                partners.idp, roleArn: partners.roleArn, extra: ["--browser", browser.command]),
            extra: browser.environment)
        #expect(creds.status == 0, "\(creds)")
        #expect(creds.stderr.contains("A new login is needed"), "\(creds)")
        #expect(creds.stderr.contains("logging in to"), "\(creds)")
        #expect(try credentialJSON(creds.stdout)["AccessKeyId"] is String)
    }

    @Test("64 concurrent creds-process with an expired cache: all succeed after exactly one refresh and one STS call")
    func concurrentCredsProcess() async throws {
        let partners = try await Partners.start(accessTTL: 100)
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        #expect(try await harness.deviceLogin(partners.idp).status == 0)
        let stsBefore = try partners.moto.stsPostCount()
        let arguments = harness.credsProcessArguments(
            partners.idp, roleArn: partners.roleArn, extra: ["--no-browser", "-v"])
        let started = try (0..<64).map { _ in try harness.start(nil, arguments) }
        let runs = try started.map { try $0.wait(timeout: 180) }
        for run in runs { #expect(run.status == 0, "\(run)") }
        let keys = Set(try runs.map { try credentialJSON($0.stdout)["AccessKeyId"] as? String ?? "" })
        #expect(keys.count == 1, "every process must print the same credentials")
        #expect(runs.filter { $0.stderr.contains("refreshed tokens") }.count == 1)
        #expect(try partners.moto.stsPostCount() - stsBefore == 1)
    }

    @Test(
        "exec runs a command with credentials and expiry in its environment, refuses to nest, and env prints every format"
    )
    func execAndEnv() async throws {
        let partners = try await Partners.start()
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        #expect(try await harness.deviceLogin(partners.idp).status == 0)
        try harness.writeProfile("dev", partners.idp, roleArn: partners.roleArn, extra: " --no-browser")
        let exec = try harness.run(
            [
                "exec", "--profile", "dev", "--", "sh", "-c",
                "echo $AWS_ACCESS_KEY_ID $AWS_CREDENTIAL_EXPIRATION $AWS_REGION ${AWS_PROFILE:-none}",
            ],
            extra: ["AWS_PROFILE": "dev"])
        #expect(exec.status == 0, "\(exec)")
        let words = exec.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(
            words.count == 4 && words[0].hasPrefix("ASIA") && words[1].hasSuffix("Z") && words[2] == "us-east-1"
                && words[3] == "none", "\(exec)")

        let nested = try harness.run([
            "exec", "--profile", "dev", "--", harness.binary, "exec", "--profile", "dev", "--", "true",
        ])
        #expect(nested.status == 7, "\(nested)")
        #expect(nested.stderr.contains("already runs under keyless exec"))

        let json = try harness.run(["env", "--profile", "dev", "--format", "json"])
        let object = try credentialJSON(json.stdout)
        #expect(
            (object["AWS_ACCESS_KEY_ID"] as? String)?.hasPrefix("ASIA") == true && object["AWS_SESSION_TOKEN"] is String
        )
        let export = try harness.run(["env", "--profile", "dev", "--format", "export"])
        let sourced = try harness.runProgram(
            "/bin/sh", ["-c", export.stdout + "\naws sts get-caller-identity --query Arn --output text"])
        #expect(sourced.stdout.contains("assumed-role/dev/alice@example.com"), "\(sourced)")
        for format in ["env", "fish", "powershell", "dotenv"] {
            let out = try harness.run(["env", "--profile", "dev", "--format", format])
            #expect(out.status == 0 && out.stdout.contains("AWS_SECRET_ACCESS_KEY"), "\(format): \(out)")
        }
    }
}

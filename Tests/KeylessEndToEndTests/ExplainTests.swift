import Foundation
import KeylessCore
import KeylessTestSupport
import Testing

/// An unsigned JWT with `claims` (explain reads claims without verifying; the signature part is a placeholder).
private func token(_ claims: String) -> String {
    Base64URL.encode(Array(#"{"alg":"RS256","kid":"k1"}"#.utf8)) + "." + Base64URL.encode(Array(claims.utf8))
        + ".c2lnbmF0dXJl"
}

@Suite("keyless explain against a role in moto", .serialized)
struct ExplainTests {
    static let trust =
        #"{"Version":"2012-10-17","Statement":[{"Sid":"CI","Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/token.example.com"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"token.example.com:aud":"sts.amazonaws.com"},"StringLike":{"token.example.com:sub":"repo:acme/app:*"}}}]}"#

    @Test("the trust policy is fetched from IAM with SigV4 and the failing condition is named with both values; exit 4")
    func fetchedFromIAM() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let created = try await moto.iam([
            ("Action", "CreateRole"), ("Version", "2010-05-08"), ("RoleName", "ci-deploy"),
            ("AssumeRolePolicyDocument", Self.trust),
        ])
        #expect(created.status == 200)
        let harness = try KeylessHarness(
            moto: moto, extra: ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"])
        let wrongRepo = token(
            #"{"iss":"https://token.example.com","sub":"repo:acme/other:ref:refs/heads/main","aud":"sts.amazonaws.com","exp":4102444800}"#
        )
        let denied = try harness.run([
            "explain", "--role-arn", "arn:aws:iam::123456789012:role/ci-deploy", "--token", wrongRepo,
        ])
        #expect(denied.status == 4, "\(denied)")
        #expect(
            denied.stdout.contains("DENIED: no statement allows sts:AssumeRoleWithWebIdentity for this token."),
            "\(denied)")
        #expect(
            denied.stdout.contains(
                #"- StringLike token.example.com:sub: the token has "repo:acme/other:ref:refs/heads/main"; the policy wants "repo:acme/app:*""#
            ), "\(denied)")

        let tokenFile = harness.home + "/token"
        try token(
            #"{"iss":"https://token.example.com","sub":"repo:acme/app:ref:refs/heads/main","aud":"sts.amazonaws.com","exp":4102444800}"#
        )
        .write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let allowed = try harness.run([
            "explain", "--role-arn", "arn:aws:iam::123456789012:role/ci-deploy", "--token-file", tokenFile,
        ])
        #expect(allowed.status == 0, "\(allowed)")
        #expect(allowed.stdout.contains("ALLOWED by statement 1 (Sid CI)."), "\(allowed)")
        // The token from standard input, so it never appears in the process list.
        let piped = try harness.runProgram(
            "/bin/sh",
            [
                "-c", "exec \"$0\" explain --role-arn arn:aws:iam::123456789012:role/ci-deploy --token-file - < \"$1\"",
                harness.binary, tokenFile,
            ])
        #expect(piped.status == 0 && piped.stdout.contains("ALLOWED by statement 1 (Sid CI)."), "\(piped)")
        let empty = try harness.runProgram(
            "/bin/sh",
            [
                "-c",
                "exec \"$0\" explain --role-arn arn:aws:iam::123456789012:role/ci-deploy --token-file - < /dev/null",
                harness.binary,
            ])
        #expect(empty.status != 0 && empty.stderr.contains("No token arrived on standard input."), "\(empty)")
    }

    @Test("--policy-file needs no AWS access; an unknown role in IAM is a clear error")
    func policyFileAndUnknownRole() async throws {
        let harness = try KeylessHarness(moto: nil)
        let policyPath = harness.home + "/trust.json"
        try Self.trust.write(toFile: policyPath, atomically: true, encoding: .utf8)
        let expired = token(
            #"{"iss":"https://token.example.com","sub":"repo:acme/app:pull_request","aud":"keyless-cli","exp":1000}"#)
        let run = try harness.run([
            "explain", "--role-arn", "arn:aws:iam::123456789012:role/ci-deploy", "--token", expired, "--policy-file",
            policyPath,
        ])
        #expect(run.status == 4, "\(run)")
        #expect(run.stdout.contains("the token has expired"), "\(run)")
        #expect(
            run.stdout.contains(
                #"StringEquals token.example.com:aud: the token has "keyless-cli"; the policy wants "sts.amazonaws.com""#
            ), "\(run)")
        #expect(!run.stdout.contains("Principal"), "the principal matches; only the audience fails: \(run)")

        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let withAWS = try KeylessHarness(
            moto: moto, extra: ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"])
        let missing = try withAWS.run([
            "explain", "--role-arn", "arn:aws:iam::123456789012:role/nope", "--token", expired,
        ])
        #expect(missing.status == 2, "\(missing)")
        #expect(missing.stderr.contains("no such entity"), "\(missing)")
    }
}

import Foundation
import KeylessCore
import KeylessPolicy
import KeylessTestSupport
import Testing

/// policy.yaml as an administrator (or an attacker with write access to a reloaded file) might leave it, mutated.
@Suite("fuzz: policy.yaml")
struct PolicyFuzzTests {
    static let policy = """
        defaults:
          region: eu-west-1
          max_session: 2h
        accounts:
          - id: "123456789012"
            alias: prod
        roles:
          - arn: arn:aws:iam::123456789012:role/admin
            description: "admins: *everything*"
            mfa_required: true
          - arn: arn:aws:iam::123456789012:role/read
        grants:
          - groups: [admins, "Kube-admins"]
            roles: [prod/admin]
          - claims: {email: "*@corp.example"}
            roles: ["*"]
            issuer: https://idp.example.com
        """

    @Test("a mutated policy either parses or is refused with a KeylessError naming the file; it never crashes or hangs")
    func policies() {
        Fuzzer.run(
            "policy.yaml", seeds: [Self.policy],
            tokens: ["&a ", "*a", "<<: ", "!!map", "- [", "{", ": ", "\n  - ", "\t"]
        ) { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            let started = Date()
            do {
                _ = try AccessPolicy.parse(text, file: "policy.yaml")
            } catch let error as KeylessError {
                #expect(error.reason.hasPrefix("policy.yaml"), "\(error.reason)")
            } catch {
                Issue.record("not a KeylessError: \(error)")
            }
            // A hang guard, not a speed check: a parse of a few hundred bytes that takes seconds is the finding-13 bug.
            #expect(Date().timeIntervalSince(started) < 5, "slow case: \(text.debugDescription.prefix(300))")
        }
    }
}

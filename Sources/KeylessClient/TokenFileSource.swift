import Foundation
import KeylessCore
import Logging

/// A token file, read afresh each time (Kubernetes and CI runners rotate it in place).
public struct TokenFileSource: WorkloadTokenSource {
    /// The file.
    public let path: String
    public init(path: String) { self.path = path }

    public func token(logger: Logger) async throws -> String {
        guard let bytes = try Files.read(path) else {
            throw KeylessError(
                .tokenInvalid, "The web identity token file \(path) does not exist.",
                hint:
                    "Check --web-identity-token-file; whatever provides it (kubelet, the CI runner) must have written it."
            )
        }
        let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else {
            throw KeylessError(
                .tokenInvalid, "The web identity token file \(path) is empty.",
                hint: "Check that its provider has written a token.")
        }
        logger.debug("read workload token", metadata: ["workload.file": "\(path)"])
        return token
    }
}

import ArgumentParser
import Foundation
import KeylessClient
import KeylessCore
import KeylessOIDC
import KeylessTLS

extension Keyless {
    /// `keyless thumbprint`: the SHA-1 thumbprint IAM wants for an OIDC provider, without the openssl dance.
    struct Thumbprint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Print the thumbprint IAM expects for an OIDC provider: SHA-1 of the last certificate the JWKS host presents.",
            discussion: """
                The URL is the issuer: its discovery document names jwks_uri, whose host is the one IAM checks. When discovery \
                fails (or with --no-discovery) the URL's own host is used. --quiet prints only the thumbprint.
                """)

        @Argument(help: "The issuer URL (or any https URL).")
        var url: String

        @Flag(
            name: .customLong("no-discovery"), help: "Use the URL's host as it is; do not read the discovery document.")
        var noDiscovery = false

        @Flag(name: .customLong("quiet"), help: "Print only the thumbprint.")
        var quiet = false

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live()
                guard let parsed = URL(string: url.contains("://") ? url : "https://" + url), parsed.scheme == "https",
                    let host = parsed.host
                else {
                    throw KeylessError(
                        .usage, "'\(url)' is not an https URL.",
                        hint: "Pass the issuer, e.g. https://token.actions.githubusercontent.com (IAM requires https).")
                }
                var target = (host: host, port: parsed.port ?? 443, why: "the URL's host")
                if !noDiscovery {
                    do {
                        let metadata = try await Discovery.fetch(
                            issuer: parsed.absoluteString, http: context.http, logger: context.logger)
                        if let jwks = URL(string: metadata.jwksURI), let jwksHost = jwks.host {
                            target = (jwksHost, jwks.port ?? 443, "the host of jwks_uri \(metadata.jwksURI)")
                        }
                    } catch let error as KeylessError {
                        if !quiet {
                            context.terminal.say("note: no discovery document (\(error.reason)); using the URL's host.")
                        }
                    }
                }
                let report = try await KeylessTLS.Thumbprint.fetch(host: target.host, port: target.port)
                if quiet {
                    print(report.thumbprint.sha1)
                    return
                }
                print("Host: \(report.host):\(report.port) (\(target.why))")
                print("Chain presented (leaf first):")
                for (index, certificate) in report.chain.enumerated() {
                    let marker = index == report.chain.count - 1 ? "   ← the thumbprint IAM uses" : ""
                    print(
                        "  \(index + 1). \(certificate.subject)\n     issued by \(certificate.issuer)\n     sha1 \(certificate.sha1)\(marker)"
                    )
                }
                print("Thumbprint: \(report.thumbprint.sha1)")
            }
        }
    }
}

import Crypto
import Foundation
import KeylessCore
import NIOCore
import NIOPosix
import NIOSSL
import X509

/// One certificate a server presented.
public struct PresentedCertificate: Sendable, Equatable {
    /// Its subject (RFC 4514 text).
    public var subject: String
    /// Its issuer.
    public var issuer: String
    /// SHA-1 of its DER encoding, 40 lower-case hex digits (IAM's thumbprint form).
    public var sha1: String
    /// The DER encoding.
    public var der: [UInt8]
}

/// The thumbprint IAM wants for an OIDC provider: the SHA-1 of the last certificate in the chain the server presents
/// (the top intermediate, or the root when the server sends it), as `openssl s_client -showcerts` shows it.
public struct ThumbprintReport: Sendable, Equatable {
    /// The host and port that were contacted.
    public var host: String
    public var port: Int
    /// The chain as presented, leaf first.
    public var chain: [PresentedCertificate]
    /// The certificate IAM uses.
    public var thumbprint: PresentedCertificate { chain.last! }
}

/// Connects with TLS and records the chain the server presents; the handshake is then abandoned, so nothing is trusted
/// or sent.
public enum Thumbprint {
    /// The presented chain of `host:port` (SNI `host`), within `timeout` seconds.
    public static func fetch(host: String, port: Int, timeout: TimeInterval = 10) async throws -> ThumbprintReport {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        let context = try NIOSSLContext(configuration: configuration)
        // One event loop for the connection, the promise and the timer: promises are completed on their own loop.
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let promise = loop.makePromise(of: [NIOSSLCertificate].self)
        let serverName = host.first?.isNumber == true || host.contains(":") ? nil : host
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(Int64(timeout * 1000)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(context: context, serverHostname: serverName) {
                        certificates, verification in
                        promise.succeed(certificates)
                        // Nothing is trusted: the chain was all we wanted.
                        verification.succeed(NIOSSLVerificationResult.failed)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            loop.execute { promise.fail(error) }
            throw KeylessError(
                .idpUnreachable, "Cannot connect to \(host):\(port): \(error).",
                hint: "Check the URL and that the host serves HTTPS.")
        }
        let timer = loop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) {
            promise.fail(
                KeylessError(
                    .idpUnreachable, "\(host):\(port) did not complete a TLS handshake within \(Int(timeout)) s.",
                    hint: "Check that it serves HTTPS on that port."))
        }
        channel.closeFuture.whenComplete { _ in
            promise.fail(
                KeylessError(
                    .idpError, "\(host):\(port) closed the connection before presenting a certificate.",
                    hint: "Check that it serves HTTPS on that port."))
        }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        let certificates = try await promise.futureResult.get()
        guard !certificates.isEmpty else {
            throw KeylessError(
                .idpError, "\(host):\(port) presented no certificate.", hint: "Check the server's TLS configuration.")
        }
        return ThumbprintReport(host: host, port: port, chain: try certificates.map(describe))
    }

    static func describe(_ certificate: NIOSSLCertificate) throws -> PresentedCertificate {
        let der = try certificate.toDERBytes()
        let digest = Insecure.SHA1.hash(data: der).map { byte in
            String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }.joined()
        let parsed = try? Certificate(derEncoded: der)
        return PresentedCertificate(
            subject: parsed.map { String(describing: $0.subject) } ?? "?",
            issuer: parsed.map { String(describing: $0.issuer) } ?? "?",
            sha1: digest, der: der)
    }
}

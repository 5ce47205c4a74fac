import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle

/// The application both servers run: HTTP/1 with an idle timeout (silent and half-sent connections are closed), at most
/// `ConnectionLimit.prepare(requested: maxConnections)` connections at once, `router` behind them, and `services`
/// running beside it; `onRunning` hears the bound address.
public func keylessApplication<Context: RequestContext>(
    router: Router<Context>, host: String, port: Int, idleTimeout: Double, maxConnections: Int?,
    services: [any Service], logger: Logger, onRunning: @escaping @Sendable (SocketAddress?) async -> Void
) -> some ApplicationProtocol where Context.Source == ApplicationRequestContextSource {
    Application(
        router: router,
        server: .http1(configuration: .init(idleTimeout: .milliseconds(Int64(idleTimeout * 1000)))),
        configuration: .init(
            address: .hostname(host, port: port), serverName: nil,
            availableConnectionsDelegate: MaximumAvailableConnections(
                ConnectionLimit.prepare(requested: maxConnections))),
        services: services,
        onServerRunning: { channel in await onRunning(channel.localAddress) },
        logger: logger)
}

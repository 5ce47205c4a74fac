import Foundation

/// The console federation stub (scripts/partners/federation_stub.py) as a test partner.
public final class FederationStub: Sendable {
    /// `http://127.0.0.1:PORT/federation`.
    public let endpoint: String
    /// `http://127.0.0.1:PORT`.
    public let baseURL: String
    public let process: PartnerProcess

    /// Starts the stub; with `stsEndpoint` it checks credentials with GetCallerIdentity there.
    public static func start(stsEndpoint: String?) async throws -> FederationStub {
        try await startOnFreePort { port in
            let directory = try makeTemporaryDirectory(prefix: "keyless-federation")
            var arguments = [repositoryRoot() + "/scripts/partners/federation_stub.py", "--port", String(port)]
            if let stsEndpoint { arguments += ["--sts-endpoint", stsEndpoint] }
            let process = try PartnerProcess(
                executable: Tooling.python(), arguments: arguments, logPath: directory + "/federation.log")
            let stub = FederationStub(port: port, process: process, directory: directory)
            if try await process.waitUntilHealthy(stub.baseURL + "/stats", timeout: 60) { return .started(stub) }
            let log = process.logTail()
            stub.stop()
            return .failed(
                "the federation stub did not start:\n\(log)", portTaken: log.contains("Address already in use"))
        }
    }

    /// The temporary directory holding its log, removed by `stop()`.
    let directory: String

    init(port: Int, process: PartnerProcess, directory: String) {
        baseURL = "http://127.0.0.1:\(port)"
        endpoint = baseURL + "/federation"
        self.process = process
        self.directory = directory
    }

    /// The stub's counters: getSigninToken, login, refused, last_destination, last_issuer, last_arn.
    public func stats() async throws -> [String: Any] {
        let answer = try await PartnerHTTP.send("GET", baseURL + "/stats", timeout: 5)
        return (try JSONSerialization.jsonObject(with: answer.body) as? [String: Any]) ?? [:]
    }

    /// Stops the stub by its PID and removes its directory.
    public func stop() {
        process.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// `keyless-cli server` started as a test partner: its own directory with server.yaml, policy.yaml and the audit log,
/// a port on 127.0.0.1, and AWS credentials given through the environment; stopped by its PID.
public final class AccessServer: KeylessServerProcess {
    /// `http://127.0.0.1:PORT`.
    public let baseURL: String
    public let port: Int
    /// The directory holding server.yaml, policy.yaml and audit.log.
    public let directory: String
    /// The policy file (rewrite it to test reloads).
    public var policyPath: String { directory + "/policy.yaml" }
    /// The audit log.
    public var auditLogPath: String { directory + "/audit.log" }
    public let process: PartnerProcess

    /// Writes server.yaml (`serverYAML` with `PORT` replaced by the chosen port) and policy.yaml, then starts the server
    /// with `environment` (AWS credentials, endpoints) and waits until /healthz answers. With `port` (chosen beforehand,
    /// e.g. because another partner's configuration names it) the server gets that port and no other.
    public static func start(
        serverYAML: String, policyYAML: String, environment: [String: String], port fixedPort: Int? = nil
    ) async throws -> AccessServer {
        let directory = try makeTemporaryDirectory(prefix: "keyless-server")
        try policyYAML.write(toFile: directory + "/policy.yaml", atomically: true, encoding: .utf8)
        return try await startOnFreePort(first: fixedPort, otherPorts: fixedPort == nil) { port in
            try serverYAML.replacingOccurrences(of: "PORT", with: String(port)).write(
                toFile: directory + "/server.yaml", atomically: true, encoding: .utf8)
            var env = environment
            env["HOME"] = env["HOME"] ?? directory
            let process = try PartnerProcess(
                executable: try EmbeddedIdP.keylessCLI(),
                arguments: ["server", "--config", directory + "/server.yaml"],
                environment: env, logPath: directory + "/server-\(port).log")
            let server = AccessServer(port: port, directory: directory, process: process)
            if try await server.waitUntilHealthy() { return .started(server) }
            let log = process.logTail(30)
            process.stop()
            return .failed("keyless server did not become healthy:\n\(log)", portTaken: log.contains("in use"))
        }
    }

    init(port: Int, directory: String, process: PartnerProcess) {
        self.port = port
        self.baseURL = "http://127.0.0.1:\(port)"
        self.directory = directory
        self.process = process
    }

    func waitUntilHealthy(timeout: TimeInterval = 90) async throws -> Bool {
        try await process.waitUntilHealthy(baseURL + "/healthz", timeout: timeout)
    }

    /// A request to the server, with an optional bearer token and JSON body.
    public func send(
        _ method: String, _ path: String, bearer: String? = nil, json: String? = nil, headers: [String: String] = [:]
    ) async throws -> PartnerHTTPResponse {
        var headers = headers
        if let bearer { headers["Authorization"] = "Bearer " + bearer }
        if json != nil { headers["Content-Type"] = "application/json" }
        return try await PartnerHTTP.send(method, baseURL + path, headers: headers, body: json.map { Data($0.utf8) })
    }

    /// The audit log's records.
    public func auditRecords() throws -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: auditLogPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }
}

import Foundation

/// A private moto server (`python3 -m moto.server`) on a free loopback port: fake IAM and STS for tests.
public final class MotoServer: Sendable {
    /// The base URL, "http://127.0.0.1:PORT".
    public let endpoint: String
    public let port: Int
    /// The server's log (werkzeug request lines such as `"POST / HTTP/1.1" 200 -`).
    public let logPath: String
    /// The server process.
    public let process: PartnerProcess
    /// This server's own request recording (`startRecording`): moto's default is `moto_recording` in the working
    /// directory, which every moto of a parallel test run would share, each test reading the others' requests.
    let recordingPath: String

    private init(port: Int, process: PartnerProcess, recordingPath: String) {
        self.port = port
        self.endpoint = "http://127.0.0.1:\(port)"
        self.logPath = process.logPath
        self.process = process
        self.recordingPath = recordingPath
    }

    /// Starts moto on a free port and waits (up to 90 s: a loaded 2-core machine stretches its first answer) until `GET /moto-api/` answers.
    public static func start() async throws -> MotoServer {
        let python = Tooling.python()
        do {
            return try await startOnFreePort { port in
                let recording = NSTemporaryDirectory() + "/keyless-moto-recording-\(port)-\(UUID().uuidString)"
                let process = try PartnerProcess(
                    executable: python, arguments: ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)],
                    environment: [
                        "PYTHONUNBUFFERED": "1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "MOTO_RECORDER_FILEPATH": recording,
                    ])
                let server = MotoServer(port: port, process: process, recordingPath: recording)
                if try await process.waitUntilHealthy("\(server.endpoint)/moto-api/", timeout: 90) {
                    return .started(server)
                }
                let why =
                    process.isRunning
                    ? "moto did not answer on \(server.endpoint) within 90 s"
                    : "moto exited with status \(process.exitStatus ?? -1)"
                // Read the log before the server goes: its deinit deletes the log.
                let failure = PartnerStart<MotoServer>.failed(
                    why + "; log \(process.logPath):\n\(process.logTail())",
                    portTaken: process.log().contains("Address already in use"))
                server.stop()
                return failure
            }
        } catch let error as TestSupportError {
            throw TestSupportError(
                "\(error.description)\n(install with: python3 -m pip install 'moto[server]', or run scripts/test)")
        }
    }

    /// Forgets every resource (roles, providers, ...) via `POST /moto-api/reset`.
    public func reset() async throws {
        let answer = try await PartnerHTTP.send("POST", "\(endpoint)/moto-api/reset")
        guard answer.status == 200 else {
            throw TestSupportError("moto reset answered HTTP \(answer.status): \(answer.text)")
        }
    }

    /// How many `POST /` requests moto has logged with `status` (default 200; nil counts every status) — the STS query API calls.
    /// IAM calls made through `createRole` go to `/?iam` and are not counted.
    public func stsPostCount(status: Int? = 200) throws -> Int {
        guard let log = try? String(contentsOfFile: logPath, encoding: .utf8) else {
            throw TestSupportError("cannot read moto log \(logPath)")
        }
        let needle = status.map { "\"POST / HTTP/1.1\" \($0) " } ?? "\"POST / HTTP/1.1\" "
        return log.split(separator: "\n").filter { $0.contains(needle) }.count
    }

    /// Creates an IAM role that trusts any web identity and returns its ARN (IAM query API, fake SigV4 credential scope).
    public func createRole(name: String) async throws -> String {
        let trust =
            #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"*"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#
        let answer = try await iam([
            ("Action", "CreateRole"), ("Version", "2010-05-08"), ("RoleName", name),
            ("AssumeRolePolicyDocument", trust),
        ])
        guard answer.status == 200, let arn = Self.firstElement("Arn", in: answer.text) else {
            throw TestSupportError("moto CreateRole \(name) answered HTTP \(answer.status): \(answer.text)")
        }
        return arn
    }

    /// Starts moto's request recorder (`POST /moto-api/recorder/start-recording`): every request from now on is kept.
    public func startRecording() async throws {
        let answer = try await PartnerHTTP.send("POST", "\(endpoint)/moto-api/recorder/start-recording")
        guard answer.status == 200 else {
            throw TestSupportError("moto start-recording answered HTTP \(answer.status)")
        }
    }

    /// The form fields of every recorded request with a form body (`GET /moto-api/recorder/download-recording`: one
    /// JSON object per line, the body base64 when `body_encoded`).
    public func recordedForms() async throws -> [[String: String]] {
        let answer = try await PartnerHTTP.send("GET", "\(endpoint)/moto-api/recorder/download-recording")
        guard answer.status == 200 else {
            throw TestSupportError("moto download-recording answered HTTP \(answer.status)")
        }
        var forms: [[String: String]] = []
        for line in answer.text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let raw = object["body"] as? String
            else { continue }
            let body =
                (object["body_encoded"] as? Bool == true)
                ? Data(base64Encoded: raw).map { String(decoding: $0, as: UTF8.self) } ?? "" : raw
            var form: [String: String] = [:]
            for pair in body.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1).map {
                    String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
                }
                if parts.count == 2 { form[parts[0]] = parts[1] }
            }
            forms.append(form)
        }
        return forms
    }

    /// Sends an IAM query API call (form fields, Action and Version included) and returns moto's answer.
    /// moto routes an unsigned form to S3; the `Authorization` header's credential scope (`.../iam/aws4_request`) routes it to IAM.
    public func iam(_ fields: [(String, String)]) async throws -> PartnerHTTPResponse {
        try await PartnerHTTP.send(
            "POST", "\(endpoint)/?iam",
            headers: [
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                "Authorization":
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            ], body: PartnerHTTP.form(fields))
    }

    /// Stops the server (SIGTERM, then SIGKILL after 3 s). Idempotent.
    public func stop() { process.stop() }

    /// Stops moto; deletes its log unless KEYLESS_KEEP_PARTNER_FILES is set.
    deinit {
        process.stop()
        if !keepPartnerFiles { try? FileManager.default.removeItem(atPath: logPath) }
        try? FileManager.default.removeItem(atPath: recordingPath)
    }

    /// The text of the first `<name>` element in `xml`.
    static func firstElement(_ name: String, in xml: String) -> String? {
        guard let open = xml.range(of: "<\(name)>"),
            let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex)
        else { return nil }
        return String(xml[open.upperBound..<close.lowerBound])
    }
}

import Foundation
import Hummingbird
import HummingbirdTesting
import KeylessHTTP
import KeylessAccessServer
import KeylessTestSupport
import Testing

/// Console sign-in links through the federation stub, which checks the credentials against moto.
@Suite("Access server: console links")
struct ConsoleTests {
    static let alice = TestUser("alice", email: "alice@example.com", groups: ["platform-admins"], amr: ["pwd", "otp"])

    @Test(
        "POST /api/v1/console gives a sign-in URL that logs in once as the assumed role at the requested destination, and a second use is refused"
    )
    func loginOnce() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        let stub = try await FederationStub.start(stsEndpoint: moto.endpoint)
        defer { stub.stop() }
        let fixture = try ServerFixture.make(stsEndpoint: moto.endpoint, federationEndpoint: stub.endpoint)
        defer { fixture.remove() }
        let destination = "https://eu-west-1.console.aws.amazon.com/s3/home"
        let url: String = try await fixture.application().test(.router) { client in
            let response = try await client.post(
                "/api/v1/console", token: try Self.alice.token(),
                json: #"{"role_arn":"prod/readonly","destination":"\#(destination)"}"#)
            #expect(response.status == .ok, "\(text(response))")
            return try #require(try json(response)["url"] as? String)
        }
        #expect(url.hasPrefix(stub.endpoint + "?Action=login&"), "\(url)")
        let query = FormEncoding.decode(String(url.split(separator: "?", maxSplits: 1)[1]))
        #expect(query["Destination"] == destination)
        #expect(query["Issuer"] == "keyless-tests")
        #expect(query["SigninToken"]?.isEmpty == false)

        let http = AsyncHTTPTransport()
        let first = try await http.send(method: "GET", url: url, headers: [:], body: nil)
        #expect(first.status == 200)
        #expect(String(decoding: first.body, as: UTF8.self).contains(":assumed-role/readonly/alice@example.com"))
        let second = try await http.send(method: "GET", url: url, headers: [:], body: nil)
        #expect(second.status == 403)
        let stats = try await stub.stats()
        #expect(stats["login"] as? Int == 1)
        #expect(stats["refused"] as? Int == 1)
        #expect(stats["last_destination"] as? String == destination)

        // One AssumeRole for the link, audited as a console grant.
        #expect(try moto.assumeRoleCalls().map { $0.form["RoleArn"] } == [Policies.readonlyArn])
        let records = try fixture.auditRecords()
        #expect(records.map { $0["action"] as? String } == ["console"])
        #expect(records.first?["outcome"] as? String == "granted")
        #expect(records.first?["session_name"] as? String == "alice@example.com")
        #expect(records.first?["reason"] as? String == "granted by policy; console link to \(destination)")
    }

    @Test("without a destination the link opens the configured console start page")
    func defaultDestination() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        let stub = try await FederationStub.start(stsEndpoint: moto.endpoint)
        defer { stub.stop() }
        let fixture = try ServerFixture.make(stsEndpoint: moto.endpoint, federationEndpoint: stub.endpoint)
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            let response = try await client.post(
                "/api/v1/console", token: try Self.alice.token(), json: #"{"role_arn":"prod/readonly"}"#)
            #expect(response.status == .ok, "\(text(response))")
            let url = try #require(try json(response)["url"] as? String)
            #expect(
                FormEncoding.decode(String(url.split(separator: "?", maxSplits: 1)[1]))["Destination"]
                    == "https://console.aws.amazon.com/")
        }
    }

    @Test(
        "a destination outside the allowed hosts is refused with 400 before any credentials are made",
        arguments: [
            "https://evil.example.com/",
            "https://console.aws.amazon.com.evil.example.com/",
            "http://console.aws.amazon.com/",
            "https://user@console.aws.amazon.com/",
            "javascript:alert(1)",
            "//console.aws.amazon.com/",
        ])
    func destinationOutsideAllowedHosts(destination: String) async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            let response = try await client.post(
                "/api/v1/console", token: try Self.alice.token(),
                json: #"{"role_arn":"prod/readonly","destination":\#(jsonText(destination))}"#)
            #expect(response.status == .badRequest, "\(text(response))")
            #expect(try json(response)["error"] as? String == "invalid_request")
        }
    }

    @Test(
        "a console link for a role the caller is not granted is refused with 403 not_granted and audited as a denied console request"
    )
    func deniedRole() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        let id: String = try await fixture.application().test(.router) { client in
            let response = try await client.post(
                "/api/v1/console", token: try Self.alice.token(), json: #"{"role_arn":"dev/developer"}"#)
            #expect(response.status == .forbidden)
            #expect(try json(response)["error"] as? String == "not_granted")
            return try #require(requestID(response))
        }
        let records = try fixture.auditRecords()
        try #require(records.count == 1)
        #expect(records[0]["action"] as? String == "console")
        #expect(records[0]["outcome"] as? String == "denied")
        #expect(records[0]["role"] as? String == "dev/developer")
        #expect(records[0]["request_id"] as? String == id)
        #expect(records[0]["subject"] as? String == Self.alice.subject)
    }

    @Test(
        "when the sign-in service refuses the session the answer is 502 upstream_error, and the request's one audit record says failed"
    )
    func federationRefuses() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        // The stub checks sessions against an STS that is down, so it refuses every getSigninToken.
        let stub = try await FederationStub.start(stsEndpoint: try closedPortURL())
        defer { stub.stop() }
        let fixture = try ServerFixture.make(stsEndpoint: moto.endpoint, federationEndpoint: stub.endpoint)
        defer { fixture.remove() }
        let id: String = try await fixture.application().test(.router) { client in
            let response = try await client.post(
                "/api/v1/console", token: try Self.alice.token(), json: #"{"role_arn":"prod/readonly"}"#)
            #expect(response.status == .badGateway, "\(text(response))")
            #expect(try json(response)["error"] as? String == "upstream_error")
            #expect(try json(response)["url"] == nil)
            return try #require(requestID(response))
        }
        // One record for the request, and it says failed: no "granted" for a link that was never made.
        let records = try fixture.auditRecords()
        #expect(records.count == 1, "\(records)")
        #expect(records.first?["request_id"] as? String == id)
        #expect(records.first?["action"] as? String == "console")
        #expect(records.first?["outcome"] as? String == "failed")
        #expect((records.first?["reason"] as? String)?.contains("without a sign-in token") == true, "\(records)")
        #expect(try await stub.stats()["refused"] as? Int == 1)
    }
}

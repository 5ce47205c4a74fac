import Foundation
import KeylessAWS
import KeylessCore
import KeylessHTTP
import KeylessTestFakes
import Logging
import Testing

/// A logger that drops everything.
let quietLogger = Logger(label: "keyless.tests.aws", factory: { _ in SwiftLogNoOpLogHandler() })

let testRole = "arn:aws:iam::123456789012:role/keyless-dev"
let testIssuer = "https://idp.example.test"

/// A web-identity request for `testRole`.
func webIdentityRequest(duration: Int? = 3600, role: String = testRole) -> WebIdentityRequest {
    WebIdentityRequest(
        roleArn: role, sessionName: "alice@example.com", webIdentityToken: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
        durationSeconds: duration, issuer: testIssuer)
}

/// STS behind the one stub transport: one fixed answer (or a refused connection), every request recorded.
func stubSTS(status: Int = 200, xml: String = "", unreachable: Bool = false) -> StubTransport {
    StubTransport(status: status, body: xml, headers: ["content-type": "text/xml"], unreachable: unreachable)
}

/// An STS error document as the query API returns it.
func stsErrorXML(code: String, message: String) -> String {
    """
    <ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
      <Error>
        <Type>Sender</Type>
        <Code>\(code)</Code>
        <Message>\(message)</Message>
      </Error>
      <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
    </ErrorResponse>
    """
}

/// The sample response of the AssumeRoleWithWebIdentity API reference
/// (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html, "Examples"),
/// with `expiration` substituted.
func stsSuccessXML(expiration: String = "2014-10-24T23:00:23Z") -> String {
    """
    <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
      <AssumeRoleWithWebIdentityResult>
        <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>
        <Audience>client.5498841531868486423.1548@apps.example.com</Audience>
        <AssumedRoleUser>
          <Arn>arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1</Arn>
          <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>
        </AssumedRoleUser>
        <Credentials>
          <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE</SessionToken>
          <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
          <Expiration>\(expiration)</Expiration>
          <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
        </Credentials>
        <SourceIdentity>SourceIdentityValue</SourceIdentity>
        <Provider>www.amazon.com</Provider>
      </AssumeRoleWithWebIdentityResult>
      <ResponseMetadata>
        <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
      </ResponseMetadata>
    </AssumeRoleWithWebIdentityResponse>
    """
}

@Suite("STS endpoint resolution")
struct STSEndpointTests {
    @Test("an explicit endpoint wins over AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL")
    func explicitWins() {
        let environment = Environment([
            "AWS_ENDPOINT_URL_STS": "http://sts-env:1", "AWS_ENDPOINT_URL": "http://all-env:2",
            "AWS_REGION": "eu-west-1",
        ])
        #expect(
            STSEndpoint.resolve(explicit: "http://explicit:3", region: "us-west-2", environment: environment)
                == "http://explicit:3")
    }

    @Test("an empty explicit endpoint counts as none")
    func emptyExplicit() {
        let environment = Environment(["AWS_ENDPOINT_URL_STS": "http://sts-env:1"])
        #expect(STSEndpoint.resolve(explicit: "", region: nil, environment: environment) == "http://sts-env:1")
    }

    @Test("AWS_ENDPOINT_URL_STS wins over AWS_ENDPOINT_URL and the region")
    func serviceVariableWins() {
        let environment = Environment([
            "AWS_ENDPOINT_URL_STS": "http://sts-env:1", "AWS_ENDPOINT_URL": "http://all-env:2",
        ])
        #expect(STSEndpoint.resolve(explicit: nil, region: "eu-west-1", environment: environment) == "http://sts-env:1")
    }

    @Test("AWS_ENDPOINT_URL applies when there is no STS-specific endpoint")
    func globalVariable() {
        let environment = Environment(["AWS_ENDPOINT_URL": "http://all-env:2", "AWS_ENDPOINT_URL_STS": ""])
        #expect(STSEndpoint.resolve(explicit: nil, region: "eu-west-1", environment: environment) == "http://all-env:2")
    }

    @Test(
        "without endpoint overrides the regional endpoint is used",
        arguments: [
            ("eu-west-1", "https://sts.eu-west-1.amazonaws.com"),
            ("us-east-1", "https://sts.us-east-1.amazonaws.com"),
            ("ap-southeast-2", "https://sts.ap-southeast-2.amazonaws.com"),
            ("cn-north-1", "https://sts.cn-north-1.amazonaws.com.cn"),
            ("cn-northwest-1", "https://sts.cn-northwest-1.amazonaws.com.cn"),
        ])
    func regional(region: String, expected: String) {
        #expect(STSEndpoint.resolve(explicit: nil, region: region, environment: Environment()) == expected)
    }

    @Test("the region comes from the argument, else AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1")
    func regionPrecedence() {
        let both = Environment(["AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-north-1"])
        #expect(
            STSEndpoint.resolve(explicit: nil, region: "ca-central-1", environment: both)
                == "https://sts.ca-central-1.amazonaws.com")
        #expect(
            STSEndpoint.resolve(explicit: nil, region: nil, environment: both)
                == "https://sts.eu-central-1.amazonaws.com")
        #expect(
            STSEndpoint.resolve(
                explicit: nil, region: nil, environment: Environment(["AWS_DEFAULT_REGION": "eu-north-1"]))
                == "https://sts.eu-north-1.amazonaws.com")
        #expect(
            STSEndpoint.resolve(explicit: nil, region: nil, environment: Environment())
                == "https://sts.us-east-1.amazonaws.com")
    }
}

@Suite("Role ARN validation")
struct RoleArnTests {
    @Test(
        "IAM role ARNs in every partition are accepted",
        arguments: [
            "arn:aws:iam::123456789012:role/keyless-dev",
            "arn:aws:iam::000000000000:role/path/to/Role_Name+=,.@-",
            "arn:aws-cn:iam::123456789012:role/dev",
            "arn:aws-us-gov:iam::123456789012:role/dev",
        ])
    func accepts(arn: String) throws {
        try STSClient.validateRoleArn(arn)
    }

    @Test(
        "strings that are not IAM role ARNs are refused with usage",
        arguments: [
            "", "keyless-dev", "arn:aws:iam::123456789012", "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::12345678901:role/dev", "arn:aws:iam::1234567890123:role/dev",
            "arn:aws:iam::12345678901a:role/dev",
            "arn:aws:iam::123456789012:user/dev", "arn:aws:sts::123456789012:assumed-role/dev/alice",
            "arx:aws:iam::123456789012:role/dev", "arn:aws:iam:123456789012:role/dev",
        ])
    func refuses(arn: String) {
        #expect(throws: KeylessError(.usage, "")) { try STSClient.validateRoleArn(arn) }
    }

    @Test(
        "an account id made of non-ASCII digits is refused with usage",
        arguments: [
            "arn:aws:iam::１２３４５６７８９０１２:role/dev",
            "arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:role/dev",
            "arn:aws:iam::12345678901½:role/dev",
        ])
    func refusesUnicodeDigits(arn: String) {
        #expect(throws: KeylessError(.usage, "")) { try STSClient.validateRoleArn(arn) }
    }
}

@Suite("AssumeRoleWithWebIdentity request")
struct WebIdentityRequestTests {
    @Test("the form body has the fields in order, percent-encoded as RFC 3986 unreserved")
    func formBody() {
        #expect(
            webIdentityRequest(duration: 3600).formBody == "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                + "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fkeyless-dev"
                + "&RoleSessionName=alice%40example.com"
                + "&WebIdentityToken=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
                + "&DurationSeconds=3600")
    }

    @Test("without a duration the form body has no DurationSeconds")
    func formBodyWithoutDuration() {
        #expect(
            webIdentityRequest(duration: nil).formBody == "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                + "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fkeyless-dev"
                + "&RoleSessionName=alice%40example.com"
                + "&WebIdentityToken=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln")
    }

    @Test("session-name punctuation and non-ASCII text are percent-encoded as UTF-8")
    func formBodyEscapes() {
        let request = WebIdentityRequest(
            roleArn: "arn:aws:iam::123456789012:role/r", sessionName: "a+b=c,d.e@f-g_h",
            webIdentityToken: "t~ é&x", durationSeconds: nil, issuer: testIssuer)
        #expect(
            request.formBody
                == "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fr"
                + "&RoleSessionName=a%2Bb%3Dc%2Cd.e%40f-g_h&WebIdentityToken=t~%20%C3%A9%26x")
    }
}

@Suite("STS client")
struct STSClientTests {
    @Test("a success answer yields all four credential fields and the assumed-role ARN")
    func parsesSuccess() async throws {
        let stub = stubSTS(xml: stsSuccessXML())
        let credentials = try await STSClient(
            endpoint: "https://sts.us-east-1.amazonaws.com", http: stub, logger: quietLogger
        )
        .assumeRoleWithWebIdentity(webIdentityRequest())

        #expect(credentials.accessKeyId == "ASgeIAIOSFODNN7EXAMPLE")
        #expect(credentials.secretAccessKey == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY")
        #expect(credentials.sessionToken == "AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE")
        #expect(credentials.expiration == Date(timeIntervalSince1970: 1_414_191_623))
        #expect(credentials.assumedRoleArn == "arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1")
    }

    @Test("the request is an unsigned form POST of formBody to the endpoint")
    func sendsForm() async throws {
        let stub = stubSTS(xml: stsSuccessXML())
        let request = webIdentityRequest()
        _ = try await STSClient(endpoint: "http://127.0.0.1:4566", http: stub, logger: quietLogger)
            .assumeRoleWithWebIdentity(request)

        let sent = stub.requests
        try #require(sent.count == 1)
        #expect(sent[0].method == "POST")
        #expect(sent[0].url == "http://127.0.0.1:4566")
        #expect(sent[0].headers["content-type"]?.hasPrefix("application/x-www-form-urlencoded") == true)
        #expect(sent[0].headers["authorization"] == nil)
        #expect(sent[0].body == request.formBody)
    }

    @Test(
        "Expiration is read with or without fractional seconds",
        arguments: [
            ("2026-01-01T01:00:00Z", 1_767_229_200.0),
            ("2026-01-01T01:00:00.500Z", 1_767_229_200.5),
            ("2026-01-01T01:00:00.043622Z", 1_767_229_200.043622),
        ])
    func parsesExpiration(text: String, seconds: Double) async throws {
        let stub = stubSTS(xml: stsSuccessXML(expiration: text))
        let credentials = try await STSClient(endpoint: "https://sts.example", http: stub, logger: quietLogger)
            .assumeRoleWithWebIdentity(webIdentityRequest())
        #expect(abs(credentials.expiration.timeIntervalSince1970 - seconds) < 0.001)
    }

    @Test(
        "an Expiration with absurd fractional seconds (30 or 50 digits) or an impossible date is an stsError, not a crash or a wrong date",
        arguments: [
            "2026-01-01T01:00:00." + String(repeating: "9", count: 30) + "Z",
            "2026-01-01T01:00:00." + String(repeating: "1", count: 50) + "Z",
            "2026-13-01T01:00:00Z", "2026-01-01T25:00:00Z", "2026-01-01T01:00:00.Z",
            String(repeating: "2", count: 5000),
        ])
    func refusesAbsurdExpiration(text: String) async throws {
        let stub = stubSTS(xml: stsSuccessXML(expiration: text))
        let error = await keylessError {
            try await STSClient(endpoint: "https://sts.example", http: stub, logger: quietLogger)
                .assumeRoleWithWebIdentity(webIdentityRequest())
        }
        #expect(error?.code == .stsError)
    }

    @Test("an Expiration with a numeric offset is the same instant in UTC")
    func expirationWithOffset() async throws {
        let stub = stubSTS(xml: stsSuccessXML(expiration: "2026-01-01T03:00:00+02:00"))
        let credentials = try await STSClient(endpoint: "https://sts.example", http: stub, logger: quietLogger)
            .assumeRoleWithWebIdentity(webIdentityRequest())
        #expect(credentials.expiration.timeIntervalSince1970 == 1_767_229_200)
    }

    @Test("a success answer missing a credential field is an stsError")
    func incompleteSuccess() async throws {
        let xml = stsSuccessXML().replacingOccurrences(
            of: "<SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE</SessionToken>", with: "")
        let stub = stubSTS(xml: xml)
        let error = await keylessError {
            try await STSClient(endpoint: "https://sts.example", http: stub, logger: quietLogger)
                .assumeRoleWithWebIdentity(webIdentityRequest())
        }
        #expect(error?.code == .stsError)
    }

    @Test("AccessDenied maps to stsAccessDenied and names the role and the issuer")
    func accessDenied() async throws {
        let stub = stubSTS(
            status: 403,
            xml: stsErrorXML(code: "AccessDenied", message: "Not authorized to perform sts:AssumeRoleWithWebIdentity"))
        let error = await keylessError {
            try await STSClient(endpoint: "https://sts.example", http: stub, logger: quietLogger)
                .assumeRoleWithWebIdentity(webIdentityRequest())
        }
        #expect(error?.code == .stsAccessDenied)
        #expect(error?.reason.contains(testRole) == true)
        #expect(error?.reason.contains(testIssuer) == true)
        #expect(error?.reason.contains("Not authorized to perform sts:AssumeRoleWithWebIdentity") == true)
    }

    @Test(
        "STS error codes map to keyless error codes",
        arguments: [
            (400, "ExpiredTokenException", KeylessError.Code.stsExpiredToken),
            (400, "InvalidIdentityToken", .stsInvalidIdentityToken),
            (400, "IDPCommunicationError", .stsError),
            (400, "ValidationError", .stsError),
            (400, "Throttling", .stsError),
            (403, "AccessDenied", .stsAccessDenied),
        ])
    func mapsErrors(status: Int, code: String, expected: KeylessError.Code) async throws {
        let stub = stubSTS(status: status, xml: stsErrorXML(code: code, message: "details &amp; more"))
        let error = await keylessError {
            try await STSClient(endpoint: "https://sts.example", http: stub, logger: quietLogger)
                .assumeRoleWithWebIdentity(webIdentityRequest())
        }
        #expect(error?.code == expected)
    }

    @Test("InvalidIdentityToken names the issuer whose IAM OIDC provider is needed")
    func invalidIdentityTokenNamesIssuer() async throws {
        let stub = stubSTS(
            status: 400, xml: stsErrorXML(code: "InvalidIdentityToken", message: "No OpenIDConnect provider found"))
        let error = await keylessError {
            try await STSClient(endpoint: "https://sts.example", http: stub, logger: quietLogger)
                .assumeRoleWithWebIdentity(webIdentityRequest())
        }
        #expect(error?.code == .stsInvalidIdentityToken)
        #expect(error?.reason.contains(testIssuer) == true)
    }

    @Test("an error answer that is not XML is an stsError")
    func nonXMLError() async throws {
        let stub = stubSTS(status: 502, xml: "<html><body>Bad Gateway</body></html")
        let error = await keylessError {
            try await STSClient(endpoint: "https://sts.example", http: stub, logger: quietLogger)
                .assumeRoleWithWebIdentity(webIdentityRequest())
        }
        #expect(error?.code == .stsError)
    }

    @Test("a transport failure is stsUnreachable")
    func unreachable() async throws {
        let stub = stubSTS(unreachable: true)
        let error = await keylessError {
            try await STSClient(endpoint: "https://sts.example", http: stub, logger: quietLogger)
                .assumeRoleWithWebIdentity(webIdentityRequest())
        }
        #expect(error?.code == .stsUnreachable)
    }

    @Test(
        "a duration outside 900...43200 is refused with usage before any request",
        arguments: [0, -1, 899, 43_201, 86_400])
    func durationOutOfRange(duration: Int) async throws {
        let stub = stubSTS(xml: stsSuccessXML())
        let error = await keylessError {
            try await STSClient(endpoint: "https://sts.example", http: stub, logger: quietLogger)
                .assumeRoleWithWebIdentity(webIdentityRequest(duration: duration))
        }
        #expect(error?.code == .usage)
        #expect(stub.requests.isEmpty)
    }

    @Test("the durations 900 and 43200 are sent", arguments: [900, 43_200])
    func durationBounds(duration: Int) async throws {
        let stub = stubSTS(xml: stsSuccessXML())
        _ = try await STSClient(endpoint: "https://sts.example", http: stub, logger: quietLogger)
            .assumeRoleWithWebIdentity(webIdentityRequest(duration: duration))
        #expect(stub.requests.first?.body.hasSuffix("&DurationSeconds=\(duration)") == true)
    }

    @Test("a malformed role ARN is refused with usage before any request")
    func badRoleArn() async throws {
        let stub = stubSTS(xml: stsSuccessXML())
        let error = await keylessError {
            try await STSClient(endpoint: "https://sts.example", http: stub, logger: quietLogger)
                .assumeRoleWithWebIdentity(webIdentityRequest(role: "arn:aws:iam::123:role/x"))
        }
        #expect(error?.code == .usage)
        #expect(stub.requests.isEmpty)
    }
}

import Foundation
import KeylessCore
import KeylessHTTP
import KeylessSigV4

/// An IAM OIDC provider as GetOpenIDConnectProvider describes it.
public struct IAMOpenIDConnectProvider: Sendable, Equatable {
    /// Its ARN.
    public var arn: String
    /// `HOST[/PATH]` (IAM stores the URL without scheme).
    public var url: String
    /// Its client ids.
    public var clientIDs: [String]
    /// Its thumbprints.
    public var thumbprints: [String]
}

/// An IAM role as GetRole describes it.
public struct IAMRoleDescription: Sendable, Equatable {
    /// Its ARN.
    public var arn: String
    /// Its trust policy (JSON text, URL-decoded).
    public var trustPolicy: String
    /// Its longest session in seconds.
    public var maxSessionSeconds: Int
}

/// The IAM calls `keyless bootstrap apply` makes: read the provider and roles, then create or update them.
extension IAMClient {
    /// The ARNs of every OIDC provider in the account.
    public func listOpenIDConnectProviders(credentials: SigV4Credentials, date: Date) async throws -> [String] {
        let body = try await send(
            [("Action", "ListOpenIDConnectProviders")], credentials: credentials, date: date,
            what: "ListOpenIDConnectProviders")!
        return XMLMembers.members(of: "OpenIDConnectProviderList", in: body).compactMap {
            XMLMembers.leaf("Arn", in: $0)
        }
    }

    /// One provider, or nil when it does not exist.
    public func openIDConnectProvider(arn: String, credentials: SigV4Credentials, date: Date) async throws
        -> IAMOpenIDConnectProvider?
    {
        guard
            let body = try await send(
                [("Action", "GetOpenIDConnectProvider"), ("OpenIDConnectProviderArn", arn)], credentials: credentials,
                date: date,
                what: "GetOpenIDConnectProvider \(arn)", missingIsNil: true)
        else { return nil }
        return IAMOpenIDConnectProvider(
            arn: arn, url: XMLMembers.leaf("Url", in: body) ?? "",
            clientIDs: XMLMembers.members(of: "ClientIDList", in: body).map(XMLFields.unescape),
            thumbprints: XMLMembers.members(of: "ThumbprintList", in: body).map(XMLFields.unescape))
    }

    /// Creates a provider and returns its ARN.
    public func createOpenIDConnectProvider(
        url: String, clientIDs: [String], thumbprints: [String], credentials: SigV4Credentials, date: Date
    ) async throws -> String {
        var form = [("Action", "CreateOpenIDConnectProvider"), ("Url", url)]
        form += clientIDs.enumerated().map { ("ClientIDList.member.\($0.offset + 1)", $0.element) }
        form += thumbprints.enumerated().map { ("ThumbprintList.member.\($0.offset + 1)", $0.element) }
        let body = try await send(
            form, credentials: credentials, date: date, what: "CreateOpenIDConnectProvider \(url)")!
        guard let arn = XMLMembers.leaf("OpenIDConnectProviderArn", in: body) else {
            throw KeylessError(
                .stsError, "IAM created the provider \(url) but answered without its ARN.",
                hint: "Check the IAM endpoint.")
        }
        return arn
    }

    /// Adds a client id (audience) to a provider.
    public func addClientID(_ clientID: String, providerARN: String, credentials: SigV4Credentials, date: Date)
        async throws
    {
        _ = try await send(
            [
                ("Action", "AddClientIDToOpenIDConnectProvider"), ("OpenIDConnectProviderArn", providerARN),
                ("ClientID", clientID),
            ],
            credentials: credentials, date: date, what: "AddClientIDToOpenIDConnectProvider \(providerARN)")
    }

    /// Replaces a provider's thumbprint list.
    public func updateThumbprints(
        _ thumbprints: [String], providerARN: String, credentials: SigV4Credentials, date: Date
    ) async throws {
        let form =
            [("Action", "UpdateOpenIDConnectProviderThumbprint"), ("OpenIDConnectProviderArn", providerARN)]
            + thumbprints.enumerated().map { ("ThumbprintList.member.\($0.offset + 1)", $0.element) }
        _ = try await send(
            form, credentials: credentials, date: date, what: "UpdateOpenIDConnectProviderThumbprint \(providerARN)")
    }

    /// A role, or nil when it does not exist.
    public func role(named name: String, credentials: SigV4Credentials, date: Date) async throws -> IAMRoleDescription?
    {
        guard
            let body = try await send(
                [("Action", "GetRole"), ("RoleName", name)], credentials: credentials, date: date,
                what: "GetRole \(name)", missingIsNil: true)
        else { return nil }
        let fields = XMLFields.parse(Array(body.utf8))
        guard let arn = fields["Arn"], let document = fields["AssumeRolePolicyDocument"] else {
            throw KeylessError(
                .stsError, "IAM answered GetRole \(name) without an ARN or trust policy.",
                hint: "Check the IAM endpoint.")
        }
        return IAMRoleDescription(
            arn: arn, trustPolicy: document.removingPercentEncoding ?? document,
            maxSessionSeconds: fields["MaxSessionDuration"].flatMap { Int($0) } ?? 3600)
    }

    /// Creates a role with a trust policy and longest session; returns its ARN.
    public func createRole(
        name: String, trustPolicy: String, maxSessionSeconds: Int, description: String?, credentials: SigV4Credentials,
        date: Date
    ) async throws -> String {
        var form = [
            ("Action", "CreateRole"), ("RoleName", name), ("AssumeRolePolicyDocument", trustPolicy),
            ("MaxSessionDuration", String(maxSessionSeconds)),
        ]
        if let description { form.append(("Description", description)) }
        let body = try await send(form, credentials: credentials, date: date, what: "CreateRole \(name)")!
        return XMLMembers.leaf("Arn", in: body) ?? ""
    }

    /// Replaces a role's trust policy.
    public func updateAssumeRolePolicy(name: String, trustPolicy: String, credentials: SigV4Credentials, date: Date)
        async throws
    {
        _ = try await send(
            [("Action", "UpdateAssumeRolePolicy"), ("RoleName", name), ("PolicyDocument", trustPolicy)],
            credentials: credentials, date: date, what: "UpdateAssumeRolePolicy \(name)")
    }

    /// Changes a role's longest session.
    public func updateMaxSessionDuration(name: String, seconds: Int, credentials: SigV4Credentials, date: Date)
        async throws
    {
        _ = try await send(
            [("Action", "UpdateRole"), ("RoleName", name), ("MaxSessionDuration", String(seconds))],
            credentials: credentials, date: date, what: "UpdateRole \(name)")
    }

    /// The ARNs of the managed policies attached to a role (every page).
    public func attachedRolePolicies(name: String, credentials: SigV4Credentials, date: Date) async throws -> [String] {
        var arns: [String] = []
        var marker: String?
        repeat {
            var form = [("Action", "ListAttachedRolePolicies"), ("RoleName", name)]
            if let marker { form.append(("Marker", marker)) }
            let body = try await send(
                form, credentials: credentials, date: date, what: "ListAttachedRolePolicies \(name)")!
            arns += XMLMembers.members(of: "AttachedPolicies", in: body).compactMap {
                XMLMembers.leaf("PolicyArn", in: $0)
            }
            marker = XMLMembers.leaf("IsTruncated", in: body) == "true" ? XMLMembers.leaf("Marker", in: body) : nil
        } while marker != nil
        return arns
    }

    /// Attaches a managed policy to a role.
    public func attachRolePolicy(name: String, policyARN: String, credentials: SigV4Credentials, date: Date)
        async throws
    {
        _ = try await send(
            [("Action", "AttachRolePolicy"), ("RoleName", name), ("PolicyArn", policyARN)],
            credentials: credentials, date: date, what: "AttachRolePolicy \(name) \(policyARN)")
    }

    /// One signed IAM query call; the answer's XML text, or nil for NoSuchEntity when `missingIsNil`.
    func send(
        _ form: [(String, String)], credentials: SigV4Credentials, date: Date, what: String, missingIsNil: Bool = false
    ) async throws -> String? {
        let body = Array(FormEncoding.encode(form + [("Version", "2010-05-08")]).utf8)
        let unsigned = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Accept", "text/xml")]
        let region =
            endpoint.contains(".amazonaws.com.cn")
            ? "cn-north-1" : endpoint.contains("us-gov") ? "us-gov-west-1" : "us-east-1"
        guard
            let added = SigV4.sign(
                SigV4Request(method: "POST", url: endpoint, headers: unsigned, body: body), credentials: credentials,
                region: region, service: "iam", date: date)
        else {
            throw KeylessError(
                .configInvalid, "The IAM endpoint \(endpoint) is not an absolute URL.",
                hint: "Use https://iam.amazonaws.com or your IAM endpoint.")
        }
        var headers: [String: String] = [:]
        for (name, value) in unsigned + added { headers[name.lowercased()] = value }
        logger.debug("iam request", metadata: ["iam.call": "\(what)", "iam.endpoint": "\(endpoint)"])
        let response: HTTPResponseData
        do {
            response = try await http.send(method: "POST", url: endpoint, headers: headers, body: body)
        } catch {
            throw KeylessError(
                .stsUnreachable, "Cannot reach IAM at \(endpoint): \(error).",
                hint: "Check the network and AWS_ENDPOINT_URL_IAM, then retry.")
        }
        let text = String(decoding: response.body, as: UTF8.self)
        guard response.status == 200 else {
            let fields = XMLFields.parse(response.body)
            let code = fields["Code"] ?? "HTTP \(response.status)"
            if code == "NoSuchEntity" && missingIsNil { return nil }
            let action = form.first?.1 ?? "the call"
            throw KeylessError(
                code == "AccessDenied" ? .stsAccessDenied : .stsError,
                "IAM refused \(what): \(code) \(fields["Message"] ?? "")",
                hint:
                    "The AWS credentials you run this with need iam:\(action) (an IAM administrator's, or a role with IAMFullAccess)."
            )
        }
        return text
    }
}

/// Lists in IAM's XML answers (`<List><member>...</member>...</List>`), which the flat `XMLFields` map cannot hold.
enum XMLMembers {
    /// The inner XML of each `<member>` directly inside the first `<list>` element.
    static func members(of list: String, in xml: String) -> [String] {
        guard let inner = element(list, in: xml) else { return [] }
        var result: [String] = []
        var rest = inner[...]
        while let open = rest.range(of: "<member>") {
            // Members of these lists hold no nested <member>: the next close tag ends this one.
            guard let close = rest.range(of: "</member>", range: open.upperBound..<rest.endIndex) else { break }
            result.append(
                String(rest[open.upperBound..<close.lowerBound]).trimmingCharacters(in: .whitespacesAndNewlines))
            rest = rest[close.upperBound...]
        }
        return result
    }

    /// The unescaped text of the first `<name>` element, or nil.
    static func leaf(_ name: String, in xml: String) -> String? {
        element(name, in: xml).map { XMLFields.unescape($0).trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// The inner XML of the first `<name>` (or `<name attr...>`) element; nil when absent or empty (`<name/>`).
    static func element(_ name: String, in xml: String) -> String? {
        var search = xml.startIndex..<xml.endIndex
        while let open = xml.range(of: "<" + name, range: search) {
            guard let close = xml.range(of: ">", range: open.upperBound..<xml.endIndex) else { return nil }
            let between = xml[open.upperBound..<close.lowerBound]
            if between.isEmpty || between.first == " " {
                guard let end = xml.range(of: "</\(name)>", range: close.upperBound..<xml.endIndex) else { return nil }
                return String(xml[close.upperBound..<end.lowerBound])
            }
            if between == "/" { return nil }
            search = close.upperBound..<xml.endIndex
        }
        return nil
    }
}

import SwiftASN1

/// The LDAPv3 messages keyless sends and understands (RFC 4511 §4), written and read with SwiftASN1.
///
/// Requests are written in DER, which is valid BER (definite lengths only, as RFC 4511 §5.1 requires), except that the
/// filters of `&` and `|` keep their order (DER would sort a SET OF). Responses are read as BER.
public enum LDAPRequest: Sendable, Equatable {
    /// A simple bind (RFC 4511 §4.2): `name` and `password`. An empty password is an anonymous bind by the protocol
    /// (RFC 4513 §5.1.2); the client refuses to send one for a login.
    case simpleBind(name: String, password: [UInt8])
    case unbind
    case search(LDAPSearch)
    /// An extended operation: StartTLS is 1.3.6.1.4.1.1466.20037 with no value.
    case extended(name: String, value: [UInt8]?)

    /// The StartTLS extended request (RFC 4511 §4.14.1).
    public static let startTLS = LDAPRequest.extended(name: "1.3.6.1.4.1.1466.20037", value: nil)

    /// The whole LDAPMessage with this message id.
    public func encoded(messageID: Int32) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.appendConstructedNode(identifier: .sequence) { message in
            try message.serialize(Int(messageID))
            try encodeOperation(into: &message)
        }
        return serializer.serializedBytes
    }

    private func encodeOperation(into coder: inout DER.Serializer) throws {
        switch self {
        case .simpleBind(let name, let password):
            try coder.appendConstructedNode(identifier: Self.application(0)) { bind in
                try bind.serialize(3)
                try bind.serialize(ASN1OctetString(contentBytes: ArraySlice(name.utf8)))
                bind.appendPrimitiveNode(identifier: Self.context(0)) { $0 += password }
            }
        case .unbind:
            coder.appendPrimitiveNode(identifier: Self.application(2)) { _ in }
        case .search(let search):
            try coder.appendConstructedNode(identifier: Self.application(3)) { request in
                try request.serialize(ASN1OctetString(contentBytes: ArraySlice(search.base.utf8)))
                try search.scope.rawValue.serialize(into: &request, withIdentifier: .enumerated)
                try search.derefAliases.rawValue.serialize(into: &request, withIdentifier: .enumerated)
                try request.serialize(search.sizeLimit)
                try request.serialize(search.timeLimitSeconds)
                try request.serialize(false)  // typesOnly
                try search.filter.encode(into: &request)
                try request.appendConstructedNode(identifier: .sequence) { attributes in
                    for attribute in search.attributes {
                        try attributes.serialize(ASN1OctetString(contentBytes: ArraySlice(attribute.utf8)))
                    }
                }
            }
        case .extended(let name, let value):
            coder.appendConstructedNode(identifier: Self.application(23)) { request in
                request.appendPrimitiveNode(identifier: Self.context(0)) { $0 += Array(name.utf8) }
                if let value { request.appendPrimitiveNode(identifier: Self.context(1)) { $0 += value } }
            }
        }
    }

    static func application(_ number: UInt) -> ASN1Identifier {
        ASN1Identifier(tagWithNumber: number, tagClass: .application)
    }

    static func context(_ number: UInt) -> ASN1Identifier {
        ASN1Identifier(tagWithNumber: number, tagClass: .contextSpecific)
    }
}

/// A search request's parameters.
public struct LDAPSearch: Sendable, Equatable {
    public enum Scope: Int, Sendable {
        case base = 0, oneLevel = 1, subtree = 2
    }
    public enum DerefAliases: Int, Sendable {
        case never = 0, inSearching = 1, findingBase = 2, always = 3
    }

    public var base: String
    public var scope: Scope
    public var derefAliases: DerefAliases
    /// Entries the server may return at most (0: the server's own limit).
    public var sizeLimit: Int
    /// Seconds the server may spend (0: the server's own limit).
    public var timeLimitSeconds: Int
    public var filter: LDAPFilter
    /// Attributes to return; `[]` asks for every user attribute, `["1.1"]` for none (RFC 4511 §4.5.1.8).
    public var attributes: [String]

    public init(
        base: String, scope: Scope = .subtree, derefAliases: DerefAliases = .never, sizeLimit: Int = 0,
        timeLimitSeconds: Int = 0, filter: LDAPFilter, attributes: [String]
    ) {
        self.base = base
        self.scope = scope
        self.derefAliases = derefAliases
        self.sizeLimit = sizeLimit
        self.timeLimitSeconds = timeLimitSeconds
        self.filter = filter
        self.attributes = attributes
    }
}

extension LDAPFilter {
    /// The filter alone, in BER.
    func encoded() throws -> [UInt8] {
        var serializer = DER.Serializer()
        try encode(into: &serializer)
        return serializer.serializedBytes
    }

    /// The filter as RFC 4511's `Filter` CHOICE.
    func encode(into coder: inout DER.Serializer) throws {
        typealias R = LDAPRequest
        func octets(_ identifier: ASN1Identifier, _ bytes: [UInt8], _ coder: inout DER.Serializer) {
            coder.appendPrimitiveNode(identifier: identifier) { $0 += bytes }
        }
        func assertion(_ tag: UInt, _ attribute: String, _ value: [UInt8], _ coder: inout DER.Serializer) {
            coder.appendConstructedNode(identifier: R.context(tag)) { pair in
                octets(.octetString, Array(attribute.utf8), &pair)
                octets(.octetString, value, &pair)
            }
        }
        switch self {
        case .and(let filters), .or(let filters):
            let tag: UInt = if case .and = self { 0 } else { 1 }
            try coder.appendConstructedNode(identifier: R.context(tag)) { set in
                for filter in filters { try filter.encode(into: &set) }
            }
        case .not(let filter):
            try coder.appendConstructedNode(identifier: R.context(2)) { try filter.encode(into: &$0) }
        case .equality(let attribute, let value): assertion(3, attribute, value, &coder)
        case .substrings(let attribute, let initial, let any, let final):
            coder.appendConstructedNode(identifier: R.context(4)) { substrings in
                octets(.octetString, Array(attribute.utf8), &substrings)
                substrings.appendConstructedNode(identifier: .sequence) { parts in
                    if let initial { octets(R.context(0), initial, &parts) }
                    for part in any { octets(R.context(1), part, &parts) }
                    if let final { octets(R.context(2), final, &parts) }
                }
            }
        case .greaterOrEqual(let attribute, let value): assertion(5, attribute, value, &coder)
        case .lessOrEqual(let attribute, let value): assertion(6, attribute, value, &coder)
        case .present(let attribute): octets(R.context(7), Array(attribute.utf8), &coder)
        case .approximate(let attribute, let value): assertion(8, attribute, value, &coder)
        case .extensible(let rule, let attribute, let value, let dnAttributes):
            coder.appendConstructedNode(identifier: R.context(9)) { match in
                if let rule { octets(R.context(1), Array(rule.utf8), &match) }
                if let attribute { octets(R.context(2), Array(attribute.utf8), &match) }
                octets(R.context(3), value, &match)
                if dnAttributes { octets(R.context(4), [0xff], &match) }
            }
        }
    }
}

/// What a server sends back (RFC 4511 §4.1.9, §4.2.2, §4.5.2, §4.12, §4.4.1).
public enum LDAPResponse: Sendable, Equatable {
    case bind(LDAPResult)
    case searchEntry(LDAPEntry)
    case searchReference([String])
    case searchDone(LDAPResult)
    case extended(LDAPResult, name: String?, value: [UInt8]?)

    /// Reads one LDAPMessage: its id (0 for an unsolicited notification, RFC 4511 §4.4) and its operation.
    public static func decode(_ bytes: ArraySlice<UInt8>) throws -> (messageID: Int32, response: LDAPResponse) {
        do {
            let root = try BER.parse(bytes)
            return try BER.sequence(root, identifier: .sequence) { nodes in
                let id = try Int32(berEncoded: &nodes)
                guard let operation = nodes.next() else { throw LDAPError.malformed("a message without an operation") }
                // Controls ([0]) may follow; keyless sends none and needs none of the server's.
                while nodes.next() != nil {}
                return (id, try decodeOperation(operation))
            }
        } catch let error as LDAPError {
            throw error
        } catch {
            throw LDAPError.malformed("\(error)")
        }
    }

    static func decodeOperation(_ node: ASN1Node) throws -> LDAPResponse {
        guard node.identifier.tagClass == .application else {
            throw LDAPError.malformed("an operation tagged \(node.identifier)")
        }
        switch node.identifier.tagNumber {
        case 1:
            return .bind(
                try BER.sequence(node, identifier: node.identifier) { try LDAPResult(reading: &$0, all: true) })
        case 4:
            return .searchEntry(
                try BER.sequence(node, identifier: node.identifier) { nodes in
                    let dn = try string(&nodes)
                    guard let list = nodes.next() else { throw LDAPError.malformed("an entry without attributes") }
                    var attributes: [String: [[UInt8]]] = [:]
                    try BER.sequence(list, identifier: .sequence) { pairs in
                        while let pair = pairs.next() {
                            try BER.sequence(pair, identifier: .sequence) { fields in
                                let type = try string(&fields)
                                guard let set = fields.next(), case .constructed(let values) = set.content else {
                                    throw LDAPError.malformed("attribute \(type) without a value set")
                                }
                                attributes[type.lowercased(), default: []] += try values.map {
                                    Array(try ASN1OctetString(berEncoded: $0).bytes)
                                }
                            }
                        }
                    }
                    return LDAPEntry(dn: dn, attributes: attributes)
                })
        case 5:
            return .searchDone(
                try BER.sequence(node, identifier: node.identifier) { try LDAPResult(reading: &$0, all: true) })
        case 19:
            return .searchReference(
                try BER.sequence(node, identifier: node.identifier) { nodes in
                    var uris: [String] = []
                    while nodes.peek() != nil { uris.append(try string(&nodes)) }
                    return uris
                })
        case 24:
            return try BER.sequence(node, identifier: node.identifier) { nodes in
                let result = try LDAPResult(reading: &nodes, all: false)
                var name: String?
                var value: [UInt8]?
                while let next = nodes.next() {
                    guard case .primitive(let bytes) = next.content, next.identifier.tagClass == .contextSpecific
                    else { continue }
                    if next.identifier.tagNumber == 10 { name = String(decoding: bytes, as: UTF8.self) }
                    if next.identifier.tagNumber == 11 { value = Array(bytes) }
                }
                return .extended(result, name: name, value: value)
            }
        default:
            throw LDAPError.malformed("an unexpected operation [APPLICATION \(node.identifier.tagNumber)]")
        }
    }

    static func string(_ nodes: inout ASN1NodeCollection.Iterator) throws -> String {
        String(decoding: try ASN1OctetString(berEncoded: &nodes).bytes, as: UTF8.self)
    }
}

extension ASN1NodeCollection.Iterator {
    fileprivate func peek() -> ASN1Node? {
        var copy = self
        return copy.next()
    }
}

/// RFC 4511 §4.1.9 LDAPResult.
public struct LDAPResult: Sendable, Equatable {
    /// The result code: 0 success, 49 invalidCredentials, 32 noSuchObject… (RFC 4511 Appendix A).
    public var code: Int
    public var matchedDN: String
    /// The server's own words: Active Directory puts the reason a bind failed here (`data 52e`, `data 533`).
    public var diagnosticMessage: String

    public init(code: Int, matchedDN: String = "", diagnosticMessage: String = "") {
        self.code = code
        self.matchedDN = matchedDN
        self.diagnosticMessage = diagnosticMessage
    }

    /// Reads the result's fields; with `all`, also passes over what may follow them (a referral, SASL credentials).
    init(reading nodes: inout ASN1NodeCollection.Iterator, all: Bool) throws {
        guard let codeNode = nodes.next() else { throw LDAPError.malformed("a result without a code") }
        code = try Int(berEncoded: codeNode, withIdentifier: .enumerated)
        matchedDN = try LDAPResponse.string(&nodes)
        diagnosticMessage = try LDAPResponse.string(&nodes)
        // A referral ([3]) may follow: keyless never chases referrals.
        if all { while nodes.next() != nil {} }
    }

    public static let success = 0
    public static let sizeLimitExceeded = 4
    public static let strongerAuthRequired = 8
    public static let noSuchObject = 32
    public static let invalidCredentials = 49
    public static let unwillingToPerform = 53
}

/// A search result entry: its DN and its attributes, names lower-cased, values as bytes.
public struct LDAPEntry: Sendable, Equatable {
    public var dn: String
    public var attributes: [String: [[UInt8]]]

    public init(dn: String, attributes: [String: [[UInt8]]]) {
        self.dn = dn
        self.attributes = attributes
    }

    /// The attribute's values as UTF-8 text (the name in any case).
    public func strings(_ name: String) -> [String] {
        (attributes[name.lowercased()] ?? []).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The attribute's first value as text.
    public func string(_ name: String) -> String? { strings(name).first }
}

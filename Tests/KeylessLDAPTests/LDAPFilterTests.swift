import Foundation
import KeylessCore
import KeylessTestSupport
import NIOCore
import NIOEmbedded
import Testing

@testable import KeylessLDAP

@Suite("LDAP filters (RFC 4515) and message framing")
struct LDAPFilterTests {
    @Test("RFC 4515 §4's examples parse into the filters they describe")
    func rfcExamples() throws {
        let examples: [(String, LDAPFilter)] = [
            ("(cn=Babs Jensen)", .equality(attribute: "cn", value: Array("Babs Jensen".utf8))),
            ("(!(cn=Tim Howes))", .not(.equality(attribute: "cn", value: Array("Tim Howes".utf8)))),
            (
                "(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))",
                .and([
                    .equality(attribute: "objectClass", value: Array("Person".utf8)),
                    .or([
                        .equality(attribute: "sn", value: Array("Jensen".utf8)),
                        .substrings(attribute: "cn", initial: Array("Babs J".utf8), any: [], final: nil),
                    ]),
                ])
            ),
            (
                "(o=univ*of*mich*)",
                .substrings(
                    attribute: "o", initial: Array("univ".utf8), any: [Array("of".utf8), Array("mich".utf8)], final: nil
                )
            ),
            ("(seeAlso=)", .equality(attribute: "seeAlso", value: [])),
            (
                "(cn:caseExactMatch:=Fred Flintstone)",
                .extensible(
                    matchingRule: "caseExactMatch", attribute: "cn", value: Array("Fred Flintstone".utf8),
                    dnAttributes: false)
            ),
            (
                "(cn:=Betty Rubble)",
                .extensible(matchingRule: nil, attribute: "cn", value: Array("Betty Rubble".utf8), dnAttributes: false)
            ),
            (
                "(sn:dn:2.4.6.8.10:=Barney Rubble)",
                .extensible(
                    matchingRule: "2.4.6.8.10", attribute: "sn", value: Array("Barney Rubble".utf8), dnAttributes: true)
            ),
            (
                "(:1.2.3:=Wilma Flintstone)",
                .extensible(
                    matchingRule: "1.2.3", attribute: nil, value: Array("Wilma Flintstone".utf8), dnAttributes: false)
            ),
            (
                "(:DN:2.4.6.8.10:=Dino)",
                .extensible(matchingRule: "2.4.6.8.10", attribute: nil, value: Array("Dino".utf8), dnAttributes: true)
            ),
            (
                "(o=Parens R Us \\28for all your parenthetical needs\\29)",
                .equality(attribute: "o", value: Array("Parens R Us (for all your parenthetical needs)".utf8))
            ),
            ("(cn=*\\2A*)", .substrings(attribute: "cn", initial: nil, any: [[0x2a]], final: nil)),
            ("(filename=C:\\5cMyFile)", .equality(attribute: "filename", value: Array("C:\\MyFile".utf8))),
            ("(bin=\\00\\00\\00\\04)", .equality(attribute: "bin", value: [0, 0, 0, 4])),
            ("(sn=Lu\\c4\\8di\\c4\\87)", .equality(attribute: "sn", value: Array("Lučić".utf8))),
            (
                "(1.3.6.1.4.1.1466.0=\\04\\02\\48\\69)",
                .equality(attribute: "1.3.6.1.4.1.1466.0", value: [4, 2, 0x48, 0x69])
            ),
            ("(mail=*)", .present(attribute: "mail")),
            ("(uid>=m)", .greaterOrEqual(attribute: "uid", value: Array("m".utf8))),
            ("(uid<=m)", .lessOrEqual(attribute: "uid", value: Array("m".utf8))),
            ("(cn~=Babs)", .approximate(attribute: "cn", value: Array("Babs".utf8))),
            ("(cn=*Jensen)", .substrings(attribute: "cn", initial: nil, any: [], final: Array("Jensen".utf8))),
        ]
        for (text, expected) in examples {
            #expect(try LDAPFilter(parsing: text) == expected, "\(text)")
        }
    }

    @Test("Active Directory's nested-membership and bit-and rules parse as extensible matches")
    func activeDirectoryRules() throws {
        #expect(
            try LDAPFilter(parsing: "(memberOf:1.2.840.113556.1.4.1941:=CN=admins,CN=Users,DC=example,DC=test)")
                == .extensible(
                    matchingRule: "1.2.840.113556.1.4.1941", attribute: "memberOf",
                    value: Array("CN=admins,CN=Users,DC=example,DC=test".utf8), dnAttributes: false))
        #expect(
            try LDAPFilter(parsing: "(!(userAccountControl:1.2.840.113556.1.4.803:=2))")
                == .not(
                    .extensible(
                        matchingRule: "1.2.840.113556.1.4.803", attribute: "userAccountControl", value: [0x32],
                        dnAttributes: false)))
    }

    @Test("malformed filters are refused with the position of the mistake")
    func malformed() {
        for text in [
            "", "cn=a", "(cn=a", "(cn=a))", "(&)", "(|)", "(cn=a(b)", "(cn=\\zz)", "(cn=\\4)", "(=a)", "(c n=a)",
            "(cn=a**b)", "(:=a)", "(cn:bad rule:=a)", "(cn:dn)", "(!(cn=a)(cn=b))", "(cn>a)",
            String(repeating: "(!", count: 40) + "(cn=a)" + String(repeating: ")", count: 40),
        ] {
            #expect(throws: LDAPError.self, "\(text)") { try LDAPFilter(parsing: text) }
            do {
                _ = try LDAPFilter(parsing: text)
            } catch let error as LDAPError {
                #expect(error.code == .filterSyntax && error.message.contains("at character"), "\(error)")
            } catch {
                Issue.record("\(text): \(error)")
            }
        }
    }

    @Test("a user name is escaped (RFC 4515 §3) and matched as its own characters, never as filter syntax")
    func injection() throws {
        #expect(LDAPFilter.escape("*)(uid=*") == "\\2a\\29\\28uid=\\2a")
        #expect(LDAPFilter.escape("a\\b\u{0}c") == "a\\5cb\\00c")
        #expect(LDAPFilter.escape("jérôme") == "jérôme")
        let filter = try LDAPFilter.template("(|(uid={u})(mail={u}))", substituting: "*)(uid=*")
        let literal = Array("*)(uid=*".utf8)
        #expect(
            filter == .or([.equality(attribute: "uid", value: literal), .equality(attribute: "mail", value: literal)]))
        #expect(
            try LDAPFilter.template("(uid={u})", substituting: "admin)(|(objectClass=*")
                == .equality(attribute: "uid", value: Array("admin)(|(objectClass=*".utf8)))
    }

    @Test("the framing reads short and long lengths, waits for the rest, and refuses indefinite or oversized messages")
    func framing() throws {
        #expect(try LDAPFrame.length(of: [UInt8](), maximum: 100) == nil)
        #expect(try LDAPFrame.length(of: [0x30], maximum: 100) == nil)
        #expect(try LDAPFrame.length(of: [0x30, 0x03, 1, 2], maximum: 100) == nil)
        #expect(try LDAPFrame.length(of: [0x30, 0x03, 1, 2, 3, 9], maximum: 100) == 5)
        #expect(try LDAPFrame.length(of: [0x30, 0x82, 0x01], maximum: 1000) == nil)
        #expect(
            try LDAPFrame.length(of: [0x30, 0x82, 0x01, 0x00] + [UInt8](repeating: 0, count: 256), maximum: 1000) == 260
        )
        #expect(throws: LDAPError.self) { try LDAPFrame.length(of: [0x30, 0x80, 0, 0], maximum: 100) }
        #expect(throws: LDAPError.self) { try LDAPFrame.length(of: [0x04, 0x01, 0], maximum: 100) }
        #expect(throws: LDAPError.self) { try LDAPFrame.length(of: [0x30, 0x85, 1, 1, 1, 1, 1], maximum: 100) }
        #expect(throws: LDAPError.self) { try LDAPFrame.length(of: [0x30, 0x82, 0x10, 0x00], maximum: 1000) }
    }

    @Test("a bind request is the BER RFC 4511 §4.2 describes, byte for byte")
    func bindEncoding() throws {
        let bytes = try LDAPRequest.simpleBind(name: "cn=a", password: Array("pw".utf8)).encoded(messageID: 1)
        // 30 LL | 02 01 01 | 60 LL | 02 01 03 | 04 04 "cn=a" | 80 02 "pw"
        #expect(
            bytes == [0x30, 0x12, 0x02, 0x01, 0x01, 0x60, 0x0d, 0x02, 0x01, 0x03, 0x04, 0x04] + Array("cn=a".utf8) + [
                0x80, 0x02,
            ] + Array("pw".utf8))
    }

    @Test("a directory that answers one search without end is cut off at 10,000 entries, its connection closed")
    func endlessSearch() throws {
        let channel = EmbeddedChannel(handler: LDAPClientHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 389)).wait()
        let handler = try channel.pipeline.syncOperations.handler(type: LDAPClientHandler.self)
        let promise = channel.eventLoop.makePromise(of: [LDAPResponse].self)
        handler.pending[1] = LDAPClientHandler.Pending(promise: promise)
        // Message 1, a search result entry with an empty DN and no attributes.
        let entry: [UInt8] = [0x30, 0x09, 0x02, 0x01, 0x01, 0x64, 0x04, 0x04, 0x00, 0x30, 0x00]
        var failure: Error?
        promise.futureResult.whenFailure { failure = $0 }
        var sent = 0
        while channel.isActive && sent <= LDAPClientHandler.maximumResponses + 1 {
            try channel.writeInbound(channel.allocator.buffer(bytes: entry))
            sent += 1
        }
        #expect(sent == LDAPClientHandler.maximumResponses + 1)
        let error = try #require(failure as? LDAPError)
        #expect(error.code == .malformed && error.message.contains("narrow the search"), "\(error)")
        #expect(!channel.isActive && handler.pending.isEmpty)
    }

    @Test("responses cut short, bit-flipped or random are refused with an error, never a crash")
    func hostileResponses() throws {
        // A search result done with code 0: 30 0c 02 01 02 65 07 0a 01 00 04 00 04 00
        let done: [UInt8] = [0x30, 0x0c, 0x02, 0x01, 0x02, 0x65, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00]
        let decoded = try LDAPResponse.decode(done[...])
        #expect(decoded.messageID == 2 && decoded.response == .searchDone(LDAPResult(code: 0)))
        var generator = SystemRandomNumberGenerator()
        for length in 0..<done.count {
            #expect(throws: LDAPError.self) { try LDAPResponse.decode(done.prefix(length)) }
        }
        for _ in 0..<3000 {
            var bytes = done
            bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            _ = try? LDAPResponse.decode(bytes[...])
            let noise = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255) }
            _ = try? LDAPResponse.decode(([0x30, UInt8(noise.count)] + noise)[...])
        }
    }
}

/// The bytes KeylessLDAP writes, against python-ldap3's (pyasn1's BER encoder) for the same requests.
@Suite("LDAP encoding against python-ldap3")
struct LDAPEncodingReferenceTests {
    static func reference(_ arguments: [String]) throws -> [String] {
        let script = repositoryRoot() + "/scripts/partners/ldap3_ber.py"
        let result = try PartnerProcess.run(Tooling.python(), [script] + arguments, timeout: 60)
        try #require(result.status == 0, "\(result.output)")
        return result.output.split(separator: "\n").map(String.init)
    }

    static func hex(_ bytes: [UInt8]) -> String { Hex.encode(bytes) }

    @Test("filters: every RFC 4515 form, escapes, UTF-8 and nesting encode as ldap3 encodes them")
    func filters() throws {
        // Not compared: `:dn:` filters. RFC 4511 §5.1 writes TRUE as FF, which keyless does; ldap3 writes 01.
        let filters = [
            "(cn=Babs Jensen)", "(!(cn=Tim Howes))", "(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))",
            "(o=univ*of*mich*)", "(seeAlso=)", "(cn:caseExactMatch:=Fred Flintstone)", "(cn:=Betty Rubble)",
            "(:1.2.3:=Wilma Flintstone)", "(o=Parens R Us \\28for all your parenthetical needs\\29)", "(cn=*\\2A*)",
            "(filename=C:\\5cMyFile)", "(sn=Lu\\c4\\8di\\c4\\87)", "(mail=*)", "(uid>=m)", "(uid<=m)", "(cn~=Babs)",
            "(cn=*Jensen)", "(cn=a*)", "(memberOf:1.2.840.113556.1.4.1941:=CN=admins,CN=Users,DC=example,DC=test)",
            "(&(objectCategory=person)(objectClass=user)(|(sAMAccountName=alice)(userPrincipalName=alice@example.test)))",
            try Self.templateText(),
        ]
        let expected = try Self.reference(["filter"] + filters)
        try #require(expected.count == filters.count)
        for (text, hex) in zip(filters, expected) {
            #expect(Self.hex(try LDAPFilter(parsing: text).encoded()) == hex, "\(text)")
        }
    }

    /// A filter made from a template and a hostile user name, as the connector makes it.
    static func templateText() throws -> String {
        "(|(uid=" + LDAPFilter.escape("*)(uid=*") + ")(mail=" + LDAPFilter.escape("a\\b") + "))"
    }

    @Test("a bind and a search request are the LDAPMessages ldap3 writes")
    func messages() throws {
        let bind = try LDAPRequest.simpleBind(
            name: "cn=keyless,ou=services,dc=example,dc=com", password: Array("pw".utf8)
        )
        .encoded(messageID: 1)
        #expect(
            try Self.reference(["bind", "1", "cn=keyless,ou=services,dc=example,dc=com", "pw"]) == [Self.hex(bind)])
        let filter = "(&(objectClass=inetOrgPerson)(|(uid=alice)(mail=alice)))"
        let search = try LDAPRequest.search(
            LDAPSearch(
                base: "ou=people,dc=example,dc=com", sizeLimit: 2, timeLimitSeconds: 5,
                filter: try LDAPFilter(parsing: filter), attributes: ["uid", "mail", "memberOf"])
        ).encoded(messageID: 300)
        #expect(
            try Self.reference([
                "search", "300", "ou=people,dc=example,dc=com", filter, "2", "5", "uid", "mail", "memberOf",
            ])
                == [Self.hex(search)])
    }
}

import KeylessCore
import Testing

@Suite("JWKSet: a peer's key set read with Codable, members kept as JSON values")
struct JWKSetTests {
    @Test("keys keep every member with its JSON type; string accessors are strict about types")
    func members() throws {
        let set = try #require(
            JWKSet(
                json: Array(
                    #"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB","key_ops":["verify"],"x5c":["MII"]},{"kty":"EC","kid":7}]}"#
                        .utf8)))
        #expect(set.keys.count == 2)
        #expect(set.keys[0]["kid"]?.string == "k1")
        #expect(set.keys[0]["key_ops"]?.stringArray == ["verify"])
        #expect(set.keys[1]["kid"]?.string == nil, "a number is not a string")
        #expect(set.keys[1]["kid"] == .number(7))
        #expect(JWKSet.stringMembers(set.keys[0]) == ["kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB"])
        #expect(JSONValue.array([.string("a"), .number(1)]).stringArray == nil)
    }

    @Test("anything but an object with a keys array of objects is no set")
    func refusals() {
        for text in [#"[]"#, #"{}"#, #"{"keys":{}}"#, #"{"keys":["a"]}"#, #"{"keys":[1]}"#, "not json", ""] {
            #expect(JWKSet(json: Array(text.utf8)) == nil, "\(text)")
        }
        #expect(JWKSet(json: Array(#"{"keys":[]}"#.utf8))?.keys.isEmpty == true)
    }
}

@Suite("JSONValue.members: a peer's JSON answer read with Codable")
struct PeerJSONTests {
    @Test("an object's members keep their JSON types; anything else reads as no members")
    func members() {
        let body = JSONValue.members(of: Array(#"{"a":"x","n":3,"t":true,"l":["y"],"o":{"k":null}}"#.utf8))
        #expect(body["a"]?.string == "x")
        #expect(body["n"] == .number(3) && body["n"]?.string == nil)
        #expect(body["t"] == .bool(true))
        #expect(body["l"]?.stringArray == ["y"])
        #expect(body["o"] == .object(["k": .null]))
        for text in ["[1]", "\"s\"", "3", "<html>", ""] { #expect(JSONValue.members(of: Array(text.utf8)).isEmpty) }
    }
}

import Crypto
import Foundation
import KeylessCBOR
import KeylessTestSupport
import Testing

/// COSE keys made by python-fido2 (Yubico's library, `scripts/partners/fido2_cose.py`), and signatures made with them
/// the way authenticators sign, checked by KeylessCBOR.
@Suite("COSE keys: ES256, ES384, ES512, RS256 and EdDSA against python-fido2")
struct COSEKeyTests {
    struct Sample {
        var alg: String
        var key: [UInt8]
        var message: [UInt8]
        var signature: [UInt8]
    }

    static func samples() throws -> [Sample] {
        let script = repositoryRoot() + "/scripts/partners/fido2_cose.py"
        let result = try PartnerProcess.run(Tooling.python(), [script], timeout: 60)
        try #require(result.status == 0, "fido2_cose.py failed (scripts/test installs fido2): \(result.output)")
        return try result.output.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("{") else { return nil }
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
            return Sample(
                alg: object["alg"]!, key: hex(object["cose_key"]!), message: hex(object["message"]!),
                signature: hex(object["signature"]!))
        }
    }

    @Test(
        "fido2's keys parse with their algorithm, verify fido2's signatures, and refuse a changed message or another key's signature"
    )
    func againstFido2() throws {
        let samples = try Self.samples()
        #expect(samples.map(\.alg) == ["ES256", "ES384", "ES512", "RS256", "EdDSA"])
        let keys = try samples.map { try COSEKey(try CBORDecoder().decode($0.key)) }
        #expect(
            keys.map(\.algorithm) == [
                COSEKey.es256Algorithm, COSEKey.es384Algorithm, COSEKey.es512Algorithm, COSEKey.rs256Algorithm,
                COSEKey.edDSAAlgorithm,
            ])
        for (index, (key, sample)) in zip(keys, samples).enumerated() {
            #expect(key.isValidSignature(sample.signature, for: sample.message), "\(sample.alg)")
            var changed = sample.message
            changed[0] ^= 1
            #expect(!key.isValidSignature(sample.signature, for: changed), "\(sample.alg): a changed message")
            let other = samples[(index + 1) % samples.count]
            #expect(!key.isValidSignature(other.signature, for: sample.message), "\(sample.alg): another signature")
            #expect(!key.isValidSignature([], for: sample.message))
        }
    }

    @Test(
        "a key whose type and algorithm disagree, a point off the curve, an unknown curve or a short RSA key is refused"
    )
    func refusals() throws {
        let p256 = P256.Signing.PrivateKey().publicKey.rawRepresentation
        let x = Array(p256.prefix(32))
        let y = Array(p256.suffix(32))
        func ec2(alg: Int, crv: Int = 1, x: [UInt8] = x, y: [UInt8] = y) -> CBORValue {
            .map([
                (.unsigned(1), .unsigned(2)), (Self.int(3), Self.int(alg)), (Self.int(-1), Self.int(crv)),
                (Self.int(-2), .bytes(x)), (Self.int(-3), .bytes(y)),
            ])
        }
        #expect(throws: Never.self) { try COSEKey(ec2(alg: -7)) }
        #expect(throws: CBORError(.unsupported, "")) { try COSEKey(ec2(alg: -257)) }
        #expect(throws: CBORError(.malformed, "")) { try COSEKey(ec2(alg: -7, crv: 2)) }
        #expect(throws: CBORError(.malformed, ""), "a P-256 point under ES384") { try COSEKey(ec2(alg: -35, crv: 2)) }
        #expect(throws: CBORError(.malformed, "")) { try COSEKey(ec2(alg: -7, y: x)) }
        #expect(throws: CBORError(.malformed, "")) { try COSEKey(ec2(alg: -7, x: Array(x.prefix(31)))) }
        let shortRSA: CBORValue = .map([
            (.unsigned(1), .unsigned(3)), (Self.int(3), Self.int(-257)),
            (Self.int(-1), .bytes([0xc1] + Array(repeating: 0x55, count: 127))), (Self.int(-2), .bytes([1, 0, 1])),
        ])
        #expect(throws: CBORError(.malformed, "")) { try COSEKey(shortRSA) }
        #expect(throws: CBORError(.malformed, "")) { try COSEKey(.array([])) }
    }

    static func int(_ value: Int) -> CBORValue { value >= 0 ? .unsigned(UInt64(value)) : .negative(UInt64(-1 - value)) }
}

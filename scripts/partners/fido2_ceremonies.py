"""Outside reference for KeylessWebAuthn's ceremonies: python-fido2 (Yubico) judges the same answers keyless judges.

Usage: python3 fido2_ceremonies.py
Makes credentials the way an authenticator does (fido2.webauthn builds the authenticator data, attestation objects
and client data; the keys and signatures come from `cryptography`), for ES256, EdDSA and RS256, then registration and
sign-in answers — valid ones and ones with one thing wrong (origin, RP ID, challenge, type, flags, another key's
signature). fido2's own relying party (fido2.server.Fido2Server, RP ID example.org) verifies each; its verdict is
printed beside the case so the Swift test can require keyless to agree. One JSON line per case, bytes as hex:
  {"name", "ceremony": "registration"|"authentication", "challenge", "origin", "require_uv", "credential_id",
   "client_data", "attestation_object" | ("authenticator_data", "signature", "user_handle", "public_key",
   "backup_eligible"), "fido2": "ok" | fido2's error}
Needs fido2 (pip).
"""
import json
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from fido2 import cbor
from fido2.cose import CoseKey
from fido2.server import Fido2Server
from fido2.utils import sha256, websafe_encode
from fido2.webauthn import (AttestationObject, AttestedCredentialData, AuthenticatorData, CollectedClientData,
                            PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity, UserVerificationRequirement)

RP_ID = "example.org"
ORIGIN = "https://example.org"
FLAGS = AuthenticatorData.FLAG
USER = PublicKeyCredentialUserEntity(id=b"user-handle-alice", name="alice", display_name="Alice")


def signer(name):
    if name == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        return key, lambda data: key.sign(data, ec.ECDSA(hashes.SHA256()))
    if name == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return key, lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    key = ed25519.Ed25519PrivateKey.generate()
    return key, key.sign


def server(uv):
    rp = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="Example"))
    return rp, (UserVerificationRequirement.REQUIRED if uv else UserVerificationRequirement.DISCOURAGED)


def verdict(run):
    try:
        run()
        return "ok"
    except Exception as error:  # fido2 raises ValueError and others; the text is only shown
        return f"{type(error).__name__}: {error}"


def registration(name, alg, *, origin=ORIGIN, rp_id=RP_ID, flags=FLAGS.UP | FLAGS.UV | FLAGS.AT,
                 type_="webauthn.create", require_uv=True, wrong_challenge=False):
    private, _ = signer(alg)
    credential_id = os.urandom(32)
    public = CoseKey.for_name(alg).from_cryptography_key(private.public_key())
    attested = AttestedCredentialData.create(b"\0" * 16, credential_id, public)
    auth_data = AuthenticatorData.create(sha256(rp_id.encode()), flags, 0, attested)
    challenge = os.urandom(32)
    client_data = CollectedClientData.create(type_, os.urandom(32) if wrong_challenge else challenge, origin)
    attestation = AttestationObject.create("none", auth_data, {})
    rp, uv = server(require_uv)
    _, state = rp.register_begin(USER, user_verification=uv, challenge=challenge)
    response = {"id": websafe_encode(credential_id), "rawId": websafe_encode(credential_id), "type": "public-key",
                "response": {"clientDataJSON": websafe_encode(bytes(client_data)),
                             "attestationObject": websafe_encode(bytes(attestation))}}
    case = {"name": name, "ceremony": "registration", "challenge": challenge.hex(), "origin": ORIGIN,
            "require_uv": require_uv, "credential_id": credential_id.hex(), "client_data": bytes(client_data).hex(),
            "attestation_object": bytes(attestation).hex(),
            "fido2": verdict(lambda: rp.register_complete(state, response))}
    return case


def authentication(name, alg, *, origin=ORIGIN, rp_id=RP_ID, flags=FLAGS.UP | FLAGS.UV, type_="webauthn.get",
                   require_uv=True, wrong_challenge=False, other_key=False, counter=1):
    private, sign = signer(alg)
    credential_id = os.urandom(32)
    public = CoseKey.for_name(alg).from_cryptography_key(private.public_key())
    attested = AttestedCredentialData.create(b"\0" * 16, credential_id, public)
    if other_key:
        _, sign = signer(alg)
    auth_data = AuthenticatorData.create(sha256(rp_id.encode()), flags, counter)
    challenge = os.urandom(32)
    client_data = CollectedClientData.create(type_, os.urandom(32) if wrong_challenge else challenge, origin)
    signature = sign(bytes(auth_data) + client_data.hash)
    rp, uv = server(require_uv)
    _, state = rp.authenticate_begin([attested], user_verification=uv, challenge=challenge)
    response = {"id": websafe_encode(credential_id), "rawId": websafe_encode(credential_id), "type": "public-key",
                "response": {"clientDataJSON": websafe_encode(bytes(client_data)),
                             "authenticatorData": websafe_encode(bytes(auth_data)),
                             "signature": websafe_encode(signature), "userHandle": websafe_encode(USER.id)}}
    return {"name": name, "ceremony": "authentication", "challenge": challenge.hex(), "origin": ORIGIN,
            "require_uv": require_uv, "credential_id": credential_id.hex(), "client_data": bytes(client_data).hex(),
            "authenticator_data": bytes(auth_data).hex(), "signature": signature.hex(), "user_handle": USER.id.hex(),
            "public_key": cbor.encode(dict(public)).hex(), "backup_eligible": False,
            "fido2": verdict(lambda: rp.authenticate_complete(state, [attested], response))}


def main():
    cases = []
    for alg in ("ES256", "EdDSA", "RS256"):
        cases.append(registration(f"{alg} registration", alg))
        cases.append(authentication(f"{alg} sign-in", alg))
        cases.append(authentication(f"{alg} sign-in signed by another key", alg, other_key=True))
    cases += [
        registration("registration from another origin", "ES256", origin="https://example.org.evil.test"),
        registration("registration for another RP ID", "ES256", rp_id="evil.test"),
        registration("registration answering another challenge", "ES256", wrong_challenge=True),
        registration("registration with a sign-in's type", "ES256", type_="webauthn.get"),
        registration("registration without UV where UV is required", "ES256", flags=FLAGS.UP | FLAGS.AT),
        registration("registration without UV where UV is not required", "ES256", flags=FLAGS.UP | FLAGS.AT,
                     require_uv=False),
        registration("registration without UP", "ES256", flags=FLAGS.UV | FLAGS.AT),
        authentication("sign-in from another origin", "ES256", origin="https://evil.test"),
        authentication("sign-in for another RP ID", "ES256", rp_id="evil.test"),
        authentication("sign-in answering another challenge", "ES256", wrong_challenge=True),
        authentication("sign-in with a registration's type", "ES256", type_="webauthn.create"),
        authentication("sign-in without UV where UV is required", "ES256", flags=FLAGS.UP),
        authentication("sign-in without UV where UV is not required", "ES256", flags=FLAGS.UP, require_uv=False),
        authentication("sign-in without UP", "ES256", flags=FLAGS.UV),
    ]
    for case in cases:
        print(json.dumps(case))


if __name__ == "__main__":
    main()

"""Outside reference for KeylessCBOR's COSE keys: python-fido2 (Yubico) makes them.

Usage: python3 fido2_cose.py
Prints one JSON line per algorithm (ES256, ES384, ES512, RS256, EdDSA): a fresh key pair's public COSE_Key as fido2.cbor encodes it
(CoseKey.from_cryptography_key), a random message, and the signature WebAuthn authenticators make over it (ES256/384/512: DER
ECDSA with SHA-256/384/512; RS256: PKCS#1 v1.5 with SHA-256; EdDSA: Ed25519). Hex everywhere. Needs fido2 (pip).
"""
import json
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from fido2 import cbor
from fido2.cose import CoseKey


def main():
    message = os.urandom(69)
    pairs = [
        ("ES256", ec.generate_private_key(ec.SECP256R1()), lambda k: k.sign(message, ec.ECDSA(hashes.SHA256()))),
        ("ES384", ec.generate_private_key(ec.SECP384R1()), lambda k: k.sign(message, ec.ECDSA(hashes.SHA384()))),
        ("ES512", ec.generate_private_key(ec.SECP521R1()), lambda k: k.sign(message, ec.ECDSA(hashes.SHA512()))),
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048),
         lambda k: k.sign(message, padding.PKCS1v15(), hashes.SHA256())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate(), lambda k: k.sign(message)),
    ]
    for name, private, sign in pairs:
        cose = CoseKey.for_name(name).from_cryptography_key(private.public_key())
        print(json.dumps({"alg": name, "cose_key": cbor.encode(dict(cose)).hex(), "message": message.hex(),
                          "signature": sign(private).hex()}))


if __name__ == "__main__":
    main()

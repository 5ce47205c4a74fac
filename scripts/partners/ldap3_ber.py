#!/usr/bin/env python3
"""The outside reference for KeylessLDAP's encoding: what python-ldap3 (PyPI, on pyasn1's BER encoder) writes.

    ldap3_ber.py filter TEXT...          one line of hex per filter (the RFC 4511 Filter)
    ldap3_ber.py bind ID NAME PASSWORD   the whole LDAPMessage of a simple bind
    ldap3_ber.py search ID BASE FILTER SIZE TIME ATTR...   a subtree search, aliases never dereferenced
"""
import sys

from ldap3 import DEREF_NEVER, SIMPLE, SUBTREE
from ldap3.operation.bind import bind_operation
from ldap3.operation.search import compile_filter, parse_filter, search_operation
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from pyasn1.codec.ber import encoder


def message(message_id, name, request):
    envelope = LDAPMessage()
    envelope["messageID"] = MessageID(message_id)
    operation = ProtocolOp()
    operation.setComponentByName(name, request)
    envelope["protocolOp"] = operation
    return encoder.encode(envelope).hex()


def main(args):
    if args[0] == "filter":
        for text in args[1:]:
            root = parse_filter(text, None, False, False, None, False)
            print(encoder.encode(compile_filter(root.elements[0])).hex())
    elif args[0] == "bind":
        print(message(int(args[1]), "bindRequest", bind_operation(3, SIMPLE, args[2], args[3])))
    elif args[0] == "search":
        request = search_operation(args[2], args[3], SUBTREE, DEREF_NEVER, args[6:], int(args[4]), int(args[5]),
                                   False, auto_escape=False, auto_encode=False, schema=None, validator=None,
                                   check_names=False)
        print(message(int(args[1]), "searchRequest", request))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])

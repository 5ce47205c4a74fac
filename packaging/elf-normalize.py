#!/usr/bin/env python3
"""Makes a linked ELF binary independent of where it was built, in place.

    elf-normalize.py BINARY      prints the new build id

swiftc writes a 16-byte hash of each module's LLVM IR into .swift_modhash (the compiler's own record, for
skipping code generation of an unchanged module; nothing reads it at run time). The hash covers the
object file's own path, which -file-prefix-map does not map (measured: one source compiled to
/tmp/o1/main.o and /tmp/o2/deep/main.o, both directories mapped, hashes differ), so two checkouts at
different paths give different bytes there, and the linker's build id, a hash of the whole file, differs
with them. This zeroes .swift_modhash and recomputes
the GNU build id the way the linker's --build-id=sha1 does: SHA-1 over the file with the id's own bytes
zeroed. (Debian's debugedit --build-id does the second part but stops at DWARF 5, which swiftc writes.)

ELF64 little-endian only (the architectures keyless is packaged for); anything else is refused.
"""
import hashlib
import struct
import sys

NOTE_GNU_BUILD_ID = 3


def sections(data):
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise SystemExit("elf-normalize: not an ELF64 little-endian file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = headers[shstrndx][4]
    result = {}
    for name, kind, _flags, _addr, offset, size, *_ in headers:
        end = data.index(b"\0", names_offset + name)
        result[data[names_offset + name:end].decode()] = (kind, offset, size)
    return result


def build_id_range(data, offset, size):
    """The descriptor's (start, length) inside a .note.gnu.build-id section."""
    position = offset
    while position + 12 <= offset + size:
        namesz, descsz, kind = struct.unpack_from("<III", data, position)
        name_start = position + 12
        desc_start = name_start + ((namesz + 3) & ~3)
        if kind == NOTE_GNU_BUILD_ID and data[name_start:name_start + namesz] == b"GNU\0":
            return desc_start, descsz
        position = desc_start + ((descsz + 3) & ~3)
    raise SystemExit("elf-normalize: .note.gnu.build-id holds no GNU build id note")


def main(path):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    table = sections(data)
    if ".note.gnu.build-id" not in table:
        raise SystemExit(f"elf-normalize: {path} has no GNU build id (link with --build-id)")
    if ".swift_modhash" in table:
        kind, offset, size = table[".swift_modhash"]
        if kind != 8:  # SHT_NOBITS has no bytes in the file
            data[offset:offset + size] = bytes(size)
    _, offset, size = table[".note.gnu.build-id"]
    start, length = build_id_range(data, offset, size)
    data[start:start + length] = bytes(length)
    digest = hashlib.sha1(data).digest()
    if length != len(digest):
        raise SystemExit(f"elf-normalize: the build id is {length} bytes, not a SHA-1 (link with --build-id=sha1)")
    data[start:start + length] = digest
    with open(path, "r+b") as f:
        f.write(data)
    print(digest.hex())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: elf-normalize.py BINARY")
    main(sys.argv[1])

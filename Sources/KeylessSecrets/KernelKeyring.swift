import CKeylessSys
import KeylessCore

/// The Linux kernel key retention service (`add_key`/`keyctl`): a per-user cache of the file-store key
/// with a timeout, so that `credential_process` does not run scrypt or a D-Bus round trip every time.
/// Where the calls fail (other systems, a seccomp profile that blocks them) every method is a no-op.
public struct KernelKeyring: Sendable {
    /// How long a cached key lives, in seconds.
    public let timeout: UInt32

    /// Creates a keyring cache whose keys expire after `timeout` seconds.
    public init(timeout: UInt32 = 12 * 3600) { self.timeout = timeout }

    private static let userKeyring: Int32 = -4  // KEY_SPEC_USER_KEYRING
    private static let setPerm: Int32 = 5  // KEYCTL_SETPERM
    private static let search: Int32 = 10  // KEYCTL_SEARCH
    private static let read: Int32 = 11  // KEYCTL_READ
    private static let setTimeout: Int32 = 15  // KEYCTL_SET_TIMEOUT
    private static let invalidate: Int32 = 21  // KEYCTL_INVALIDATE

    private func find(_ description: String) -> Int {
        description.withCString { desc in
            "user".withCString { type in
                keyless_keyctl(
                    Self.search, UInt(bitPattern: Int(Self.userKeyring)),
                    UInt(bitPattern: type), UInt(bitPattern: desc), 0)
            }
        }
    }

    /// The bytes stored under `description`, or `nil`.
    public func read(_ description: String) -> [UInt8]? {
        let id = find(description)
        guard id > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes {
            keyless_keyctl(Self.read, UInt(id), UInt(bitPattern: $0.baseAddress), UInt($0.count), 0)
        }
        guard n > 0, n <= buffer.count else { return nil }
        return Array(buffer[..<n])
    }

    /// Stores `bytes` under `description` in the user keyring, for this user only, expiring after `timeout`.
    public func write(_ description: String, _ bytes: [UInt8]) {
        let id = description.withCString { desc in
            "user".withCString { type in
                bytes.withUnsafeBytes { keyless_add_key(type, desc, $0.baseAddress, $0.count, Self.userKeyring) }
            }
        }
        guard id > 0 else { return }
        // possessor: all; user: view, read, search (other processes of this uid can read it, nobody else).
        _ = keyless_keyctl(Self.setPerm, UInt(id), 0x3f0b_0000, 0, 0)
        _ = keyless_keyctl(Self.setTimeout, UInt(id), UInt(timeout), 0, 0)
    }

    /// Removes the key stored under `description`.
    public func remove(_ description: String) {
        let id = find(description)
        if id > 0 { _ = keyless_keyctl(Self.invalidate, UInt(id), 0, 0, 0) }
    }
}

#if canImport(Security)
    import Foundation
    import Security
    import KeylessCore

    /// The macOS Keychain as an OS secret store (generic passwords, service `dev.keyless`).
    public struct KeychainKeyStore: OSKeyStore {
        public init() {}

        private func query(_ account: String) -> [String: Any] {
            [
                kSecClass as String: kSecClassGenericPassword, kSecAttrService as String: "dev.keyless",
                kSecAttrAccount as String: account,
            ]
        }

        public func isReachable() -> Bool { true }

        public func store(account: String, label: String, secret: String) throws {
            SecItemDelete(query(account) as CFDictionary)
            var item = query(account)
            item[kSecAttrLabel as String] = label
            item[kSecValueData as String] = Data(secret.utf8)
            item[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
            let status = SecItemAdd(item as CFDictionary, nil)
            guard status == errSecSuccess else { throw Self.failure(status, "store a secret") }
        }

        public func lookup(account: String) throws -> String? {
            var item = query(account)
            item[kSecReturnData as String] = true
            item[kSecMatchLimit as String] = kSecMatchLimitOne
            var result: AnyObject?
            let status = SecItemCopyMatching(item as CFDictionary, &result)
            if status == errSecItemNotFound { return nil }
            guard status == errSecSuccess, let data = result as? Data else {
                throw Self.failure(status, "read a secret")
            }
            return String(decoding: data, as: UTF8.self)
        }

        public func remove(account: String) throws {
            let status = SecItemDelete(query(account) as CFDictionary)
            guard status == errSecSuccess || status == errSecItemNotFound else {
                throw Self.failure(status, "remove a secret")
            }
        }

        static func failure(_ status: OSStatus, _ what: String) -> KeylessError {
            KeylessError(
                .secretStoreUnavailable, "The Keychain could not \(what) (OSStatus \(status)).",
                hint: "Unlock the login keychain, or choose --secret-store file.")
        }
    }
#endif

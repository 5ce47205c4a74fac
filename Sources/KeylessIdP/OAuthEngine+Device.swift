import Crypto
import Foundation
import KeylessCore
import KeylessJOSE
import KeylessStorage

/// Device authorization (RFC 8628): codes for the device, and the person's decision on the verification page.
extension OAuthEngine {
    // MARK: Device authorization

    /// The device authorization endpoint (RFC 8628 §3.1).
    public func authorizeDevice(form: [String: String], credentials: ClientCredentials, address: String) async throws
        -> DeviceAuthorization
    {
        let client = try await clients.authenticate(credentials, address: address)
        try require("device_code", client)
        let scope = form["scope"] ?? "openid"
        guard
            Set(scope.split(separator: " ").map(String.init)).isSubset(
                of: Self.standardScopes.union(client.scopes ?? []))
        else {
            throw OAuthError("invalid_scope", "scope \(scope) is not allowed for client \(client.id).")
        }
        let deviceCode = randomToken()
        let userCode = Self.userCode()
        try await store.insertDeviceCode(
            DeviceCodeRecord(
                deviceCodeHash: Self.hash(deviceCode), userCode: userCode, clientID: client.id, scope: scope,
                interval: config.lifetimes.deviceInterval,
                expiresAt: clock.now().addingTimeInterval(TimeInterval(config.lifetimes.deviceCode))))
        let display = String(userCode.prefix(4)) + "-" + String(userCode.suffix(4))
        return DeviceAuthorization(
            deviceCode: deviceCode, userCode: display, verificationURI: issuer + "/device",
            verificationURIComplete: issuer + "/device?user_code=" + display,
            expiresIn: config.lifetimes.deviceCode, interval: config.lifetimes.deviceInterval)
    }

    /// Normalises what a user typed as a user code: upper case, no dashes or spaces.
    public static func normaliseUserCode(_ text: String) -> String {
        String(text.uppercased().filter { $0.isLetter || $0.isNumber })
    }

    /// The pending device request for a typed user code.
    public func pendingDevice(userCode: String) async throws -> DeviceCodeRecord? {
        let record = try await store.deviceCode(userCode: Self.normaliseUserCode(userCode), now: clock.now())
        return record?.status == .pending ? record : nil
    }

    /// Approves or denies a device request for the logged-in user.
    public func decideDevice(userCode: String, approve: Bool, authentication: Authentication) async throws -> Bool {
        let code = Self.normaliseUserCode(userCode)
        if approve {
            return try await store.approveDevice(
                userCode: code,
                approval: DeviceApproval(authentication: authentication, familyID: randomToken(bytes: 16)),
                now: clock.now())
        }
        return try await store.denyDevice(userCode: code, now: clock.now())
    }
}

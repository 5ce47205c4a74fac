import Foundation

// Every store keeps times as whole milliseconds since 1970. The memory store rounds the same way as the SQL stores, so
// a test that passes against it does not depend on sub-millisecond precision a real store would lose.

extension Date {
    /// Milliseconds since 1970, rounded to the nearest: what a store keeps of this time.
    package var millisecondsSince1970: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }

    /// The time `milliseconds` after 1970-01-01T00:00:00Z.
    package init(millisecondsSince1970 milliseconds: Int64) {
        self.init(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    /// This time rounded to the nearest millisecond.
    package var roundedToMilliseconds: Date { Date(millisecondsSince1970: millisecondsSince1970) }
}

extension Authentication {
    /// The authentication as a store gives it back.
    package var roundedToMilliseconds: Authentication {
        var copy = self
        copy.authTime = authTime.roundedToMilliseconds
        return copy
    }
}

extension SigningKeyRecord {
    /// The record as a store gives it back.
    package var roundedToMilliseconds: SigningKeyRecord {
        var copy = self
        copy.createdAt = createdAt.roundedToMilliseconds
        copy.activatesAt = activatesAt.roundedToMilliseconds
        copy.retiresAt = retiresAt?.roundedToMilliseconds
        copy.expiresAt = expiresAt?.roundedToMilliseconds
        return copy
    }
}

extension SessionRecord {
    /// The record as a store gives it back.
    package var roundedToMilliseconds: SessionRecord {
        SessionRecord(
            idHash: idHash, authentication: authentication.roundedToMilliseconds,
            expiresAt: expiresAt.roundedToMilliseconds)
    }
}

extension AuthorizationCodeRecord {
    /// The record as a store gives it back.
    package var roundedToMilliseconds: AuthorizationCodeRecord {
        var copy = self
        copy.authentication = authentication.roundedToMilliseconds
        copy.expiresAt = expiresAt.roundedToMilliseconds
        return copy
    }
}

extension RefreshTokenRecord {
    /// The record as a store gives it back.
    package var roundedToMilliseconds: RefreshTokenRecord {
        var copy = self
        copy.authentication = authentication.roundedToMilliseconds
        copy.issuedAt = issuedAt.roundedToMilliseconds
        copy.expiresAt = expiresAt.roundedToMilliseconds
        return copy
    }
}

extension DeviceCodeRecord {
    /// The record as a store gives it back.
    package var roundedToMilliseconds: DeviceCodeRecord {
        var copy = self
        copy.expiresAt = expiresAt.roundedToMilliseconds
        copy.approval = approval.map {
            DeviceApproval(authentication: $0.authentication.roundedToMilliseconds, familyID: $0.familyID)
        }
        return copy
    }
}

extension AccessRequestRecord {
    /// The record as a store gives it back.
    package var roundedToMilliseconds: AccessRequestRecord {
        var copy = self
        copy.createdAt = createdAt.roundedToMilliseconds
        copy.pendingUntil = pendingUntil.roundedToMilliseconds
        copy.decidedAt = decidedAt?.roundedToMilliseconds
        copy.startsAt = startsAt?.roundedToMilliseconds
        copy.endsAt = endsAt?.roundedToMilliseconds
        copy.endedAt = endedAt?.roundedToMilliseconds
        return copy
    }
}

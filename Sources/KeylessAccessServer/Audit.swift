import Foundation
import KeylessCore
#if canImport(Glibc)
    import Glibc
#endif

/// One decision the server made: who asked for what, from where, and what it answered.
public struct AuditRecord: Sendable, Equatable, Encodable {
    /// When.
    public var time: Date
    /// "credentials", "console", or "access_request" (its outcome then is the request's step: requested, approved,
    /// denied, cancelled, revoked, expired, or a refused attempt such as approve_refused).
    public var action: String
    /// "granted", "denied" or "failed".
    public var outcome: String
    /// The caller's issuer and subject, and a display name.
    public var issuer: String
    public var subject: String
    public var name: String
    /// The role asked for (none for config).
    public var role: String?
    /// The TCP peer.
    public var sourceAddress: String
    /// The request id, also sent back in X-Request-Id.
    public var requestID: String
    /// Why: the policy's reason for a denial, STS's for a failure, the granting rule's summary for a grant.
    public var reason: String
    /// The assumed-role session name and source identity for grants.
    public var sessionName: String?
    /// The access request this record is about, or through which credentials were granted.
    public var accessRequest: String?

    /// A record.
    public init(
        time: Date, action: String, outcome: String, issuer: String, subject: String, name: String, role: String?,
        sourceAddress: String, requestID: String, reason: String, sessionName: String? = nil,
        accessRequest: String? = nil
    ) {
        self.time = time; self.action = action; self.outcome = outcome; self.issuer = issuer; self.subject = subject
        self.name = name; self.role = role; self.sourceAddress = sourceAddress; self.requestID = requestID
        self.reason = reason; self.sessionName = sessionName; self.accessRequest = accessRequest
    }

    enum CodingKeys: String, CodingKey {
        case time, action, outcome, issuer, subject, name, role, reason
        case sourceAddress = "source_address", requestID = "request_id", sessionName = "session_name"
        case accessRequest = "access_request"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Self.timestamp(time), forKey: .time)
        try container.encode(action, forKey: .action)
        try container.encode(outcome, forKey: .outcome)
        try container.encode(issuer, forKey: .issuer)
        try container.encode(subject, forKey: .subject)
        try container.encode(name, forKey: .name)
        try container.encodeIfPresent(role, forKey: .role)
        try container.encode(sourceAddress, forKey: .sourceAddress)
        try container.encode(requestID, forKey: .requestID)
        try container.encode(reason, forKey: .reason)
        try container.encodeIfPresent(sessionName, forKey: .sessionName)
        try container.encodeIfPresent(accessRequest, forKey: .accessRequest)
    }

    /// The record as one JSON line (with its newline), keys sorted.
    public var jsonLine: String {
        // Strings only: encoding cannot fail.
        ((try? JSONWriter.text(self)) ?? "{}") + "\n"
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}

/// Appends audit records to a file, one JSON line each, fsync'ed before the answer leaves the server: a decision
/// that is not on disk was not made. An actor, so lines never interleave.
public actor AuditLog {
    let path: String
    private var descriptor: Int32 = -1

    /// Opens (creating, mode 0600) the log at `path` for appending.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw KeylessError(
                .io, "Cannot open the audit log \(path): \(Files.errnoString()).",
                hint: "Check audit_log: in server.yaml and that the directory is writable.")
        }
        descriptor = fd
    }

    /// Writes and syncs one record; throws when the disk refuses, so the caller can fail the request closed.
    public func append(_ record: AuditRecord) throws { try append(line: record.jsonLine) }

    /// Writes and syncs one line (with its newline) of another record type (the provider's enrolment links).
    public func append(line: String) throws {
        var written = 0
        let bytes = Array(line.utf8)
        while written < bytes.count {
            let result = bytes[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if result < 0 {
                if errno == EINTR { continue }
                throw KeylessError(
                    .io, "Cannot write the audit log \(path): \(Files.errnoString()).",
                    hint: "Free disk space or fix the log's permissions.")
            }
            written += result
        }
        guard fsync(descriptor) == 0 else {
            throw KeylessError(
                .io, "Cannot sync the audit log \(path): \(Files.errnoString()).",
                hint: "Check the disk holding the audit log.")
        }
    }

    /// Closes the file.
    public func close() {
        if descriptor >= 0 { Glibc.close(descriptor); descriptor = -1 }
    }
}

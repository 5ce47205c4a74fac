import Foundation
import Hummingbird
import KeylessCore
import KeylessIdP
import KeylessStorage
import Logging

/// "Security keys and passkeys" (`/passkeys`): a person of idp.yaml, signed in within the last 15 minutes, lists,
/// adds and removes their passkeys; anyone else is asked to sign in (again) first, on the page itself.
extension IdPRoutes {
    func passkeysGet(_ request: Request, _ context: IdPRequestContext) async throws -> Response {
        let sessionValue = request.cookies[sessionCookie]?.value
        let session = try await engine.session(cookie: sessionValue)
        let query = (try? FormFields.query(request)) ?? [:]
        let notice = query["added"] != nil ? "Passkey added." : query["removed"] != nil ? "Passkey removed." : nil
        return try await passkeysPage(request, session: session, sessionValue: sessionValue, notice: notice)
    }

    func passkeysPage(
        _ request: Request, session: Authentication?, sessionValue: String?, notice: String? = nil,
        message: String? = nil, status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        guard let session, engine.mayManagePasskeys(session) else {
            let why =
                session == nil
                ? nil
                : session?.identity != nil || engine.config.user(subject: session!.subject) == nil
                    ? "Passkeys are for the people written in idp.yaml; you signed in through \(session?.identity?.connector ?? "another source")."
                    : "Confirm it is you: sign in again to change your passkeys."
            let passkey = passkeyCeremony()
            return withFormToken(request, session: sessionValue) { token in
                Responses.html(
                    Pages.passkeysSignIn(csrf: token, message: message ?? why, passkey: passkey), status: status)
            }
        }
        let passkeys = try await engine.passkeys(of: session.subject)
        let ceremony: PasskeyCeremonyStart
        do { ceremony = try await engine.passkeyRegistrationStart(subject: session.subject) } catch let failure
            as PasskeyRegistrationFailure
        {
            return Responses.html(
                Pages.error(failure.message, "Security keys and passkeys"), status: .serviceUnavailable)
        }
        return withFormToken(request, session: sessionValue) { token in
            Responses.html(
                Pages.passkeys(
                    username: Self.shownName(session), passkeys: passkeys, csrf: token, registration: ceremony,
                    notice: notice, message: message), status: status)
        }
    }

    func passkeysPost(_ request: Request, _ context: IdPRequestContext) async throws -> Response {
        let form: [String: String]
        do { form = try await FormFields.body(request) } catch {
            return Responses.html(Pages.error("The form could not be read."), status: .badRequest)
        }
        guard let binding = checkForm(request, form) else {
            return Responses.html(
                Pages.error("This form expired or came from another site. Open the passkeys page again."),
                status: .forbidden)
        }
        let sessionValue = request.cookies[sessionCookie]?.value
        let token = engine.formToken(binding: binding, session: sessionValue)
        let session = try await engine.session(cookie: sessionValue)
        switch form["action"] {
        case "login", "passkey":
            // The people whose passkeys these are sign in as users of idp.yaml.
            let local = engine.config.effectiveConnectors.first { $0.type == "local" }?.id ?? ""
            switch await signIn(form, connector: local, peer: context.peer) {
            case .failure(.passkeyRequired(let step)):
                return passkeyStep(
                    action: "/passkeys", fields: [("csrf", token), ("action", "passkey")], ceremony: step)
            case .failure(let failure):
                let passkey = passkeyCeremony()
                return loginFailed(failure, peer: context.peer) { message in
                    Pages.passkeysSignIn(csrf: token, message: message, passkey: passkey)
                }
            case .success(let authentication):
                metrics.login(outcome: "success")
                let sessionID = try await engine.startSession(authentication)
                var response = Responses.redirect("/passkeys")
                response.setCookie(cookie(sessionCookie, sessionID, sameSite: .lax))
                return response
            }
        case "register":
            guard let session, engine.mayManagePasskeys(session) else {
                return try await passkeysPage(
                    request, session: session, sessionValue: sessionValue, message: nil, status: .unauthorized)
            }
            switch await engine.finishPasskeyRegistration(
                state: form["passkey_state"] ?? "", credential: form["credential"] ?? "", name: form["name"] ?? "",
                subject: session.subject)
            {
            case .success(let passkey):
                logger.notice(
                    "passkey registered",
                    metadata: [
                        "subject": .string(session.subject), "credential": .string(passkey.credentialID),
                        "aaguid": .string(passkey.aaguid), "attestation": .string(passkey.attestation),
                    ])
                return Responses.redirect("/passkeys?added=1")
            case .failure(let failure):
                logger.notice(
                    "passkey registration refused",
                    metadata: ["subject": .string(session.subject), "reason": .string(failure.code ?? "form")])
                return try await passkeysPage(
                    request, session: session, sessionValue: sessionValue, message: failure.message,
                    status: .badRequest)
            }
        case "remove":
            guard let session, engine.mayManagePasskeys(session) else {
                return try await passkeysPage(
                    request, session: session, sessionValue: sessionValue, message: nil, status: .unauthorized)
            }
            let id = form["credential_id"] ?? ""
            guard try await engine.removePasskey(subject: session.subject, credentialID: id) else {
                return try await passkeysPage(
                    request, session: session, sessionValue: sessionValue,
                    message: "That passkey is not yours or was already removed.", status: .notFound)
            }
            logger.notice(
                "passkey removed", metadata: ["subject": .string(session.subject), "credential": .string(id)])
            return Responses.redirect("/passkeys?removed=1")
        default:
            return Responses.html(Pages.error("The form did not say what to do."), status: .badRequest)
        }
    }

    // MARK: Enrolment links

    static let badEnrolment =
        "This enrolment link is not valid: it has expired, was already used, or was not made by this provider. Ask your administrator for a new one."

    /// An administrator's one-time link (`keyless idp enrol-link`): registers a passkey for the person it names.
    func enrolGet(_ request: Request, _ context: IdPRequestContext) async throws -> Response {
        let token = (try? FormFields.query(request))?["token"] ?? ""
        return try await enrolPage(request, token: token)
    }

    func enrolPage(_ request: Request, token: String, message: String? = nil, status: HTTPResponse.Status = .ok)
        async throws -> Response
    {
        guard let (subject, id) = engine.openEnrolment(token), let user = engine.config.user(subject: subject) else {
            return Responses.html(Pages.error(Self.badEnrolment, "Enrolment link"), status: .notFound)
        }
        let ceremony: PasskeyCeremonyStart
        do { ceremony = try await engine.passkeyRegistrationStart(subject: subject, enrolment: id) } catch let failure
            as PasskeyRegistrationFailure
        {
            return Responses.html(Pages.error(failure.message, "Enrolment link"), status: .serviceUnavailable)
        }
        return withFormToken(request, session: request.cookies[sessionCookie]?.value) { csrf in
            Responses.html(
                Pages.enrol(
                    username: user.username, csrf: csrf, token: token, registration: ceremony, message: message),
                status: status)
        }
    }

    func enrolPost(_ request: Request, _ context: IdPRequestContext) async throws -> Response {
        let form: [String: String]
        do { form = try await FormFields.body(request) } catch {
            return Responses.html(Pages.error("The form could not be read."), status: .badRequest)
        }
        guard checkForm(request, form) != nil else {
            return Responses.html(
                Pages.error("This form expired or came from another site. Open the enrolment link again."),
                status: .forbidden)
        }
        let token = form["token"] ?? ""
        guard let (subject, id) = engine.openEnrolment(token) else {
            return Responses.html(Pages.error(Self.badEnrolment, "Enrolment link"), status: .notFound)
        }
        switch await engine.finishPasskeyRegistration(
            state: form["passkey_state"] ?? "", credential: form["credential"] ?? "", name: form["name"] ?? "",
            subject: subject, enrolment: id)
        {
        case .success(let passkey):
            logger.notice(
                "passkey registered through an enrolment link",
                metadata: [
                    "subject": .string(subject), "link": .string(id), "credential": .string(passkey.credentialID),
                    "aaguid": .string(passkey.aaguid), "peer": .string(context.peer),
                ])
            return Responses.html(Pages.enrolled())
        case .failure(let failure):
            logger.notice(
                "enrolment link registration refused",
                metadata: ["subject": .string(subject), "link": .string(id), "reason": .string(failure.code ?? "form")])
            return try await enrolPage(request, token: token, message: failure.message, status: .badRequest)
        }
    }
}

import Foundation
import KeylessCore
import KeylessIdP
import KeylessStorage
import KeylessHTTPServer

/// The provider's HTML pages: small, server-rendered, every value escaped; pages with passkeys load the provider's one
/// script (`PasskeyScript`), nothing inline.
enum Pages {
    static let scriptTag = "<script src=\"\(PasskeyScript.path)\" defer></script>"

    static func layout(title: String, body: String) -> String {
        let script = body.contains("data-passkey=") ? "\n" + scriptTag : ""
        return htmlDocumentStart + """

            <title>\(htmlEscaped(title)) · keyless</title>
            <style>
            body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}
            h1{font-size:1.4rem}label{display:block;margin-top:.8rem;font-weight:600}
            input[type=text],input[type=password],select{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
            button{margin-top:1rem;padding:.55rem 1.1rem;font-size:1rem;margin-right:.5rem}
            .error{background:#fde8e8;border:1px solid #c62828;padding:.6rem;border-radius:4px}
            .hint{color:#555;font-size:.9rem}
            code{font-size:1.1rem;letter-spacing:.1rem}
            body:has(table){max-width:40rem}table{border-collapse:collapse;width:100%;margin-top:1rem}td,th{text-align:left;padding:.35rem .4rem;border-bottom:1px solid #ddd}
            .or{margin:1.4rem 0 .2rem;color:#555}
            </style>\(script)
            </head>
            <body>
            <main>
            \(body)
            </main>
            </body>
            </html>
            """
    }

    static func hidden(_ fields: [(String, String)]) -> String {
        fields.map { "<input type=\"hidden\" name=\"\(htmlEscaped($0.0))\" value=\"\(htmlEscaped($0.1))\">" }.joined(
            separator: "\n")
    }

    static func error(_ message: String, _ title: String = "Sign-in problem") -> String {
        layout(
            title: title,
            body: "<h1>\(htmlEscaped(title))</h1>\n" + alert(message))
    }

    /// A message the page announces (screen readers read it at once); nothing without one.
    static func alert(_ message: String?) -> String {
        message.map { "<p class=\"error\" role=\"alert\">\(htmlEscaped($0))</p>" } ?? ""
    }

    /// A connector the person can sign in through: its id (the form's value) and what the page calls it.
    struct ConnectorChoice: Equatable {
        var id: String
        var name: String
        /// Another OpenID Provider: a "Sign in with" button rather than a choice for the password form.
        var upstream: Bool = false
    }

    /// "Sign in with": shown only when there is more than one password connector; `selected` is kept after a failed
    /// attempt.
    static func connectorField(_ choices: [ConnectorChoice], selected: String?) -> String {
        let password = choices.filter { !$0.upstream }
        guard password.count > 1 else { return "" }
        let options = password.map { choice in
            let mark = choice.id == selected ? " selected" : ""
            return "<option value=\"\(htmlEscaped(choice.id))\"\(mark)>\(htmlEscaped(choice.name))</option>"
        }
        return """
            <label for="connector">Sign in with</label>
            <select id="connector" name="connector">
            \(options.joined(separator: "\n"))
            </select>
            """
    }

    /// One button per upstream provider, submitting the same form (its hidden fields carry the request).
    static func upstreamButtons(_ choices: [ConnectorChoice]) -> String {
        choices.filter(\.upstream).map {
            "<button type=\"submit\" name=\"upstream\" value=\"\(htmlEscaped($0.id))\" formnovalidate>Sign in with \(htmlEscaped($0.name))</button>"
        }.joined(separator: "\n")
    }

    /// Whether the page has a password form at all (only upstream providers configured: buttons only).
    static func hasPasswordForm(_ choices: [ConnectorChoice]) -> Bool {
        choices.isEmpty || choices.contains { !$0.upstream }
    }

    static func credentialFields(
        username: String, connectors: [ConnectorChoice] = [], selected: String? = nil, passkeys: Bool = false
    ) -> String {
        // "webauthn" in autocomplete lets the browser offer passkeys in the field's autofill (conditional UI).
        connectorField(connectors, selected: selected) + """

            <label for="username">Username</label>
            <input type="text" id="username" name="username" value="\(htmlEscaped(username))" autocomplete="username\(passkeys ? " webauthn" : "")" autocapitalize="none" required autofocus>
            <label for="password">Password</label>
            <input type="password" id="password" name="password" autocomplete="current-password" required>
            <label for="otp">One-time code <span class="hint">(only if your account has one)</span></label>
            <input type="text" id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*">
            """
    }

    /// A form that signs in with a passkey: posts `passkey_state` and the browser's `credential` to `action` with
    /// `fields`. `conditional`: also offered in the user-name field's autofill; `autostart`: asked for at once.
    static func passkeyForm(
        action: String, fields: [(String, String)], ceremony: PasskeyCeremonyStart, button: String,
        conditional: Bool = false, autostart: Bool = false
    ) -> String {
        let marks = (conditional ? " data-conditional" : "") + (autostart ? " data-autostart" : "")
        return """
            <form method="post" action="\(htmlEscaped(action))" data-passkey="get" data-options="\(htmlEscaped(ceremony.options))"\(marks)>
            \(hidden(fields + [("passkey_state", ceremony.state), ("credential", "")]))
            <p class="error" role="alert" data-passkey-error hidden></p>
            <p class="hint" data-passkey-unsupported hidden>This browser cannot use passkeys.</p>
            <button type="button" data-passkey-button>\(htmlEscaped(button))</button>
            </form>
            """
    }

    static func login(
        clientID: String, request: [(String, String)], csrf: String, username: String = "", message: String? = nil,
        connectors: [ConnectorChoice] = [], selected: String? = nil, passkey: PasskeyCeremonyStart? = nil
    ) -> String {
        return layout(
            title: "Sign in",
            body: """
                <h1>Sign in</h1>
                <p>to continue to <strong>\(htmlEscaped(clientID))</strong></p>
                \(alert(message))
                <form method="post" action="/authorize">
                \(hidden(request + [("csrf", csrf)]))
                \(hasPasswordForm(connectors) ? credentialFields(username: username, connectors: connectors, selected: selected, passkeys: passkey != nil) + "\n<button type=\"submit\" name=\"action\" value=\"login\">Sign in</button>" : "")
                \(upstreamButtons(connectors))
                <button type="submit" name="action" value="cancel" formnovalidate>Cancel</button>
                </form>
                \(passkey.map { passkeyForm(action: "/authorize", fields: request + [("csrf", csrf), ("action", "passkey")], ceremony: $0, button: "Sign in with a passkey", conditional: true) }.map { "<p class=\"or\">or</p>\n" + $0 } ?? "")
                """)
    }

    /// The passkeys page's sign-in (first, or again after 15 minutes): as a person of idp.yaml, whose passkeys these are.
    static func passkeysSignIn(csrf: String, message: String?, passkey: PasskeyCeremonyStart?) -> String {
        return layout(
            title: "Security keys and passkeys",
            body: """
                <h1>Security keys and passkeys</h1>
                <p>Sign in to see and change your passkeys.</p>
                \(alert(message))
                <form method="post" action="/passkeys">
                \(hidden([("csrf", csrf), ("action", "login")]))
                \(credentialFields(username: "", passkeys: passkey != nil))
                <button type="submit">Sign in</button>
                </form>
                \(passkey.map { "<p class=\"or\">or</p>\n" + passkeyForm(action: "/passkeys", fields: [("csrf", csrf), ("action", "passkey")], ceremony: $0, button: "Sign in with a passkey", conditional: true) } ?? "")
                """)
    }

    /// "Security keys and passkeys": the person's passkeys (name, created, last used, remove) and a form to add one.
    static func passkeys(
        username: String, passkeys: [PasskeyRecord], csrf: String, registration: PasskeyCeremonyStart,
        notice: String?, message: String?
    ) -> String {
        let status = notice.map { "<p role=\"status\">\(htmlEscaped($0))</p>" } ?? ""
        let rows = passkeys.map { passkey in
            """
            <tr><td>\(htmlEscaped(passkey.name))<br><span class="hint">\(passkey.backupEligible ? "synced passkey" : "device-bound key")</span></td>\
            <td>\(day(passkey.createdAt))</td><td>\(passkey.lastUsedAt.map(day) ?? "never")</td>\
            <td><form method="post" action="/passkeys">\(hidden([("csrf", csrf), ("action", "remove"), ("credential_id", passkey.credentialID)]))\
            <button type="submit" aria-label="Remove \(htmlEscaped(passkey.name))">Remove</button></form></td></tr>
            """
        }
        let table =
            passkeys.isEmpty
            ? "<p>You have no passkeys yet. Add one to sign in without a password, or as your second factor.</p>"
            : """
            <table><thead><tr><th scope="col">Name</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col"></th></tr></thead>
            <tbody>
            \(rows.joined(separator: "\n"))
            </tbody></table>
            """
        return layout(
            title: "Security keys and passkeys",
            body: """
                <h1>Security keys and passkeys</h1>
                <p>Signed in as <strong>\(htmlEscaped(username))</strong>.</p>
                \(status)
                \(alert(message))
                \(table)
                <h2>Add a passkey</h2>
                \(createForm(action: "/passkeys", fields: [("csrf", csrf), ("action", "register")], registration: registration))
                """)
    }

    /// The form that registers a passkey (the script runs `navigator.credentials.create` when it is submitted).
    static func createForm(action: String, fields: [(String, String)], registration: PasskeyCeremonyStart) -> String {
        """
        <form method="post" action="\(htmlEscaped(action))" data-passkey="create" data-options="\(htmlEscaped(registration.options))">
        \(hidden(fields + [("passkey_state", registration.state), ("credential", "")]))
        <label for="name">Name</label>
        <input type="text" id="name" name="name" maxlength="64" placeholder="YubiKey 5C, work laptop" required>
        <p class="error" role="alert" data-passkey-error hidden></p>
        <p class="hint" data-passkey-unsupported hidden>This browser cannot use passkeys.</p>
        <button type="submit">Add a passkey</button>
        </form>
        """
    }

    /// An enrolment link's page: add a passkey for the person the link names.
    static func enrol(
        username: String, csrf: String, token: String, registration: PasskeyCeremonyStart, message: String?
    ) -> String {
        return layout(
            title: "Add a passkey",
            body: """
                <h1>Add a passkey</h1>
                <p>Your administrator sent you this link to add a passkey for <strong>\(htmlEscaped(username))</strong>. It works once.</p>
                \(alert(message))
                \(createForm(action: "/passkeys/enrol", fields: [("csrf", csrf), ("token", token)], registration: registration))
                """)
    }

    static func enrolled() -> String {
        layout(
            title: "Passkey added",
            body:
                "<h1>Passkey added</h1>\n<p role=\"status\">You can now sign in with it. The enrolment link is used up.</p>"
        )
    }

    /// A date as the pages show it: 2026-12-07 08:45 UTC.
    static func day(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm 'UTC'"
        return formatter.string(from: date)
    }

    /// The step after a right password for a person with passkeys: the browser asks for one at once.
    static func passkeyStep(action: String, fields: [(String, String)], ceremony: PasskeyCeremonyStart) -> String {
        layout(
            title: "Confirm with your passkey",
            body: """
                <h1>Confirm with your passkey</h1>
                <p>Your password is right. Use your passkey or security key to finish signing in.</p>
                \(passkeyForm(action: action, fields: fields, ceremony: ceremony, button: "Use my passkey", autostart: true))
                <p class="hint">No passkey at hand? If your account also has a one-time code, sign in again with your password and the code.</p>
                """)
    }

    static func consent(clientID: String, scope: String, request: [(String, String)], csrf: String, username: String)
        -> String
    {
        layout(
            title: "Allow access",
            body: """
                <h1>Allow access?</h1>
                <p><strong>\(htmlEscaped(clientID))</strong> asks to know who you are (\(htmlEscaped(username))) with the scopes <code>\(htmlEscaped(scope))</code>.</p>
                <form method="post" action="/authorize">
                \(hidden(request + [("csrf", csrf)]))
                <button type="submit" name="action" value="allow">Allow</button>
                <button type="submit" name="action" value="deny">Deny</button>
                </form>
                """)
    }

    /// The device page; `request` names the client and scopes of the code in the link, when it is pending.
    static func device(
        connectors: [ConnectorChoice] = [], selected: String? = nil, userCode: String, csrf: String,
        signedInAs: String?, request: (client: String, scope: String)? = nil, message: String? = nil,
        passkey: PasskeyCeremonyStart? = nil
    ) -> String {
        // Upstream providers are not offered here yet: a person signed in through one (in this browser) is recognised.
        let who =
            signedInAs.map { "<p>Signed in as <strong>\(htmlEscaped($0))</strong>.</p>" }
            ?? (hasPasswordForm(connectors)
                ? credentialFields(username: "", connectors: connectors, selected: selected)
                : "<p class=\"hint\">Sign in first in this browser (run <code>keyless login</code> without --device, or open the application's sign-in), then open this page again.</p>")
        let asking =
            request.map {
                "<p class=\"request\">This code is for <strong>\(htmlEscaped($0.client))</strong>, asking for the scopes <code>\(htmlEscaped($0.scope))</code>. "
                    + "Approve only if you started this on your own device just now.</p>"
            } ?? ""
        return layout(
            title: "Connect a device",
            body: """
                <h1>Connect a device</h1>
                <p>Enter the code shown on your device or terminal.</p>
                \(asking)
                \(alert(message))
                <form method="post" action="/device">
                \(hidden([("csrf", csrf)]))
                <label for="user_code">Code</label>
                <input type="text" id="user_code" name="user_code" value="\(htmlEscaped(userCode))" autocomplete="off" autocapitalize="characters" required>
                \(who)
                <button type="submit" name="action" value="approve">Approve</button>
                <button type="submit" name="action" value="deny">Deny</button>
                </form>
                \(passkey.map { "<p class=\"or\">or</p>\n" + passkeyForm(action: "/device", fields: [("csrf", csrf), ("user_code", userCode), ("action", "approve")], ceremony: $0, button: "Approve with a passkey") } ?? "")
                """)
    }

    /// Consent for a third-party client's device request (RFC 8628 §5.4: name the client, and ask).
    static func deviceConsent(clientID: String, scope: String, userCode: String, csrf: String, username: String)
        -> String
    {
        layout(
            title: "Allow access",
            body: """
                <h1>Allow access?</h1>
                <p><strong>\(htmlEscaped(clientID))</strong> asks, from a device, to act as you (\(htmlEscaped(username))) with the scopes <code>\(htmlEscaped(scope))</code>.</p>
                <p>Allow it only if you started this on your own device just now. Someone who sent you this link or code can otherwise get
                access to your account.</p>
                <form method="post" action="/device">
                \(hidden([("csrf", csrf), ("user_code", userCode), ("step", "consent")]))
                <button type="submit" name="action" value="allow">Allow</button>
                <button type="submit" name="action" value="deny">Deny</button>
                </form>
                """)
    }

    static func deviceDone(approved: Bool) -> String {
        approved
            ? layout(
                title: "Device connected",
                body:
                    "<h1>Device connected</h1>\n<p role=\"status\">You can close this window and go back to your device or terminal.</p>"
            )
            : layout(
                title: "Request denied",
                body: "<h1>Request denied</h1>\n<p role=\"status\">The device was not given access.</p>")
    }
}

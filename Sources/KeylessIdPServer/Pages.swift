import Foundation
import KeylessCore
import KeylessHTTPServer

/// The provider's HTML pages: small, server-rendered, no scripts, every value escaped.
enum Pages {
    static func layout(title: String, body: String) -> String {
        htmlDocumentStart + """

            <title>\(htmlEscaped(title)) · keyless</title>
            <style>
            body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}
            h1{font-size:1.4rem}label{display:block;margin-top:.8rem;font-weight:600}
            input[type=text],input[type=password],select{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
            button{margin-top:1rem;padding:.55rem 1.1rem;font-size:1rem;margin-right:.5rem}
            .error{background:#fde8e8;border:1px solid #c62828;padding:.6rem;border-radius:4px}
            .hint{color:#555;font-size:.9rem}
            code{font-size:1.1rem;letter-spacing:.1rem}
            </style>
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
            body: "<h1>\(htmlEscaped(title))</h1>\n<p class=\"error\" role=\"alert\">\(htmlEscaped(message))</p>")
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

    static func credentialFields(username: String, connectors: [ConnectorChoice] = [], selected: String? = nil)
        -> String
    {
        connectorField(connectors, selected: selected) + """

            <label for="username">Username</label>
            <input type="text" id="username" name="username" value="\(htmlEscaped(username))" autocomplete="username" autocapitalize="none" required autofocus>
            <label for="password">Password</label>
            <input type="password" id="password" name="password" autocomplete="current-password" required>
            <label for="otp">One-time code <span class="hint">(only if your account has one)</span></label>
            <input type="text" id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*">
            """
    }

    static func login(
        clientID: String, request: [(String, String)], csrf: String, username: String = "", message: String? = nil,
        connectors: [ConnectorChoice] = [], selected: String? = nil
    ) -> String {
        let alert = message.map { "<p class=\"error\" role=\"alert\">\(htmlEscaped($0))</p>" } ?? ""
        return layout(
            title: "Sign in",
            body: """
                <h1>Sign in</h1>
                <p>to continue to <strong>\(htmlEscaped(clientID))</strong></p>
                \(alert)
                <form method="post" action="/authorize">
                \(hidden(request + [("csrf", csrf)]))
                \(hasPasswordForm(connectors) ? credentialFields(username: username, connectors: connectors, selected: selected) + "\n<button type=\"submit\" name=\"action\" value=\"login\">Sign in</button>" : "")
                \(upstreamButtons(connectors))
                <button type="submit" name="action" value="cancel" formnovalidate>Cancel</button>
                </form>
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
        signedInAs: String?, request: (client: String, scope: String)? = nil, message: String? = nil
    ) -> String {
        let alert = message.map { "<p class=\"error\" role=\"alert\">\(htmlEscaped($0))</p>" } ?? ""
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
                \(alert)
                <form method="post" action="/device">
                \(hidden([("csrf", csrf)]))
                <label for="user_code">Code</label>
                <input type="text" id="user_code" name="user_code" value="\(htmlEscaped(userCode))" autocomplete="off" autocapitalize="characters" required>
                \(who)
                <button type="submit" name="action" value="approve">Approve</button>
                <button type="submit" name="action" value="deny">Deny</button>
                </form>
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

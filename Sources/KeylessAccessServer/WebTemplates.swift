import KeylessHTTPServer

/// The web page's Mustache templates. `{{x}}` escapes HTML; only `{{{body}}}`, itself rendered with escaping, is raw.
enum WebTemplates {
    static let layout =
        htmlDocumentStart + """

            <title>{{title}} · keyless</title>
            <style>
            :root { color-scheme: light dark; --accent: #1f5fbf; --on-accent: #fff; --muted: #56606c; --line: #d5dae1; --panel: #f5f7fa; --alert: #b3261e; }
            @media (prefers-color-scheme: dark) {
              :root { --accent: #8ab4f8; --on-accent: #0b1b33; --muted: #a4adb8; --line: #3b424b; --panel: #1c2127; --alert: #f28b82; }
            }
            * { box-sizing: border-box; }
            body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; }
            header { min-height: 3.75rem; display: flex; flex-wrap: wrap; gap: .5rem 1rem; justify-content: space-between; align-items: center; padding: .75rem 1.5rem; border-bottom: 1px solid var(--line); }
            header .brand { font-weight: 700; font-size: 1.15rem; text-decoration: none; color: inherit; letter-spacing: .01em; }
            header form { display: flex; align-items: center; gap: .75rem; margin: 0; }
            main { max-width: 72rem; margin: 0 auto; padding: 1.25rem 1.5rem 3rem; }
            h1 { font-size: 1.6rem; margin: .25rem 0 .75rem; }
            h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
            a { color: var(--accent); }
            code, pre, .arn { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
            table { width: 100%; border-collapse: collapse; table-layout: fixed; }
            .col-role { width: 32%; } .col-session { width: 10rem; } .col-actions { width: 20rem; }
            th, td { text-align: left; padding: .6rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
            thead th { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); font-weight: 600; }
            tbody th { font-weight: 600; }
            .arn { display: block; font-weight: 400; font-size: .8rem; color: var(--muted); overflow-wrap: anywhere; }
            td.actions, th.actions { white-space: nowrap; text-align: right; }
            td.actions form { display: inline; margin: 0; }
            td.actions form + form { margin-left: .4rem; }
            td.actions form.stack { display: flex; flex-wrap: wrap; gap: .4rem; justify-content: flex-end; margin: 0 0 .5rem; white-space: normal; }
            td.actions form.stack + form.stack { margin-left: 0; }
            form.stack input, form.stack select { font: inherit; font-size: .9rem; padding: .35rem .5rem; border: 1px solid var(--line); border-radius: .45rem; background: transparent; color: inherit; }
            form.stack input { flex: 1 1 8rem; min-width: 0; }
            button, .button { font: inherit; font-size: .95rem; line-height: 1.3; padding: .4rem .85rem; border-radius: .45rem; border: 1px solid var(--accent);
              background: var(--accent); color: var(--on-accent); cursor: pointer; text-decoration: none; display: inline-block; }
            button.secondary { background: transparent; color: var(--accent); }
            button:hover, .button:hover { filter: brightness(1.1); }
            button:focus-visible, .button:focus-visible, a:focus-visible { outline: 3px solid #f0a500; outline-offset: 2px; }
            .button.large { font-size: 1.05rem; padding: .6rem 1.4rem; }
            pre.copy { user-select: all; -webkit-user-select: all; background: var(--panel); border: 1px solid var(--line); padding: .75rem 1rem; border-radius: .45rem;
              white-space: pre-wrap; overflow-wrap: anywhere; font-size: .9rem; margin: 0 0 1rem; }
            .muted { color: var(--muted); }
            dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0 0 1rem; }
            dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
            dl.facts dd.arn { font-size: .9rem; color: inherit; }
            .notice { border-left: 4px solid var(--alert); padding: .5rem 1rem; background: rgba(179,38,30,.08); }
            .badge { font-size: .72rem; font-weight: 600; border: 1px solid var(--muted); border-radius: 1rem; padding: 0 .5rem; margin-left: .35rem; color: var(--muted); white-space: nowrap; vertical-align: .1em; }
            @media (max-width: 48rem) {
              main, header { padding-left: 1rem; padding-right: 1rem; }
              table, tbody, tr, th, td { display: block; width: auto; }
              colgroup { display: none; }
              thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
              tr { border-bottom: 1px solid var(--line); padding: .6rem 0; }
              th, td { border: 0; padding: .15rem 0; }
              td.session::before { content: "Longest session: "; color: var(--muted); }
              td.actions { text-align: left; white-space: normal; padding-top: .5rem; }
            }
            </style>
            </head>
            <body>
            <header><a class="brand" href="/">keyless</a>{{#name}}<form method="post" action="/logout"><span class="muted">{{name}}</span><input type="hidden" name="csrf" value="{{csrf}}"><button class="secondary" type="submit">Sign out</button></form>{{/name}}</header>
            <main id="main">
            {{{body}}}
            </main>
            </body>
            </html>
            """

    static let signIn = """
        <h1>Sign in</h1>
        <p>keyless gives you short-lived AWS credentials and console sessions for the roles you are allowed to use.</p>
        <p><a class="button large" href="/login">Sign in</a></p>
        <p class="muted">You sign in at your organisation's identity provider, {{issuer}}.</p>
        """

    static let roles = """
        <h1>Your AWS roles</h1>
        {{#notice}}<p class="notice" role="alert">{{notice}}</p>{{/notice}}
        <p class="muted">Signed in as <strong>{{name}}</strong>{{#hasGroups}} · groups: {{groups}}{{/hasGroups}}</p>
        {{#hasToApprove}}
        <section aria-labelledby="to-approve">
        <h2 id="to-approve">Waiting for your approval</h2>
        <table>
        <colgroup><col class="col-role"><col><col class="col-session"><col class="col-actions"></colgroup>
        <thead><tr><th scope="col">Request</th><th scope="col">Reason</th><th scope="col">For</th><th scope="col" class="actions">Decide</th></tr></thead>
        <tbody>
        {{#toApprove}}
        <tr id="request-{{id}}">
        <th scope="row">{{role}}<span class="arn">{{requester}} · asked {{createdAt}} · {{id}}</span></th>
        <td>{{reason}}</td>
        <td class="session">{{duration}}</td>
        <td class="actions">
        <form method="post" action="/web/requests/approve" class="stack"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="id" value="{{id}}"><input name="reason" placeholder="Note (optional)" aria-label="Note for {{requester}}" maxlength="500"> <button type="submit" name="decision" value="approve" aria-label="Approve {{role}} for {{requester}}">Approve</button></form>
        <form method="post" action="/web/requests/deny" class="stack"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="id" value="{{id}}"><input name="reason" required placeholder="Why not" aria-label="Why {{requester}} is denied" maxlength="500"> <button class="secondary" type="submit" name="decision" value="deny" aria-label="Deny {{role}} for {{requester}}">Deny</button></form>
        </td>
        </tr>
        {{/toApprove}}
        </tbody>
        </table>
        </section>
        {{/hasToApprove}}
        {{#hasActive}}
        <section aria-labelledby="in-force">
        <h2 id="in-force">Grants in force that you may end</h2>
        <table>
        <tbody>
        {{#active}}
        <tr id="request-{{id}}"><th scope="row">{{role}}<span class="arn">{{requester}} · {{id}}</span></th><td>{{state}}</td>
        <td class="actions"><form method="post" action="/web/requests/revoke"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="id" value="{{id}}"><button class="secondary" type="submit" name="decision" value="revoke" aria-label="End {{role}} for {{requester}} now">End now</button></form></td></tr>
        {{/active}}
        </tbody>
        </table>
        </section>
        {{/hasActive}}
        {{^hasAccounts}}<p role="status">No roles are granted to you. Ask an administrator to add you to a group in the keyless policy.</p>{{/hasAccounts}}
        {{#accounts}}
        <section aria-labelledby="{{anchor}}">
        <h2 id="{{anchor}}">{{heading}}</h2>
        <table>
        <colgroup><col class="col-role"><col><col class="col-session"><col class="col-actions"></colgroup>
        <thead><tr><th scope="col">Role</th><th scope="col">Description</th><th scope="col">Longest session</th><th scope="col" class="actions">Actions</th></tr></thead>
        <tbody>
        {{#roles}}
        <tr>
        <th scope="row">{{name}}{{#passkey}}<span class="badge">Passkey required</span>{{/passkey}}{{^passkey}}{{#mfa}}<span class="badge">MFA required</span>{{/mfa}}{{/passkey}}{{#onRequest}}<span class="badge">On request</span>{{/onRequest}}<span class="arn">{{arn}}</span></th>
        <td>{{description}}{{#grantedUntil}}<p class="muted">Granted to you until {{grantedUntil}}.</p>{{/grantedUntil}}{{#pending}}<p class="muted">Your request {{pending}} is waiting for an approver.</p>{{/pending}}</td>
        <td class="session">{{session}}</td>
        <td class="actions">
        {{#usable}}
        <form method="post" action="/web/console" target="_blank"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="role_arn" value="{{arn}}"><button type="submit" aria-label="Open console as {{label}} (new tab)">Open console</button></form>
        <form method="post" action="/web/credentials"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="role_arn" value="{{arn}}"><button class="secondary" type="submit" aria-label="Shell credentials for {{label}}">Shell credentials</button></form>
        {{/usable}}
        {{#askable}}
        <form method="post" action="/web/requests" class="stack"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="role_arn" value="{{arn}}">
        <select name="duration" aria-label="For how long ({{label}})">{{#durations}}<option value="{{seconds}}"{{#selected}} selected{{/selected}}>{{text}}</option>{{/durations}}</select>
        <input name="reason" {{#reasonRequired}}required {{/reasonRequired}}placeholder="Reason{{^reasonRequired}} (optional){{/reasonRequired}}" aria-label="Reason for {{label}}" maxlength="500">
        <button type="submit" aria-label="Request {{label}}">Request access</button></form>
        {{/askable}}
        </td>
        </tr>
        {{/roles}}
        </tbody>
        </table>
        </section>
        {{/accounts}}
        {{#hasMine}}
        <section aria-labelledby="your-requests">
        <h2 id="your-requests">Your requests</h2>
        <table>
        <tbody>
        {{#mine}}
        <tr id="request-{{id}}"><th scope="row">{{role}}<span class="arn">{{id}} · asked {{createdAt}} for {{duration}}</span></th><td>{{state}}</td>
        <td class="actions">{{#open}}<form method="post" action="/web/requests/revoke"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="id" value="{{id}}"><button class="secondary" type="submit" name="decision" value="revoke">{{open}}</button></form>{{/open}}</td></tr>
        {{/mine}}
        </tbody>
        </table>
        </section>
        {{/hasMine}}
        <h2>Set up your terminal</h2>
        <p>Run this once; it writes a profile for each of your roles to <code>~/.aws/config</code>:</p>
        <pre class="copy">{{configure}}</pre>
        """

    static let credentials = """
        <h1>Shell credentials for {{roleName}}</h1>
        <dl class="facts"><dt>Role</dt><dd class="arn">{{role}}</dd><dt>Valid until</dt><dd>{{expires}}</dd></dl>
        <p>Paste these lines into a terminal (one click selects them all). Anyone who has them can act as this role until they expire: keep them out of chats, tickets and shell history files.</p>
        <pre class="copy">{{exports}}</pre>
        <p><a href="/">Back to your roles</a></p>
        """

    static let message = """
        <h1>{{title}}</h1>
        <p role="alert">{{message}}</p>
        <p><a href="/">Back to the start page</a></p>
        """
}

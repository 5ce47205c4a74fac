/// The web page's Mustache templates. `{{x}}` escapes HTML; only `{{{body}}}`, itself rendered with escaping, is raw.
enum WebTemplates {
    static let layout = """
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{{title}} · keyless</title>
    <style>
    :root { color-scheme: light dark; --accent: #1f5fbf; --muted: #5b6470; --line: #d0d5dc; }
    body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; }
    header { display: flex; justify-content: space-between; align-items: center; padding: .75rem 1.5rem; border-bottom: 1px solid var(--line); }
    header .brand { font-weight: 700; font-size: 1.1rem; text-decoration: none; color: inherit; }
    main { max-width: 64rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
    h1 { font-size: 1.5rem; margin: .5rem 0 1rem; }
    h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
    table { width: 100%; border-collapse: collapse; }
    th, td { text-align: left; padding: .5rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-size: .85rem; color: var(--muted); font-weight: 600; }
    td.actions { white-space: nowrap; }
    td.actions form { display: inline; }
    button, .button { font: inherit; padding: .35rem .8rem; border-radius: .4rem; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
    button.secondary { background: transparent; color: var(--accent); }
    button:focus-visible, .button:focus-visible { outline: 3px solid #f0a500; outline-offset: 2px; }
    pre.copy { user-select: all; -webkit-user-select: all; background: rgba(127,127,127,.12); padding: .75rem 1rem; border-radius: .4rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
    .muted { color: var(--muted); }
    .notice { border-left: 4px solid #c0392b; padding: .5rem 1rem; background: rgba(192,57,43,.08); }
    .badge { font-size: .75rem; border: 1px solid var(--muted); border-radius: 1rem; padding: 0 .5rem; color: var(--muted); }
    </style>
    </head>
    <body>
    <header><a class="brand" href="/">keyless</a>{{#name}}<form method="post" action="/logout"><span class="muted">{{name}}</span> <input type="hidden" name="csrf" value="{{csrf}}"><button class="secondary" type="submit">Sign out</button></form>{{/name}}</header>
    <main id="main">
    {{{body}}}
    </main>
    </body>
    </html>
    """

    static let signIn = """
    <h1>Sign in</h1>
    <p>keyless gives you short-lived AWS credentials and console sessions for the roles you are allowed to use.</p>
    <p><a class="button" href="/login">Sign in with {{issuer}}</a></p>
    """

    static let roles = """
    <h1>Your AWS roles</h1>
    {{#notice}}<p class="notice" role="alert">{{notice}}</p>{{/notice}}
    <p class="muted">Signed in as <strong>{{name}}</strong>{{#groups}} · groups: {{groups}}{{/groups}}</p>
    {{^hasAccounts}}<p role="status">No roles are granted to you. Ask an administrator to add you to a group in the keyless policy.</p>{{/hasAccounts}}
    {{#accounts}}
    <section aria-labelledby="{{anchor}}">
    <h2 id="{{anchor}}">{{heading}}</h2>
    <table>
    <thead><tr><th scope="col">Role</th><th scope="col">Description</th><th scope="col">Longest session</th><th scope="col">Actions</th></tr></thead>
    <tbody>
    {{#roles}}
    <tr>
    <th scope="row">{{name}} {{#mfa}}<span class="badge" title="This role needs a sign-in with a second factor">MFA</span>{{/mfa}}<br><span class="muted">{{arn}}</span></th>
    <td>{{description}}</td>
    <td>{{session}}</td>
    <td class="actions">
    <form method="post" action="/web/console" target="_blank"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="role_arn" value="{{arn}}"><button type="submit" aria-label="Open the AWS console as {{name}}">Open console</button></form>
    <form method="post" action="/web/credentials"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="role_arn" value="{{arn}}"><button class="secondary" type="submit" aria-label="Shell credentials for {{name}}">Shell credentials</button></form>
    </td>
    </tr>
    {{/roles}}
    </tbody>
    </table>
    </section>
    {{/accounts}}
    <h2 id="terminal">Set up your terminal</h2>
    <p>Run this once; it writes a profile for each of your roles to <code>~/.aws/config</code>:</p>
    <pre class="copy" aria-labelledby="terminal">{{configure}}</pre>
    """

    static let credentials = """
    <h1>Shell credentials for {{roleName}}</h1>
    <p class="muted">{{role}} · valid until {{expires}}</p>
    <p id="paste">Paste these lines into a terminal (one click selects them all):</p>
    <pre class="copy" aria-labelledby="paste">{{exports}}</pre>
    <p><a href="/">Back to your roles</a></p>
    """

    static let message = """
    <h1>{{title}}</h1>
    <p role="alert">{{message}}</p>
    <p><a href="/">Back to the start page</a></p>
    """
}

import HTTPTypes
import Hummingbird
import NIOCore

/// The provider's one script, served from `/passkeys.js` (the pages allow `script-src 'self'` and nothing inline): it
/// runs the WebAuthn ceremonies a page describes and posts their answer with the page's form.
///
/// A form with `data-passkey="get"` or `"create"` carries the options (`data-options`, the JSON the provider wrote,
/// binary members base64url) and a hidden `credential` field. `get` runs on its button (`data-passkey-button`), at once
/// when the form says `data-autostart` (the step after a password), and as conditional UI (the browser's autofill on
/// the user-name field) when the form says `data-conditional` and the browser can. `create` runs when its form is
/// submitted. Failures are shown in the form's `[data-passkey-error]` element; nothing is posted then.
enum PasskeyScript {
    static let path = "/passkeys.js"

    static let source = #"""
        "use strict";
        (function () {
          function encode(buffer) {
            var bytes = new Uint8Array(buffer), text = "";
            for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
            return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
          }
          function decode(text) {
            var padded = text.replace(/-/g, "+").replace(/_/g, "/");
            while (padded.length % 4) padded += "=";
            var binary = atob(padded), bytes = new Uint8Array(binary.length);
            for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
            return bytes.buffer;
          }
          function descriptors(list) {
            return (list || []).map(function (d) {
              var copy = { type: d.type, id: decode(d.id) };
              if (d.transports) copy.transports = d.transports;
              return copy;
            });
          }
          function answer(credential) {
            var r = credential.response, out = { id: credential.id, rawId: encode(credential.rawId),
              type: credential.type, response: { clientDataJSON: encode(r.clientDataJSON) } };
            if (r.attestationObject) {
              out.response.attestationObject = encode(r.attestationObject);
              out.response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
            } else {
              out.response.authenticatorData = encode(r.authenticatorData);
              out.response.signature = encode(r.signature);
              out.response.userHandle = r.userHandle ? encode(r.userHandle) : null;
            }
            return JSON.stringify(out);
          }
          function fail(form, error) {
            var box = form.querySelector("[data-passkey-error]");
            if (!box) return;
            box.hidden = false;
            box.textContent = error && error.name === "NotAllowedError"
              ? "The passkey request was cancelled or timed out. Try again."
              : error && error.name === "InvalidStateError"
              ? "This authenticator already holds a passkey for your account."
              : "The browser could not use a passkey: " + (error && error.message ? error.message : error);
          }
          function submit(form, credential) {
            form.querySelector("input[name=credential]").value = answer(credential);
            form.submit();
          }
          if (!window.PublicKeyCredential) {
            document.querySelectorAll("[data-passkey-unsupported]").forEach(function (e) { e.hidden = false; });
            return;
          }
          document.querySelectorAll("form[data-passkey=get]").forEach(function (form) {
            var options = JSON.parse(form.dataset.options), pending = null;
            function request(mediation) {
              if (pending) pending.abort();
              pending = new AbortController();
              var publicKey = Object.assign({}, options, { challenge: decode(options.challenge),
                allowCredentials: descriptors(options.allowCredentials) });
              var call = { publicKey: publicKey, signal: pending.signal };
              if (mediation) call.mediation = mediation;
              return navigator.credentials.get(call).then(function (credential) {
                if (credential) submit(form, credential);
              });
            }
            var button = form.querySelector("[data-passkey-button]");
            if (button) button.addEventListener("click", function () {
              request(null).catch(function (error) { if (error.name !== "AbortError") fail(form, error); });
            });
            if (form.hasAttribute("data-autostart")) {
              request(null).catch(function (error) { if (error.name !== "AbortError") fail(form, error); });
            } else if (form.hasAttribute("data-conditional") &&
                typeof PublicKeyCredential.isConditionalMediationAvailable === "function") {
              PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
                if (available) request("conditional").catch(function () {});
              });
            }
          });
          document.querySelectorAll("form[data-passkey=create]").forEach(function (form) {
            var options = JSON.parse(form.dataset.options);
            form.addEventListener("submit", function (event) {
              if (form.querySelector("input[name=credential]").value) return;
              event.preventDefault();
              var publicKey = Object.assign({}, options, { challenge: decode(options.challenge),
                user: Object.assign({}, options.user, { id: decode(options.user.id) }),
                excludeCredentials: descriptors(options.excludeCredentials) });
              navigator.credentials.create({ publicKey: publicKey }).then(function (credential) {
                submit(form, credential);
              }).catch(function (error) { fail(form, error); });
            });
          });
        })();
        """#

    static func response() -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "public, max-age=300"],
            body: .init(byteBuffer: ByteBuffer(string: source)))
    }

    /// The Content-Security-Policy of a page that runs the script: the provider's usual one, plus its own script.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
}

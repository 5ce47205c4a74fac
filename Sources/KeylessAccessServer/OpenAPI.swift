/// The API's OpenAPI 3.1 description, served at /openapi.yaml (and checked against the routes in tests).
enum OpenAPIDocument {
    static let yaml = """
        openapi: 3.1.0
        info:
          title: keyless access server
          version: "1"
          description: >-
            Who may assume which AWS role, and short-lived credentials and console links for them. Every /api/v1 call
            needs an OIDC token from a trusted issuer (the ID token `keyless login` keeps) as a bearer token.
        servers:
          - url: /
        security:
          - bearer: []
        components:
          securitySchemes:
            bearer:
              type: http
              scheme: bearer
              bearerFormat: JWT
          schemas:
            Error:
              type: object
              required: [error, error_description, request_id]
              properties:
                error: {type: string, description: "missing_token, invalid_token, not_granted, approval_required, mfa_required, phishing_resistant_required, unknown_role, invalid_request, upstream_error, audit_unavailable, issuer_unavailable; for requests also not_eligible, reason_required, already_requested, already_granted, not_found, not_pending, not_active, not_an_approver, self_approval_refused, requests_unavailable"}
                error_description: {type: string}
                request_id: {type: string}
            Role:
              type: object
              required: [arn, name, max_session_seconds, mfa_required, credentials, region, profile, credential_process]
              properties:
                arn: {type: string}
                name: {type: string}
                description: {type: string}
                max_session_seconds: {type: integer, minimum: 900, maximum: 43200}
                mfa_required: {type: boolean}
                passkey_required: {type: boolean, description: "present (true) when the role needs a passkey or security key sign-in (mfa_required: phishing-resistant)"}
                on_request:
                  type: object
                  description: present when the caller may have the role only on request (POST /api/v1/requests)
                  required: [max_duration_seconds, approver_groups, self_approval, reason_required]
                  properties:
                    max_duration_seconds: {type: integer, minimum: 900, maximum: 86400}
                    approver_groups: {type: array, items: {type: string}}
                    self_approval: {type: boolean, description: the requester may approve their own request (break-glass)}
                    reason_required: {type: boolean}
                credentials: {type: string, enum: [web-identity, server]}
                region: {type: string}
                profile: {type: string, description: suggested profile name}
                credential_process: {type: string, description: the line configure writes}
            Config:
              type: object
              required: [issuer, client_id, server_url, default_region, caller, accounts]
              properties:
                issuer: {type: string}
                client_id: {type: string}
                server_url: {type: string}
                default_region: {type: string}
                caller:
                  type: object
                  properties:
                    subject: {type: string}
                    name: {type: string}
                    groups: {type: array, items: {type: string}}
                    mfa: {type: boolean}
                accounts:
                  type: array
                  items:
                    type: object
                    required: [id, roles]
                    properties:
                      id: {type: string, pattern: "^[0-9]{12}$"}
                      alias: {type: [string, "null"]}
                      roles: {type: array, items: {$ref: "#/components/schemas/Role"}}
            Credentials:
              type: object
              required: [Version, AccessKeyId, SecretAccessKey, SessionToken, Expiration, RoleArn]
              properties:
                Version: {type: integer, const: 1}
                AccessKeyId: {type: string}
                SecretAccessKey: {type: string}
                SessionToken: {type: string}
                Expiration: {type: string, format: date-time}
                RoleArn: {type: string}
                AssumedRoleArn: {type: string}
            CredentialsRequest:
              type: object
              required: [role_arn]
              properties:
                role_arn: {type: string}
                duration_seconds: {type: integer, minimum: 900, maximum: 43200, description: capped at the role's longest session}
                session_policy: {type: string, description: "an inline session policy (JSON text, at most 2048 characters) narrowing the session; passed to STS as Policy"}
                policy_arns: {type: array, maxItems: 10, items: {type: string}, description: "managed policies narrowing the session; passed to STS as PolicyArns"}
                agent: {type: string, description: "an agent acting for the caller (keyless exec --agent): the session is named agent=NAME,<caller> and tagged keyless-agent=NAME; SourceIdentity stays the caller"}
            ConsoleRequest:
              type: object
              required: [role_arn]
              properties:
                role_arn: {type: string}
                destination: {type: string, description: an AWS console URL (default from the server's configuration)}
            Console:
              type: object
              required: [url]
              properties:
                url: {type: string}
            AccessRequestCreate:
              type: object
              required: [role_arn]
              properties:
                role_arn: {type: string, description: the role's ARN or ACCOUNT/NAME}
                duration_seconds: {type: integer, minimum: 900, maximum: 86400, description: "how long the grant lasts once approved (default one hour, or the most allowed if less)"}
                reason: {type: string, maxLength: 500}
            AccessRequestAction:
              type: object
              properties:
                reason: {type: string, maxLength: 500, description: "the approver's note, the reason of a denial (required), or why a grant ends early"}
            Person:
              type: object
              required: [name, subject]
              properties:
                name: {type: string}
                subject: {type: string}
            AccessRequest:
              type: object
              required: [id, status, role_arn, requester, reason, duration_seconds, created_at, pending_until, self_approved]
              properties:
                id: {type: string, pattern: "^[a-z2-7]{10}$"}
                status: {type: string, enum: [pending, approved, denied, cancelled, expired, revoked]}
                role_arn: {type: string}
                role: {type: string, description: ACCOUNT/NAME while the policy lists the role}
                requester: {$ref: "#/components/schemas/Person"}
                reason: {type: string}
                duration_seconds: {type: integer}
                created_at: {type: string, format: date-time}
                pending_until: {type: string, format: date-time}
                decided_by: {$ref: "#/components/schemas/Person"}
                decided_at: {type: string, format: date-time}
                decision_note: {type: string}
                self_approved: {type: boolean}
                starts_at: {type: string, format: date-time}
                ends_at: {type: string, format: date-time}
                ended_by: {$ref: "#/components/schemas/Person"}
                end_note: {type: string}
                ended_at: {type: string, format: date-time}
            AccessRequests:
              type: object
              required: [mine, to_approve, active]
              properties:
                mine: {type: array, items: {$ref: "#/components/schemas/AccessRequest"}}
                to_approve: {type: array, items: {$ref: "#/components/schemas/AccessRequest"}}
                active: {type: array, items: {$ref: "#/components/schemas/AccessRequest"}}
          responses:
            Unauthorized:
              description: No bearer token, or it was rejected.
              content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
            Forbidden:
              description: The policy does not grant the role to the caller, or it requires MFA.
              content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
            BadRequest:
              description: The body is not the expected JSON, or a value is out of range.
              content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
            BadGateway:
              description: AWS (STS or the sign-in service) failed or is unreachable.
              content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
            NotFound:
              description: No such request, or not one the caller asked for or may approve.
              content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
            Conflict:
              description: The request is no longer pending (or the grant no longer in force), or one is open already.
              content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
            Unavailable:
              description: The request store cannot be used; nothing was granted.
              content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
          parameters:
            RequestID:
              name: id
              in: path
              required: true
              schema: {type: string, pattern: "^[a-z2-7]{10}$"}
        paths:
          /api/v1/config:
            get:
              summary: The caller's accounts and roles, with what configure writes.
              responses:
                "200": {description: The caller's configuration., content: {application/json: {schema: {$ref: "#/components/schemas/Config"}}}}
                "401": {$ref: "#/components/responses/Unauthorized"}
          /api/v1/credentials:
            post:
              summary: Assume a role on the caller's behalf (STS AssumeRole with SourceIdentity and session tags).
              requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/CredentialsRequest"}}}}
              responses:
                "200": {description: Temporary credentials., content: {application/json: {schema: {$ref: "#/components/schemas/Credentials"}}}}
                "400": {$ref: "#/components/responses/BadRequest"}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "403": {$ref: "#/components/responses/Forbidden"}
                "502": {$ref: "#/components/responses/BadGateway"}
          /api/v1/console:
            post:
              summary: A one-time AWS console sign-in URL for a role.
              requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/ConsoleRequest"}}}}
              responses:
                "200": {description: The sign-in URL., content: {application/json: {schema: {$ref: "#/components/schemas/Console"}}}}
                "400": {$ref: "#/components/responses/BadRequest"}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "403": {$ref: "#/components/responses/Forbidden"}
                "502": {$ref: "#/components/responses/BadGateway"}
          /api/v1/requests:
            get:
              summary: The caller's requests, those waiting for their approval, and grants in force they may end.
              responses:
                "200": {description: The requests., content: {application/json: {schema: {$ref: "#/components/schemas/AccessRequests"}}}}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "503": {$ref: "#/components/responses/Unavailable"}
            post:
              summary: Ask for a role the caller may have on request.
              requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/AccessRequestCreate"}}}}
              responses:
                "201": {description: The request, pending., content: {application/json: {schema: {$ref: "#/components/schemas/AccessRequest"}}}}
                "400": {$ref: "#/components/responses/BadRequest"}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "403": {$ref: "#/components/responses/Forbidden"}
                "409": {$ref: "#/components/responses/Conflict"}
                "503": {$ref: "#/components/responses/Unavailable"}
          /api/v1/requests/{id}:
            get:
              summary: One request, for its requester or an approver of its role.
              parameters: [{$ref: "#/components/parameters/RequestID"}]
              responses:
                "200": {description: The request., content: {application/json: {schema: {$ref: "#/components/schemas/AccessRequest"}}}}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "404": {$ref: "#/components/responses/NotFound"}
          /api/v1/requests/{id}/approve:
            post:
              summary: Approve a pending request (an approver; the requester only where the policy says approvers self).
              parameters: [{$ref: "#/components/parameters/RequestID"}]
              requestBody: {content: {application/json: {schema: {$ref: "#/components/schemas/AccessRequestAction"}}}}
              responses:
                "200": {description: The request, approved., content: {application/json: {schema: {$ref: "#/components/schemas/AccessRequest"}}}}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "403": {$ref: "#/components/responses/Forbidden"}
                "404": {$ref: "#/components/responses/NotFound"}
                "409": {$ref: "#/components/responses/Conflict"}
          /api/v1/requests/{id}/deny:
            post:
              summary: Deny a pending request with a reason the requester is shown (the requester's own deny withdraws it).
              parameters: [{$ref: "#/components/parameters/RequestID"}]
              requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/AccessRequestAction"}}}}
              responses:
                "200": {description: The request, denied., content: {application/json: {schema: {$ref: "#/components/schemas/AccessRequest"}}}}
                "400": {$ref: "#/components/responses/BadRequest"}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "403": {$ref: "#/components/responses/Forbidden"}
                "404": {$ref: "#/components/responses/NotFound"}
                "409": {$ref: "#/components/responses/Conflict"}
          /api/v1/requests/{id}/revoke:
            post:
              summary: End a grant early (its requester or an approver), or withdraw one's own pending request.
              parameters: [{$ref: "#/components/parameters/RequestID"}]
              requestBody: {content: {application/json: {schema: {$ref: "#/components/schemas/AccessRequestAction"}}}}
              responses:
                "200": {description: The request, ended., content: {application/json: {schema: {$ref: "#/components/schemas/AccessRequest"}}}}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "403": {$ref: "#/components/responses/Forbidden"}
                "404": {$ref: "#/components/responses/NotFound"}
                "409": {$ref: "#/components/responses/Conflict"}
          /healthz:
            get:
              summary: The process answers.
              security: []
              responses: {"200": {description: ok}}
          /readyz:
            get:
              summary: The policy is loaded and the server's own AWS credentials resolve.
              security: []
              responses: {"200": {description: ready}, "503": {description: not ready, with the reason}}
          /metrics:
            get:
              summary: Prometheus metrics.
              security: []
              responses: {"200": {description: text exposition format}}
        """
}

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
                error: {type: string, description: "missing_token, invalid_token, not_granted, mfa_required, phishing_resistant_required, unknown_role, invalid_request, upstream_error, audit_unavailable, issuer_unavailable"}
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

//! JSON Schemas (2020-12, as OpenAPI 3.1 uses) of every request and reply
//! body, by name (`#/components/schemas/{name}`).
//!
//! Request bodies whose handler type has `#[serde(deny_unknown_fields)]`
//! say `additionalProperties: false`; the others accept unknown members.

use crate::domain::roles;
use serde_json::{json, Map, Value};

/// Every schema, by name.
pub fn components() -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |name: &str, schema: Value| {
        m.insert(name.to_string(), schema);
    };

    // Shared pieces.
    put("Problem", problem());
    put("Scope", scope());
    put("Policy", policy());
    put("PolicyInput", policy_input());

    put(
        "OpenApiDocument",
        json!({
            "type": "object",
            "required": ["openapi", "info", "paths"],
            "properties": {
                "openapi": {"type": "string"},
                "info": {"type": "object"},
                "paths": {"type": "object"},
            },
        }),
    );

    // The caller and workspaces.
    put("Me", me());
    put(
        "Workspace",
        object(
            &[
                ("id", string()),
                ("slug", string()),
                ("name", string()),
                ("created_at", timestamp()),
            ],
            &[],
        ),
    );
    put("WorkspaceList", list_of("Workspace"));
    put(
        "NewWorkspace",
        closed(
            &[(
                "slug",
                json!({
                    "type": "string",
                    "minLength": 2,
                    "maxLength": 63,
                    "pattern": "^[a-z0-9][a-z0-9-]*[a-z0-9]$",
                    "description": "2 to 63 of a-z, 0-9 and -, not starting or ending with -.",
                }),
            )],
            &[(
                "name",
                json!({"type": ["string", "null"], "description": "Defaults to the slug."}),
            )],
        ),
    );

    // Settings and roles.
    put("Settings", settings());
    put("SettingsPatch", settings_patch());
    put(
        "Role",
        object(
            &[
                ("id", string()),
                ("name", string()),
                ("description", string()),
                ("scopable", boolean()),
            ],
            &[],
        ),
    );
    put("RoleList", list_of("Role"));

    // Members.
    put("Member", member());
    put("MemberList", list_of("Member"));
    put("MemberDetail", member_detail());
    put(
        "MemberPatch",
        closed(
            &[],
            &[
                (
                    "policies",
                    nullable_array(
                        schema_ref("PolicyInput"),
                        "Replaces the member's direct policies.",
                    ),
                ),
                (
                    "group_ids",
                    nullable_array(string(), "Replaces the member's groups."),
                ),
            ],
        ),
    );
    put(
        "MemberUpdated",
        object(
            &[
                ("user_id", string()),
                ("policies", array(schema_ref("Policy"))),
                ("group_ids", array(string())),
            ],
            &[],
        ),
    );

    // SSO connections and domains.
    let opt_string = || json!({"type": ["string", "null"]});
    let mappings = || json!({"type": "object", "additionalProperties": {"type": "string"}, "description": "IdP group value → user group id."});
    put(
        "SsoConnection",
        object(
            &[
                ("id", string()),
                ("type", json!({"enum": ["saml", "oidc"]})),
                ("name", string()),
                ("enabled", boolean()),
                ("allow_idp_initiated", boolean()),
                ("start_url", string()),
                ("created_at", timestamp()),
                ("updated_at", timestamp()),
            ],
            &[
                ("sp_entity_id", string()),
                ("acs_url", string()),
                ("metadata_url", string()),
                ("idp_entity_id", string()),
                ("idp_sso_url", string()),
                ("idp_metadata_url", opt_string()),
                ("email_attribute", opt_string()),
                ("name_attribute", opt_string()),
                ("group_attribute", opt_string()),
                ("group_mappings", mappings()),
                (
                    "idp_certificates",
                    array(object(
                        &[("subject", string()), ("not_after", timestamp())],
                        &[],
                    )),
                ),
                ("issuer", string()),
                ("client_id", string()),
                ("scopes", array(string())),
                ("redirect_uri", string()),
            ],
        ),
    );
    put("SsoConnectionList", list_of("SsoConnection"));
    let connection_fields = || {
        vec![
            (
                "name",
                json!({"type": "string", "minLength": 1, "maxLength": 100}),
            ),
            ("enabled", boolean()),
            ("allow_idp_initiated", boolean()),
            ("idp_metadata_xml", string()),
            ("idp_metadata_url", string()),
            (
                "idp_certificate",
                json!({"type": "string", "description": "SAML: the IdP's signing certificate (PEM or base64 DER), replacing the pinned ones."}),
            ),
            ("email_attribute", string()),
            ("name_attribute", string()),
            ("group_attribute", string()),
            ("group_mappings", mappings()),
            ("issuer", string()),
            ("client_id", string()),
            ("client_secret", string()),
            ("scopes", array(string())),
        ]
    };
    put(
        "NewSsoConnection",
        closed(
            &[("type", json!({"enum": ["saml", "oidc"]}))],
            &connection_fields(),
        ),
    );
    let mut patch_fields = connection_fields();
    patch_fields.push(("type", json!({"enum": ["saml", "oidc"]})));
    put("SsoConnectionPatch", closed(&[], &patch_fields));
    put(
        "Domain",
        object(
            &[
                ("domain", string()),
                ("verified", boolean()),
                ("verification_record", string()),
                ("created_at", timestamp()),
            ],
            &[("verified_at", json!({"type": ["string", "null"]}))],
        ),
    );
    put("DomainList", list_of("Domain"));
    put(
        "NewDomain",
        closed(
            &[(
                "domain",
                json!({"type": "string", "minLength": 1, "maxLength": 253}),
            )],
            &[],
        ),
    );

    // Groups.
    put(
        "Group",
        object(
            &[
                ("id", string()),
                ("name", string()),
                ("description", string()),
                ("policies", array(schema_ref("Policy"))),
                ("member_ids", array(string())),
                ("created_at", timestamp()),
            ],
            &[],
        ),
    );
    put("GroupList", list_of("Group"));
    put(
        "NewGroup",
        closed(
            &[("name", group_name(false))],
            &[
                ("description", string()),
                ("policies", array(schema_ref("PolicyInput"))),
            ],
        ),
    );
    put(
        "GroupPatch",
        closed(
            &[],
            &[
                ("name", group_name(true)),
                ("description", json!({"type": ["string", "null"]})),
                (
                    "policies",
                    nullable_array(schema_ref("PolicyInput"), "Replaces the group's policies."),
                ),
            ],
        ),
    );

    // Invitations.
    put(
        "Invitation",
        object(
            &[
                ("id", string()),
                ("email", string()),
                ("status", json!({"const": "invited"})),
                ("policies", array(schema_ref("Policy"))),
                ("group_ids", array(string())),
                (
                    "invited_by",
                    json!({"type": ["string", "null"], "description": "The inviting user's id; null when a token invited."}),
                ),
                ("created_at", timestamp()),
                ("expires_at", timestamp()),
            ],
            &[],
        ),
    );
    put("InvitationList", list_of("Invitation"));
    put(
        "NewInvitation",
        closed(
            &[(
                "email",
                json!({"type": "string", "format": "email", "maxLength": 254}),
            )],
            &[
                (
                    "policies",
                    json!({
                        "type": "array",
                        "items": schema_ref("PolicyInput"),
                        "description": "With no policies and no groups, the workspace's default role.",
                    }),
                ),
                ("group_ids", array(string())),
            ],
        ),
    );

    // Tokens.
    put("Token", token(false));
    put("TokenList", list_of("Token"));
    put("TokenCreated", token(true));
    put(
        "NewToken",
        closed(
            &[(
                "policies",
                json!({
                    "type": "array",
                    "items": schema_ref("PolicyInput"),
                    "contains": {
                        "type": "object",
                        "required": ["role"],
                        "properties": {"role": {"enum": [roles::WORKSPACE_OWNER, roles::WORKSPACE_MEMBER]}},
                    },
                    "description": "At least workspace_owner or workspace_member.",
                }),
            )],
            &[("description", json!({"type": "string", "maxLength": 200}))],
        ),
    );
    put("ScimToken", token(false));
    put("ScimTokenList", list_of("ScimToken"));
    put(
        "ScimTokenCreated",
        object(
            &[
                ("id", string()),
                ("description", string()),
                ("created_at", timestamp()),
                (
                    "token",
                    json!({"type": "string", "pattern": "^iamgw_scim_", "description": "The secret: shown in this reply only."}),
                ),
            ],
            &[],
        ),
    );
    put("NewScimToken", closed(&[], &[("description", string())]));

    // OpenID Connect clients.
    put("OidcClient", oidc_client(false));
    put("OidcClientList", list_of("OidcClient"));
    put("OidcClientCreated", oidc_client(true));
    let uri = || json!({"type": "string", "format": "uri", "maxLength": 2048, "description": "Absolute, no fragment; https, or http on a loopback host. Compared exactly."});
    put(
        "NewOidcClient",
        closed(
            &[
                (
                    "name",
                    json!({"type": "string", "minLength": 1, "maxLength": 100}),
                ),
                (
                    "redirect_uris",
                    json!({"type": "array", "items": uri(), "minItems": 1, "maxItems": 20}),
                ),
            ],
            &[
                (
                    "post_logout_redirect_uris",
                    json!({"type": "array", "items": uri(), "maxItems": 20}),
                ),
                (
                    "backchannel_logout_uri",
                    json!({"anyOf": [uri(), {"type": "null"}]}),
                ),
                (
                    "public",
                    json!({"type": "boolean", "description": "A public client (no secret; PKCE only)."}),
                ),
                (
                    "required_role",
                    json!({"type": ["string", "null"], "enum": roles_or_null(), "description": "Only people with this role in the workspace may sign in to the app."}),
                ),
            ],
        ),
    );

    // Resources and the audit log.
    put("Resource", resource());
    put("ResourceList", list_of("Resource"));
    put("AuditEvent", audit_event());
    put("AuditEventList", list_of("AuditEvent"));
    m
}

pub(super) fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

fn timestamp() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn nullable_timestamp() -> Value {
    json!({"type": ["string", "null"], "format": "date-time"})
}

fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn nullable_array(items: Value, description: &str) -> Value {
    json!({"type": ["array", "null"], "items": items, "description": description})
}

/// An object with these required and optional members; others allowed.
fn object(required: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut props = Map::new();
    for (k, v) in required.iter().chain(optional) {
        props.insert((*k).to_string(), v.clone());
    }
    let names: Vec<&str> = required.iter().map(|(k, _)| *k).collect();
    let mut out = json!({"type": "object", "properties": props});
    if !names.is_empty() {
        out["required"] = json!(names);
    }
    out
}

/// A request body the handler reads with `deny_unknown_fields`.
fn closed(required: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut out = object(required, optional);
    out["additionalProperties"] = json!(false);
    out
}

fn list_of(item: &str) -> Value {
    object(
        &[
            ("items", array(schema_ref(item))),
            (
                "next_cursor",
                json!({"type": ["string", "null"], "description": "Pass as `?cursor=` for the next page; null on the last."}),
            ),
        ],
        &[],
    )
}

/// Text that is not blank and has no control characters (`char::is_control`).
const NOT_BLANK_PRINTABLE: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";

fn problem() -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "`urn:iamgw:problem/<reason>`: the status's reason phrase in lower case with dashes, or `sso-required` / `mfa-required` (SPEC 6b)."},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
        },
    })
}

fn scope() -> Value {
    let list = |kind: &str, field: &str, items: Value| {
        json!({
            "type": "object",
            "required": ["type", field],
            "properties": {
                "type": {"const": kind},
                field: {"type": "array", "items": items, "minItems": 1},
            },
        })
    };
    json!({
        "description": "Which resources a resource role covers: all, some ids, or those with labels (`key:value`; labels with different keys must all match).",
        "oneOf": [
            {"type": "object", "required": ["type"], "properties": {"type": {"const": "all"}}},
            list("ids", "ids", string()),
            list("labels", "labels", json!({"type": "string", "pattern": ":"})),
        ],
    })
}

/// A policy as the gateway answers it.
fn policy() -> Value {
    json!({
        "type": "object",
        "description": "A role, with a scope (null: the whole workspace).",
        "required": ["role", "scope"],
        "properties": {
            "role": {"type": "string", "description": "A role id of the catalog."},
            "scope": {"oneOf": [schema_ref("Scope"), {"type": "null"}]},
        },
    })
}

/// A policy in a request: a role of the catalog; only resource roles
/// (`scopable`) may have a scope.
fn policy_input() -> Value {
    let (scopable, plain): (Vec<_>, Vec<_>) = roles::CATALOG.iter().partition(|r| r.scopable);
    let ids = |rs: &[&roles::RoleDef]| rs.iter().map(|r| r.id).collect::<Vec<_>>();
    json!({
        "description": "`{\"role\": id}` for the whole workspace (`\"scope\": null` means the same); a resource role may add a scope.",
        "oneOf": [
            {
                "type": "object",
                "required": ["role"],
                "properties": {
                    "role": {"enum": ids(&plain)},
                    "scope": {"type": "null"},
                },
            },
            {
                "type": "object",
                "required": ["role"],
                "properties": {
                    "role": {"enum": ids(&scopable)},
                    "scope": {"oneOf": [schema_ref("Scope"), {"type": "null"}]},
                },
            },
        ],
    })
}

fn me() -> Value {
    let user = object(
        &[
            ("id", string()),
            ("email", string()),
            ("name", string()),
            ("mfa_enabled", boolean()),
            ("created_at", timestamp()),
            ("last_login_at", nullable_timestamp()),
        ],
        &[],
    );
    let workspace = object(
        &[
            ("id", string()),
            ("slug", string()),
            ("name", string()),
            ("policies", array(schema_ref("Policy"))),
            (
                "roles",
                json!({"type": "array", "items": {"type": "string"}, "description": "Effective policies as `role` or `role:scope` labels."}),
            ),
        ],
        &[],
    );
    object(
        &[
            ("user", user),
            (
                "auth_method",
                json!({"type": "string", "description": "`password`, `twilio` or `sso:<connection id>`."}),
            ),
            ("workspaces", array(workspace)),
            (
                "csrf_token",
                json!({"type": "string", "description": "Send as `X-CSRF-Token` on unsafe methods."}),
            ),
        ],
        &[],
    )
}

fn settings_fields(nullable: bool) -> Vec<(&'static str, Value)> {
    let t = |base: &str| {
        if nullable {
            json!([base, "null"])
        } else {
            json!(base)
        }
    };
    let roles: Vec<Value> = roles::CATALOG.iter().map(|r| json!(r.id)).collect();
    let mut role_enum = roles.clone();
    if nullable {
        role_enum.push(Value::Null);
    }
    let duration = |what: &str| {
        json!({
            "type": ["string", "null"],
            "pattern": "^[0-9]*[1-9][0-9]*[smhd]$",
            "description": format!("{what}: a whole number and s, m, h or d (`30m`, `12h`, `7d`), at most {}d; null: the deployment's default.", crate::web::api::settings::MAX_DURATION_DAYS),
        })
    };
    vec![
        (
            "require_sso",
            json!({"type": t("boolean"), "description": "Turning it on needs a session signed in through this workspace's SSO."}),
        ),
        (
            "sso_exempt_user_ids",
            json!({"type": t("array"), "items": {"type": "string"}}),
        ),
        ("require_mfa", json!({"type": t("boolean")})),
        (
            "default_role",
            json!({"enum": role_enum, "description": "The role of people who join without one."}),
        ),
        ("idle_timeout", duration("Idle session timeout")),
        ("absolute_timeout", duration("Absolute session timeout")),
        ("invitation_ttl", duration("How long invitations stay open")),
        (
            "audit_retention",
            duration("How long audit events are kept"),
        ),
    ]
}

fn settings() -> Value {
    let mut fields = settings_fields(false);
    // Answers carry any stored role id.
    for (name, schema) in fields.iter_mut() {
        if *name == "default_role" {
            *schema = string();
        }
    }
    object(&fields, &[])
}

fn settings_patch() -> Value {
    let mut out = closed(&[], &settings_fields(true));
    out["description"] = json!("Any of the settings; absent members stay as they are.");
    out
}

fn member() -> Value {
    object(
        &[
            (
                "user_id",
                json!({"type": ["string", "null"], "description": "Null for an open invitation."}),
            ),
            (
                "invitation_id",
                json!({"type": ["string", "null"], "description": "Set for an open invitation."}),
            ),
            ("email", string()),
            ("name", string()),
            ("status", json!({"enum": ["active", "invited"]})),
            ("policies", array(schema_ref("Policy"))),
            ("group_ids", array(string())),
            (
                "auth_method",
                json!({"type": ["string", "null"], "description": "How the member last signed in."}),
            ),
            ("created_at", timestamp()),
            ("last_login_at", nullable_timestamp()),
        ],
        &[],
    )
}

fn member_detail() -> Value {
    object(
        &[
            ("user_id", string()),
            ("email", string()),
            ("name", string()),
            ("status", json!({"const": "active"})),
            ("policies", array(schema_ref("Policy"))),
            (
                "groups",
                array(object(
                    &[("id", string()), ("policies", array(schema_ref("Policy")))],
                    &[],
                )),
            ),
            ("group_ids", array(string())),
            ("effective_policies", array(schema_ref("Policy"))),
            ("mfa_enabled", boolean()),
            ("created_at", timestamp()),
            ("last_login_at", nullable_timestamp()),
        ],
        &[],
    )
}

fn group_name(nullable: bool) -> Value {
    json!({
        "type": if nullable { json!(["string", "null"]) } else { json!("string") },
        "minLength": 1,
        "maxLength": 100,
        "pattern": NOT_BLANK_PRINTABLE,
        "description": "1 to 100 characters, not only spaces, no line breaks.",
    })
}

/// An API or SCIM token; `token` (the secret) only in the reply that
/// created it.
fn token(created: bool) -> Value {
    let mut fields = vec![
        ("id", string()),
        ("description", string()),
        ("policies", array(schema_ref("Policy"))),
        (
            "created_by",
            json!({"type": ["string", "null"], "description": "The creator's id (a user or a token); null from the command line."}),
        ),
        ("created_at", timestamp()),
        ("last_used_at", nullable_timestamp()),
    ];
    if created {
        fields.push((
            "token",
            json!({"type": "string", "pattern": "^iamgw_", "description": "The secret: shown in this reply only."}),
        ));
    }
    let mut out = object(&fields, &[]);
    if !created {
        // The secret never appears outside the reply that created it.
        out["properties"]["token"] = json!(false);
    }
    out
}

fn roles_or_null() -> Vec<Value> {
    let mut v: Vec<Value> = roles::CATALOG.iter().map(|r| json!(r.id)).collect();
    v.push(Value::Null);
    v
}

fn oidc_client(created: bool) -> Value {
    let fields = [
        ("client_id", string()),
        ("name", string()),
        ("public", boolean()),
        ("redirect_uris", array(string())),
        ("post_logout_redirect_uris", array(string())),
        (
            "backchannel_logout_uri",
            json!({"type": ["string", "null"]}),
        ),
        ("required_role", json!({"type": ["string", "null"]})),
        ("created_by", json!({"type": ["string", "null"]})),
        ("created_at", timestamp()),
    ];
    let secret = [(
        "client_secret",
        json!({"type": "string", "pattern": "^iamgw_cs_", "description": "A confidential client's secret: shown in this reply only."}),
    )];
    if created {
        return object(&fields, &secret);
    }
    let mut out = object(&fields, &[]);
    out["properties"]["client_secret"] = json!(false);
    out
}

fn resource() -> Value {
    let text = |max: u32| {
        json!({
            "type": "string",
            "minLength": 1,
            "maxLength": max,
            "pattern": NOT_BLANK_PRINTABLE,
            "description": format!("Not blank, no control characters, at most {max} characters."),
        })
    };
    let mut out = object(
        &[
            ("id", text(200)),
            ("kind", text(50)),
            ("name", json!({"type": "string", "maxLength": 200})),
            (
                "labels",
                json!({"type": "array", "items": {"type": "string", "pattern": ":", "maxLength": 200}, "description": "`key:value` labels."}),
            ),
        ],
        &[],
    );
    out["description"] =
        json!("A workspace resource (source, function, space...) that scoped roles refer to.");
    out
}

fn audit_event() -> Value {
    let actor = object(
        &[
            ("type", json!({"enum": ["user", "token", "scim", "system"]})),
            ("id", json!({"type": ["string", "null"]})),
        ],
        &[("email", string())],
    );
    object(
        &[
            ("id", string()),
            ("time", timestamp()),
            (
                "workspace",
                json!({"type": "string", "description": "The workspace's slug."}),
            ),
            ("actor", actor),
            ("action", string()),
            ("target", json!({"type": ["string", "null"]})),
            ("ip", json!({"type": ["string", "null"]})),
            ("details", json!({"description": "Action-specific JSON."})),
        ],
        &[],
    )
}

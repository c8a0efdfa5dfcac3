//! The documented operations, one per route of [`crate::web::api::endpoints`].

use super::super::ws_path;
use super::super::Verb::{Delete, Get, Patch, Post};
use super::{Auth, Body, Link, Operation, Param, Reply};
use serde_json::{json, Value};

fn string() -> Value {
    json!({"type": "string"})
}

fn cursor() -> Value {
    json!({"type": "string", "description": "`next_cursor` of the previous page (opaque); empty: the first page."})
}

fn limit() -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 50})
}

fn instant() -> Value {
    json!({
        "type": "string",
        "anyOf": [
            {"format": "date-time"},
            {"pattern": "^[+-]?[0-9]{1,18}$"},
            {"maxLength": 0},
        ],
        "description": "RFC 3339 (`2026-01-31T12:00:00Z`) or Unix seconds; empty: no bound.",
    })
}

const CURSOR: Param = Param {
    name: "cursor",
    description: "Continue after this cursor.",
    schema: cursor,
};
const LIMIT: Param = Param {
    name: "limit",
    description: "Page size, 1 to 200 (default 50).",
    schema: limit,
};

const MEMBER_QUERY: &[Param] = &[
    CURSOR,
    LIMIT,
    Param {
        name: "email",
        description: "Only members whose email contains this text.",
        schema: string,
    },
    Param {
        name: "role",
        description: "Only members holding this role (directly or through a group).",
        schema: string,
    },
    Param {
        name: "group_id",
        description: "Only members of this group.",
        schema: string,
    },
];

const AUDIT_FILTERS: [Param; 5] = [
    Param {
        name: "actor",
        description: "Only events by this actor (its id, or a person's email).",
        schema: string,
    },
    Param {
        name: "action",
        description: "Only events with this action (e.g. `member.updated`).",
        schema: string,
    },
    Param {
        name: "target",
        description: "Only events with this target (an id, a domain, an email; a person's email also finds the events whose target is their user id).",
        schema: string,
    },
    Param {
        name: "since",
        description: "Only events at or after this time.",
        schema: instant,
    },
    Param {
        name: "until",
        description: "Only events before this time.",
        schema: instant,
    },
];

const AUDIT_QUERY: &[Param] = &[
    CURSOR,
    LIMIT,
    AUDIT_FILTERS[0],
    AUDIT_FILTERS[1],
    AUDIT_FILTERS[2],
    AUDIT_FILTERS[3],
    AUDIT_FILTERS[4],
];

/// A JSON reply.
const fn json(status: u16, description: &'static str, schema: &'static str) -> Reply {
    Reply::Json {
        status,
        description,
        schema,
    }
}

/// A required JSON body.
const fn body(schema: &'static str) -> Body {
    Body::Json {
        schema,
        required: true,
    }
}

/// An operation with no query, body, extra errors or links; the entries
/// below override what they need.
const fn op(
    verb: super::super::Verb,
    path: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    reply: Reply,
) -> Operation {
    Operation {
        verb,
        path,
        id,
        tag,
        summary,
        auth: Auth::Any,
        query: &[],
        body: Body::None,
        reply,
        errors: &[],
        links: &[],
    }
}

const DELETED: Reply = Reply::Empty {
    description: "Done.",
};

pub const OPERATIONS: &[Operation] = &[
    Operation {
        auth: Auth::Public,
        ..op(
            Get,
            "/api/v1/openapi.json",
            "getOpenApi",
            "meta",
            "This OpenAPI document",
            json(200, "The document.", "OpenApiDocument"),
        )
    },
    Operation {
        auth: Auth::Session,
        ..op(
            Get,
            "/api/v1/me",
            "getMe",
            "me",
            "The signed-in user, their workspaces and roles, and the CSRF token",
            json(200, "The caller.", "Me"),
        )
    },
    op(
        Get,
        "/api/v1/workspaces",
        "listWorkspaces",
        "me",
        "The caller's workspaces (a token: its own workspace)",
        json(200, "The workspaces.", "WorkspaceList"),
    ),
    Operation {
        body: body("NewWorkspace"),
        errors: &[409],
        ..op(
            Post,
            "/api/v1/workspaces",
            "createWorkspace",
            "me",
            "Create a workspace with the signed-in caller as owner (not with a token)",
            json(201, "The workspace.", "Workspace"),
        )
    },
    op(
        Get,
        ws_path!("/settings"),
        "getSettings",
        "settings",
        "The workspace's settings",
        json(200, "The settings.", "Settings"),
    ),
    Operation {
        body: body("SettingsPatch"),
        ..op(
            Patch,
            ws_path!("/settings"),
            "updateSettings",
            "settings",
            "Change some settings (all or nothing)",
            json(200, "The settings after the change.", "Settings"),
        )
    },
    op(
        Get,
        ws_path!("/roles"),
        "listRoles",
        "roles",
        "The role catalog",
        json(200, "Every role.", "RoleList"),
    ),
    Operation {
        query: MEMBER_QUERY,
        ..op(
            Get,
            ws_path!("/members"),
            "listMembers",
            "members",
            "Members and open invitations, a page at a time",
            json(200, "A page of members.", "MemberList"),
        )
    },
    op(
        Get,
        ws_path!("/members.csv"),
        "exportMembers",
        "members",
        "Every member and open invitation as CSV (owners)",
        Reply::Csv {
            description: "The members, one per line after a header line.",
        },
    ),
    op(
        Get,
        ws_path!("/members/{user_id}"),
        "getMember",
        "members",
        "One member with direct, group and effective policies",
        json(200, "The member.", "MemberDetail"),
    ),
    Operation {
        body: body("MemberPatch"),
        errors: &[409],
        ..op(
            Patch,
            ws_path!("/members/{user_id}"),
            "updateMember",
            "members",
            "Replace a member's policies and/or groups (the last owner stays)",
            json(
                200,
                "The member's direct policies and groups.",
                "MemberUpdated",
            ),
        )
    },
    Operation {
        errors: &[409],
        ..op(
            Delete,
            ws_path!("/members/{user_id}"),
            "removeMember",
            "members",
            "Remove a member from the workspace (not the last owner)",
            DELETED,
        )
    },
    op(
        Delete,
        ws_path!("/members/{user_id}/mfa"),
        "resetMemberMfa",
        "members",
        "Reset a member's two-factor authentication",
        DELETED,
    ),
    op(
        Get,
        ws_path!("/groups"),
        "listGroups",
        "groups",
        "Every group",
        json(200, "The groups.", "GroupList"),
    ),
    Operation {
        body: body("NewGroup"),
        errors: &[409],
        links: &[
            Link {
                name: "getGroup",
                operation: "getGroup",
                parameter: "id",
                pointer: "/id",
            },
            Link {
                name: "updateGroup",
                operation: "updateGroup",
                parameter: "id",
                pointer: "/id",
            },
            Link {
                name: "deleteGroup",
                operation: "deleteGroup",
                parameter: "id",
                pointer: "/id",
            },
        ],
        ..op(
            Post,
            ws_path!("/groups"),
            "createGroup",
            "groups",
            "Create a group",
            json(201, "The group.", "Group"),
        )
    },
    op(
        Get,
        ws_path!("/groups/{id}"),
        "getGroup",
        "groups",
        "One group",
        json(200, "The group.", "Group"),
    ),
    Operation {
        body: body("GroupPatch"),
        errors: &[409],
        ..op(
            Patch,
            ws_path!("/groups/{id}"),
            "updateGroup",
            "groups",
            "Change a group's name, description and/or policies",
            json(200, "The group after the change.", "Group"),
        )
    },
    Operation {
        errors: &[409],
        ..op(
            Delete,
            ws_path!("/groups/{id}"),
            "deleteGroup",
            "groups",
            "Delete a group (its members stay in the workspace; 409 when it holds the last owner role)",
            DELETED,
        )
    },
    Operation {
        errors: &[409],
        ..op(
            Post,
            ws_path!("/groups/{id}/members/{user_id}"),
            "addGroupMember",
            "groups",
            "Add a member to a group",
            Reply::Empty {
                description: "Added.",
            },
        )
    },
    Operation {
        errors: &[409],
        ..op(
            Delete,
            ws_path!("/groups/{id}/members/{user_id}"),
            "removeGroupMember",
            "groups",
            "Remove a member from a group (409 when that takes away the last owner)",
            DELETED,
        )
    },
    op(
        Get,
        ws_path!("/invitations"),
        "listInvitations",
        "invitations",
        "Open invitations",
        json(200, "The invitations.", "InvitationList"),
    ),
    Operation {
        body: body("NewInvitation"),
        errors: &[409],
        links: &[
            Link {
                name: "resendInvitation",
                operation: "resendInvitation",
                parameter: "id",
                pointer: "/id",
            },
            Link {
                name: "revokeInvitation",
                operation: "revokeInvitation",
                parameter: "id",
                pointer: "/id",
            },
        ],
        ..op(
            Post,
            ws_path!("/invitations"),
            "createInvitation",
            "invitations",
            "Invite someone by email; the link is mailed",
            json(201, "The invitation.", "Invitation"),
        )
    },
    op(
        Delete,
        ws_path!("/invitations/{id}"),
        "revokeInvitation",
        "invitations",
        "Revoke an open invitation",
        DELETED,
    ),
    Operation {
        errors: &[409],
        ..op(
            Post,
            ws_path!("/invitations/{id}/resend"),
            "resendInvitation",
            "invitations",
            "Mail a new link with a fresh expiry (the old link stops working)",
            json(200, "The invitation.", "Invitation"),
        )
    },
    op(
        Get,
        ws_path!("/tokens"),
        "listTokens",
        "tokens",
        "API tokens (never their secrets)",
        json(200, "The tokens.", "TokenList"),
    ),
    Operation {
        body: body("NewToken"),
        links: &[Link {
            name: "revokeToken",
            operation: "revokeToken",
            parameter: "id",
            pointer: "/id",
        }],
        ..op(
            Post,
            ws_path!("/tokens"),
            "createToken",
            "tokens",
            "Mint an API token; the secret is in this reply only",
            json(201, "The token with its secret.", "TokenCreated"),
        )
    },
    op(
        Delete,
        ws_path!("/tokens/{id}"),
        "revokeToken",
        "tokens",
        "Revoke an API token",
        DELETED,
    ),
    op(
        Get,
        ws_path!("/scim-tokens"),
        "listScimTokens",
        "tokens",
        "SCIM tokens (never their secrets)",
        json(200, "The SCIM tokens.", "ScimTokenList"),
    ),
    Operation {
        body: Body::Json {
            schema: "NewScimToken",
            required: false,
        },
        links: &[Link {
            name: "revokeScimToken",
            operation: "revokeScimToken",
            parameter: "id",
            pointer: "/id",
        }],
        ..op(
            Post,
            ws_path!("/scim-tokens"),
            "createScimToken",
            "tokens",
            "Mint a SCIM token; the secret is in this reply only",
            json(201, "The SCIM token with its secret.", "ScimTokenCreated"),
        )
    },
    op(
        Delete,
        ws_path!("/scim-tokens/{id}"),
        "revokeScimToken",
        "tokens",
        "Revoke a SCIM token",
        DELETED,
    ),
    op(
        Get,
        ws_path!("/resources"),
        "listResources",
        "resources",
        "Registered resources",
        json(200, "The resources.", "ResourceList"),
    ),
    Operation {
        body: body("Resource"),
        links: &[
            Link {
                name: "getResource",
                operation: "getResource",
                parameter: "id",
                pointer: "/id",
            },
            Link {
                name: "deleteResource",
                operation: "deleteResource",
                parameter: "id",
                pointer: "/id",
            },
        ],
        ..op(
            Post,
            ws_path!("/resources"),
            "putResource",
            "resources",
            "Register a resource, or update the one with this id",
            json(201, "The resource.", "Resource"),
        )
    },
    op(
        Get,
        ws_path!("/resources/{id}"),
        "getResource",
        "resources",
        "One resource",
        json(200, "The resource.", "Resource"),
    ),
    op(
        Delete,
        ws_path!("/resources/{id}"),
        "deleteResource",
        "resources",
        "Delete a resource",
        DELETED,
    ),
    op(
        Get,
        ws_path!("/sso/connections"),
        "listSsoConnections",
        "sso",
        "The workspace's SSO connections",
        json(200, "The connections.", "SsoConnectionList"),
    ),
    Operation {
        body: body("NewSsoConnection"),
        errors: &[422],
        ..op(
            Post,
            ws_path!("/sso/connections"),
            "createSsoConnection",
            "sso",
            "Add a SAML (IdP metadata XML or URL) or OIDC (issuer, client id and secret) connection",
            json(201, "The connection.", "SsoConnection"),
        )
    },
    op(
        Get,
        ws_path!("/sso/connections/{id}"),
        "getSsoConnection",
        "sso",
        "One SSO connection",
        json(200, "The connection.", "SsoConnection"),
    ),
    Operation {
        body: body("SsoConnectionPatch"),
        errors: &[422],
        ..op(
            Patch,
            ws_path!("/sso/connections/{id}"),
            "updateSsoConnection",
            "sso",
            "Change a connection (name, enabled, IdP-initiated, metadata, attributes, group mappings, OIDC settings)",
            json(200, "The connection after the change.", "SsoConnection"),
        )
    },
    op(
        Delete,
        ws_path!("/sso/connections/{id}"),
        "deleteSsoConnection",
        "sso",
        "Delete an SSO connection",
        DELETED,
    ),
    op(
        Get,
        ws_path!("/domains"),
        "listDomains",
        "sso",
        "The workspace's email domains and their verification state",
        json(200, "The domains.", "DomainList"),
    ),
    Operation {
        body: body("NewDomain"),
        errors: &[409],
        ..op(
            Post,
            ws_path!("/domains"),
            "addDomain",
            "sso",
            "Claim a domain; publish the returned TXT record at it, then verify",
            json(201, "The domain with its verification record.", "Domain"),
        )
    },
    op(
        Delete,
        ws_path!("/domains/{domain}"),
        "deleteDomain",
        "sso",
        "Give a domain up",
        DELETED,
    ),
    Operation {
        errors: &[409, 503],
        ..op(
            Post,
            ws_path!("/domains/{domain}/verify"),
            "verifyDomain",
            "sso",
            "Look the TXT record up and mark the domain verified (409 with the reason when it is not there)",
            json(200, "The verified domain.", "Domain"),
        )
    },
    op(
        Get,
        ws_path!("/oidc-clients"),
        "listOidcClients",
        "oidc-clients",
        "The apps that sign people in with OpenID Connect (never their secrets; owners)",
        json(200, "The clients.", "OidcClientList"),
    ),
    Operation {
        body: body("NewOidcClient"),
        errors: &[409],
        links: &[Link {
            name: "deleteOidcClient",
            operation: "deleteOidcClient",
            parameter: "client_id",
            pointer: "/client_id",
        }],
        ..op(
            Post,
            ws_path!("/oidc-clients"),
            "createOidcClient",
            "oidc-clients",
            "Register an app; a confidential client's secret is in this reply only (owners)",
            json(201, "The client, with its secret.", "OidcClientCreated"),
        )
    },
    op(
        Delete,
        ws_path!("/oidc-clients/{client_id}"),
        "deleteOidcClient",
        "oidc-clients",
        "Delete an app and every code and token it was issued (owners)",
        DELETED,
    ),
    Operation {
        query: AUDIT_QUERY,
        ..op(
            Get,
            ws_path!("/audit-events"),
            "listAuditEvents",
            "audit",
            "Audit events, newest first, a page at a time (owners)",
            json(200, "A page of events.", "AuditEventList"),
        )
    },
    Operation {
        query: &AUDIT_FILTERS,
        ..op(
            Get,
            ws_path!("/audit-events.csv"),
            "exportAuditEvents",
            "audit",
            "Every matching audit event as CSV (owners)",
            Reply::Csv {
                description: "The events, one per line after a header line.",
            },
        )
    },
];

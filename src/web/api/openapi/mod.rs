//! The OpenAPI 3.1 document of the management API, served at
//! `GET /api/v1/openapi.json`.
//!
//! It is built from data: [`OPERATIONS`] (one entry per route: method, path
//! template, operationId, parameters, request body and replies) and
//! [`schemas::components`] (the JSON Schemas, 2020-12 dialect). Tests check
//! that [`OPERATIONS`] and the route table ([`super::route_table`]) list the
//! same (method, path) pairs, so neither can change without the other.
//!
//! Adding an operation: a line in [`super::endpoints`], an entry in
//! `operations.rs`, and the schemas of new bodies in `schemas.rs`.

mod operations;
pub mod schemas;

pub use operations::OPERATIONS;

use super::Verb;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone.
    Public,
    /// Only a signed-in browser session (the session cookie).
    Session,
    /// A bearer API token or a session (with `X-CSRF-Token` when unsafe).
    Any,
}

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: fn() -> Value,
}

/// A request body.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    None,
    /// JSON matching the named schema of `components.schemas`.
    Json {
        schema: &'static str,
        required: bool,
    },
}

/// The success reply.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// JSON matching the named schema of `components.schemas`.
    Json {
        status: u16,
        description: &'static str,
        schema: &'static str,
    },
    /// No content (204).
    Empty { description: &'static str },
    /// `text/csv` (200), as an attachment.
    Csv { description: &'static str },
}

/// A link from the success reply to another operation (OpenAPI `links`):
/// `parameter` of `operation` takes the value at `pointer` in the reply body.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub name: &'static str,
    pub operation: &'static str,
    pub parameter: &'static str,
    pub pointer: &'static str,
}

/// One documented operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub verb: Verb,
    /// Path template, as in the route table (`{name}` for a parameter).
    pub path: &'static str,
    pub id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub auth: Auth,
    pub query: &'static [Param],
    pub body: Body,
    pub reply: Reply,
    /// Error statuses beyond those every operation of its kind has (see
    /// [`Operation::error_statuses`]), e.g. 409.
    pub errors: &'static [u16],
    pub links: &'static [Link],
}

impl Operation {
    /// The names of the path parameters, in order.
    pub fn path_params(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut rest = self.path;
        while let Some(start) = rest.find('{') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('}') else { break };
            out.push(&after[..end]);
            rest = &after[end + 1..];
        }
        out
    }

    /// Every error status the operation can answer with something the
    /// caller can act on (always problem+json).
    pub fn error_statuses(&self) -> Vec<u16> {
        let mut out: Vec<u16> = self.errors.to_vec();
        let has_body = matches!(self.body, Body::Json { .. });
        // An unreadable path parameter (bad percent-encoding), query or body.
        if !self.path_params().is_empty() || !self.query.is_empty() || has_body {
            out.push(400);
        }
        if self.auth != Auth::Public {
            out.push(401);
        }
        // Workspace operations: a role that does not allow it (403), or a
        // workspace that does not exist or is not the caller's (404); a
        // session without the CSRF header is refused (403).
        if self.path.starts_with(super::ws_path!("")) {
            out.extend([403, 404]);
        }
        if self.auth == Auth::Any && self.verb.is_unsafe() {
            out.push(403);
        }
        if has_body {
            out.push(413);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn error_response_name(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        413 => "ContentTooLarge",
        _ => return None,
    })
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn path_param(name: &str, tag: &str) -> Value {
    let (description, schema) = match name {
        "slug" => (
            "The workspace's slug.".to_string(),
            json!({"type": "string", "minLength": 2, "maxLength": 63, "pattern": "^[a-z0-9][a-z0-9-]*[a-z0-9]$"}),
        ),
        "user_id" => (
            "A user's id.".to_string(),
            json!({"type": "string", "minLength": 1}),
        ),
        _ => (
            format!("The {}'s id.", tag.trim_end_matches('s')),
            json!({"type": "string", "minLength": 1}),
        ),
    };
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
}

fn operation_json(op: &Operation) -> Value {
    let mut params: Vec<Value> = op
        .path_params()
        .iter()
        .map(|p| path_param(p, op.tag))
        .collect();
    for q in op.query {
        params.push(json!({
            "name": q.name,
            "in": "query",
            "required": false,
            "description": q.description,
            "schema": (q.schema)(),
        }));
    }
    if op.auth == Auth::Any && op.verb.is_unsafe() {
        params.push(json!({"$ref": "#/components/parameters/CsrfToken"}));
    }

    let mut responses = Map::new();
    let success = match op.reply {
        Reply::Json {
            status,
            description,
            schema,
        } => (
            status,
            json!({
                "description": description,
                "content": {"application/json": {"schema": schema_ref(schema)}},
            }),
        ),
        Reply::Empty { description } => (204, json!({"description": description})),
        Reply::Csv { description } => (
            200,
            json!({
                "description": description,
                "headers": {"Content-Disposition": {
                    "description": "`attachment` with a file name.",
                    "schema": {"type": "string"},
                }},
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }),
        ),
    };
    let (status, mut reply) = success;
    if !op.links.is_empty() {
        let links: Map<String, Value> = op
            .links
            .iter()
            .map(|l| {
                (
                    l.name.to_string(),
                    json!({
                        "operationId": l.operation,
                        "parameters": {
                            "slug": "$request.path.slug",
                            l.parameter: format!("$response.body#{}", l.pointer),
                        },
                    }),
                )
            })
            .collect();
        reply["links"] = Value::Object(links);
    }
    responses.insert(status.to_string(), reply);
    for s in op.error_statuses() {
        if let Some(name) = error_response_name(s) {
            responses.insert(
                s.to_string(),
                json!({"$ref": format!("#/components/responses/{name}")}),
            );
        }
    }

    let mut out = json!({
        "operationId": op.id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    });
    if !params.is_empty() {
        out["parameters"] = Value::Array(params);
    }
    match op.auth {
        Auth::Public => out["security"] = json!([]),
        Auth::Session => out["security"] = json!([{"cookieAuth": []}]),
        Auth::Any => {}
    }
    if let Body::Json { schema, required } = op.body {
        out["requestBody"] = json!({
            "required": required,
            "content": {"application/json": {"schema": schema_ref(schema)}},
        });
    }
    out
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": schema_ref("Problem")}},
    })
}

const TAGS: &[(&str, &str)] = &[
    ("meta", "This document."),
    ("me", "The caller and their workspaces."),
    ("settings", "Workspace settings."),
    ("roles", "The role catalog."),
    ("members", "Members of a workspace, with open invitations."),
    (
        "groups",
        "User groups: their policies apply to their members.",
    ),
    ("invitations", "Invitations, sent by mail."),
    (
        "tokens",
        "API tokens (bearer access to this API) and SCIM tokens.",
    ),
    ("resources", "Resources that scoped roles refer to."),
    (
        "oidc-clients",
        "Apps that sign people in against the gateway with OpenID Connect.",
    ),
    ("audit", "The workspace audit log."),
];

/// The whole document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let item = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        item[op.verb.as_str()] = operation_json(op);
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "iam-gateway management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Members, groups, invitations, tokens, settings, resources and the audit log of a workspace. Authenticate with `Authorization: Bearer <API token>`, or with the session cookie plus the `X-CSRF-Token` header on unsafe methods (its value is `csrf_token` in `GET /api/v1/me`). Errors are `application/problem+json` (RFC 9457). Lists answer `{\"items\": [...], \"next_cursor\": ...}`; a non-null `next_cursor` is passed back as `?cursor=` for the next page.",
        },
        "tags": TAGS.iter().map(|(name, d)| json!({"name": name, "description": d})).collect::<Vec<_>>(),
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token of the workspace (`iamgw_...`), from `POST tokens` or `iam-gateway token create`.",
                },
                "cookieAuth": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "iamgw_session",
                    "description": "The browser session (named `__Host-iamgw_session` when the gateway is served over https). Unsafe methods also need the `X-CSRF-Token` header.",
                },
            },
            "parameters": {
                "CsrfToken": {
                    "name": "X-CSRF-Token",
                    "in": "header",
                    "required": false,
                    "description": "Required with the session cookie on unsafe methods: `csrf_token` from `GET /api/v1/me`. Not needed with a bearer token.",
                    "schema": {"type": "string"},
                },
            },
            "responses": {
                "BadRequest": problem_response("The request cannot be read or is not valid."),
                "Unauthorized": problem_response("No valid session or API token."),
                "Forbidden": problem_response("Not allowed for this caller (role, missing CSRF header, or a token where a person is needed)."),
                "NotFound": problem_response("No such workspace for this caller, or no such object in it."),
                "Conflict": problem_response("Conflicts with the current state (already exists, last owner...)."),
                "ContentTooLarge": problem_response("The body is larger than the gateway accepts."),
            },
            "schemas": schemas::components(),
        },
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Response {
    let mut r = axum::Json(build()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

#[cfg(test)]
mod tests;

//! The SCIM endpoints under `/scim/v2` (RFC 7644): bearer-token auth that
//! selects the workspace, discovery, and Users and Groups.
//!
//! Only a workspace's SCIM token (`iamgw_scim_…`, kind `scim`) is accepted:
//! no API tokens and no session cookies, so no CSRF check is needed. Writes
//! are read–modify–write with the version the read saw (compare-and-swap in
//! the store); with `If-Match` a lost race is a 412, without it the request
//! is retried on the newer state.

use super::errors::{ScimError, ScimResult, CONTENT_TYPE};
use super::filter::{self, Compiled};
use super::patch;
use super::resources::{
    account_name, canonical_resource, etag, etag_matches, group_json, list_response, user_json,
    Projection, Window,
};
use super::schema::{self, ResourceDef, ALL_SCHEMAS, GROUP_TYPE, USER_TYPE};
use crate::audit;
use crate::domain::model::{Actor, ApiToken, Workspace};
use crate::domain::roles::Policy;
use crate::store::scim::{
    NewScimGroup, NewScimUser, ScimGroupRecord, ScimGroupUpdate, ScimUserRecord, ScimUserUpdate,
    UserCond, Written,
};
use crate::web::http::client_ip;
use crate::web::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;

/// Largest SCIM request body (a group PUT carries its member list).
pub const SCIM_BODY_LIMIT: usize = 1024 * 1024;
/// Read–modify–write attempts before giving up on a busy resource.
const ATTEMPTS: usize = 5;

pub fn routes() -> Router<AppState> {
    let inner = Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_by_id))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type_by_id))
        .route("/Users", get(list::<Users>).post(create_user))
        .route("/Users/.search", post(search::<Users>))
        .route(
            "/Users/{id}",
            get(get_one::<Users>)
                .put(replace::<Users>)
                .patch(patch_one::<Users>)
                .delete(delete_one::<Users>),
        )
        .route("/Groups", get(list::<Groups>).post(create_group))
        .route("/Groups/.search", post(search::<Groups>))
        .route(
            "/Groups/{id}",
            get(get_one::<Groups>)
                .put(replace::<Groups>)
                .patch(patch_one::<Groups>)
                .delete(delete_one::<Groups>),
        )
        .route("/.search", post(search_all))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(SCIM_BODY_LIMIT));
    Router::new().nest("/scim/v2", inner)
}

/// An authenticated SCIM request: the workspace its token selects.
pub struct ScimCtx {
    pub ws: Workspace,
    pub token: ApiToken,
    pub ip: String,
    /// `{public_url}/scim/v2`, for `meta.location` and `$ref`.
    pub base: String,
}

impl ScimCtx {
    /// Runs a SCIM write with its audit event bound to it (they commit
    /// together; see [`audit::bound`]); `target` None: the created row.
    /// A write that answers `Stale` wrote nothing and records nothing; a
    /// change that wrote nothing else (a no-op) records its event alone.
    /// Then every instance drops its forward-auth cache.
    async fn audited<T: Stale>(
        &self,
        state: &AppState,
        action: &str,
        target: Option<&str>,
        details: Value,
        change: impl std::future::Future<Output = Result<T, crate::store::StoreError>>,
    ) -> Result<T, crate::store::StoreError> {
        let event = audit::Entry {
            workspace_id: Some(&self.ws.id),
            actor: Actor {
                kind: "scim".into(),
                id: Some(self.token.id.clone()),
                email: None,
            },
            action,
            target,
            ip: Some(self.ip.clone()),
            details,
        }
        .event(state.clock.now());
        let (out, unwritten) = audit::bound(event, change).await;
        let out = out?;
        if out.is_stale() {
            return Ok(out);
        }
        if let Some(event) = unwritten {
            audit::write(state.store.as_ref(), &event).await;
        }
        state.access_changed().await;
        Ok(out)
    }

    fn default_policies(&self) -> Vec<Policy> {
        vec![Policy::workspace(&self.ws.settings.default_role)]
    }
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> ScimResult<ScimCtx> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .unwrap_or_default();
    // Shape and checksum first: foreign strings cost no database look-up.
    if !crate::tokens::well_formed(presented, crate::tokens::SCIM_PREFIX) {
        return Err(ScimError::unauthorized());
    }
    let token = state
        .store
        .token_by_hash(&crate::tokens::hash(presented), state.clock.now())
        .await?
        .filter(|t| t.kind == "scim")
        .ok_or_else(ScimError::unauthorized)?;
    let ws = state
        .store
        .workspace_by_id(&token.workspace_id)
        .await?
        .ok_or_else(ScimError::unauthorized)?;
    Ok(ScimCtx {
        ws,
        token,
        ip: client_ip(state, peer, headers).to_string(),
        base: format!("{}/scim/v2", state.cfg.public_url.trim_end_matches('/')),
    })
}

fn respond(
    status: StatusCode,
    body: &Value,
    version: Option<i64>,
    location: Option<&str>,
) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response();
    let h = resp.headers_mut();
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(&etag(v)).ok()) {
        h.insert(header::ETAG, v);
    }
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        h.insert(header::LOCATION, l);
    }
    resp
}

fn json_body(headers: &HeaderMap, body: &Bytes) -> ScimResult<Value> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case(CONTENT_TYPE)
            && !essence.eq_ignore_ascii_case("application/json")
        {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "send application/scim+json",
            ));
        }
    }
    if body.is_empty() {
        return Err(ScimError::invalid_syntax("a JSON body is required"));
    }
    serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("invalid JSON: {e}")))
}

/// List parameters, from the query string or a `.search` body.
#[derive(Debug, Default)]
struct ListParams {
    filter: Option<String>,
    start: Option<Value>,
    count: Option<Value>,
    projection: Projection,
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect()
}

fn projection_of(q: &HashMap<String, String>) -> Projection {
    Projection::from_lists(
        q.get("attributes").map(String::as_str),
        q.get("excludedattributes").map(String::as_str),
    )
}

impl ListParams {
    fn from_query(q: Option<&str>) -> Self {
        let m = query_map(q);
        Self {
            filter: m.get("filter").cloned(),
            start: m.get("startindex").map(|s| json!(s)),
            count: m.get("count").map(|s| json!(s)),
            projection: projection_of(&m),
        }
    }

    fn from_search(body: &Value) -> ScimResult<Self> {
        let list = |key: &str| -> Option<String> {
            match filter::get_ci(body, key) {
                Some(Value::Array(a)) => Some(
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                Some(Value::String(s)) => Some(s.clone()),
                _ => None,
            }
        };
        let filter = match filter::get_ci(body, "filter") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ScimError::invalid_filter("`filter` must be a string")),
        };
        Ok(Self {
            filter,
            start: filter::get_ci(body, "startIndex").cloned(),
            count: filter::get_ci(body, "count").cloned(),
            projection: Projection::from_lists(
                list("attributes").as_deref(),
                list("excludedAttributes").as_deref(),
            ),
        })
    }

    fn compiled(&self, def: &ResourceDef) -> ScimResult<Option<Compiled>> {
        match self
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            None => Ok(None),
            Some(text) => {
                let f = filter::parse(text).map_err(ScimError::invalid_filter)?;
                filter::compile(def, &f).map(Some)
            }
        }
    }
}

/// `If-Match`: Ok(true) when given (and naming this version), 412 when it
/// names another.
fn if_match(headers: &HeaderMap, version: i64) -> ScimResult<bool> {
    match headers.get(header::IF_MATCH) {
        None => Ok(false),
        Some(v) => {
            if etag_matches(v.to_str().unwrap_or_default(), version) {
                Ok(true)
            } else {
                Err(ScimError::precondition_failed())
            }
        }
    }
}

/// The version an `If-Match` header names (for DELETE).
fn if_match_version(headers: &HeaderMap) -> ScimResult<Option<i64>> {
    match headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or_default().trim())
    {
        None | Some("*") => Ok(None),
        Some(text) => text
            .split(',')
            .map(str::trim)
            .find_map(|t| {
                t.strip_prefix("W/")
                    .unwrap_or(t)
                    .trim_matches('"')
                    .parse::<i64>()
                    .ok()
            })
            .map(Some)
            .ok_or_else(ScimError::precondition_failed),
    }
}

fn not_modified(headers: &HeaderMap, version: i64) -> Option<Response> {
    let v = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?;
    if !etag_matches(v, version) {
        return None;
    }
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(e) = HeaderValue::from_str(&etag(version)) {
        r.headers_mut().insert(header::ETAG, e);
    }
    Some(r)
}

// ---------------------------------------------------------------------------
// Discovery

async fn service_provider_config(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    Ok(respond(
        StatusCode::OK,
        &schema::service_provider_config(&ctx.base),
        None,
        None,
    ))
}

async fn schemas(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    let all: Vec<Value> = ALL_SCHEMAS.iter().map(|s| s.to_json(&ctx.base)).collect();
    let n = all.len() as i64;
    Ok(respond(
        StatusCode::OK,
        &list_response(all, n, Window { start: 1, count: n }),
        None,
        None,
    ))
}

async fn schema_by_id(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    let s = ALL_SCHEMAS
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| ScimError::not_found(format!("no schema `{id}`")))?;
    Ok(respond(StatusCode::OK, &s.to_json(&ctx.base), None, None))
}

async fn resource_types(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    let all = vec![USER_TYPE.to_json(&ctx.base), GROUP_TYPE.to_json(&ctx.base)];
    Ok(respond(
        StatusCode::OK,
        &list_response(all, 2, Window { start: 1, count: 2 }),
        None,
        None,
    ))
}

async fn resource_type_by_id(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    let t = [&USER_TYPE, &GROUP_TYPE]
        .into_iter()
        .find(|t| t.name.eq_ignore_ascii_case(&id))
        .ok_or_else(|| ScimError::not_found(format!("no resource type `{id}`")))?;
    Ok(respond(StatusCode::OK, &t.to_json(&ctx.base), None, None))
}

async fn not_found(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ScimResult<Response> {
    authenticate(&state, &headers, peer).await?;
    Err(ScimError::not_found("No such SCIM endpoint."))
}

async fn method_not_allowed() -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "Method not allowed on this endpoint.",
    )
}

// ---------------------------------------------------------------------------
// Users

async fn user_groups(
    state: &AppState,
    ws: &str,
    ids: Option<&[String]>,
) -> ScimResult<HashMap<String, Vec<(String, String)>>> {
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (u, g, name) in state.store.scim_group_memberships(ws, ids).await? {
        out.entry(u).or_default().push((g, name));
    }
    Ok(out)
}

async fn load_user(
    state: &AppState,
    ctx: &ScimCtx,
    id: &str,
) -> ScimResult<(ScimUserRecord, Value)> {
    let rec = state
        .store
        .scim_get_user(&ctx.ws.id, id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no user `{id}`")))?;
    let groups = user_groups(state, &ctx.ws.id, Some(&[id.to_string()])).await?;
    let doc = user_json(
        &ctx.base,
        &rec,
        groups.get(id).map(Vec::as_slice).unwrap_or(&[]),
    );
    Ok((rec, doc))
}

/// Every user matching a filter, as representations (ordered by email).
async fn all_user_docs(
    state: &AppState,
    ctx: &ScimCtx,
    compiled: Option<&Compiled>,
) -> ScimResult<Vec<Value>> {
    let cond = compiled
        .map(|c| filter::to_user_cond(c).0)
        .unwrap_or(UserCond::All);
    let (rows, _) = state.store.scim_find_users(&ctx.ws.id, &cond, None).await?;
    let groups = user_groups(state, &ctx.ws.id, None).await?;
    Ok(rows
        .iter()
        .map(|r| {
            user_json(
                &ctx.base,
                r,
                groups.get(&r.user_id).map(Vec::as_slice).unwrap_or(&[]),
            )
        })
        .filter(|d| compiled.is_none_or(|c| c.matches(d)))
        .collect())
}

async fn query_users(state: &AppState, ctx: &ScimCtx, params: &ListParams) -> ScimResult<Response> {
    let compiled = params.compiled(&USER_TYPE)?;
    let window = Window::parse(params.start.as_ref(), params.count.as_ref())?;
    let (cond, exact) = match &compiled {
        None => (UserCond::All, true),
        Some(c) => filter::to_user_cond(c),
    };
    let (docs, total) = if exact {
        // The whole filter ran in SQL: so can the window.
        let (rows, total) = state
            .store
            .scim_find_users(&ctx.ws.id, &cond, Some((window.offset(), window.count)))
            .await?;
        let ids: Vec<String> = rows.iter().map(|r| r.user_id.clone()).collect();
        let groups = user_groups(state, &ctx.ws.id, Some(&ids)).await?;
        let docs = rows
            .iter()
            .map(|r| {
                user_json(
                    &ctx.base,
                    r,
                    groups.get(&r.user_id).map(Vec::as_slice).unwrap_or(&[]),
                )
            })
            .collect();
        (docs, total)
    } else {
        let all = all_user_docs(state, ctx, compiled.as_ref()).await?;
        let total = all.len() as i64;
        (page(all, window), total)
    };
    let docs = docs
        .into_iter()
        .map(|d| params.projection.apply(&USER_TYPE, d))
        .collect();
    Ok(respond(
        StatusCode::OK,
        &list_response(docs, total, window),
        None,
        None,
    ))
}

fn page(all: Vec<Value>, w: Window) -> Vec<Value> {
    all.into_iter()
        .skip(usize::try_from(w.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(w.count).unwrap_or(0))
        .collect()
}

/// What a checked user body says: `(userName, externalId, active, other attributes)`.
type UserParts = (
    Option<String>,
    Option<String>,
    Option<bool>,
    Map<String, Value>,
);

fn user_parts(mut m: Map<String, Value>) -> UserParts {
    let user_name = m
        .remove("userName")
        .and_then(|v| v.as_str().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty());
    let external_id = m
        .remove("externalId")
        .and_then(|v| v.as_str().map(str::to_string));
    let active = m.remove("active").and_then(|v| v.as_bool());
    (user_name, external_id, active, m)
}

fn check_user_name(u: &str) -> ScimResult<()> {
    if u.len() > 254 || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ScimError::invalid_value(
            "userName: at most 254 characters, no spaces",
        ));
    }
    Ok(())
}

async fn create_user(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    let body = json_body(&headers, &body)?;
    let (user_name, external_id, active, attrs) =
        user_parts(canonical_resource(&USER_TYPE, &body)?);
    let user_name = user_name.ok_or_else(|| ScimError::invalid_value("userName is required"))?;
    check_user_name(&user_name)?;
    let new = NewScimUser {
        email: user_name.clone(),
        name: account_name(&attrs).unwrap_or_default(),
        external_id: external_id.clone(),
        // Not asserted on creation: active, the service provider's default.
        active: Some(active.unwrap_or(true)),
        attributes: Value::Object(attrs).to_string(),
        default_policies: ctx.default_policies(),
    };
    let created = ctx
        .audited(
            &state,
            "scim.user.created",
            None,
            json!({"userName": user_name, "externalId": external_id, "active": active != Some(false),
                   "roles": new.default_policies}),
            state
                .store
                .scim_create_user(&ctx.ws.id, &new, state.clock.now()),
        )
        .await?;
    let (rec, doc) = load_user(&state, &ctx, &created.user_id).await?;
    let location = doc["meta"]["location"].as_str().map(str::to_string);
    let doc = projection_of(&query_map(q.as_deref())).apply(&USER_TYPE, doc);
    Ok(respond(
        StatusCode::CREATED,
        &doc,
        Some(rec.version()),
        location.as_deref(),
    ))
}

/// The write a new representation asks for, checked against the old one.
fn user_update(
    ctx: &ScimCtx,
    rec: &ScimUserRecord,
    parts: UserParts,
    keep_active_if_absent: bool,
) -> ScimResult<ScimUserUpdate> {
    let (user_name, external_id, active, attrs) = parts;
    let user_name = user_name.ok_or_else(|| ScimError::invalid_value("userName is required"))?;
    if user_name.to_lowercase() != rec.email.to_lowercase() {
        return Err(ScimError::mutability(
            "userName is the account's email and cannot be changed through SCIM",
        ));
    }
    let member_now = rec.member_since.is_some();
    let (active, member) = match active {
        Some(a) => (Some(a), a),
        None if keep_active_if_absent => (rec.state.as_ref().and_then(|s| s.active), member_now),
        None => (None, true),
    };
    Ok(ScimUserUpdate {
        external_id,
        active,
        name: account_name(&attrs),
        attributes: Value::Object(attrs).to_string(),
        member,
        default_policies: ctx.default_policies(),
    })
}

enum Edit {
    Put(Value),
    Patch(Vec<patch::Operation>),
}

// ---------------------------------------------------------------------------
// Groups

async fn load_group(
    state: &AppState,
    ctx: &ScimCtx,
    id: &str,
) -> ScimResult<(ScimGroupRecord, Value)> {
    let rec = state
        .store
        .scim_get_group(&ctx.ws.id, id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no group `{id}`")))?;
    let doc = group_json(&ctx.base, &rec);
    Ok((rec, doc))
}

async fn all_group_docs(
    state: &AppState,
    ctx: &ScimCtx,
    compiled: Option<&Compiled>,
) -> ScimResult<Vec<Value>> {
    Ok(state
        .store
        .scim_list_groups(&ctx.ws.id)
        .await?
        .iter()
        .map(|g| group_json(&ctx.base, g))
        .filter(|d| compiled.is_none_or(|c| c.matches(d)))
        .collect())
}

async fn query_groups(
    state: &AppState,
    ctx: &ScimCtx,
    params: &ListParams,
) -> ScimResult<Response> {
    let compiled = params.compiled(&GROUP_TYPE)?;
    let window = Window::parse(params.start.as_ref(), params.count.as_ref())?;
    let all = all_group_docs(state, ctx, compiled.as_ref()).await?;
    let total = all.len() as i64;
    let docs = page(all, window)
        .into_iter()
        .map(|d| params.projection.apply(&GROUP_TYPE, d))
        .collect();
    Ok(respond(
        StatusCode::OK,
        &list_response(docs, total, window),
        None,
        None,
    ))
}

/// `POST /.search`: users and groups in one list (RFC 7644 section 3.4.3).
/// A filter that does not apply to one resource type matches none of it.
async fn search_all(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    let params = ListParams::from_search(&json_body(&headers, &body)?)?;
    let window = Window::parse(params.start.as_ref(), params.count.as_ref())?;
    let (users, groups) = match (params.compiled(&USER_TYPE), params.compiled(&GROUP_TYPE)) {
        (Err(e), Err(_)) => return Err(e),
        (u, g) => (u.ok(), g.ok()),
    };
    let mut all: Vec<(bool, Value)> = Vec::new();
    if let Some(u) = users {
        all.extend(
            all_user_docs(&state, &ctx, u.as_ref())
                .await?
                .into_iter()
                .map(|d| (true, d)),
        );
    }
    if let Some(g) = groups {
        all.extend(
            all_group_docs(&state, &ctx, g.as_ref())
                .await?
                .into_iter()
                .map(|d| (false, d)),
        );
    }
    let total = all.len() as i64;
    let docs = all
        .into_iter()
        .skip(usize::try_from(window.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(window.count).unwrap_or(0))
        .map(|(is_user, d)| {
            params
                .projection
                .apply(if is_user { &USER_TYPE } else { &GROUP_TYPE }, d)
        })
        .collect();
    Ok(respond(
        StatusCode::OK,
        &list_response(docs, total, window),
        None,
        None,
    ))
}

/// What a checked group body says: `(displayName, externalId, member ids)`.
fn group_parts(mut m: Map<String, Value>) -> ScimResult<(String, Option<String>, Vec<String>)> {
    let name = m
        .remove("displayName")
        .and_then(|v| v.as_str().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ScimError::invalid_value("displayName is required"))?;
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ScimError::invalid_value(
            "displayName: at most 100 characters, no line breaks",
        ));
    }
    let external_id = m
        .remove("externalId")
        .and_then(|v| v.as_str().map(str::to_string));
    let mut members: Vec<String> = Vec::new();
    if let Some(Value::Array(items)) = m.remove("members") {
        for i in items {
            if let Some(t) = i.get("type").and_then(Value::as_str) {
                if !t.eq_ignore_ascii_case("User") {
                    return Err(ScimError::invalid_value(
                        "members: only users can be members",
                    ));
                }
            }
            let v = i.get("value").and_then(Value::as_str).ok_or_else(|| {
                ScimError::invalid_value("members: each needs a value (a user id)")
            })?;
            if !members.iter().any(|m| m == v) {
                members.push(v.to_string());
            }
        }
    }
    Ok((name, external_id, members))
}

async fn create_group(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    let body = json_body(&headers, &body)?;
    let (name, external_id, members) = group_parts(canonical_resource(&GROUP_TYPE, &body)?)?;
    let new = NewScimGroup {
        name: name.clone(),
        external_id: external_id.clone(),
        policies: ctx.default_policies(),
        members: members.clone(),
    };
    let id = ctx
        .audited(
            &state,
            "scim.group.created",
            None,
            json!({"displayName": name, "externalId": external_id, "members": members, "roles": new.policies}),
            state
                .store
                .scim_create_group(&ctx.ws.id, &new, state.clock.now()),
        )
        .await?;
    let (rec, doc) = load_group(&state, &ctx, &id).await?;
    let location = doc["meta"]["location"].as_str().map(str::to_string);
    let doc = projection_of(&query_map(q.as_deref())).apply(&GROUP_TYPE, doc);
    Ok(respond(
        StatusCode::CREATED,
        &doc,
        Some(rec.version()),
        location.as_deref(),
    ))
}

/// Whether a SCIM write lost its version race (it then wrote nothing).
trait Stale {
    fn is_stale(&self) -> bool {
        false
    }
}

impl Stale for Written {
    fn is_stale(&self) -> bool {
        matches!(self, Written::Stale)
    }
}

impl Stale for crate::store::scim::ScimCreated {}
impl Stale for String {}

// ---------------------------------------------------------------------------
// Handlers shared by Users and Groups: what differs is in [`Kind`].

/// One SCIM resource type as the shared handlers see it.
trait Kind: Send + Sync + 'static {
    const TYPE: &'static ResourceDef;
    /// A list or search answer (filter, sort, window).
    fn query(
        state: &AppState,
        ctx: &ScimCtx,
        params: &ListParams,
    ) -> impl std::future::Future<Output = ScimResult<Response>> + Send;
    /// "user" or "group", in audit actions and messages.
    const NOUN: &'static str;
    /// What one resource is read as before a write.
    type Record: Send + Sync;
    fn record(
        state: &AppState,
        ctx: &ScimCtx,
        id: &str,
    ) -> impl std::future::Future<Output = ScimResult<(Self::Record, i64, Value)>> + Send;
    /// One attempt at writing the representation `new` over `rec` (a PUT
    /// when `put`, else the result of a PATCH).
    fn put(
        state: &AppState,
        ctx: &ScimCtx,
        id: &str,
        rec: &Self::Record,
        new: &Value,
        put: bool,
    ) -> impl std::future::Future<Output = ScimResult<Written>> + Send;
    /// Deletes one resource (if still at version `expected`, when given).
    fn delete(
        state: &AppState,
        ws: &str,
        id: &str,
        expected: Option<i64>,
    ) -> impl std::future::Future<Output = crate::store::StoreResult<Written>> + Send;
}

struct Users;
struct Groups;

impl Kind for Users {
    const TYPE: &'static ResourceDef = &USER_TYPE;
    const NOUN: &'static str = "user";
    type Record = ScimUserRecord;
    async fn query(state: &AppState, ctx: &ScimCtx, params: &ListParams) -> ScimResult<Response> {
        query_users(state, ctx, params).await
    }
    async fn record(
        state: &AppState,
        ctx: &ScimCtx,
        id: &str,
    ) -> ScimResult<(ScimUserRecord, i64, Value)> {
        let (rec, doc) = load_user(state, ctx, id).await?;
        let version = rec.version();
        Ok((rec, version, doc))
    }
    async fn put(
        state: &AppState,
        ctx: &ScimCtx,
        id: &str,
        rec: &ScimUserRecord,
        new: &Value,
        put: bool,
    ) -> ScimResult<Written> {
        let update = user_update(
            ctx,
            rec,
            user_parts(canonical_resource(&USER_TYPE, new)?),
            put,
        )?;
        // The version claim makes the record read above the one written over,
        // so whether this (re)activates or deactivates is known now.
        let action = match (rec.member_since.is_some(), update.member) {
            (true, false) => "scim.user.deactivated",
            (false, true) => "scim.user.reactivated",
            _ => "scim.user.updated",
        };
        let details = json!({"userName": rec.email, "externalId": update.external_id, "active": update.member,
                             "via": if put { "PUT" } else { "PATCH" }});
        let write = state.store.scim_update_user(
            &ctx.ws.id,
            id,
            Some(rec.version()),
            &update,
            state.clock.now(),
        );
        let written = ctx.audited(state, action, Some(id), details, write).await?;
        if action == "scim.user.deactivated" {
            apps_lose(state, &ctx.ws.id, id).await;
        }
        Ok(written)
    }
    async fn delete(
        state: &AppState,
        ws: &str,
        id: &str,
        expected: Option<i64>,
    ) -> crate::store::StoreResult<Written> {
        let written = state.store.scim_delete_user(ws, id, expected).await?;
        if matches!(written, Written::Done { .. }) {
            apps_lose(state, ws, id).await;
        }
        Ok(written)
    }
}

/// A person deactivated or deleted by the IdP: the workspace's apps are
/// told (back-channel logout) and their tokens stop working.
async fn apps_lose(state: &AppState, ws: &str, user_id: &str) {
    let which = crate::store::oidc::GrantsOf::UserInWorkspace(user_id, ws);
    crate::service::op::grants_ended(state, which).await;
}

impl Kind for Groups {
    const TYPE: &'static ResourceDef = &GROUP_TYPE;
    const NOUN: &'static str = "group";
    type Record = ScimGroupRecord;
    async fn query(state: &AppState, ctx: &ScimCtx, params: &ListParams) -> ScimResult<Response> {
        query_groups(state, ctx, params).await
    }
    async fn record(
        state: &AppState,
        ctx: &ScimCtx,
        id: &str,
    ) -> ScimResult<(ScimGroupRecord, i64, Value)> {
        let (rec, doc) = load_group(state, ctx, id).await?;
        let version = rec.version();
        Ok((rec, version, doc))
    }
    async fn put(
        state: &AppState,
        ctx: &ScimCtx,
        id: &str,
        rec: &ScimGroupRecord,
        new: &Value,
        _put: bool,
    ) -> ScimResult<Written> {
        let (name, external_id, members) = group_parts(canonical_resource(&GROUP_TYPE, new)?)?;
        let have = &rec.group.member_ids;
        let update = ScimGroupUpdate {
            name: (name != rec.group.name).then(|| name.clone()),
            external_id: external_id.clone(),
            add: members
                .iter()
                .filter(|m| !have.contains(m))
                .cloned()
                .collect(),
            remove: have
                .iter()
                .filter(|m| !members.contains(m))
                .cloned()
                .collect(),
        };
        let details = json!({"displayName": name, "externalId": external_id, "members_added": update.add,
                             "members_removed": update.remove});
        let write = state.store.scim_update_group(
            &ctx.ws.id,
            id,
            Some(rec.version()),
            &update,
            state.clock.now(),
        );
        Ok(ctx
            .audited(state, "scim.group.updated", Some(id), details, write)
            .await?)
    }
    async fn delete(
        state: &AppState,
        ws: &str,
        id: &str,
        expected: Option<i64>,
    ) -> crate::store::StoreResult<Written> {
        state.store.scim_delete_group(ws, id, expected).await
    }
}

/// `DELETE /Users/{id}`, `DELETE /Groups/{id}` (audited).
async fn delete_one<K: Kind>(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    let expected = if_match_version(&headers)?;
    let action = format!("scim.{}.deleted", K::NOUN);
    let delete = K::delete(&state, &ctx.ws.id, &id, expected);
    match ctx
        .audited(&state, &action, Some(&id), json!({}), delete)
        .await
    {
        Ok(Written::Stale) => Err(ScimError::precondition_failed()),
        Ok(Written::Done { .. }) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(crate::store::StoreError::NotFound) => {
            Err(ScimError::not_found(format!("no {} `{id}`", K::NOUN)))
        }
        Err(e) => Err(e.into()),
    }
}

/// One resource: its version and representation.
async fn load<K: Kind>(state: &AppState, ctx: &ScimCtx, id: &str) -> ScimResult<(i64, Value)> {
    let (_, version, doc) = K::record(state, ctx, id).await?;
    Ok((version, doc))
}

/// A PUT or PATCH applied: read, check If-Match, write with the version
/// claimed; a lost race without If-Match is retried.
async fn write<K: Kind>(
    state: &AppState,
    ctx: &ScimCtx,
    headers: &HeaderMap,
    id: &str,
    edit: &Edit,
) -> ScimResult<(i64, Value)> {
    for _ in 0..ATTEMPTS {
        let (rec, version, doc) = K::record(state, ctx, id).await?;
        let guarded = if_match(headers, version)?;
        let written = match edit {
            Edit::Put(body) => K::put(state, ctx, id, &rec, body, true).await?,
            Edit::Patch(ops) => {
                let mut new = doc;
                patch::apply(K::TYPE, &mut new, ops)?;
                K::put(state, ctx, id, &rec, &new, false).await?
            }
        };
        match written {
            Written::Stale if guarded => return Err(ScimError::precondition_failed()),
            Written::Stale => continue,
            Written::Done { .. } => return load::<K>(state, ctx, id).await,
        }
    }
    Err(ScimError::new(
        StatusCode::CONFLICT,
        None,
        "The resource is changing too fast; retry.",
    ))
}

/// `GET /Users`, `GET /Groups`.
async fn list<K: Kind>(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    K::query(&state, &ctx, &ListParams::from_query(q.as_deref())).await
}

/// `POST /Users/.search`, `POST /Groups/.search`.
async fn search<K: Kind>(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    let params = ListParams::from_search(&json_body(&headers, &body)?)?;
    K::query(&state, &ctx, &params).await
}

/// `GET /Users/{id}`, `GET /Groups/{id}` (304 for a matching If-None-Match).
async fn get_one<K: Kind>(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    let (version, doc) = load::<K>(&state, &ctx, &id).await?;
    if let Some(r) = not_modified(&headers, version) {
        return Ok(r);
    }
    let doc = projection_of(&query_map(q.as_deref())).apply(K::TYPE, doc);
    Ok(respond(StatusCode::OK, &doc, Some(version), None))
}

/// `PUT /Users/{id}`, `PUT /Groups/{id}`.
async fn replace<K: Kind>(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    let edit = Edit::Put(json_body(&headers, &body)?);
    written::<K>(&state, &ctx, &headers, &id, edit, q.as_deref()).await
}

/// `PATCH /Users/{id}`, `PATCH /Groups/{id}`.
async fn patch_one<K: Kind>(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ScimResult<Response> {
    let ctx = authenticate(&state, &headers, peer).await?;
    let edit = Edit::Patch(patch::parse(&json_body(&headers, &body)?)?);
    written::<K>(&state, &ctx, &headers, &id, edit, q.as_deref()).await
}

async fn written<K: Kind>(
    state: &AppState,
    ctx: &ScimCtx,
    headers: &HeaderMap,
    id: &str,
    edit: Edit,
    q: Option<&str>,
) -> ScimResult<Response> {
    let (version, doc) = write::<K>(state, ctx, headers, id, &edit).await?;
    let doc = projection_of(&query_map(q)).apply(K::TYPE, doc);
    Ok(respond(StatusCode::OK, &doc, Some(version), None))
}

//! SCIM JSON ⇄ model: the representations of users and groups, input
//! validation against the schemas (types checked, names made canonical,
//! read-only and unknown attributes dropped), `attributes` /
//! `excludedAttributes`, list responses, pagination and ETags.

use super::errors::{ScimError, ScimResult};
use super::filter::{get_ci, parse_attr_path, resolve, Loc, Target};
use super::schema::{
    Attr, Mutability, ResourceDef, Returned, Type, ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA,
};
use crate::clock::rfc3339;
use crate::store::scim::{ScimGroupRecord, ScimUserRecord};
use serde_json::{json, Map, Value};

pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The most resources one list response holds (`filter.maxResults`).
pub const MAX_RESULTS: i64 = 1000;
/// Page size when the client gives no `count`.
pub const DEFAULT_COUNT: i64 = 100;

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Whether an `If-Match` / `If-None-Match` value names this version.
pub fn etag_matches(header: &str, version: i64) -> bool {
    header.split(',').map(str::trim).any(|t| {
        t == "*"
            || t.strip_prefix("W/")
                .unwrap_or(t)
                .trim_matches('"')
                .parse::<i64>()
                .is_ok_and(|v| v == version)
    })
}

fn meta(resource_type: &str, created: i64, modified: i64, location: String, version: i64) -> Value {
    json!({
        "resourceType": resource_type,
        "created": rfc3339(created),
        "lastModified": rfc3339(modified),
        "location": location,
        "version": etag(version),
    })
}

/// A user's representation. `groups`: (group id, group name) pairs.
pub fn user_json(base: &str, rec: &ScimUserRecord, groups: &[(String, String)]) -> Value {
    let mut doc = rec
        .state
        .as_ref()
        .and_then(|s| serde_json::from_str::<Value>(&s.attributes).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let mut schemas = vec![json!(USER_SCHEMA)];
    if doc.get(ENTERPRISE_SCHEMA).is_some() {
        schemas.push(json!(ENTERPRISE_SCHEMA));
    }
    doc["schemas"] = Value::Array(schemas);
    doc["id"] = json!(rec.user_id);
    doc["userName"] = json!(rec.email);
    match &rec.state {
        Some(s) => {
            if let Some(e) = &s.external_id {
                doc["externalId"] = json!(e);
            }
        }
        // Members the SCIM client never wrote to: what the account knows.
        None => {
            if !rec.name.is_empty() {
                doc["displayName"] = json!(rec.name);
            }
        }
    }
    // Active is membership; a client that never said (or removed
    // `active`) sees it unassigned while the membership lasts.
    let active = match (rec.member_since, &rec.state) {
        (None, _) => Some(false),
        (Some(_), Some(s)) if s.active.is_none() => None,
        (Some(_), _) => Some(true),
    };
    if let Some(a) = active {
        doc["active"] = json!(a);
    }
    if !groups.is_empty() {
        doc["groups"] = Value::Array(
            groups
                .iter()
                .map(|(id, name)| {
                    json!({"value": id, "$ref": format!("{base}/Groups/{id}"), "display": name, "type": "direct"})
                })
                .collect(),
        );
    }
    let (created, modified) = match &rec.state {
        Some(s) => (s.created_at, s.updated_at),
        None => {
            let since = rec.member_since.unwrap_or(rec.user_created_at);
            (since, since)
        }
    };
    doc["meta"] = meta(
        "User",
        created,
        modified,
        format!("{base}/Users/{}", rec.user_id),
        rec.version(),
    );
    doc
}

pub fn group_json(base: &str, rec: &ScimGroupRecord) -> Value {
    let g = &rec.group;
    let mut doc = json!({
        "schemas": [GROUP_SCHEMA],
        "id": g.id,
        "displayName": g.name,
    });
    if let Some(e) = rec.state.as_ref().and_then(|s| s.external_id.as_ref()) {
        doc["externalId"] = json!(e);
    }
    if !g.member_ids.is_empty() {
        doc["members"] = Value::Array(
            g.member_ids
                .iter()
                .map(|u| json!({"value": u, "$ref": format!("{base}/Users/{u}"), "type": "User"}))
                .collect(),
        );
    }
    let (created, modified) = match &rec.state {
        Some(s) => (s.created_at, s.updated_at),
        None => (g.created_at, g.created_at),
    };
    doc["meta"] = meta(
        "Group",
        created,
        modified,
        format!("{base}/Groups/{}", g.id),
        rec.version(),
    );
    doc
}

fn bad_value(path: &str, why: &str) -> ScimError {
    ScimError::invalid_value(format!("`{path}`: {why}"))
}

fn is_true(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// One value of an attribute (an element, for multi-valued ones), checked
/// and made canonical; `None` when it is unassigned.
pub fn canonical_single(attr: &Attr, v: &Value, path: &str) -> ScimResult<Option<Value>> {
    if v.is_null() {
        return Ok(None);
    }
    Ok(Some(match attr.ty {
        Type::String | Type::Reference | Type::Binary => match v {
            Value::String(s) => json!(s),
            Value::Number(n) => json!(n.to_string()),
            Value::Bool(b) => json!(b.to_string()),
            _ => return Err(bad_value(path, "expected a string")),
        },
        // Entra ID sends "True"/"False" as strings.
        Type::Boolean => match v {
            Value::Bool(b) => json!(b),
            Value::String(s) => {
                json!(is_true(s.trim()).ok_or_else(|| bad_value(path, "expected true or false"))?)
            }
            _ => return Err(bad_value(path, "expected true or false")),
        },
        Type::Integer => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => json!(n),
            Value::String(s) => json!(s
                .trim()
                .parse::<i64>()
                .map_err(|_| bad_value(path, "expected an integer"))?),
            _ => return Err(bad_value(path, "expected an integer")),
        },
        Type::Decimal => match v {
            Value::Number(n) => json!(n),
            Value::String(s) => json!(s
                .trim()
                .parse::<f64>()
                .map_err(|_| bad_value(path, "expected a number"))?),
            _ => return Err(bad_value(path, "expected a number")),
        },
        Type::DateTime => match v {
            Value::String(s)
                if time::OffsetDateTime::parse(
                    s,
                    &time::format_description::well_known::Rfc3339,
                )
                .is_ok() =>
            {
                json!(s)
            }
            _ => return Err(bad_value(path, "expected an RFC 3339 date-time")),
        },
        Type::Complex => match v {
            Value::Object(o) => {
                let mut out = Map::new();
                for (k, sv) in o {
                    let Some(sub) = attr.sub_attr(k) else {
                        continue;
                    };
                    if sub.mutability == Mutability::ReadOnly {
                        continue;
                    }
                    if let Some(c) = canonical_single(sub, sv, &format!("{path}.{}", sub.name))? {
                        out.insert(sub.name.to_string(), c);
                    }
                }
                if out.is_empty() {
                    return Ok(None);
                }
                Value::Object(out)
            }
            // A bare value for a complex attribute with a `value` (Entra ID
            // sends the manager's id this way).
            Value::String(_) | Value::Number(_) | Value::Bool(_) => match attr.sub_attr("value") {
                Some(sub) => match canonical_single(sub, v, &format!("{path}.value"))? {
                    Some(c) => json!({"value": c}),
                    None => return Ok(None),
                },
                None => return Err(bad_value(path, "expected an object")),
            },
            _ => return Err(bad_value(path, "expected an object")),
        },
    }))
}

/// A whole attribute value (an array for multi-valued attributes).
pub fn canonical_value(attr: &Attr, v: &Value, path: &str) -> ScimResult<Option<Value>> {
    if !attr.multi {
        return canonical_single(attr, v, path);
    }
    let items: Vec<&Value> = match v {
        Value::Null => return Ok(None),
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        if let Some(c) = canonical_single(attr, i, path)? {
            out.push(c);
        }
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// Sets a canonical value at an attribute location (creating the extension
/// object if needed); `None` removes it.
pub fn put_at(doc: &mut Map<String, Value>, loc: &Loc, value: Option<Value>) {
    fn write(container: &mut Map<String, Value>, key: &str, value: Option<Value>) {
        match value {
            Some(v) => {
                container.insert(key.to_string(), v);
            }
            None => {
                container.remove(key);
            }
        }
    }
    let Some(e) = loc.ext else {
        write(doc, loc.attr.name, value);
        return;
    };
    let slot = doc
        .entry(e.id.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Some(m) = slot.as_object_mut() {
        write(m, loc.attr.name, value);
    }
    if doc
        .get(e.id)
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        doc.remove(e.id);
    }
}

/// Checks a resource body against a resource type: canonical attribute
/// names, types checked, read-only and unknown attributes dropped.
pub fn canonical_resource(def: &ResourceDef, body: &Value) -> ScimResult<Map<String, Value>> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the body must be a JSON object"))?;
    let mut out = Map::new();
    for (k, v) in obj {
        if k.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(ext) = def.extension(k) {
            let Some(inner) = v.as_object() else {
                if v.is_null() {
                    continue;
                }
                return Err(bad_value(k, "expected an object"));
            };
            for (ik, iv) in inner {
                let Some(a) = ext.attr(ik) else { continue };
                if a.mutability == Mutability::ReadOnly {
                    continue;
                }
                let loc = Loc {
                    ext: Some(ext),
                    attr: a,
                    sub: None,
                };
                let c = canonical_value(a, iv, &loc.dotted())?;
                if c.is_some() {
                    put_at(&mut out, &loc, c);
                }
            }
            continue;
        }
        // Plain names, or URN-qualified ones (`urn:...:User:department`).
        let Ok(path) = parse_attr_path(k) else {
            continue;
        };
        let Ok(Target::Attr(loc)) = resolve(def, &path) else {
            continue;
        };
        if loc.attr.mutability == Mutability::ReadOnly {
            continue;
        }
        match loc.sub {
            None => {
                let c = canonical_value(loc.attr, v, &loc.dotted())?;
                if c.is_some() {
                    put_at(&mut out, &loc, c);
                }
            }
            Some(sub) => {
                // `name.givenName` as a key: merge into the complex value.
                if loc.attr.multi || sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                let Some(c) = canonical_single(sub, v, &loc.dotted())? else {
                    continue;
                };
                let whole = Loc { sub: None, ..loc };
                let mut current = whole
                    .container(&Value::Object(out.clone()))
                    .and_then(|c| get_ci(c, loc.attr.name))
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                current.insert(sub.name.to_string(), c);
                put_at(&mut out, &whole, Some(Value::Object(current)));
            }
        }
    }
    Ok(out)
}

/// Parsed `attributes` / `excludedAttributes`.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    pub attributes: Vec<String>,
    pub excluded: Vec<String>,
}

impl Projection {
    pub fn from_lists(attributes: Option<&str>, excluded: Option<&str>) -> Self {
        let split = |s: Option<&str>| -> Vec<String> {
            s.map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
        };
        Self {
            attributes: split(attributes),
            excluded: split(excluded),
        }
    }

    /// Applies the projection to a representation.
    pub fn apply(&self, def: &ResourceDef, doc: Value) -> Value {
        if !self.attributes.is_empty() {
            let mut out = Map::new();
            for key in ["schemas", "id"] {
                if let Some(v) = doc.get(key) {
                    out.insert(key.to_string(), v.clone());
                }
            }
            for p in &self.attributes {
                let Ok(path) = parse_attr_path(p) else {
                    continue;
                };
                match resolve(def, &path) {
                    Ok(Target::Extension(e)) => {
                        if let Some(v) = doc.get(e.id) {
                            out.insert(e.id.to_string(), v.clone());
                        }
                    }
                    Ok(Target::Attr(loc)) => copy_at(&doc, &mut out, &loc),
                    Err(_) => {}
                }
            }
            return Value::Object(out);
        }
        let mut doc = doc;
        for p in &self.excluded {
            let Ok(path) = parse_attr_path(p) else {
                continue;
            };
            match resolve(def, &path) {
                Ok(Target::Extension(e)) => {
                    if let Some(m) = doc.as_object_mut() {
                        m.remove(e.id);
                    }
                }
                Ok(Target::Attr(loc)) if loc.attr.returned != Returned::Always => {
                    remove_at(&mut doc, &loc)
                }
                _ => {}
            }
        }
        doc
    }
}

fn copy_at(doc: &Value, out: &mut Map<String, Value>, loc: &Loc) {
    let Some(v) = loc.container(doc).and_then(|c| c.get(loc.attr.name)) else {
        return;
    };
    let picked = match loc.sub {
        None => Some(v.clone()),
        Some(sub) => {
            let pick = |item: &Value| -> Option<Value> {
                item.get(sub.name).map(|sv| json!({ sub.name: sv.clone() }))
            };
            match v {
                Value::Array(items) => {
                    let kept: Vec<Value> = items.iter().filter_map(pick).collect();
                    (!kept.is_empty()).then_some(Value::Array(kept))
                }
                other => pick(other),
            }
        }
    };
    if let Some(p) = picked {
        let whole = Loc { sub: None, ..*loc };
        put_at(out, &whole, Some(p));
    }
}

fn remove_at(doc: &mut Value, loc: &Loc) {
    let Some(obj) = doc.as_object_mut() else {
        return;
    };
    match loc.sub {
        None => put_at(obj, loc, None),
        Some(sub) => {
            let container = match loc.ext {
                None => Some(&mut *obj),
                Some(e) => obj.get_mut(e.id).and_then(Value::as_object_mut),
            };
            if let Some(v) = container.and_then(|c| c.get_mut(loc.attr.name)) {
                match v {
                    Value::Array(items) => {
                        for i in items.iter_mut() {
                            if let Some(m) = i.as_object_mut() {
                                m.remove(sub.name);
                            }
                        }
                    }
                    Value::Object(m) => {
                        m.remove(sub.name);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// `startIndex` (1-based) and `count`, per RFC 7644 section 3.4.2.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub count: i64,
}

impl Window {
    pub fn parse(start: Option<&Value>, count: Option<&Value>) -> ScimResult<Self> {
        let num = |v: Option<&Value>, what: &str| -> ScimResult<Option<i64>> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .or_else(|| n.as_f64().map(|f| f as i64))
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("{what} must be an integer"))),
                Some(Value::String(s)) => s
                    .trim()
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| ScimError::invalid_value(format!("{what} must be an integer"))),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{what} must be an integer"
                ))),
            }
        };
        let start = num(start, "startIndex")?.unwrap_or(1).max(1);
        let count = num(count, "count")?
            .unwrap_or(DEFAULT_COUNT)
            .clamp(0, MAX_RESULTS);
        Ok(Self { start, count })
    }

    pub fn offset(&self) -> i64 {
        self.start - 1
    }
}

pub fn list_response(resources: Vec<Value>, total: i64, window: Window) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": window.start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// The account name SCIM attributes suggest: displayName, else
/// name.formatted, else given and family names.
pub fn account_name(attrs: &Map<String, Value>) -> Option<String> {
    fn s(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
    if let Some(d) = s(attrs.get("displayName")) {
        return Some(d.to_string());
    }
    let name = attrs.get("name");
    if let Some(f) = s(name.and_then(|n| n.get("formatted"))) {
        return Some(f.to_string());
    }
    let parts: Vec<&str> = ["givenName", "familyName"]
        .iter()
        .filter_map(|k| s(name.and_then(|n| n.get(*k))))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{GROUP_TYPE, USER_TYPE};

    #[test]
    fn input_is_checked_and_made_canonical() {
        let body = json!({
            "schemas": [USER_SCHEMA],
            "UserName": "Ann@Corp.Test",
            "ACTIVE": "False",
            "id": "ignored", "meta": {"version": "x"}, "groups": [{"value": "g"}], "password": "secret",
            "name": {"GivenName": "Ann", "nope": 1},
            "emails": {"value": "ann@corp.test", "primary": "True"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": "boss-id", "Department": 7},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter": "CC1",
            "name.familyName": "Lee",
            "somethingElse": true
        });
        let m = canonical_resource(&USER_TYPE, &body).unwrap();
        assert_eq!(
            Value::Object(m),
            json!({
                "userName": "Ann@Corp.Test",
                "active": false,
                "name": {"givenName": "Ann", "familyName": "Lee"},
                "emails": [{"value": "ann@corp.test", "primary": true}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "manager": {"value": "boss-id"}, "department": "7", "costCenter": "CC1"
                }
            })
        );
        let e = canonical_resource(&USER_TYPE, &json!({"userName": "a", "active": "maybe"}))
            .unwrap_err();
        assert_eq!(e.scim_type, Some("invalidValue"));
        assert!(canonical_resource(&GROUP_TYPE, &json!(["x"])).is_err());
    }

    #[test]
    fn projection_keeps_id_and_schemas() {
        let doc = json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "a", "displayName": "A",
                         "emails": [{"value": "a@x", "type": "work"}], "meta": {"version": "W/\"1\""}});
        let p = Projection::from_lists(Some("userName,emails.value"), None);
        assert_eq!(
            p.apply(&USER_TYPE, doc.clone()),
            json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "a", "emails": [{"value": "a@x"}]})
        );
        let p = Projection::from_lists(None, Some("displayName,id,emails.type,meta"));
        assert_eq!(
            p.apply(&USER_TYPE, doc),
            json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "a", "emails": [{"value": "a@x"}]})
        );
    }

    #[test]
    fn etags_and_windows() {
        assert!(etag_matches("W/\"3\"", 3));
        assert!(etag_matches("\"4\", W/\"3\"", 3));
        assert!(etag_matches("*", 9));
        assert!(!etag_matches("W/\"2\"", 3));
        let w = Window::parse(Some(&json!("0")), Some(&json!(5000))).unwrap();
        assert_eq!(
            w,
            Window {
                start: 1,
                count: MAX_RESULTS
            }
        );
        assert_eq!(Window::parse(None, Some(&json!(-3))).unwrap().count, 0);
        assert!(Window::parse(Some(&json!("x")), None).is_err());
    }
}

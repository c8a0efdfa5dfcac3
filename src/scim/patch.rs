//! PATCH (RFC 7644 section 3.5.2): operations applied, in order, to a copy
//! of the resource's representation; the caller stores the result only when
//! every operation applied, so a bad operation changes nothing.
//!
//! Besides the RFC's shapes this accepts what Entra ID and Okta send:
//! capitalised `op` names ("Replace"), booleans as strings ("False"),
//! path-less `replace`/`add` whose value keys are attribute paths
//! (`"name.givenName"`, `"urn:...:enterprise:2.0:User:department"`),
//! `remove` of `members` with a `value` list instead of a filter, a bare id
//! for a complex attribute (`manager`), and `add`/`replace` on
//! `emails[type eq "work"].value` when no such element exists yet (the
//! element is created from the filter's `eq` terms).

use super::errors::{ScimError, ScimResult};
use super::filter::{
    self, get_ci, parse_attr_path, parse_patch_path, resolve, Compiled, Filter, Loc, Op, Target,
};
use super::resources::{canonical_single, canonical_value, put_at};
use super::schema::{Attr, Mutability, ResourceDef, Schema, Type};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub kind: Kind,
    pub path: Option<String>,
    pub value: Option<Value>,
}

/// Reads a PatchOp message.
pub fn parse(body: &Value) -> ScimResult<Vec<Operation>> {
    let ops = get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("a PatchOp needs an `Operations` array"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("`Operations` is empty"));
    }
    if ops.len() > 1000 {
        return Err(ScimError::invalid_syntax("at most 1000 operations at once"));
    }
    ops.iter()
        .map(|o| {
            let kind = match get_ci(o, "op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("add") => Kind::Add,
                Some("remove") => Kind::Remove,
                Some("replace") => Kind::Replace,
                _ => {
                    return Err(ScimError::invalid_syntax(
                        "each operation needs `op`: add, remove or replace",
                    ))
                }
            };
            let path = match get_ci(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.trim().is_empty() => None,
                Some(Value::String(p)) => Some(p.trim().to_string()),
                Some(_) => return Err(ScimError::invalid_path("`path` must be a string")),
            };
            Ok(Operation {
                kind,
                path,
                value: get_ci(o, "value").cloned(),
            })
        })
        .collect()
}

/// Applies operations to a representation (a JSON object).
pub fn apply(def: &ResourceDef, doc: &mut Value, ops: &[Operation]) -> ScimResult<()> {
    let obj = doc.as_object_mut().ok_or_else(ScimError::internal)?;
    for op in ops {
        apply_one(def, obj, op)?;
    }
    Ok(())
}

fn apply_one(def: &ResourceDef, doc: &mut Map<String, Value>, op: &Operation) -> ScimResult<()> {
    let Some(path) = &op.path else {
        if op.kind == Kind::Remove {
            return Err(ScimError::no_target("remove needs a path"));
        }
        let Some(Value::Object(values)) = &op.value else {
            return Err(ScimError::invalid_value(
                "without a path, the value must be an object of attributes",
            ));
        };
        for (k, v) in values {
            if k.eq_ignore_ascii_case("schemas") {
                continue;
            }
            if let Some(ext) = def.extension(k) {
                apply_extension(ext, doc, op.kind, Some(v))?;
                continue;
            }
            let parsed = parse_attr_path(k).map_err(ScimError::invalid_path)?;
            match resolve(def, &parsed).map_err(ScimError::invalid_path)? {
                Target::Extension(ext) => apply_extension(ext, doc, op.kind, Some(v))?,
                // Okta repeats `id` (and clients `meta`) in path-less values.
                Target::Attr(loc) if read_only(&loc) => {}
                Target::Attr(loc) => set(doc, &loc, op.kind, Some(v))?,
            }
        }
        return Ok(());
    };
    let pp =
        parse_patch_path(path).map_err(|e| ScimError::invalid_path(format!("`{path}`: {e}")))?;
    let target =
        resolve(def, &pp.path).map_err(|e| ScimError::invalid_path(format!("`{path}`: {e}")))?;
    let loc = match target {
        Target::Extension(ext) => {
            if pp.filter.is_some() || pp.sub.is_some() {
                return Err(ScimError::invalid_path(format!("`{path}` is not a path")));
            }
            return apply_extension(ext, doc, op.kind, op.value.as_ref());
        }
        Target::Attr(loc) => loc,
    };
    if read_only(&loc) {
        return Err(ScimError::mutability(format!("`{path}` is read-only")));
    }
    let Some(flt) = &pp.filter else {
        return set(doc, &loc, op.kind, op.value.as_ref());
    };
    if !(loc.attr.multi && loc.attr.ty == Type::Complex) {
        return Err(ScimError::invalid_path(format!(
            "`{path}`: value filters apply to multi-valued complex attributes"
        )));
    }
    let sub = match &pp.sub {
        None => None,
        Some(s) => Some(loc.attr.sub_attr(s).ok_or_else(|| {
            ScimError::invalid_path(format!("`{}` has no sub-attribute `{s}`", loc.attr.name))
        })?),
    };
    if sub.is_some_and(|s| s.mutability == Mutability::ReadOnly) {
        return Err(ScimError::mutability(format!("`{path}` is read-only")));
    }
    let compiled = compile_element_filter(def, &loc, flt)
        .map_err(|e| ScimError::invalid_path(format!("`{path}`: {}", e.detail)))?;
    filtered(doc, &loc, sub, flt, &compiled, op)
}

fn read_only(loc: &Loc) -> bool {
    loc.attr.mutability == Mutability::ReadOnly
        || loc
            .sub
            .is_some_and(|s| s.mutability == Mutability::ReadOnly)
}

fn compile_element_filter(def: &ResourceDef, loc: &Loc, f: &Filter) -> ScimResult<Compiled> {
    // Compile as `attr[filter]` and keep the inner, element-relative part.
    let path = filter::AttrPath {
        urn: loc.ext.map(|e| e.id.to_string()),
        attr: loc.attr.name.to_string(),
        sub: None,
    };
    match filter::compile(
        def,
        &Filter::ValuePath {
            path,
            filter: Box::new(f.clone()),
        },
    )? {
        Compiled::Value { inner, .. } => Ok(*inner),
        _ => Err(ScimError::invalid_filter("not a value filter")),
    }
}

fn current<'a>(doc: &'a Map<String, Value>, loc: &Loc) -> Option<&'a Value> {
    match loc.ext {
        None => doc.get(loc.attr.name),
        Some(e) => doc.get(e.id).and_then(|x| x.get(loc.attr.name)),
    }
}

fn current_mut<'a>(doc: &'a mut Map<String, Value>, loc: &Loc) -> Option<&'a mut Value> {
    match loc.ext {
        None => doc.get_mut(loc.attr.name),
        Some(e) => doc.get_mut(e.id).and_then(|x| x.get_mut(loc.attr.name)),
    }
}

/// add / replace / remove of a whole extension object.
fn apply_extension(
    ext: &'static Schema,
    doc: &mut Map<String, Value>,
    kind: Kind,
    value: Option<&Value>,
) -> ScimResult<()> {
    if kind == Kind::Remove {
        doc.remove(ext.id);
        return Ok(());
    }
    let Some(Value::Object(values)) = value else {
        return Err(ScimError::invalid_value(format!(
            "`{}`: expected an object",
            ext.id
        )));
    };
    for (k, v) in values {
        let Some(a) = ext.attr(k) else { continue };
        if a.mutability == Mutability::ReadOnly {
            continue;
        }
        let loc = Loc {
            ext: Some(ext),
            attr: a,
            sub: None,
        };
        set(doc, &loc, kind, Some(v))?;
    }
    Ok(())
}

/// add / replace / remove at an attribute (and sub-attribute) without a
/// value filter.
fn set(
    doc: &mut Map<String, Value>,
    loc: &Loc,
    kind: Kind,
    value: Option<&Value>,
) -> ScimResult<()> {
    let shown = loc.dotted();
    if kind == Kind::Remove {
        return remove(doc, loc, value);
    }
    let value =
        value.ok_or_else(|| ScimError::invalid_value(format!("`{shown}`: a value is required")))?;
    match loc.sub {
        None if loc.attr.multi => {
            let new = canonical_value(loc.attr, value, &shown)?;
            let merged = match (kind, new, current(doc, loc)) {
                (Kind::Replace, new, _) => new,
                (_, None, cur) => cur.cloned(),
                (_, Some(Value::Array(add)), Some(Value::Array(have))) => {
                    let mut all = have.clone();
                    for v in add {
                        if !all.contains(&v) {
                            all.push(v);
                        }
                    }
                    Some(Value::Array(all))
                }
                (_, new, _) => new,
            };
            put_at(doc, loc, merged);
        }
        None if loc.attr.ty == Type::Complex => {
            // Sub-attributes given replace theirs; the others stay.
            let new = canonical_single(loc.attr, value, &shown)?;
            let mut merged = current(doc, loc)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if let Some(Value::Object(n)) = new {
                merged.extend(n);
            }
            put_at(
                doc,
                loc,
                (!merged.is_empty()).then_some(Value::Object(merged)),
            );
        }
        None => {
            let new = canonical_single(loc.attr, value, &shown)?;
            put_at(doc, loc, new);
        }
        Some(sub) => {
            let new = canonical_single(sub, value, &shown)?;
            let whole = Loc { sub: None, ..*loc };
            if loc.attr.multi {
                // Every element gets the sub-attribute.
                let mut items = current(doc, loc)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if items.is_empty() {
                    if kind == Kind::Replace {
                        return Err(ScimError::no_target(format!(
                            "`{shown}`: no values to replace"
                        )));
                    }
                    items.push(Value::Object(Map::new()));
                }
                for i in items.iter_mut() {
                    set_sub(i, sub, new.clone());
                }
                items.retain(|i| i.as_object().is_some_and(|m| !m.is_empty()));
                put_at(
                    doc,
                    &whole,
                    (!items.is_empty()).then_some(Value::Array(items)),
                );
            } else {
                let mut obj = current(doc, loc)
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new()));
                set_sub(&mut obj, sub, new);
                let keep = obj.as_object().is_some_and(|m| !m.is_empty());
                put_at(doc, &whole, keep.then_some(obj));
            }
        }
    }
    Ok(())
}

fn set_sub(item: &mut Value, sub: &Attr, v: Option<Value>) {
    if !item.is_object() {
        *item = Value::Object(Map::new());
    }
    if let Some(m) = item.as_object_mut() {
        match v {
            Some(v) => {
                m.insert(sub.name.to_string(), v);
            }
            None => {
                m.remove(sub.name);
            }
        }
    }
}

fn remove(doc: &mut Map<String, Value>, loc: &Loc, value: Option<&Value>) -> ScimResult<()> {
    match loc.sub {
        None => {
            // Entra ID: `remove` of `members` with the values to remove.
            if let (true, Some(v)) = (loc.attr.multi, value.filter(|v| !v.is_null())) {
                let gone = canonical_value(loc.attr, v, &loc.dotted())?;
                let gone: Vec<Value> = match gone {
                    Some(Value::Array(g)) => g,
                    _ => Vec::new(),
                };
                let key = |v: &Value| v.get("value").cloned();
                if let Some(Value::Array(items)) = current_mut(doc, loc) {
                    items.retain(|i| {
                        !gone.iter().any(|g| match (key(g), key(i)) {
                            (Some(a), Some(b)) => a == b,
                            _ => g == i,
                        })
                    });
                }
                let empty = current(doc, loc)
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty);
                if empty {
                    put_at(doc, loc, None);
                }
                return Ok(());
            }
            put_at(doc, loc, None);
        }
        Some(sub) => {
            let whole = Loc { sub: None, ..*loc };
            if let Some(v) = current_mut(doc, loc) {
                match v {
                    Value::Array(items) => {
                        for i in items.iter_mut() {
                            set_sub(i, sub, None);
                        }
                        items.retain(|i| i.as_object().is_some_and(|m| !m.is_empty()));
                    }
                    other => set_sub(other, sub, None),
                }
            }
            let empty = match current(doc, loc) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(m)) => m.is_empty(),
                _ => false,
            };
            if empty {
                put_at(doc, &whole, None);
            }
        }
    }
    Ok(())
}

/// The `eq` terms of a filter made only of `and`-ed equalities, to build a
/// new element from (`[type eq "work"]` → `{"type": "work"}`).
fn eq_terms(f: &Filter, out: &mut Map<String, Value>) -> bool {
    match f {
        Filter::And(a, b) => eq_terms(a, out) && eq_terms(b, out),
        Filter::Compare {
            path,
            op: Op::Eq,
            value,
        } if path.urn.is_none() && path.sub.is_none() => {
            let v = match value {
                filter::Literal::Str(s) => Value::String(s.clone()),
                filter::Literal::Bool(b) => Value::Bool(*b),
                filter::Literal::Num(n) => Value::Number(n.clone()),
                filter::Literal::Null => return false,
            };
            out.insert(path.attr.clone(), v);
            true
        }
        _ => false,
    }
}

/// add / replace / remove on `attr[filter]` or `attr[filter].sub`.
fn filtered(
    doc: &mut Map<String, Value>,
    loc: &Loc,
    sub: Option<&'static Attr>,
    flt: &Filter,
    compiled: &Compiled,
    op: &Operation,
) -> ScimResult<()> {
    let shown = loc.dotted();
    let mut items = current(doc, loc)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let hits: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| compiled.matches(i))
        .map(|(n, _)| n)
        .collect();
    match op.kind {
        Kind::Remove => match sub {
            None => {
                let mut n = 0;
                items.retain(|_| {
                    let keep = !hits.contains(&n);
                    n += 1;
                    keep
                });
            }
            Some(s) => {
                for &h in &hits {
                    if let Some(i) = items.get_mut(h) {
                        set_sub(i, s, None);
                    }
                }
                items.retain(|i| i.as_object().is_some_and(|m| !m.is_empty()));
            }
        },
        Kind::Add | Kind::Replace => {
            let value = op.value.as_ref().ok_or_else(|| {
                ScimError::invalid_value(format!("`{shown}`: a value is required"))
            })?;
            let new = match sub {
                Some(s) => canonical_single(s, value, &format!("{shown}.{}", s.name))?,
                None => canonical_single(loc.attr, value, &shown)?,
            };
            if hits.is_empty() {
                // Create the element the filter describes (Entra ID).
                let mut seed = Map::new();
                if !eq_terms(flt, &mut seed) {
                    return Err(ScimError::no_target(format!(
                        "`{shown}`: no value matches the filter"
                    )));
                }
                let mut element = canonical_single(loc.attr, &Value::Object(seed), &shown)?
                    .unwrap_or_else(|| Value::Object(Map::new()));
                match (sub, new) {
                    (Some(s), v) => set_sub(&mut element, s, v),
                    (None, Some(Value::Object(n))) => {
                        if let Some(m) = element.as_object_mut() {
                            m.extend(n);
                        }
                    }
                    (None, _) => {}
                }
                if element.as_object().is_some_and(|m| !m.is_empty()) {
                    items.push(element);
                }
            } else {
                for &h in &hits {
                    let Some(i) = items.get_mut(h) else { continue };
                    match (sub, &new) {
                        (Some(s), v) => set_sub(i, s, v.clone()),
                        (None, Some(Value::Object(n))) if op.kind == Kind::Add => {
                            if let Some(m) = i.as_object_mut() {
                                m.extend(n.clone());
                            }
                        }
                        (None, Some(n)) => *i = n.clone(),
                        (None, None) => *i = Value::Object(Map::new()),
                    }
                }
                items.retain(|i| i.as_object().is_some_and(|m| !m.is_empty()));
            }
        }
    }
    let whole = Loc { sub: None, ..*loc };
    put_at(
        doc,
        &whole,
        (!items.is_empty()).then_some(Value::Array(items)),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ENTERPRISE_SCHEMA, GROUP_TYPE, USER_TYPE};
    use serde_json::json;

    fn run(def: &ResourceDef, doc: Value, body: Value) -> ScimResult<Value> {
        let mut d = doc;
        apply(def, &mut d, &parse(&body)?)?;
        Ok(d)
    }

    fn ops(list: Value) -> Value {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list})
    }

    #[test]
    fn entra_shapes() {
        let doc = json!({"id": "u1", "userName": "a@x.test", "active": true,
                         "emails": [{"value": "a@x.test", "type": "work", "primary": true}]});
        let out = run(&USER_TYPE, doc, ops(json!([
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "value": {"displayName": "Ann", "name.givenName": "Ann",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D"}},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "boss"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ann@x.test"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"},
        ]))).unwrap();
        assert_eq!(out["active"], json!(false));
        assert_eq!(out["displayName"], "Ann");
        assert_eq!(out["name"], json!({"givenName": "Ann"}));
        assert_eq!(
            out[ENTERPRISE_SCHEMA],
            json!({"department": "R&D", "manager": {"value": "boss"}})
        );
        assert_eq!(
            out["emails"],
            json!([{"value": "ann@x.test", "type": "work", "primary": true}])
        );
        assert_eq!(
            out["phoneNumbers"],
            json!([{"type": "mobile", "value": "+1 555"}])
        );
    }

    #[test]
    fn group_member_shapes_from_okta_and_entra() {
        let doc =
            json!({"id": "g", "displayName": "Eng", "members": [{"value": "u1"}, {"value": "u2"}]});
        let out = run(
            &GROUP_TYPE,
            doc.clone(),
            ops(json!([
                {"op": "remove", "path": "members[value eq \"u1\"]"},
                {"op": "add", "path": "members", "value": [{"value": "u3", "display": "ignored"}]},
                {"op": "replace", "value": {"id": "g", "displayName": "Engineering"}},
            ])),
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "u2"}, {"value": "u3"}]));
        assert_eq!(out["displayName"], "Engineering");
        let out = run(
            &GROUP_TYPE,
            doc,
            ops(json!([
                {"op": "Remove", "path": "members", "value": [{"value": "u2"}]},
            ])),
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "u1"}]));
    }

    #[test]
    fn bad_paths_and_read_only_targets_fail() {
        let doc = json!({"id": "u1", "userName": "a@x.test"});
        for (body, kind) in [
            (
                json!([{"op": "replace", "path": "nope", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq]", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "emails[nope eq \"x\"].value", "value": "v"}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "id", "value": "x"}]),
                "mutability",
            ),
            (
                json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
                "mutability",
            ),
            (json!([{"op": "remove"}]), "noTarget"),
            (
                json!([{"op": "replace", "path": "active", "value": "perhaps"}]),
                "invalidValue",
            ),
            (
                json!([{"op": "frobnicate", "path": "active"}]),
                "invalidSyntax",
            ),
        ] {
            let e = run(&USER_TYPE, doc.clone(), ops(body.clone())).unwrap_err();
            assert_eq!(e.scim_type, Some(kind), "{body}");
        }
    }

    #[test]
    fn rfc_shapes() {
        let doc = json!({"id": "u1", "userName": "a", "name": {"givenName": "A", "familyName": "B"},
                         "emails": [{"value": "a@x", "type": "work"}, {"value": "b@x", "type": "home"}]});
        let out = run(
            &USER_TYPE,
            doc,
            ops(json!([
                {"op": "replace", "path": "name", "value": {"familyName": "C"}},
                {"op": "remove", "path": "emails[type eq \"home\"]"},
                {"op": "add", "path": "emails", "value": {"value": "c@x", "type": "other"}},
                {"op": "remove", "path": "name.givenName"},
                {"op": "add", "value": {"nickName": "Al"}},
            ])),
        )
        .unwrap();
        assert_eq!(out["name"], json!({"familyName": "C"}));
        assert_eq!(
            out["emails"],
            json!([{"value": "a@x", "type": "work"}, {"value": "c@x", "type": "other"}])
        );
        assert_eq!(out["nickName"], "Al");
    }
}

/// Property tests: whatever a SCIM client sends, PATCH answers a 400 or
/// applies it; it never panics and never fails as a server error.
#[cfg(test)]
mod props {
    use super::*;
    use crate::scim::schema::{GROUP_TYPE, USER_TYPE};
    use proptest::prelude::*;
    use serde_json::json;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            proptest::sample::select(&["", "a@x.test", "True", "False", "work", "u1", "x"][..])
                .prop_map(|s| json!(s)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((path(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Paths as clients write them, broken ones among them.
    fn path() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(
                &[
                    "active",
                    "userName",
                    "displayName",
                    "name.givenName",
                    "emails",
                    "emails.value",
                    "emails[type eq \"work\"]",
                    "emails[type eq \"work\"].value",
                    "emails[type eq \"work\" and primary eq true].display",
                    "emails[value co \"@\"]",
                    "members",
                    "members[value eq \"u1\"]",
                    "members[value eq \"u1\"].display",
                    "groups",
                    "meta.created",
                    "id",
                    "externalId",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                    "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName",
                    "emails[",
                    "emails[]",
                    "emails[type eq]",
                    "emails[type eq \"a\"].",
                    "]",
                    "",
                ][..]
            )
            .prop_map(str::to_string),
            "[a-zA-Z\\[\\]\". :]{0,24}",
            any::<String>(),
        ]
    }

    fn operation() -> impl Strategy<Value = Value> {
        (
            proptest::sample::select(
                &["add", "Add", "remove", "Replace", "REPLACE", "move", ""][..],
            ),
            proptest::option::of(path()),
            proptest::option::of(json_value()),
        )
            .prop_map(|(op, path, value)| {
                let mut o = json!({"op": op});
                if let Some(p) = path {
                    o["path"] = json!(p);
                }
                if let Some(v) = value {
                    o["value"] = v;
                }
                o
            })
    }

    fn check(def: &ResourceDef, doc: &Value, body: &Value) -> Result<(), TestCaseError> {
        let mut d = doc.clone();
        let r = parse(body).and_then(|ops| apply(def, &mut d, &ops));
        match r {
            Ok(()) => prop_assert!(d.is_object()),
            Err(e) => prop_assert_eq!(e.status.as_u16(), 400, "{}: {}", body, e.detail),
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_patch_is_applied_or_a_400(ops in proptest::collection::vec(operation(), 0..5)) {
            let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
            let user = json!({"id": "u1", "userName": "a@x.test", "active": true,
                "emails": [{"value": "a@x.test", "type": "work", "primary": true}],
                "name": {"givenName": "A"}});
            let group = json!({"id": "g", "displayName": "Eng", "members": [{"value": "u1"}]});
            check(&USER_TYPE, &user, &body)?;
            check(&GROUP_TYPE, &group, &body)?;
        }

        #[test]
        fn any_json_body_is_a_patch_or_a_400(body in json_value()) {
            check(&USER_TYPE, &json!({"id": "u1", "userName": "a"}), &body)?;
        }
    }
}

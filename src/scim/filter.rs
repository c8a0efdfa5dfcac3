//! SCIM filters (RFC 7644 section 3.4.2.2) and attribute paths.
//!
//! Text → tokens → [`Filter`] (a syntax tree; precedence `not` > `and` >
//! `or`, parentheses, value paths `attr[...]`) → [`Compiled`] (every path
//! resolved against a resource type's schemas and every comparison checked
//! against the attribute's type, so a bad filter is a 400 `invalidFilter`
//! before anything is read). A compiled filter evaluates on a resource's
//! JSON representation ([`Compiled::matches`]) and, for users, also turns
//! into SQL ([`to_user_cond`]): exactly where the semantics are the same in
//! SQL and here (`userName`, `id`, `externalId` equality, `meta` dates...),
//! else as a looser condition that only narrows the candidates that the
//! exact evaluation then runs on.

use super::errors::{ScimError, ScimResult};
use super::schema::{Attr, ResourceDef, Schema, Type};
use crate::store::scim::{TextCol, TextOp, TimeCol, TimeOp, UserCond};
use serde_json::Value;
use std::cmp::Ordering;

/// `[URN:]attr[.sub]` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.urn {
            write!(f, "{u}:")?;
        }
        write!(f, "{}", self.attr)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

fn valid_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Parses `[URN:]attr[.sub]`. A URN's last `:` separates it from the
/// attribute (attribute names have no `:`).
pub fn parse_attr_path(text: &str) -> Result<AttrPath, String> {
    let (urn, rest) = if text
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        match text.rsplit_once(':') {
            Some((u, r)) => (Some(u.to_string()), r),
            None => return Err(format!("`{text}` is not an attribute path")),
        }
    } else {
        (None, text)
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    if !valid_name(attr) || sub.is_some_and(|s| !valid_name(s)) {
        return Err(format!("`{text}` is not an attribute path"));
    }
    Ok(AttrPath {
        urn,
        attr: attr.to_string(),
        sub: sub.map(str::to_string),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
}

/// The syntax tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare {
        path: AttrPath,
        op: Op,
        value: Literal,
    },
    Present(AttrPath),
    /// `attr[filter]`: some value of a multi-valued complex attribute matches.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Str(String),
    Word(String),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            '[' => {
                out.push(Tok::LBracket);
                i += 1
            }
            ']' => {
                out.push(Tok::RBracket);
                i += 1
            }
            '"' => {
                let mut j = i + 1;
                let mut escaped = false;
                loop {
                    let Some(&(_, d)) = chars.get(j) else {
                        return Err("a string is not closed".into());
                    };
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        break;
                    }
                    j += 1;
                }
                let end = chars[j].0 + 1;
                let s: String = serde_json::from_str(&text[pos..end])
                    .map_err(|_| format!("bad escape in the string {}", &text[pos..end]))?;
                out.push(Tok::Str(s));
                i = j + 1;
            }
            _ => {
                let mut j = i;
                while let Some(&(_, d)) = chars.get(j) {
                    if d.is_whitespace() || matches!(d, '(' | ')' | '[' | ']' | '"') {
                        break;
                    }
                    j += 1;
                }
                let end = chars.get(j).map(|&(p, _)| p).unwrap_or(text.len());
                out.push(Tok::Word(text[pos..end].to_string()));
                i = j;
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
    /// Open parentheses, bounded so a hostile filter cannot exhaust the stack.
    depth: usize,
}

const MAX_DEPTH: usize = 32;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn or(&mut self, nested: bool) -> Result<Filter, String> {
        let mut left = self.and(nested)?;
        while self.peek_word("or") {
            self.at += 1;
            let right = self.and(nested)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, nested: bool) -> Result<Filter, String> {
        let mut left = self.not(nested)?;
        while self.peek_word("and") {
            self.at += 1;
            let right = self.not(nested)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self, nested: bool) -> Result<Filter, String> {
        if self.peek_word("not") && matches!(self.toks.get(self.at + 1), Some(Tok::LParen)) {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.primary(nested)?)));
        }
        self.primary(nested)
    }

    fn primary(&mut self, nested: bool) -> Result<Filter, String> {
        match self.next() {
            Some(Tok::LParen) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err("the filter nests too deeply".into());
                }
                let inner = self.or(nested)?;
                self.depth -= 1;
                match self.next() {
                    Some(Tok::RParen) => Ok(inner),
                    _ => Err("a `(` is not closed".into()),
                }
            }
            Some(Tok::Word(w)) => self.attr_expr(&w, nested),
            Some(other) => Err(format!("unexpected {}", describe(&other))),
            None => Err("the filter ends too early".into()),
        }
    }

    fn attr_expr(&mut self, word: &str, nested: bool) -> Result<Filter, String> {
        let path = parse_attr_path(word)?;
        if matches!(self.peek(), Some(Tok::LBracket)) {
            if nested {
                return Err("value filters cannot be nested".into());
            }
            if path.sub.is_some() {
                return Err(format!("`{word}[`: a value filter follows an attribute"));
            }
            self.at += 1;
            let inner = self.or(true)?;
            return match self.next() {
                Some(Tok::RBracket) => Ok(Filter::ValuePath {
                    path,
                    filter: Box::new(inner),
                }),
                _ => Err("a `[` is not closed".into()),
            };
        }
        let op = match self.next() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("pr") => return Ok(Filter::Present(path)),
            Some(Tok::Word(w)) => {
                Op::parse(&w).ok_or_else(|| format!("`{w}` is not an operator"))?
            }
            Some(other) => return Err(format!("expected an operator, found {}", describe(&other))),
            None => return Err(format!("`{word}` needs an operator")),
        };
        let value = match self.next() {
            Some(Tok::Str(s)) => Literal::Str(s),
            Some(Tok::Word(w)) => match w.as_str() {
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                "null" => Literal::Null,
                _ => match serde_json::from_str::<Value>(&w) {
                    Ok(Value::Number(n)) => Literal::Num(n),
                    _ => return Err(format!("`{w}` is not a value (strings are quoted)")),
                },
            },
            Some(other) => return Err(format!("expected a value, found {}", describe(&other))),
            None => return Err("a comparison needs a value".into()),
        };
        Ok(Filter::Compare { path, op, value })
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::Str(s) => format!("the string \"{s}\""),
        Tok::Word(w) => format!("`{w}`"),
    }
}

/// Parses a whole filter; the error says what is wrong, for `invalidFilter`.
pub fn parse(text: &str) -> Result<Filter, String> {
    if text.len() > 4096 {
        return Err("the filter is too long".into());
    }
    let toks = tokenize(text)?;
    if toks.is_empty() {
        return Err("the filter is empty".into());
    }
    let mut p = Parser {
        toks,
        at: 0,
        depth: 0,
    };
    let f = p.or(false)?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {} after the filter", describe(t)));
    }
    Ok(f)
}

/// A PATCH path: `attrPath`, or `attr[filter]` with an optional `.sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub path: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

pub fn parse_patch_path(text: &str) -> Result<PatchPath, String> {
    let text = text.trim();
    let Some(open) = text.find('[') else {
        return Ok(PatchPath {
            path: parse_attr_path(text)?,
            filter: None,
            sub: None,
        });
    };
    let close = text
        .rfind(']')
        .filter(|&c| c > open)
        .ok_or_else(|| format!("`{text}`: a `[` is not closed"))?;
    let path = parse_attr_path(&text[..open])?;
    if path.sub.is_some() {
        return Err(format!("`{text}`: a value filter follows an attribute"));
    }
    let inner = parse(&text[open + 1..close])?;
    let rest = &text[close + 1..];
    let sub = if rest.is_empty() {
        None
    } else {
        let s = rest
            .strip_prefix('.')
            .filter(|s| valid_name(s))
            .ok_or_else(|| format!("`{text}` is not a path"))?;
        Some(s.to_string())
    };
    Ok(PatchPath {
        path,
        filter: Some(inner),
        sub,
    })
}

/// Where an attribute lives in a resource's JSON representation.
#[derive(Debug, Clone, Copy)]
pub struct Loc {
    /// The extension's URN (its key in the representation), or core.
    pub ext: Option<&'static Schema>,
    pub attr: &'static Attr,
    pub sub: Option<&'static Attr>,
}

impl Loc {
    /// The definition of what the path points at.
    pub fn leaf(&self) -> &'static Attr {
        self.sub.unwrap_or(self.attr)
    }

    /// The container object the attribute is a key of.
    pub fn container<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        match self.ext {
            Some(e) => get_ci(doc, e.id),
            None => Some(doc),
        }
    }

    pub fn dotted(&self) -> String {
        let mut s = String::new();
        if let Some(e) = self.ext {
            s.push_str(e.id);
            s.push(':');
        }
        s.push_str(self.attr.name);
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(sub.name);
        }
        s
    }
}

/// What a path resolved to: an attribute, or a whole extension.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Attr(Loc),
    Extension(&'static Schema),
}

/// A key of an object, ignoring case.
pub fn get_ci<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = doc.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Resolves a path against a resource type's core, common and extension
/// attributes.
pub fn resolve(def: &ResourceDef, p: &AttrPath) -> Result<Target, String> {
    let (ext, attr) = match &p.urn {
        None => (None, def.core_attr(&p.attr)),
        Some(urn) => {
            if p.sub.is_none() {
                if let Some(e) = def.extension(&format!("{urn}:{}", p.attr)) {
                    return Ok(Target::Extension(e));
                }
            }
            if urn.eq_ignore_ascii_case(def.core.id) {
                (None, def.core_attr(&p.attr))
            } else if let Some(e) = def.extension(urn) {
                (Some(e), e.attr(&p.attr))
            } else {
                return Err(format!("unknown schema `{urn}`"));
            }
        }
    };
    let attr = attr.ok_or_else(|| format!("unknown attribute `{p}`"))?;
    let sub = match &p.sub {
        None => None,
        Some(s) => Some(
            attr.sub_attr(s)
                .ok_or_else(|| format!("unknown attribute `{p}`"))?,
        ),
    };
    Ok(Target::Attr(Loc { ext, attr, sub }))
}

/// A comparison value, checked against the attribute's type.
#[derive(Debug, Clone, PartialEq)]
enum CLit {
    Str(String),
    Num(f64),
    Bool(bool),
    /// Nanoseconds since the epoch.
    Time(i128),
    Null,
}

/// A filter whose paths are resolved and comparisons typed.
#[derive(Debug, Clone)]
pub enum Compiled {
    And(Vec<Compiled>),
    Or(Vec<Compiled>),
    Not(Box<Compiled>),
    Test {
        loc: Loc,
        op: Op,
        lit: CLitPub,
    },
    Present(Loc),
    /// Some element of a multi-valued complex attribute matches `inner`
    /// (whose locations are relative to the element).
    Value {
        loc: Loc,
        inner: Box<Compiled>,
    },
}

/// Opaque wrapper so callers can hold a compiled comparison value.
#[derive(Debug, Clone, PartialEq)]
pub struct CLitPub(CLit);

fn nanos_of(text: &str) -> Option<i128> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos())
}

fn typed_literal(leaf: &Attr, op: Op, lit: &Literal, shown: &str) -> ScimResult<CLit> {
    let bad = |why: &str| ScimError::invalid_filter(format!("`{shown}`: {why}"));
    if *lit == Literal::Null {
        return match op {
            Op::Eq | Op::Ne => Ok(CLit::Null),
            _ => Err(bad("null can only be compared with eq or ne")),
        };
    }
    match leaf.ty {
        Type::String | Type::Reference | Type::Binary => match lit {
            Literal::Str(s) => Ok(CLit::Str(s.clone())),
            _ => Err(bad("compare with a quoted string")),
        },
        Type::Boolean => {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(bad("booleans compare only with eq or ne"));
            }
            match lit {
                Literal::Bool(b) => Ok(CLit::Bool(*b)),
                Literal::Str(s) if s.eq_ignore_ascii_case("true") => Ok(CLit::Bool(true)),
                Literal::Str(s) if s.eq_ignore_ascii_case("false") => Ok(CLit::Bool(false)),
                _ => Err(bad("compare with true or false")),
            }
        }
        Type::DateTime => {
            if matches!(op, Op::Co | Op::Sw | Op::Ew) {
                return Err(bad("dates compare with eq, ne, gt, ge, lt or le"));
            }
            match lit {
                Literal::Str(s) => nanos_of(s)
                    .map(CLit::Time)
                    .ok_or_else(|| bad("not an RFC 3339 date-time")),
                _ => Err(bad("compare with a quoted RFC 3339 date-time")),
            }
        }
        Type::Integer | Type::Decimal => {
            if matches!(op, Op::Co | Op::Sw | Op::Ew) {
                return Err(bad("numbers compare with eq, ne, gt, ge, lt or le"));
            }
            match lit {
                Literal::Num(n) => n.as_f64().map(CLit::Num).ok_or_else(|| bad("bad number")),
                _ => Err(bad("compare with a number")),
            }
        }
        Type::Complex => Err(bad("a complex attribute needs a sub-attribute")),
    }
}

/// The attribute a comparison on `loc` really tests: multi-valued complex
/// attributes without a sub-attribute compare their `value`.
fn comparable(loc: Loc) -> Loc {
    if loc.sub.is_none() && loc.attr.ty == Type::Complex {
        if let Some(v) = loc.attr.sub_attr("value") {
            return Loc {
                sub: Some(v),
                ..loc
            };
        }
    }
    loc
}

/// Resolves and types a filter for a resource type.
pub fn compile(def: &ResourceDef, f: &Filter) -> ScimResult<Compiled> {
    compile_in(def, None, f)
}

fn compile_in(
    def: &ResourceDef,
    within: Option<&'static Attr>,
    f: &Filter,
) -> ScimResult<Compiled> {
    let locate = |p: &AttrPath| -> ScimResult<Loc> {
        match within {
            None => match resolve(def, p).map_err(ScimError::invalid_filter)? {
                Target::Attr(l) => Ok(l),
                Target::Extension(e) => Err(ScimError::invalid_filter(format!(
                    "`{}` is a schema, not an attribute",
                    e.id
                ))),
            },
            Some(parent) => {
                if p.urn.is_some() || p.sub.is_some() {
                    return Err(ScimError::invalid_filter(format!(
                        "`{p}`: inside `{}[...]` name its sub-attributes",
                        parent.name
                    )));
                }
                let a = parent.sub_attr(&p.attr).ok_or_else(|| {
                    ScimError::invalid_filter(format!(
                        "`{}` has no sub-attribute `{}`",
                        parent.name, p.attr
                    ))
                })?;
                Ok(Loc {
                    ext: None,
                    attr: a,
                    sub: None,
                })
            }
        }
    };
    Ok(match f {
        Filter::And(a, b) => Compiled::And(vec![
            compile_in(def, within, a)?,
            compile_in(def, within, b)?,
        ]),
        Filter::Or(a, b) => Compiled::Or(vec![
            compile_in(def, within, a)?,
            compile_in(def, within, b)?,
        ]),
        Filter::Not(a) => Compiled::Not(Box::new(compile_in(def, within, a)?)),
        Filter::Present(p) => Compiled::Present(locate(p)?),
        Filter::Compare { path, op, value } => {
            let loc = comparable(locate(path)?);
            let lit = typed_literal(loc.leaf(), *op, value, &path.to_string())?;
            Compiled::Test {
                loc,
                op: *op,
                lit: CLitPub(lit),
            }
        }
        Filter::ValuePath { path, filter } => {
            let loc = locate(path)?;
            if loc.attr.ty != Type::Complex || loc.sub.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "`{path}[...]`: value filters apply to complex attributes"
                )));
            }
            Compiled::Value {
                loc,
                inner: Box::new(compile_in(def, Some(loc.attr), filter)?),
            }
        }
    })
}

/// The values at a location, flattened (elements of multi-valued attributes,
/// sub-attributes of each element).
fn values_at<'a>(doc: &'a Value, loc: &Loc) -> Vec<&'a Value> {
    let Some(container) = loc.container(doc) else {
        return Vec::new();
    };
    let Some(v) = get_ci(container, loc.attr.name) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    match loc.sub {
        None => items,
        Some(sub) => items
            .into_iter()
            .filter_map(|i| get_ci(i, sub.name))
            .flat_map(|v| match v {
                Value::Array(a) => a.iter().collect::<Vec<_>>(),
                other => vec![other],
            })
            .collect(),
    }
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(non_empty),
        Value::Object(o) => o.values().any(non_empty),
        _ => true,
    }
}

fn fold(s: &str, exact: bool) -> String {
    if exact {
        s.to_string()
    } else {
        s.to_lowercase()
    }
}

fn test_value(leaf: &Attr, v: &Value, op: Op, lit: &CLit) -> bool {
    let ord = |o: Ordering| match op {
        Op::Eq => o == Ordering::Equal,
        Op::Ne => o != Ordering::Equal,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    };
    match lit {
        CLit::Null => false,
        CLit::Str(want) => {
            let Some(have) = v.as_str() else { return false };
            let exact = leaf.compares_case();
            let (have, want) = (fold(have, exact), fold(want, exact));
            match op {
                Op::Co => have.contains(&want),
                Op::Sw => have.starts_with(&want),
                Op::Ew => have.ends_with(&want),
                _ => ord(have.cmp(&want)),
            }
        }
        CLit::Bool(want) => {
            let have = match v {
                Value::Bool(b) => *b,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return false,
            };
            ord(have.cmp(want))
        }
        CLit::Num(want) => {
            let Some(have) = v.as_f64() else { return false };
            have.partial_cmp(want).is_some_and(ord)
        }
        CLit::Time(want) => {
            let Some(have) = v.as_str().and_then(nanos_of) else {
                return false;
            };
            ord(have.cmp(want))
        }
    }
}

impl Compiled {
    /// Whether a resource (its JSON representation) matches.
    pub fn matches(&self, doc: &Value) -> bool {
        match self {
            Compiled::And(parts) => parts.iter().all(|p| p.matches(doc)),
            Compiled::Or(parts) => parts.iter().any(|p| p.matches(doc)),
            Compiled::Not(inner) => !inner.matches(doc),
            Compiled::Present(loc) => values_at(doc, loc).into_iter().any(non_empty),
            Compiled::Test { loc, op, lit } => {
                let values = values_at(doc, loc);
                match (op, &lit.0) {
                    (Op::Eq, CLit::Null) => !values.into_iter().any(non_empty),
                    (Op::Ne, CLit::Null) => values.into_iter().any(non_empty),
                    // Not equal: no value is equal (absent counts as not equal).
                    (Op::Ne, l) => !values
                        .into_iter()
                        .any(|v| test_value(loc.leaf(), v, Op::Eq, l)),
                    (op, l) => values
                        .into_iter()
                        .any(|v| test_value(loc.leaf(), v, *op, l)),
                }
            }
            Compiled::Value { loc, inner } => {
                let Some(container) = loc.container(doc) else {
                    return false;
                };
                match get_ci(container, loc.attr.name) {
                    Some(Value::Array(items)) => items.iter().any(|i| inner.matches(i)),
                    Some(item @ Value::Object(_)) => inner.matches(item),
                    _ => false,
                }
            }
        }
    }

    /// Whether any path in the filter names this core attribute.
    pub fn mentions(&self, name: &str) -> bool {
        match self {
            Compiled::And(p) | Compiled::Or(p) => p.iter().any(|c| c.mentions(name)),
            Compiled::Not(i) => i.mentions(name),
            Compiled::Test { loc, .. } | Compiled::Present(loc) | Compiled::Value { loc, .. } => {
                loc.ext.is_none() && loc.attr.name == name
            }
        }
    }
}

/// Integer-second bound equivalent to comparing a whole-second time with
/// `nanos` (`None`: never true for `eq`).
fn time_cond(col: TimeCol, op: Op, nanos: i128) -> Option<UserCond> {
    const N: i128 = 1_000_000_000;
    let floor = i64::try_from(nanos.div_euclid(N)).ok()?;
    let whole = nanos.rem_euclid(N) == 0;
    let ceil = if whole { floor } else { floor.checked_add(1)? };
    let (op, secs) = match op {
        Op::Gt => (TimeOp::Gt, floor),
        Op::Ge => (TimeOp::Ge, ceil),
        Op::Lt => (TimeOp::Lt, ceil),
        Op::Le => (TimeOp::Le, floor),
        Op::Eq if whole => (TimeOp::Eq, floor),
        Op::Eq => return Some(UserCond::Nothing),
        Op::Ne if whole => {
            return Some(UserCond::Not(Box::new(UserCond::Time {
                col,
                op: TimeOp::Eq,
                secs: floor,
            })))
        }
        Op::Ne => return Some(UserCond::All),
        _ => return None,
    };
    Some(UserCond::Time { col, op, secs })
}

/// SQL for a user filter: `(condition, exact)`. With `exact` false the
/// condition only narrows the candidates (every match satisfies it) and
/// [`Compiled::matches`] decides.
pub fn to_user_cond(c: &Compiled) -> (UserCond, bool) {
    let loose = (UserCond::All, false);
    match c {
        Compiled::And(parts) => {
            let mut conds = Vec::new();
            let mut exact = true;
            for p in parts {
                let (c, e) = to_user_cond(p);
                exact &= e;
                if c != UserCond::All {
                    conds.push(c);
                }
            }
            (UserCond::And(conds), exact)
        }
        Compiled::Or(parts) => {
            let mut conds = Vec::new();
            let mut exact = true;
            for p in parts {
                let (c, e) = to_user_cond(p);
                exact &= e;
                if c == UserCond::All {
                    return (UserCond::All, exact);
                }
                conds.push(c);
            }
            (UserCond::Or(conds), exact)
        }
        Compiled::Not(inner) => match to_user_cond(inner) {
            (c, true) => (UserCond::Not(Box::new(c)), true),
            _ => loose,
        },
        Compiled::Present(loc) if loc.ext.is_none() && loc.sub.is_none() => match loc.attr.name {
            "userName" => (UserCond::Present(TextCol::UserName), true),
            "id" => (UserCond::All, true),
            "externalId" => (UserCond::Present(TextCol::ExternalId), true),
            _ => loose,
        },
        Compiled::Test { loc, op, lit } if loc.ext.is_none() => {
            let text = |col: TextCol, value: &str, case_folded: bool| -> (UserCond, bool) {
                let top = match op {
                    Op::Eq | Op::Ne => TextOp::Eq,
                    Op::Co => TextOp::Co,
                    Op::Sw => TextOp::Sw,
                    Op::Ew => TextOp::Ew,
                    _ => return (UserCond::All, false),
                };
                let cond = UserCond::Text {
                    col,
                    op: top,
                    value: value.to_string(),
                };
                // LIKE folds ASCII case on SQLite: exact only on folded columns.
                let exact = top == TextOp::Eq || case_folded;
                if *op == Op::Ne {
                    (UserCond::Not(Box::new(cond)), true)
                } else {
                    (cond, exact)
                }
            };
            match (loc.attr.name, loc.sub.map(|s| s.name), &lit.0) {
                ("userName", None, CLit::Str(s)) => {
                    text(TextCol::UserName, &s.to_lowercase(), true)
                }
                ("id", None, CLit::Str(s)) => text(TextCol::Id, s, false),
                ("externalId", None, CLit::Str(s)) => text(TextCol::ExternalId, s, false),
                // Inactive is exactly "not a member"; active members may
                // show `active` unassigned, which only Rust sees.
                ("active", None, CLit::Bool(b)) => match (op, b) {
                    (Op::Eq, false) => (UserCond::Member(false), true),
                    (Op::Ne, false) => (UserCond::Member(true), true),
                    (Op::Eq, true) => (UserCond::Member(true), false),
                    _ => loose,
                },
                ("meta", Some(which @ ("created" | "lastModified")), CLit::Time(n)) => {
                    let col = if which == "created" {
                        TimeCol::Created
                    } else {
                        TimeCol::LastModified
                    };
                    match time_cond(col, *op, *n) {
                        Some(c) => (c, true),
                        None => loose,
                    }
                }
                _ => loose,
            }
        }
        _ => loose,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{GROUP_TYPE, USER_TYPE};
    use serde_json::json;

    fn cmp(p: &str, op: Op, v: Literal) -> Filter {
        Filter::Compare {
            path: parse_attr_path(p).unwrap(),
            op,
            value: v,
        }
    }

    fn s(v: &str) -> Literal {
        Literal::Str(v.into())
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let f = parse(r#"userName eq "a" or userName eq "b" and not (active eq false)"#).unwrap();
        assert_eq!(
            f,
            Filter::Or(
                Box::new(cmp("userName", Op::Eq, s("a"))),
                Box::new(Filter::And(
                    Box::new(cmp("userName", Op::Eq, s("b"))),
                    Box::new(Filter::Not(Box::new(cmp(
                        "active",
                        Op::Eq,
                        Literal::Bool(false)
                    ))))
                ))
            )
        );
        let g = parse(r#"(userName eq "a" or userName eq "b") and active eq true"#).unwrap();
        assert!(matches!(g, Filter::And(ref l, _) if matches!(**l, Filter::Or(_, _))));
    }

    #[test]
    fn strings_keep_escapes_and_operators_ignore_case() {
        let f = parse(r#"displayName EQ "say \"hi\" \\ \u00e9""#).unwrap();
        assert_eq!(f, cmp("displayName", Op::Eq, s("say \"hi\" \\ é")));
        let f = parse("meta.lastModified gt \"2024-01-01T00:00:00Z\"").unwrap();
        assert!(matches!(f, Filter::Compare { op: Op::Gt, .. }));
    }

    #[test]
    fn urn_qualified_paths_and_value_paths() {
        let f =
            parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw "A""#).unwrap();
        let Filter::Compare { path, .. } = &f else {
            panic!()
        };
        assert_eq!(
            path.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:core:2.0:User")
        );
        assert_eq!(
            (path.attr.as_str(), path.sub.as_deref()),
            ("name", Some("givenName"))
        );
        let f = parse(r#"emails[type eq "work" and value co "@x.test"] or userName pr"#).unwrap();
        assert!(matches!(f, Filter::Or(ref l, _) if matches!(**l, Filter::ValuePath { .. })));
        let p = parse_patch_path(r#"members[value eq "u1"].display"#).unwrap();
        assert_eq!(p.sub.as_deref(), Some("display"));
        assert!(p.filter.is_some());
    }

    #[test]
    fn malformed_filters_are_refused() {
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName eq bare",
            "userName zz \"a\"",
            "(userName eq \"a\"",
            "userName eq \"a\")",
            "userName eq \"a",
            "emails[type eq \"work\"",
            "emails[type[value eq \"x\"] eq \"y\"]",
            "userName eq \"a\" and",
            "1abc eq \"a\"",
            "é eq \"a\"",
            "abcé eq \"a\"",
            "userName eq \"a\" userName eq \"b\"",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{}userName pr{}", "(".repeat(3000), ")".repeat(3000));
        assert!(parse(&deep).unwrap_err().contains("too long"));
        let deep = format!("{}userName pr{}", "(".repeat(1000), ")".repeat(1000));
        assert!(parse(&deep).unwrap_err().contains("nests too deeply"));
        let nots = format!("{}userName pr{}", "not (".repeat(500), ")".repeat(500));
        assert!(parse(&nots).is_err());
        let ok = format!("{}userName pr{}", "(".repeat(30), ")".repeat(30));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn compile_types_comparisons_against_the_schema() {
        let ok = |f: &str| compile(&USER_TYPE, &parse(f).unwrap());
        assert!(ok(r#"userName eq "a""#).is_ok());
        assert!(ok(r#"emails.value co "x""#).is_ok());
        assert!(ok(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D""#
        )
        .is_ok());
        for bad in [
            r#"nope eq "a""#,
            "active gt true",
            r#"meta.lastModified gt "yesterday""#,
            r#"meta.created co "2024""#,
            "userName eq 3",
            r#"name eq "x""#,
            r#"urn:example:unknown:attr eq "x""#,
            r#"emails[nope eq "x"]"#,
        ] {
            let e = ok(bad).err().unwrap_or_else(|| panic!("{bad} compiled"));
            assert_eq!(e.scim_type, Some("invalidFilter"), "{bad}");
        }
        assert!(compile(&GROUP_TYPE, &parse(r#"members.value eq "u""#).unwrap()).is_ok());
        assert!(compile(&GROUP_TYPE, &parse(r#"userName eq "u""#).unwrap()).is_err());
    }

    #[test]
    fn evaluation_follows_case_rules_and_multi_values() {
        let doc = json!({
            "id": "U1", "userName": "Ann@Corp.Test", "externalId": "Ext-1", "active": true,
            "emails": [{"value": "ann@corp.test", "type": "work"}, {"value": "a@home.test", "type": "home"}],
            "meta": {"lastModified": "2024-05-01T10:00:00Z"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}
        });
        let m = |f: &str| {
            compile(&USER_TYPE, &parse(f).unwrap())
                .unwrap()
                .matches(&doc)
        };
        assert!(
            m(r#"userName eq "ann@corp.test""#),
            "userName is case-insensitive"
        );
        assert!(!m(r#"externalId eq "ext-1""#), "externalId is case-exact");
        assert!(m(r#"externalId eq "Ext-1""#));
        assert!(m(r#"emails.value ew "@home.test""#));
        assert!(
            m(r#"emails co "corp""#),
            "complex without sub compares value"
        );
        assert!(m(r#"emails[type eq "work" and value sw "ann"]"#));
        assert!(!m(r#"emails[type eq "home" and value sw "ann"]"#));
        assert!(m(r#"meta.lastModified gt "2024-05-01T09:59:59.5Z""#));
        assert!(!m(r#"meta.lastModified lt "2024-05-01T10:00:00Z""#));
        assert!(m(
            r#"not (active eq false) and (nickName pr or title ne "x")"#
        ));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "sales""#
        ));
        assert!(m(r#"displayName eq null"#));
        assert!(!m(r#"displayName pr"#));
    }

    #[test]
    fn sql_translation_is_exact_only_where_sql_agrees() {
        let t = |f: &str| to_user_cond(&compile(&USER_TYPE, &parse(f).unwrap()).unwrap());
        let (c, exact) = t(r#"userName eq "Ann@Corp.Test""#);
        assert!(exact);
        assert_eq!(
            c,
            UserCond::Text {
                col: TextCol::UserName,
                op: TextOp::Eq,
                value: "ann@corp.test".into()
            }
        );
        assert!(t(r#"userName sw "ann" and externalId eq "E""#).1);
        assert!(!t(r#"externalId co "E""#).1, "LIKE folds case on SQLite");
        assert!(!t(r#"displayName eq "Ann""#).1);
        let (c, exact) = t(r#"userName eq "a" and displayName eq "Ann""#);
        assert!(!exact);
        assert!(matches!(c, UserCond::And(ref v) if v.len() == 1));
        let (c, _) = t(r#"userName eq "a" or displayName eq "Ann""#);
        assert_eq!(c, UserCond::All);
        let (c, exact) = t(r#"meta.lastModified gt "2024-01-01T00:00:00.5Z""#);
        assert!(exact);
        assert_eq!(
            c,
            UserCond::Time {
                col: TimeCol::LastModified,
                op: TimeOp::Gt,
                secs: 1_704_067_200
            }
        );
        assert_eq!(t("active eq false"), (UserCond::Member(false), true));
        assert_eq!(t("active ne false"), (UserCond::Member(true), true));
        assert_eq!(t("active eq true"), (UserCond::Member(true), false));
        assert_eq!(t("active ne true"), (UserCond::All, false));
    }
}

/// Property tests (`proptest`; `PROPTEST_CASES=10000 cargo test --lib props`
/// runs them longer).
#[cfg(test)]
mod props {
    use super::*;
    use crate::domain::model::normalize_email;
    use crate::scim::resources::user_json;
    use crate::scim::schema::{GROUP_TYPE, USER_TYPE};
    use crate::store::scim::{ScimUserRecord, ScimUserState};
    use proptest::prelude::*;

    /// The filter as text, every operand parenthesised.
    fn show(f: &Filter) -> String {
        match f {
            Filter::And(a, b) => format!("({}) and ({})", show(a), show(b)),
            Filter::Or(a, b) => format!("({}) or ({})", show(a), show(b)),
            Filter::Not(a) => format!("not ({})", show(a)),
            Filter::Present(p) => format!("{p} pr"),
            Filter::ValuePath { path, filter } => format!("{path}[{}]", show(filter)),
            Filter::Compare { path, op, value } => {
                let op = format!("{op:?}").to_ascii_lowercase();
                let v = match value {
                    Literal::Str(s) => serde_json::to_string(s).unwrap_or_default(),
                    Literal::Num(n) => n.to_string(),
                    Literal::Bool(b) => b.to_string(),
                    Literal::Null => "null".into(),
                };
                format!("{path} {op} {v}")
            }
        }
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z][a-zA-Z0-9_-]{0,6}"
    }

    fn attr_path(sub: bool) -> impl Strategy<Value = AttrPath> {
        (
            proptest::option::of("urn(:[a-z0-9]{1,5}){1,4}"),
            name(),
            if sub {
                proptest::option::of(name()).boxed()
            } else {
                Just(None).boxed()
            },
        )
            .prop_map(|(urn, attr, sub)| AttrPath { urn, attr, sub })
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Eq),
            Just(Op::Ne),
            Just(Op::Co),
            Just(Op::Sw),
            Just(Op::Ew),
            Just(Op::Gt),
            Just(Op::Ge),
            Just(Op::Lt),
            Just(Op::Le)
        ]
    }

    fn literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            any::<String>().prop_map(Literal::Str),
            any::<i64>().prop_map(|n| Literal::Num(n.into())),
            // Decimals as people write them (serde_json's float parsing is
            // not exact to the last bit for arbitrary doubles).
            (any::<i32>(), 0u8..6).prop_filter_map("a number", |(n, k)| {
                match serde_json::from_str::<Value>(&format!("{n}e-{k}")) {
                    Ok(Value::Number(n)) => Some(Literal::Num(n)),
                    _ => None,
                }
            }),
            any::<bool>().prop_map(Literal::Bool),
            Just(Literal::Null),
        ]
    }

    fn leaf() -> impl Strategy<Value = Filter> {
        prop_oneof![
            (attr_path(true), op(), literal()).prop_map(|(path, op, value)| Filter::Compare {
                path,
                op,
                value
            }),
            attr_path(true).prop_map(Filter::Present),
        ]
    }

    fn tree(inner: BoxedStrategy<Filter>) -> impl Strategy<Value = Filter> {
        inner.prop_recursive(3, 12, 2, |f| {
            prop_oneof![
                (f.clone(), f.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
                (f.clone(), f.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
                f.prop_map(|a| Filter::Not(Box::new(a))),
            ]
        })
    }

    /// Any syntactically valid filter (value filters hold no value filter).
    fn filter() -> impl Strategy<Value = Filter> {
        let value_path =
            (attr_path(false), tree(leaf().boxed())).prop_map(|(path, f)| Filter::ValuePath {
                path,
                filter: Box::new(f),
            });
        tree(prop_oneof![3 => leaf(), 1 => value_path].boxed())
    }

    /// Text made of filter words, often almost a filter.
    fn filterish() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            Just("userName".to_string()),
            Just("emails".to_string()),
            Just("emails.value".to_string()),
            Just("meta.lastModified".to_string()),
            Just("active".to_string()),
            Just("members".to_string()),
            Just("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName".to_string()),
            Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_string()),
            Just("eq".to_string()),
            Just("co".to_string()),
            Just("gt".to_string()),
            Just("pr".to_string()),
            Just("and".to_string()),
            Just("or".to_string()),
            Just("not".to_string()),
            Just("(".to_string()),
            Just(")".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("\"2024-01-01T00:00:00Z\"".to_string()),
            Just("true".to_string()),
            Just("null".to_string()),
            Just("1e400".to_string()),
            Just("\"a\\".to_string()),
            "\"[^\"]{0,5}\"",
            "[ -~]{1,4}",
        ];
        proptest::collection::vec(word, 0..14).prop_map(|w| w.join(" "))
    }

    /// Parse and compile as the routes do: every refusal must be a 400
    /// `invalidFilter`, and what compiles evaluates and translates.
    fn exercise(text: &str) {
        let doc = serde_json::json!({"userName": "a", "emails": [{"value": "a@x.test"}], "active": true,
            "meta": {"lastModified": "2024-01-01T00:00:00Z"}, "members": [{"value": "u"}]});
        let parsed = parse(text).map_err(ScimError::invalid_filter);
        for def in [&USER_TYPE, &GROUP_TYPE] {
            match parsed.clone().and_then(|f| compile(def, &f)) {
                Ok(c) => {
                    c.matches(&doc);
                    to_user_cond(&c);
                }
                Err(e) => {
                    assert_eq!(e.scim_type, Some("invalidFilter"), "{text:?}: {}", e.detail);
                    assert_eq!(e.status.as_u16(), 400);
                }
            }
        }
    }

    // --- A model of the SQL a user condition becomes (store/scim.rs),
    // evaluated on the row the representation is built from.

    fn like(have: &str, want: &str, op: TextOp, fold: bool) -> bool {
        let (h, w) = if fold {
            (have.to_ascii_lowercase(), want.to_ascii_lowercase())
        } else {
            (have.to_string(), want.to_string())
        };
        match op {
            TextOp::Eq => have == want,
            TextOp::Co => h.contains(&w),
            TextOp::Sw => h.starts_with(&w),
            TextOp::Ew => h.ends_with(&w),
        }
    }

    /// `fold`: SQLite's LIKE (ASCII case folded); else PostgreSQL's.
    fn sql(c: &UserCond, r: &ScimUserRecord, fold: bool) -> bool {
        let st = r.state.as_ref();
        let col = |c: TextCol| match c {
            TextCol::Id => Some(r.user_id.clone()),
            TextCol::UserName => Some(normalize_email(&r.email)),
            TextCol::ExternalId => st.and_then(|s| s.external_id.clone()),
        };
        match c {
            UserCond::All => true,
            UserCond::Nothing => false,
            UserCond::And(p) => p.iter().all(|c| sql(c, r, fold)),
            UserCond::Or(p) => p.iter().any(|c| sql(c, r, fold)),
            UserCond::Not(c) => !sql(c, r, fold),
            UserCond::Text { col: c, op, value } => {
                col(*c).is_some_and(|v| like(&v, value, *op, fold))
            }
            UserCond::Present(c) => col(*c).is_some_and(|v| !v.is_empty()),
            UserCond::Time { col, op, secs } => {
                let t = match (col, st) {
                    (TimeCol::Created, Some(s)) => s.created_at,
                    (TimeCol::LastModified, Some(s)) => s.updated_at,
                    _ => r.member_since.unwrap_or(r.user_created_at),
                };
                match op {
                    TimeOp::Eq => t == *secs,
                    TimeOp::Gt => t > *secs,
                    TimeOp::Ge => t >= *secs,
                    TimeOp::Lt => t < *secs,
                    TimeOp::Le => t <= *secs,
                }
            }
            UserCond::Member(b) => r.member_since.is_some() == *b,
        }
    }

    const WORDS: &[&str] = &["a", "A", "ab", "Ab", "b", "%", "_", "\\", "É", "é", ""];
    const T0: i64 = 1_700_000_000;

    fn word() -> impl Strategy<Value = String> {
        proptest::sample::select(WORDS).prop_map(str::to_string)
    }

    fn record() -> impl Strategy<Value = ScimUserRecord> {
        (
            word(),
            word(),
            proptest::option::of(word()),
            any::<bool>(),
            proptest::option::of(any::<bool>()),
            0i64..3,
            0i64..3,
        )
            .prop_map(|(id, email, ext, member, active, c, m)| ScimUserRecord {
                user_id: format!("u{id}"),
                email,
                name: String::new(),
                user_created_at: T0,
                member_since: member.then_some(T0),
                state: Some(ScimUserState {
                    external_id: ext,
                    active,
                    attributes: "{}".into(),
                    created_user: true,
                    version: 1,
                    created_at: T0 + c,
                    updated_at: T0 + m,
                }),
            })
    }

    /// Filters on the attributes the SQL translation knows.
    fn user_filter() -> impl Strategy<Value = Filter> {
        let text_attr =
            proptest::sample::select(&["userName", "id", "externalId", "displayName"][..]);
        let time_attr = proptest::sample::select(&["meta.created", "meta.lastModified"][..]);
        let time = (0i64..4, prop_oneof![Just(""), Just(".5")]).prop_map(|(s, frac)| {
            crate::clock::rfc3339(T0 - 1 + s).replace('Z', &format!("{frac}Z"))
        });
        let leaf = prop_oneof![
            (text_attr, op(), word()).prop_map(|(a, op, w)| {
                let w = if a == "id" { format!("u{w}") } else { w };
                Filter::Compare {
                    path: parse_attr_path(a).unwrap_or_else(|e| panic!("{e}")),
                    op,
                    value: Literal::Str(w),
                }
            }),
            (
                proptest::sample::select(&[Op::Eq, Op::Ne][..]),
                any::<bool>()
            )
                .prop_map(|(op, b)| Filter::Compare {
                    path: parse_attr_path("active").unwrap_or_else(|e| panic!("{e}")),
                    op,
                    value: Literal::Bool(b),
                }),
            (
                time_attr,
                proptest::sample::select(&[Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le][..]),
                time
            )
                .prop_map(|(a, op, t)| Filter::Compare {
                    path: parse_attr_path(a).unwrap_or_else(|e| panic!("{e}")),
                    op,
                    value: Literal::Str(t),
                }),
            proptest::sample::select(&["userName", "id", "externalId", "displayName"][..])
                .prop_map(|a| Filter::Present(
                    parse_attr_path(a).unwrap_or_else(|e| panic!("{e}"))
                )),
        ];
        tree(leaf.boxed())
    }

    proptest! {
        #[test]
        fn any_text_is_a_filter_or_an_invalid_filter(text in any::<String>()) {
            exercise(&text);
        }

        #[test]
        fn filter_like_text_is_a_filter_or_an_invalid_filter(text in filterish()) {
            exercise(&text);
        }

        #[test]
        fn valid_filters_round_trip_through_text(f in filter()) {
            let text = show(&f);
            prop_assert_eq!(parse(&text), Ok(f), "{}", text);
            exercise(&text);
        }

        #[test]
        fn patch_paths_parse_or_are_refused_without_a_panic(text in any::<String>(), f in filter()) {
            let _ = parse_patch_path(&text);
            let _ = parse_patch_path(&format!("emails[{}].value", show(&f)));
        }

        /// The SQL never drops a user the filter matches, on PostgreSQL's
        /// or SQLite's LIKE, and says exactly the same where it claims to.
        #[test]
        fn the_sql_translation_keeps_every_match(f in user_filter(), r in record()) {
            let c = compile(&USER_TYPE, &f).map_err(|e| TestCaseError::fail(e.detail))?;
            let doc = user_json("https://gw.test/scim/v2", &r, &[]);
            let matched = c.matches(&doc);
            let (cond, exact) = to_user_cond(&c);
            for fold in [false, true] {
                let s = sql(&cond, &r, fold);
                prop_assert!(!matched || s, "{} matches {} but not {:?}", show(&f), doc, cond);
                if exact {
                    prop_assert_eq!(matched, s, "{} on {}: {:?} (fold {})", show(&f), doc, cond, fold);
                }
            }
        }
    }
}

//! The one XML parser used for SAML, behind a small read-only API.
//!
//! Everything is read from one libxml2 tree, the tree whose elements are
//! digested and verified, so what is checked and what is verified cannot
//! diverge (the parser
//! differentials of ruby-saml CVE-2024-45409 and CVE-2025-25291/2). Before
//! any parser sees a byte, [`prepare`] refuses DTD markup (no entity is ever
//! declared, so none is expanded), NUL bytes and non-UTF-8 input, and removes
//! the XML declaration so that every later parse reads the same UTF-8 text.

use super::SamlError;
use libxml::parser::{Parser, ParserOptions};
use libxml::tree::{Document, Node, NodeType};
use std::ffi::{c_char, c_void, CStr, CString};

pub const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// Checks raw bytes and returns the text that both parsers will read:
/// * any `<!` other than a comment or CDATA section (DOCTYPE, ENTITY,
///   ELEMENT, ATTLIST...) → [`SamlError::DoctypeRefused`], before parsing;
/// * NUL bytes (UTF-16 in disguise) or invalid UTF-8 → `Malformed`;
/// * an XML declaration naming another version or encoding → `Malformed`;
///   an accepted one is removed, so no parser can pick another encoding.
pub fn prepare(bytes: &[u8]) -> Result<String, SamlError> {
    refuse_dtd_markup(bytes)?;
    if bytes.contains(&0) {
        return Err(SamlError::malformed("the XML contains NUL bytes"));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|_| SamlError::malformed("the XML is not UTF-8"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Ok(strip_xml_declaration(text)?.to_string())
}

fn refuse_dtd_markup(bytes: &[u8]) -> Result<(), SamlError> {
    let mut rest = bytes;
    while let Some(pos) = rest.windows(2).position(|w| w == b"<!") {
        let markup = &rest[pos..];
        if !(markup.starts_with(b"<!--") || markup.starts_with(b"<![CDATA[")) {
            return Err(SamlError::DoctypeRefused);
        }
        rest = &rest[pos + 2..];
    }
    Ok(())
}

fn strip_xml_declaration(text: &str) -> Result<&str, SamlError> {
    let Some(after) = text.strip_prefix("<?xml") else {
        return Ok(text);
    };
    if !after.starts_with([' ', '\t', '\r', '\n']) {
        // `<?xml-stylesheet` and friends: an ordinary processing instruction.
        return Ok(text);
    }
    let end = after
        .find("?>")
        .ok_or_else(|| SamlError::malformed("unterminated XML declaration"))?;
    let decl = &after[..end];
    if let Some(version) = pseudo_attribute(decl, "version") {
        if version != "1.0" {
            return Err(SamlError::malformed("only XML 1.0 is accepted"));
        }
    }
    if let Some(encoding) = pseudo_attribute(decl, "encoding") {
        if !encoding.eq_ignore_ascii_case("utf-8") {
            return Err(SamlError::malformed("only UTF-8 XML is accepted"));
        }
    }
    Ok(&after[end + 2..])
}

/// The value of `name="..."` (or single quotes) inside an XML declaration.
fn pseudo_attribute<'a>(decl: &'a str, name: &str) -> Option<&'a str> {
    let start = decl.find(name)? + name.len();
    let rest = decl[start..].trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &rest[1..];
    rest.find(quote).map(|end| &rest[..end])
}

/// Parses prepared text strictly: no recovery from errors (unlike the
/// `libxml` crate's default), no network, no entity substitution, no
/// error output on stderr.
///
/// `encoding` stays `None`: `libxml` 0.3.3 passes a dangling pointer for an
/// explicit encoding (its CString is dropped inside a `match` arm), which
/// made libxml2 decode with garbage; [`prepare`] already guarantees UTF-8
/// text without BOM or declaration, which libxml2 reads as UTF-8.
pub fn parse(text: &str) -> Result<Document, SamlError> {
    super::native::init_libxml();
    let options = ParserOptions {
        recover: false,
        no_net: true,
        no_error: true,
        no_warning: true,
        encoding: None,
        ..ParserOptions::default()
    };
    Parser::default()
        .parse_string_with_options(text, options)
        .map_err(|_| SamlError::malformed("the XML is not well-formed"))
}

/// The root element of a parsed document.
pub fn root(doc: &Document) -> Result<Node, SamlError> {
    doc.get_root_element()
        .ok_or_else(|| SamlError::malformed("the XML has no root element"))
}

/// Is `node` the element `{ns}local`?
pub fn is(node: &Node, ns: &str, local: &str) -> bool {
    node.is_element_node()
        && node.get_name() == local
        && node.get_namespace().map(|n| n.get_href()).as_deref() == Some(ns)
}

/// The element children of `node` named `{ns}local`, in document order.
pub fn children(node: &Node, ns: &str, local: &str) -> Vec<Node> {
    node.get_child_elements()
        .into_iter()
        .filter(|c| is(c, ns, local))
        .collect()
}

/// The only child `{ns}local` of `node`: `Ok(None)` when absent, an error
/// naming the element when repeated.
pub fn single_child(node: &Node, ns: &str, local: &str) -> Result<Option<Node>, SamlError> {
    let mut found = children(node, ns, local);
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(SamlError::invalid(format!("more than one {local} element"))),
    }
}

/// Every element in the subtree of `node` (itself included), document order.
pub fn descendants(node: &Node) -> Vec<Node> {
    let mut out = Vec::new();
    let mut stack = vec![node.clone()];
    while let Some(n) = stack.pop() {
        let mut kids = n.get_child_elements();
        kids.reverse();
        stack.extend(kids);
        out.push(n);
    }
    out
}

/// An attribute in no namespace (`Name`, not `x:Name`), as libxml2's
/// `xmlGetNoNsProp` gives it.
pub fn attr(node: &Node, name: &str) -> Option<String> {
    let cname = CString::new(name).ok()?;
    // SAFETY: `node` keeps its document alive; the returned string is owned
    // by us and freed with libxml2's own deallocator.
    unsafe {
        let value = libxml::bindings::xmlGetNoNsProp(node.node_ptr(), cname.as_ptr().cast());
        if value.is_null() {
            return None;
        }
        let out = CStr::from_ptr(value.cast::<c_char>())
            .to_string_lossy()
            .into_owned();
        let free = libxml::bindings::xmlFree;
        if let Some(free) = free {
            free(value.cast::<c_void>());
        }
        Some(out)
    }
}

/// The names of every attribute of `node` as (namespace URI, local name).
pub fn attribute_names(node: &Node) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    // SAFETY: walks libxml2's attribute list of a live element, read-only.
    unsafe {
        let mut prop = (*node.node_ptr()).properties;
        while !prop.is_null() {
            let name = c_string((*prop).name.cast());
            let ns = (*prop).ns;
            let href = if ns.is_null() {
                None
            } else {
                Some(c_string((*ns).href.cast()))
            };
            out.push((href, name));
            prop = (*prop).next;
        }
    }
    out
}

pub(super) unsafe fn c_string(ptr: *const c_char) -> String {
    if ptr.is_null() {
        String::new()
    } else {
        CStr::from_ptr(ptr).to_string_lossy().into_owned()
    }
}

/// The whole text content of `node`: every text and CDATA child joined, so
/// a comment cannot cut a value short (`victim@corp.test<!---->.evil.test`
/// reads as `victim@corp.test.evil.test`). Comments and processing
/// instructions add nothing; an element child makes it `None` (not a simple
/// value). Surrounding XML whitespace (space, tab, CR, LF) is trimmed, and
/// only that: other Unicode spaces (U+00A0, U+3000, ...) are part of the
/// signed value and stay in what is read.
pub fn text(node: &Node) -> Option<String> {
    let mut out = String::new();
    for child in node.get_child_nodes() {
        match child.get_type() {
            Some(NodeType::TextNode | NodeType::CDataSectionNode) => {
                out.push_str(&child.get_content())
            }
            Some(NodeType::CommentNode | NodeType::PiNode) => {}
            _ => return None,
        }
    }
    Some(
        out.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
            .to_string(),
    )
}

/// Base64 as SAML carries it (a form field, an element's content): line
/// breaks and other ASCII whitespace ignored, anything else must be the
/// standard alphabet with its padding. `None` when it is not.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

/// Escapes text for an XML attribute value or element content.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtd_markup_is_refused_before_parsing() {
        for doc in [
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            "<a/><!doctype a>",
            "<?xml version=\"1.0\"?><!ENTITY x SYSTEM \"file:///etc/passwd\"><a/>",
        ] {
            assert_eq!(prepare(doc.as_bytes()), Err(SamlError::DoctypeRefused));
        }
        assert!(prepare(b"<a><!-- c --><![CDATA[x]]></a>").is_ok());
    }

    #[test]
    fn declaration_is_checked_and_removed() {
        assert_eq!(
            prepare(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><a/>").unwrap(),
            "<a/>"
        );
        assert!(prepare(b"<?xml version='1.0' encoding='UTF-16'?><a/>").is_err());
        assert!(prepare(b"<?xml version=\"1.1\"?><a/>").is_err());
        assert!(prepare(b"<\0a\0/\0>\0").is_err());
        assert!(prepare(&[0x3c, 0x61, 0xff, 0x2f, 0x3e]).is_err());
    }

    #[test]
    fn strict_parse_refuses_what_recovery_would_accept() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a/>trailing").is_err());
        assert!(parse("<a x='1' x='2'/>").is_err());
    }

    #[test]
    fn text_joins_around_comments_and_attr_ignores_namespaced() {
        let doc =
            parse("<a xmlns:p='urn:p' p:k='ns' k='plain'>victim@corp.test<!---->.evil.test</a>")
                .unwrap();
        let a = root(&doc).unwrap();
        assert_eq!(text(&a).unwrap(), "victim@corp.test.evil.test");
        assert_eq!(attr(&a, "k").unwrap(), "plain");
        let doc = parse("<a xmlns:p='urn:p' p:k='ns'/>").unwrap();
        assert_eq!(attr(&root(&doc).unwrap(), "k"), None);
    }
}

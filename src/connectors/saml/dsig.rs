//! XML Signature verification of one enveloped signature, on the tree the
//! rest of validation reads (never a second parse of the same bytes).
//!
//! [`super::signature::check_shape`] has already proven the signature's
//! form: one `Reference` whose `URI` is `#` + the `ID` of the element that
//! carries the signature, allow-listed algorithms and transforms, unique
//! IDs. What is left here is the cryptography, in the order of XML
//! Signature core validation (W3C xmldsig-core, section 3.2):
//!
//! 1. the referenced element, which is the signature's own parent (not an
//!    ID look-up: the element that is digested is the element that is
//!    read), is canonicalized by libxml2's C14N (the same C code xmlsec
//!    canonicalizes with) as a document subset: its subtree, comments left
//!    out (a bare-name `#ID` reference), the signature's subtree left out
//!    (the enveloped-signature transform); its digest must equal
//!    `DigestValue`;
//! 2. `SignedInfo` is canonicalized by its `CanonicalizationMethod` and the
//!    `SignatureValue` must verify over it with one of the connection's
//!    pinned certificates' keys (never the message's `KeyInfo`), the key's
//!    type matching the `SignatureMethod`.
//!
//! The public keys of pinned certificates are decoded once per process and
//! kept ([`keys_for`]): decoding a certificate with OpenSSL 3 costs about
//! three signature checks (docs/benchmarks.md, "What the signature check
//! pays to load the IdP's key").

use super::xml::{self, NS_DSIG};
use super::SamlError;
use libxml::bindings::{self as ffi, xmlNodePtr};
use libxml::tree::{Document, Node};
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;
use openssl::x509::X509;
use std::collections::HashMap;
use std::ffi::{c_int, c_void, CString};
use std::sync::{Arc, Mutex, OnceLock};

pub(super) const NS_EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub(super) const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// The default when a reference names no canonicalization (xmldsig-core
/// 4.3.3.2: a node set becomes octets by inclusive C14N 1.0).
const DEFAULT_C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";

/// How many pinned certificates' keys the process keeps (each a few
/// hundred bytes); past it the cache starts over.
const KEY_CACHE_LIMIT: usize = 1024;

/// A canonicalization: libxml2's mode and whether comments are kept.
#[derive(Clone, Copy)]
pub(super) struct C14n {
    mode: c_int,
    comments: bool,
}

/// The canonicalizations accepted, for `SignedInfo` and as a transform.
pub(super) fn c14n_method(uri: &str) -> Option<C14n> {
    let (mode, comments) = match uri {
        "http://www.w3.org/2001/10/xml-exc-c14n#" => {
            (ffi::xmlC14NMode_XML_C14N_EXCLUSIVE_1_0, false)
        }
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments" => {
            (ffi::xmlC14NMode_XML_C14N_EXCLUSIVE_1_0, true)
        }
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315" => (ffi::xmlC14NMode_XML_C14N_1_0, false),
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments" => {
            (ffi::xmlC14NMode_XML_C14N_1_0, true)
        }
        "http://www.w3.org/2006/12/xml-c14n11" => (ffi::xmlC14NMode_XML_C14N_1_1, false),
        "http://www.w3.org/2006/12/xml-c14n11#WithComments" => {
            (ffi::xmlC14NMode_XML_C14N_1_1, true)
        }
        _ => return None,
    };
    Some(C14n {
        mode: c_int::try_from(mode).ok()?,
        comments,
    })
}

/// The digest methods that verify: SHA-256 or better.
pub(super) fn digest_method(uri: &str) -> Option<MessageDigest> {
    match uri {
        "http://www.w3.org/2001/04/xmlenc#sha256" => Some(MessageDigest::sha256()),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => Some(MessageDigest::sha384()),
        "http://www.w3.org/2001/04/xmlenc#sha512" => Some(MessageDigest::sha512()),
        _ => None,
    }
}

/// The signature methods that verify: RSA PKCS#1 v1.5 and ECDSA, each with
/// SHA-256 or better; the key type and digest of one.
pub(super) fn signature_method(uri: &str) -> Option<(Id, MessageDigest)> {
    let (kind, bits) = uri
        .strip_prefix("http://www.w3.org/2001/04/xmldsig-more#")?
        .split_once("-sha")?;
    let id = match kind {
        "rsa" => Id::RSA,
        "ecdsa" => Id::EC,
        _ => return None,
    };
    let md = match bits {
        "256" => MessageDigest::sha256(),
        "384" => MessageDigest::sha384(),
        "512" => MessageDigest::sha512(),
        _ => return None,
    };
    Some((id, md))
}

/// Pinned certificates' DER to their public keys.
type KeyCache = HashMap<Vec<u8>, Arc<PKey<Public>>>;

/// The public keys of `certs_der`, decoded once per process.
pub fn keys_for(certs_der: &[Vec<u8>]) -> Result<Vec<Arc<PKey<Public>>>, SamlError> {
    static CACHE: OnceLock<Mutex<KeyCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut out = Vec::with_capacity(certs_der.len());
    for der in certs_der {
        let cached = cache
            .lock()
            .ok()
            .and_then(|map| map.get(der.as_slice()).cloned());
        let key = match cached {
            Some(key) => key,
            None => {
                let key = X509::from_der(der)
                    .and_then(|cert| cert.public_key())
                    .map(Arc::new)
                    .map_err(|_| {
                        SamlError::invalid("a pinned signing certificate cannot be read")
                    })?;
                if let Ok(mut map) = cache.lock() {
                    if map.len() >= KEY_CACHE_LIMIT {
                        map.clear();
                    }
                    map.insert(der.clone(), Arc::clone(&key));
                }
                key
            }
        };
        out.push(key);
    }
    Ok(out)
}

fn refused() -> SamlError {
    SamlError::invalid(
        "the signature does not verify with the identity provider's pinned certificate",
    )
}

/// The one `ds:{local}` child of `node`; an error when there are none or
/// several.
pub(super) fn only(node: &Node, local: &str) -> Result<Node, SamlError> {
    let mut found = xml::children(node, NS_DSIG, local);
    if found.len() != 1 {
        return Err(SamlError::invalid(format!(
            "the signature needs exactly one {local}"
        )));
    }
    Ok(found.remove(0))
}

/// The `Algorithm` attribute of `node` (empty when absent).
pub(super) fn algorithm(node: &Node) -> String {
    xml::attr(node, "Algorithm").unwrap_or_default()
}

/// Base64 element content, whitespace (line breaks) ignored.
fn base64_content(node: &Node) -> Result<Vec<u8>, SamlError> {
    let text = xml::text(node).ok_or_else(refused)?;
    xml::base64_decode(&text).ok_or_else(refused)
}

/// The `PrefixList` of an exclusive canonicalization's
/// `InclusiveNamespaces`, when `method` carries one.
fn inclusive_prefixes(method: &Node) -> Result<Vec<String>, SamlError> {
    match method.get_child_elements().as_slice() {
        [] => Ok(Vec::new()),
        [list] if xml::is(list, NS_EXC_C14N, "InclusiveNamespaces") => {
            Ok(xml::attr(list, "PrefixList")
                .unwrap_or_default()
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect())
        }
        _ => Err(SamlError::invalid(
            "unexpected content in a canonicalization method",
        )),
    }
}

/// Verifies the enveloped signature `sig` over its parent element with one
/// of `keys`.
pub fn verify_enveloped(
    doc: &Document,
    sig: &Node,
    keys: &[Arc<PKey<Public>>],
) -> Result<(), SamlError> {
    let target = sig.get_parent().ok_or_else(refused)?;
    let signed_info = only(sig, "SignedInfo")?;
    let c14n_node = only(&signed_info, "CanonicalizationMethod")?;
    let method_node = only(&signed_info, "SignatureMethod")?;
    let reference = only(&signed_info, "Reference")?;
    // The shape checks require this already; it is what makes the element
    // digested below the element the reference names.
    let target_id = xml::attr(&target, "ID").filter(|id| !id.is_empty());
    let uri = xml::attr(&reference, "URI");
    if target_id.is_none() || target_id.map(|id| format!("#{id}")) != uri {
        return Err(SamlError::invalid(
            "the signature does not reference the element that carries it",
        ));
    }

    // 1. The reference: enveloped, then (optionally) one canonicalization.
    let mut transforms = Vec::new();
    if let Some(list) = xml::single_child(&reference, NS_DSIG, "Transforms")? {
        transforms = list.get_child_elements();
    }
    let (first, rest) = transforms.split_first().ok_or_else(|| {
        SamlError::invalid("the signature reference is not an enveloped signature")
    })?;
    if algorithm(first) != ENVELOPED || !first.get_child_elements().is_empty() {
        return Err(SamlError::invalid(
            "the signature reference is not an enveloped signature",
        ));
    }
    let (ref_method, ref_prefixes) = match rest {
        [] => (DEFAULT_C14N.to_string(), Vec::new()),
        [c14n] => (algorithm(c14n), inclusive_prefixes(c14n)?),
        _ => return Err(SamlError::invalid("unexpected signature transforms")),
    };
    let ref_c14n = c14n_method(&ref_method).ok_or_else(|| {
        SamlError::invalid(format!(
            "the signature transform {ref_method} is not accepted"
        ))
    })?;
    let digest_alg = algorithm(&only(&reference, "DigestMethod")?);
    let md = digest_method(&digest_alg).ok_or_else(|| {
        SamlError::invalid(format!("the digest algorithm {digest_alg} is not accepted"))
    })?;
    let expected = base64_content(&only(&reference, "DigestValue")?)?;
    // A bare-name reference (`#ID`) leaves comments out, whatever the
    // canonicalization says (xmldsig-core 4.3.3.3).
    let content = canonical(
        doc,
        &target,
        Some(sig),
        C14n {
            comments: false,
            ..ref_c14n
        },
        &ref_prefixes,
    )?;
    let digest = hash(md, &content).map_err(|_| refused())?;
    if digest.len() != expected.len() || !openssl::memcmp::eq(&digest, &expected) {
        tracing::debug!("SAML signature: the digest of the signed element differs");
        return Err(refused());
    }

    // 2. SignedInfo and the signature value.
    let si_method = algorithm(&c14n_node);
    let si_c14n = c14n_method(&si_method)
        .ok_or_else(|| SamlError::invalid("the signature uses an unsupported canonicalization"))?;
    let si_prefixes = inclusive_prefixes(&c14n_node)?;
    let signed_bytes = canonical(doc, &signed_info, None, si_c14n, &si_prefixes)?;
    let sig_method = algorithm(&method_node);
    let (kind, sig_md) = signature_method(&sig_method).ok_or_else(|| {
        SamlError::invalid(format!(
            "the signature algorithm {sig_method} is not accepted"
        ))
    })?;
    let value = base64_content(&only(sig, "SignatureValue")?)?;
    for key in keys {
        if key.id() != kind {
            continue;
        }
        let presented = if kind == Id::EC {
            match ecdsa_der(key, &value) {
                Some(der) => der,
                None => continue,
            }
        } else {
            value.clone()
        };
        let ok = Verifier::new(sig_md, key)
            .and_then(|mut v| {
                v.update(&signed_bytes)?;
                v.verify(&presented)
            })
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
    }
    tracing::debug!("SAML signature: no pinned key verifies the signature value");
    Err(refused())
}

/// XML Signature's ECDSA value (r and s, each left-padded to the curve's
/// size, concatenated) as the DER structure OpenSSL verifies; `None` unless
/// it is exactly twice the size of `key`'s curve.
fn ecdsa_der(key: &PKey<Public>, raw: &[u8]) -> Option<Vec<u8>> {
    let bits = key.ec_key().ok()?.group().degree();
    let size = usize::try_from(bits.div_ceil(8)).ok()?;
    if size == 0 || raw.len() != 2 * size {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let sig =
        EcdsaSig::from_private_components(BigNum::from_slice(r).ok()?, BigNum::from_slice(s).ok()?)
            .ok()?;
    sig.to_der().ok()
}

/// What a canonicalization covers: `target`'s subtree without `excluded`'s.
struct Subset {
    target: xmlNodePtr,
    excluded: xmlNodePtr,
}

/// libxml2's visibility question for one node of the document (an
/// attribute or namespace node comes with the element it belongs to).
/// Called from C: must not unwind (pointer walks only).
unsafe extern "C" fn visible(user: *mut c_void, node: xmlNodePtr, parent: xmlNodePtr) -> c_int {
    if user.is_null() || node.is_null() {
        return 0;
    }
    let subset = &*(user as *const Subset);
    // `type` is the second field of both xmlNode and xmlNs.
    let kind = (*node).type_;
    let mut cur = if kind == ffi::xmlElementType_XML_NAMESPACE_DECL
        || kind == ffi::xmlElementType_XML_ATTRIBUTE_NODE
    {
        parent
    } else {
        node
    };
    while !cur.is_null() {
        if cur == subset.excluded {
            return 0;
        }
        if cur == subset.target {
            return 1;
        }
        cur = (*cur).parent;
    }
    0
}

/// The canonical form of `target`'s subtree (without `excluded`'s) by
/// libxml2's C14N.
fn canonical(
    doc: &Document,
    target: &Node,
    excluded: Option<&Node>,
    c14n: C14n,
    prefixes: &[String],
) -> Result<Vec<u8>, SamlError> {
    let subset = Subset {
        target: target.node_ptr(),
        excluded: excluded.map_or(std::ptr::null_mut(), |n| n.node_ptr()),
    };
    let owned: Vec<CString> = prefixes
        .iter()
        .map(|p| CString::new(p.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| refused())?;
    let mut list: Vec<*mut u8> = owned.iter().map(|p| p.as_ptr() as *mut u8).collect();
    list.push(std::ptr::null_mut());
    let list_ptr = if prefixes.is_empty() {
        std::ptr::null_mut()
    } else {
        list.as_mut_ptr()
    };
    super::native::init_libxml();
    // SAFETY: `doc`, `target` and `excluded` are live nodes of one parsed
    // document for the whole call; `subset`, `owned` and `list` outlive it;
    // the output buffer is created and closed here, its content copied out
    // before closing.
    unsafe {
        let buf = ffi::xmlAllocOutputBuffer(std::ptr::null_mut());
        if buf.is_null() {
            return Err(refused());
        }
        let rc = ffi::xmlC14NExecute(
            doc.doc_ptr(),
            Some(visible),
            &subset as *const Subset as *mut c_void,
            c14n.mode,
            list_ptr,
            c_int::from(c14n.comments),
            buf,
        );
        let out = if rc < 0 {
            None
        } else {
            let data = ffi::xmlOutputBufferGetContent(buf);
            let len = ffi::xmlOutputBufferGetSize(buf);
            if data.is_null() {
                Some(Vec::new())
            } else {
                Some(std::slice::from_raw_parts(data, len).to_vec())
            }
        };
        ffi::xmlOutputBufferClose(buf);
        out.ok_or_else(|| SamlError::malformed("the signed XML cannot be canonicalized"))
    }
}

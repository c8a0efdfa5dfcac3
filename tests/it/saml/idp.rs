//! A test IdP: keys and certificates made here with the `openssl` CLI,
//! responses built from templates and signed by an independent tool, the
//! `xmlsec1` CLI (Debian package `xmlsec1`), never by the code under test.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use iam_gateway::clock::rfc3339;
use iam_gateway::connectors::saml::{
    parse_idp_metadata, validate_response, Expectations, IdpMetadata, SamlError, SpSettings,
    ValidatedAssertion,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The fixed "now" of every test (2025-06-15), so nothing depends on the
/// wall clock.
pub const NOW: i64 = 1_750_000_000;
pub const SKEW: i64 = 60;
pub const SP_ENTITY: &str = "https://gw.test/sso/saml/c1/metadata";
pub const ACS: &str = "https://gw.test/sso/saml/c1/acs";
pub const IDP_ENTITY: &str = "https://idp.test/saml";
pub const IDP_SSO: &str = "https://idp.test/sso?tenant=t1";
pub const REQ_ID: &str = "_0123456789abcdef0123456789abcdef";

pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const HMAC_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256";
pub const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const EXC_C14N_WITH_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";

pub const EMAIL_FMT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
pub const PERSISTENT_FMT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
pub const TRANSIENT_FMT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";

/// A key pair on disk and its certificate's DER.
pub struct Keys {
    pub key_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub cert_der: Vec<u8>,
}

pub struct World {
    pub dir: PathBuf,
    /// The IdP's real key, pinned in its metadata.
    pub idp: Keys,
    /// An attacker's self-made key and certificate.
    pub attacker: Keys,
    /// An ECDSA P-256 IdP key.
    pub ec: Keys,
    pub hmac_key: PathBuf,
}

pub fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = crate::support::temp_dir();
        let hmac_key = dir.join("hmac.bin");
        std::fs::write(&hmac_key, b"0123456789abcdef0123456789abcdef").unwrap();
        World {
            idp: make_keys(&dir, "idp", &["-newkey", "rsa:2048"]),
            attacker: make_keys(&dir, "attacker", &["-newkey", "rsa:2048"]),
            ec: make_keys(
                &dir,
                "ec",
                &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
            ),
            hmac_key,
            dir,
        }
    })
}

fn make_keys(dir: &Path, name: &str, newkey: &[&str]) -> Keys {
    let key_pem = dir.join(format!("{name}-key.pem"));
    let cert_pem = dir.join(format!("{name}-cert.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "3650", "-subj"])
        .arg(format!("/CN={name}.test"))
        .args(newkey)
        .arg("-keyout")
        .arg(&key_pem)
        .arg("-out")
        .arg(&cert_pem)
        .output()
        .expect("the openssl CLI is needed by the SAML tests");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&cert_pem).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Keys {
        key_pem,
        cert_pem,
        cert_der: STANDARD.decode(body).unwrap(),
    }
}

/// IdP metadata for `certs` (KeyDescriptor `use` as given).
pub fn metadata_xml(certs: &[&[u8]], key_use: Option<&str>) -> String {
    let use_attr = key_use.map(|u| format!(" use=\"{u}\"")).unwrap_or_default();
    let keys: String = certs
        .iter()
        .map(|der| {
            format!(
                "<md:KeyDescriptor{use_attr}><ds:KeyInfo><ds:X509Data><ds:X509Certificate>\n{}\n\
                 </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
                STANDARD.encode(der)
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP_ENTITY}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    {keys}
    <md:NameIDFormat>{EMAIL_FMT}</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.test/sso/post"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
"#,
        IDP_SSO.replace('&', "&amp;")
    )
}

pub fn sp() -> &'static SpSettings {
    static SP: OnceLock<SpSettings> = OnceLock::new();
    SP.get_or_init(|| SpSettings {
        entity_id: SP_ENTITY.into(),
        acs_url: ACS.into(),
    })
}

/// The connection's pinned IdP, read through `parse_idp_metadata`.
pub fn idp_meta() -> &'static IdpMetadata {
    static IDP: OnceLock<IdpMetadata> = OnceLock::new();
    IDP.get_or_init(|| {
        parse_idp_metadata(&metadata_xml(&[&world().idp.cert_der], Some("signing"))).unwrap()
    })
}

/// What the ACS of connection c1 expects after sending `REQ_ID`.
pub fn expect() -> Expectations<'static> {
    Expectations {
        sp: sp(),
        idp: idp_meta(),
        in_response_to: Some(REQ_ID),
        allow_idp_initiated: false,
        now: NOW,
        clock_skew_secs: SKEW,
        email_attribute: None,
        name_attribute: None,
        group_attribute: None,
    }
}

pub fn b64(xml: &str) -> String {
    STANDARD.encode(xml)
}

/// Validates `xml` (base64-encoded here) with the default expectations.
pub fn check(xml: &str) -> Result<ValidatedAssertion, SamlError> {
    let r = validate_response(&b64(xml), &expect());
    if let Err(e) = &r {
        std::fs::write(
            format!("/tmp/saml-fail-{}.xml", uuid::Uuid::new_v4()),
            format!("{e:?}\n{xml}"),
        )
        .unwrap();
    }
    r
}

/// Asserts a 401 refusal and returns its reason.
#[track_caller]
pub fn refused(xml: &str) -> String {
    refused_with(xml, &expect())
}

#[track_caller]
pub fn refused_with(xml: &str, exp: &Expectations) -> String {
    match validate_response(&b64(xml), exp) {
        Ok(v) => panic!("accepted, as {v:?}"),
        Err(e) => {
            assert!(
                matches!(e, SamlError::Invalid(_)),
                "expected Invalid, got {e:?}"
            );
            assert_eq!(e.status(), 401);
            e.reason()
        }
    }
}

/// Which elements the IdP signs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sign {
    Assertion,
    Response,
    Both,
    Nothing,
}

/// The signing key and algorithms for one signature.
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    pub keys: Option<&'a Keys>,
    pub hmac_key: Option<&'a Path>,
    pub sig_alg: &'a str,
    pub digest_alg: &'a str,
    /// Canonicalization (SignedInfo and the reference transform).
    pub c14n: &'a str,
}

impl Signer<'static> {
    /// The real IdP, RSA-SHA256.
    pub fn idp() -> Self {
        Signer {
            keys: Some(&world().idp),
            hmac_key: None,
            sig_alg: RSA_SHA256,
            digest_alg: SHA256,
            c14n: EXC_C14N,
        }
    }
}

/// An enveloped-signature template over `uri`, for xmlsec1 to fill in.
pub fn sig_template(uri: &str, s: &Signer) -> String {
    let key_info = if s.keys.is_some() {
        "<ds:KeyInfo><ds:X509Data/></ds:KeyInfo>"
    } else {
        ""
    };
    format!(
        concat!(
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>",
            "<ds:CanonicalizationMethod Algorithm=\"{c14n}\"/>",
            "<ds:SignatureMethod Algorithm=\"{sig}\"/><ds:Reference URI=\"{uri}\"><ds:Transforms>",
            "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
            "<ds:Transform Algorithm=\"{c14n}\"/>",
            "</ds:Transforms><ds:DigestMethod Algorithm=\"{digest}\"/><ds:DigestValue/></ds:Reference>",
            "</ds:SignedInfo><ds:SignatureValue/>{key_info}</ds:Signature>"
        ),
        c14n = s.c14n,
        sig = s.sig_alg,
        uri = uri,
        digest = s.digest_alg,
        key_info = key_info,
    )
}

/// Runs `xmlsec1 --sign` on `xml`, which must hold exactly one empty
/// signature template (the first in document order is the one signed).
pub fn xmlsec_sign(xml: &str, s: &Signer) -> String {
    let dir = &world().dir;
    let n = uuid::Uuid::new_v4();
    let input = dir.join(format!("{n}-in.xml"));
    let output = dir.join(format!("{n}-out.xml"));
    std::fs::write(&input, xml).unwrap();
    let mut cmd = Command::new("xmlsec1");
    cmd.arg("--sign");
    if let Some(k) = s.keys {
        cmd.arg("--privkey-pem")
            .arg(format!("{},{}", k.key_pem.display(), k.cert_pem.display()));
    }
    if let Some(h) = s.hmac_key {
        cmd.arg("--hmackey").arg(h);
    }
    cmd.args([
        "--id-attr:ID",
        "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        "--id-attr:ID",
        "urn:oasis:names:tc:SAML:2.0:protocol:Response",
        "--output",
    ])
    .arg(&output)
    .arg(&input);
    let out = cmd
        .output()
        .expect("the xmlsec1 CLI (Debian package xmlsec1) is needed by the SAML tests");
    assert!(
        out.status.success(),
        "xmlsec1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed = std::fs::read_to_string(&output).unwrap();
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    signed
}

/// The text from the first `start` to the end of the first `end` after it.
pub fn cut<'a>(xml: &'a str, start: &str, end: &str) -> &'a str {
    let i = xml
        .find(start)
        .unwrap_or_else(|| panic!("{start} not found"));
    let j = i
        + xml[i..]
            .find(end)
            .unwrap_or_else(|| panic!("{end} not found"))
        + end.len();
    &xml[i..j]
}

/// `xml` without its (first) `ds:Signature` element.
pub fn without_signature(xml: &str) -> String {
    xml.replacen(cut(xml, "<ds:Signature", "</ds:Signature>"), "", 1)
}

/// `xml` without the `<?xml ...?>` declaration xmlsec1 writes.
pub fn body(xml: &str) -> &str {
    match xml.strip_prefix("<?xml") {
        Some(rest) => rest[rest.find("?>").unwrap() + 2..].trim_start(),
        None => xml,
    }
}

/// Flips one base64 character inside the first `<ds:{element}>` value.
pub fn flip_in(xml: &str, element: &str) -> String {
    let open = format!("<ds:{element}>");
    let i = xml.find(&open).unwrap() + open.len() + 5;
    let mut bytes = xml.as_bytes().to_vec();
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

pub fn t(offset: i64) -> String {
    rfc3339(NOW + offset)
}

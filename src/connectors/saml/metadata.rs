//! IdP metadata in (what a connection pins), SP metadata out.

use super::assertion::EMAIL_FORMAT;
use super::xml::{self, NS_DSIG, NS_METADATA};
use super::{IdpMetadata, SamlError, SpSettings};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libxml::tree::Node;

/// The largest IdP metadata document accepted.
pub const MAX_METADATA_LEN: usize = 1024 * 1024;

const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const HTTP_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const HTTP_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const MIN_RSA_BITS: u32 = 2048;

/// Reads an IdP's metadata: its entity id, HTTP-Redirect SSO endpoint and
/// signing certificates (KeyDescriptors with `use="signing"` or no `use`).
/// No signing certificate → [`SamlError::NoSigningCertificate`].
pub fn parse_idp_metadata(xml_text: &str) -> Result<IdpMetadata, SamlError> {
    if xml_text.len() > MAX_METADATA_LEN {
        return Err(SamlError::TooLarge {
            limit: MAX_METADATA_LEN,
        });
    }
    let text = xml::prepare(xml_text.as_bytes())?;
    let doc = xml::parse(&text)?;
    let root = xml::root(&doc)?;
    let entity = find_idp_entity(&root)?;
    let entity_id = xml::attr(&entity, "entityID")
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| SamlError::metadata("the EntityDescriptor has no entityID"))?;
    let idp = idp_descriptor(&entity)?
        .ok_or_else(|| SamlError::metadata("there is no SAML 2.0 IDPSSODescriptor"))?;

    let sso_url = xml::children(&idp, NS_METADATA, "SingleSignOnService")
        .iter()
        .find(|s| xml::attr(s, "Binding").as_deref() == Some(HTTP_REDIRECT))
        .and_then(|s| xml::attr(s, "Location"))
        .ok_or_else(|| SamlError::metadata("there is no HTTP-Redirect SingleSignOnService"))?;
    match url::Url::parse(&sso_url) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
        _ => {
            return Err(SamlError::metadata(
                "the SingleSignOnService URL is not http(s)",
            ))
        }
    }

    let mut signing_certs_der: Vec<Vec<u8>> = Vec::new();
    for kd in xml::children(&idp, NS_METADATA, "KeyDescriptor") {
        if !matches!(xml::attr(&kd, "use").as_deref(), None | Some("signing")) {
            continue;
        }
        for cert in certificates(&kd)? {
            if !signing_certs_der.contains(&cert) {
                signing_certs_der.push(cert);
            }
        }
    }
    if signing_certs_der.is_empty() {
        return Err(SamlError::NoSigningCertificate);
    }
    Ok(IdpMetadata {
        entity_id,
        sso_url,
        signing_certs_der,
    })
}

/// The EntityDescriptor itself, or the only one inside an
/// EntitiesDescriptor that describes an IdP.
fn find_idp_entity(root: &Node) -> Result<Node, SamlError> {
    if xml::is(root, NS_METADATA, "EntityDescriptor") {
        return Ok(root.clone());
    }
    if !xml::is(root, NS_METADATA, "EntitiesDescriptor") {
        return Err(SamlError::metadata("the document is not SAML metadata"));
    }
    let mut idps = Vec::new();
    for e in xml::children(root, NS_METADATA, "EntityDescriptor") {
        if idp_descriptor(&e)?.is_some() {
            idps.push(e);
        }
    }
    match idps.len() {
        1 => Ok(idps.remove(0)),
        0 => Err(SamlError::metadata(
            "no entity in the metadata is an identity provider",
        )),
        _ => Err(SamlError::metadata(
            "the metadata describes several identity providers; paste one",
        )),
    }
}

fn idp_descriptor(entity: &Node) -> Result<Option<Node>, SamlError> {
    let mut found = xml::children(entity, NS_METADATA, "IDPSSODescriptor")
        .into_iter()
        .filter(|d| {
            xml::attr(d, "protocolSupportEnumeration")
                .is_some_and(|p| p.split_ascii_whitespace().any(|x| x == PROTOCOL))
        })
        .collect::<Vec<_>>();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(SamlError::metadata("more than one IDPSSODescriptor")),
    }
}

/// DER of every `ds:X509Certificate` of a KeyDescriptor, each checked to be
/// an X.509 certificate with an RSA (2048 bits or more) or EC key.
fn certificates(key_descriptor: &Node) -> Result<Vec<Vec<u8>>, SamlError> {
    let mut out = Vec::new();
    for key_info in xml::children(key_descriptor, NS_DSIG, "KeyInfo") {
        for data in xml::children(&key_info, NS_DSIG, "X509Data") {
            for cert in xml::children(&data, NS_DSIG, "X509Certificate") {
                let der =
                    xml::base64_decode(&xml::text(&cert).unwrap_or_default()).ok_or_else(|| {
                        SamlError::metadata("a signing certificate is not valid base64")
                    })?;
                check_certificate(&der)?;
                out.push(der);
            }
        }
    }
    Ok(out)
}

fn check_certificate(der: &[u8]) -> Result<(), SamlError> {
    let cert = openssl::x509::X509::from_der(der)
        .map_err(|_| SamlError::metadata("a signing certificate is not an X.509 certificate"))?;
    let key = cert
        .public_key()
        .map_err(|_| SamlError::metadata("a signing certificate has an unreadable key"))?;
    if let Ok(rsa) = key.rsa() {
        if rsa.size() * 8 < MIN_RSA_BITS {
            return Err(SamlError::metadata(format!(
                "a signing certificate has an RSA key under {MIN_RSA_BITS} bits"
            )));
        }
        return Ok(());
    }
    if key.ec_key().is_ok() {
        return Ok(());
    }
    Err(SamlError::metadata(
        "a signing certificate has neither an RSA nor an EC key",
    ))
}

/// A signing certificate given on its own (PEM, or base64 DER): its DER,
/// once it is known to be an X.509 certificate with a key the ACS accepts.
pub fn parse_signing_certificate(text: &str) -> Result<Vec<u8>, SamlError> {
    let text = text.trim();
    let der = if text.contains("-----BEGIN") {
        openssl::x509::X509::from_pem(text.as_bytes())
            .and_then(|c| c.to_der())
            .map_err(|_| SamlError::metadata("the certificate is not a PEM X.509 certificate"))?
    } else {
        let compact: String = text.split_whitespace().collect();
        STANDARD
            .decode(compact)
            .map_err(|_| SamlError::metadata("the certificate is neither PEM nor base64"))?
    };
    check_certificate(&der)?;
    Ok(der)
}

/// What a page shows about a pinned certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// The subject's common name (or the whole subject when it has none).
    pub subject: String,
    /// Unix seconds: the certificate is not valid from then on.
    pub not_after: i64,
}

/// The subject and expiry of a DER certificate (None when unreadable).
pub fn certificate_facts(der: &[u8]) -> Option<CertificateFacts> {
    let cert = openssl::x509::X509::from_der(der).ok()?;
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(cert.not_after()).ok()?;
    let not_after = i64::from(d.days) * 86_400 + i64::from(d.secs);
    let names: Vec<String> = cert
        .subject_name()
        .entries()
        .filter_map(|e| {
            let key = e.object().nid().short_name().ok()?;
            let value = String::from_utf8_lossy(e.data().as_slice()).to_string();
            Some((key.to_string(), value))
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let subject = names
        .iter()
        .find_map(|n| n.strip_prefix("CN=").map(str::to_string))
        .unwrap_or_else(|| names.join(", "));
    Some(CertificateFacts { subject, not_after })
}

/// This connection's SP metadata: one SPSSODescriptor,
/// unsigned requests, signed assertions wanted, NameID format emailAddress,
/// one HTTP-POST AssertionConsumerService.
pub fn sp_metadata_xml(sp: &SpSettings) -> String {
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<md:EntityDescriptor xmlns:md=\"{md}\" entityID=\"{entity}\">\n",
            "  <md:SPSSODescriptor AuthnRequestsSigned=\"false\" WantAssertionsSigned=\"true\" ",
            "protocolSupportEnumeration=\"{protocol}\">\n",
            "    <md:NameIDFormat>{format}</md:NameIDFormat>\n",
            "    <md:AssertionConsumerService Binding=\"{post}\" Location=\"{acs}\" ",
            "index=\"0\" isDefault=\"true\"/>\n",
            "  </md:SPSSODescriptor>\n",
            "</md:EntityDescriptor>\n"
        ),
        md = NS_METADATA,
        entity = xml::escape(&sp.entity_id),
        protocol = PROTOCOL,
        format = EMAIL_FORMAT,
        post = HTTP_POST,
        acs = xml::escape(&sp.acs_url),
    )
}

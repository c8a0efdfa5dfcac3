//! An SSO connection's recent sign-in attempts, for its owners: the
//! accepted and refused sign-ins the SSO routes already write to the audit
//! log (`sso.signed_in`, `sso.refused`, and owners' `sso.tested`, all
//! with the connection as target), each refusal with its plain-words reason, a reason code and what
//! to change on the identity provider's side.

use super::{Core, Ctx};
use crate::domain::model::AuditEvent;
use crate::domain::DomainError;
use crate::store::{AuditFilter, SsoConnection};
use serde_json::Value;

/// Why a sign-in was refused, as a short stable code (kept in the audit
/// event's details as `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCode {
    /// The assertion is for another SP (Audience / SP Entity ID).
    Audience,
    /// Sent to another ACS URL (Destination / Recipient).
    Destination,
    /// Outside its validity window: clock skew, or used too late.
    Clock,
    /// Signed by a certificate the connection does not pin.
    Signature,
    /// Neither the response nor the assertion is signed.
    Unsigned,
    /// From another IdP entity than the connection's.
    Issuer,
    /// A signature or digest algorithm that is not accepted.
    Algorithm,
    /// An encrypted assertion.
    Encrypted,
    /// IdP-initiated while the connection does not allow it.
    Unsolicited,
    /// Not an answer to a sign-in this browser started (or expired).
    Request,
    /// The same response posted twice.
    Replay,
    /// The IdP itself said no (a SAML status, an OIDC error).
    IdpStatus,
    /// No usable email address for the person.
    Email,
    /// Not readable as a SAML response.
    Malformed,
    /// The IdP could not be reached or its configuration is unusable.
    IdpUnavailable,
    /// Valid, but this workspace's rules refuse the person.
    Policy,
    Other,
}

impl RefusalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::Audience => "audience",
            RefusalCode::Destination => "destination",
            RefusalCode::Clock => "clock_skew",
            RefusalCode::Signature => "untrusted_signature",
            RefusalCode::Unsigned => "unsigned",
            RefusalCode::Issuer => "issuer",
            RefusalCode::Algorithm => "algorithm",
            RefusalCode::Encrypted => "encrypted",
            RefusalCode::Unsolicited => "idp_initiated_off",
            RefusalCode::Request => "unknown_request",
            RefusalCode::Replay => "replay",
            RefusalCode::IdpStatus => "idp_refused",
            RefusalCode::Email => "email",
            RefusalCode::Malformed => "malformed",
            RefusalCode::IdpUnavailable => "idp_unavailable",
            RefusalCode::Policy => "policy",
            RefusalCode::Other => "other",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        ALL.iter().copied().find(|c| c.as_str() == code)
    }

    /// The code of a refusal from its plain-words reason (the SAML and
    /// OIDC connectors' and the provisioning rules' messages).
    pub fn of_reason(reason: &str) -> Self {
        let r = reason.to_ascii_lowercase();
        let has = |parts: &[&str]| parts.iter().any(|p| r.contains(p));
        if has(&["meant for another service", "names no audience"]) {
            RefusalCode::Audience
        } else if has(&[
            "another destination",
            "another recipient",
            "names no destination",
        ]) {
            RefusalCode::Destination
        } else if has(&["is not valid yet", "has expired"]) {
            RefusalCode::Clock
        } else if has(&["pinned certificate", "no pinned signing certificate"]) {
            RefusalCode::Signature
        } else if has(&["is signed"]) && has(&["neither"]) {
            RefusalCode::Unsigned
        } else if has(&["issuer is not this connection"]) {
            RefusalCode::Issuer
        } else if has(&["algorithm", "canonicalization", "transform"]) {
            RefusalCode::Algorithm
        } else if has(&["encrypted assertions"]) {
            RefusalCode::Encrypted
        } else if has(&["unsolicited responses"]) {
            RefusalCode::Unsolicited
        } else if has(&[
            "request this browser did not make",
            "does not say which request",
            "could not be matched to your browser",
            "cannot be completed in this browser",
            "carried no state",
        ]) {
            RefusalCode::Request
        } else if has(&["already used"]) {
            RefusalCode::Replay
        } else if has(&["identity provider reported", "did not sign you in"]) {
            RefusalCode::IdpStatus
        } else if has(&[
            "no email identifies",
            "email address is not valid",
            "not verified by your identity provider",
            "no email",
        ]) {
            RefusalCode::Email
        } else if has(&["cannot sign in here"]) {
            RefusalCode::Policy
        } else if has(&[
            "could not be read",
            "document type declaration",
            "larger than",
            "no saml response",
            "is not saml 2.0",
            "answer is incomplete",
        ]) {
            RefusalCode::Malformed
        } else if has(&["cannot be reached", "is not usable"]) {
            RefusalCode::IdpUnavailable
        } else {
            RefusalCode::Other
        }
    }
}

const ALL: [RefusalCode; 17] = [
    RefusalCode::Audience,
    RefusalCode::Destination,
    RefusalCode::Clock,
    RefusalCode::Signature,
    RefusalCode::Unsigned,
    RefusalCode::Issuer,
    RefusalCode::Algorithm,
    RefusalCode::Encrypted,
    RefusalCode::Unsolicited,
    RefusalCode::Request,
    RefusalCode::Replay,
    RefusalCode::IdpStatus,
    RefusalCode::Email,
    RefusalCode::Malformed,
    RefusalCode::IdpUnavailable,
    RefusalCode::Policy,
    RefusalCode::Other,
];

/// What the IdP side must be told about this gateway's end of a connection.
pub struct OurSide<'a> {
    /// "saml" or "oidc".
    pub kind: &'a str,
    /// SAML: the SP entity ID (the audience); OIDC: the client id.
    pub entity_id: &'a str,
    /// SAML: the ACS URL; OIDC: the redirect URI.
    pub acs_url: &'a str,
    /// The IdP's entity ID (SAML) or issuer (OIDC) the connection expects.
    pub idp: &'a str,
}

/// What to change, in plain words, for a refusal with this code (None when
/// the reason says all there is to say).
pub fn fix(code: RefusalCode, ours: &OurSide) -> Option<String> {
    let saml = ours.kind != "oidc";
    let text = match code {
        RefusalCode::Audience if saml => format!(
            "Set the Audience (also called SP Entity ID or Audience URI) of this app in your IdP to {}.",
            ours.entity_id
        ),
        RefusalCode::Audience => format!(
            "Check that the client ID on this connection ({}) is the one your IdP issued for this app.",
            ours.entity_id
        ),
        RefusalCode::Destination if saml => format!(
            "Set the Single sign-on URL (ACS URL, also sent as Recipient and Destination) of this app in your IdP to {}.",
            ours.acs_url
        ),
        RefusalCode::Destination => format!(
            "Set the redirect URI of this app in your IdP to {}.",
            ours.acs_url
        ),
        RefusalCode::Clock => "The answer was outside its validity window: the IdP's clock and this gateway's differ by more than 2 minutes, or the answer was used too late. Make sure the IdP's servers keep time with NTP, then sign in again.".into(),
        RefusalCode::Signature if saml => "Your IdP signed with a certificate this connection does not trust. Replace the IdP certificate (or metadata) on this page with the IdP's current signing certificate.".into(),
        RefusalCode::Signature => format!(
            "The ID token's signature did not verify with the keys {} publishes. Check the issuer URL on this connection.",
            ours.idp
        ),
        RefusalCode::Unsigned => "Turn on signing in your IdP: sign the assertion (or the whole response) with RSA-SHA256.".into(),
        RefusalCode::Issuer => format!(
            "The answer came from another IdP than {}. Replace the IdP metadata on this page with the metadata of the IdP app that sends these answers.",
            ours.idp
        ),
        RefusalCode::Algorithm => "Set the IdP's signature algorithm to RSA-SHA256 (or ECDSA-SHA256) and its digest algorithm to SHA-256.".into(),
        RefusalCode::Encrypted => "Turn off assertion encryption for this app in your IdP: this gateway accepts signed, unencrypted assertions.".into(),
        RefusalCode::Unsolicited => "The sign-in was started from the IdP (its app dashboard). Turn on IdP-initiated sign-in on this page, or start sign-in from the gateway.".into(),
        RefusalCode::Request => "The answer did not match a sign-in started in this browser in the last 10 minutes. Start again from the gateway's sign-in page; if it keeps happening, check that the IdP sends back the RelayState unchanged and that the browser keeps this site's cookies.".into(),
        RefusalCode::Replay => "The same answer was sent twice (for example with the browser's back button). Start sign-in again.".into(),
        RefusalCode::IdpStatus => "Your IdP refused the sign-in itself. Check its logs for this app, and that the person is assigned to the app.".into(),
        RefusalCode::Email if saml => "Send the person's email address: set the NameID format to emailAddress, or send an email attribute and enter its name under Attributes on this page.".into(),
        RefusalCode::Email => "Have the IdP send a verified email claim (scope email), or verify the email's domain for this workspace.".into(),
        RefusalCode::Malformed if saml => format!(
            "The IdP's answer could not be read as a SAML response. Check that the IdP posts to {} with the HTTP-POST binding.",
            ours.acs_url
        ),
        RefusalCode::IdpUnavailable => format!(
            "Check that {} is reachable from the gateway and is the right issuer URL.",
            ours.idp
        ),
        _ => return None,
    };
    Some(text)
}

/// One sign-in attempt through a connection.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub time: i64,
    pub accepted: bool,
    /// An owner's test sign-in (nobody was signed in).
    pub test: bool,
    /// Who signed in (accepted attempts).
    pub email: Option<String>,
    pub ip: Option<String>,
    /// Refused: the reason as the person was told.
    pub reason: Option<String>,
    pub code: Option<RefusalCode>,
    /// Accepted: the groups the IdP sent.
    pub groups: Vec<String>,
    /// A test: the email the IdP sent.
    pub sent_email: Option<String>,
}

fn attempt(e: AuditEvent) -> Attempt {
    let d = &e.details;
    let text = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
    let test = e.action == "sso.tested";
    let accepted = test || e.action == "sso.signed_in";
    let reason = if accepted { None } else { text("reason") };
    let code = if accepted {
        None
    } else {
        Some(
            text("code")
                .as_deref()
                .and_then(RefusalCode::parse)
                .unwrap_or_else(|| RefusalCode::of_reason(reason.as_deref().unwrap_or(""))),
        )
    };
    let groups = d
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Attempt {
        time: e.time,
        accepted,
        test,
        email: e.actor.email.clone(),
        ip: e.ip.clone(),
        reason,
        code,
        groups,
        sent_email: if test { text("email") } else { None },
    }
}

/// The connection's `limit` latest sign-in attempts, newest first (owners:
/// the attempts name people and addresses, as the audit log does).
pub async fn recent(
    core: &Core,
    ctx: &Ctx,
    conn: &SsoConnection,
    limit: i64,
) -> Result<Vec<Attempt>, DomainError> {
    ctx.require_owner()?;
    let mut events = Vec::new();
    for action in ["sso.signed_in", "sso.refused", "sso.tested"] {
        let filter = AuditFilter {
            action: Some(action.into()),
            targets: vec![conn.id.clone()],
            ..AuditFilter::default()
        };
        events.extend(
            core.store
                .list_audit(&ctx.ws.id, &filter, None, limit)
                .await?,
        );
    }
    events.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    events.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(events.into_iter().map(attempt).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connectors_reasons_get_their_codes() {
        let cases = [
            ("The sign-in response was refused: the assertion is meant for another service.", RefusalCode::Audience),
            ("The sign-in response was refused: the response is addressed to another destination.", RefusalCode::Destination),
            ("The sign-in response was refused: the assertion is addressed to another recipient.", RefusalCode::Destination),
            ("The sign-in response was refused: the assertion has expired.", RefusalCode::Clock),
            ("The sign-in response was refused: the assertion is not valid yet.", RefusalCode::Clock),
            ("The sign-in response was refused: the signature does not verify with the identity provider's pinned certificate.", RefusalCode::Signature),
            ("The sign-in response was refused: neither the response nor its assertion is signed.", RefusalCode::Unsigned),
            ("The sign-in response was refused: the assertion issuer is not this connection's identity provider.", RefusalCode::Issuer),
            ("The sign-in response was refused: the digest algorithm http://www.w3.org/2000/09/xmldsig#sha1 is not accepted (SHA-256 or better only).", RefusalCode::Algorithm),
            ("The sign-in response was refused: encrypted assertions are not supported.", RefusalCode::Encrypted),
            ("The sign-in response was refused: unsolicited responses are not enabled for this connection.", RefusalCode::Unsolicited),
            ("The sign-in response was refused: the response answers a request this browser did not make.", RefusalCode::Request),
            ("This SAML response was already used.", RefusalCode::Replay),
            ("The sign-in response was refused: the identity provider reported urn:oasis:names:tc:SAML:2.0:status:Responder.", RefusalCode::IdpStatus),
            ("The sign-in response was refused: the NameID is transient and no email identifies the person.", RefusalCode::Email),
            ("You cannot sign in here: an account with this email exists.", RefusalCode::Policy),
            ("The SAML message contains a document type declaration, which is never accepted.", RefusalCode::Malformed),
            ("The identity provider did not sign you in: access was denied.", RefusalCode::IdpStatus),
            ("something new", RefusalCode::Other),
        ];
        for (reason, code) in cases {
            assert_eq!(RefusalCode::of_reason(reason), code, "{reason}");
        }
        for c in ALL {
            assert_eq!(RefusalCode::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn fixes_name_what_to_set_on_the_idp() {
        let ours = OurSide {
            kind: "saml",
            entity_id: "https://gw.test/sso/saml/c1/metadata",
            acs_url: "https://gw.test/sso/saml/c1/acs",
            idp: "https://idp.test",
        };
        let f = fix(RefusalCode::Audience, &ours).unwrap();
        assert!(f.contains("Audience") && f.contains(ours.entity_id), "{f}");
        let f = fix(RefusalCode::Destination, &ours).unwrap();
        assert!(f.contains(ours.acs_url), "{f}");
        assert!(fix(RefusalCode::Clock, &ours).unwrap().contains("clock"));
        assert!(fix(RefusalCode::Policy, &ours).is_none());
    }
}

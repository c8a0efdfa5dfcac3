//! One-time set-up of the C libraries: libxml2 initialised before any
//! concurrent use, and xmlsec's error reports routed to `tracing` instead of
//! one stderr line per failed verification.
//!
//! xmlsec's reporter is a process-wide callback, and samael's lazy
//! initialisation (`xmlSecOpenSSLInit`) installs xmlsec-openssl's printing
//! reporter, overwriting any set before it. So [`quiet_xmlsec`] first makes
//! samael initialise (a verification that loads a pinned certificate and
//! finds no signature, which reports nothing), then installs ours.

use super::xml::c_string;
use samael::crypto::{CertificateDer, CryptoProvider, XmlSec};
use std::ffi::{c_char, c_int};
use std::sync::Once;

extern "C" {
    // libxmlsec1, linked by samael.
    fn xmlSecErrorsSetCallback(callback: Option<XmlSecErrorsCallback>);
}

type XmlSecErrorsCallback = unsafe extern "C" fn(
    file: *const c_char,
    line: c_int,
    func: *const c_char,
    error_object: *const c_char,
    error_subject: *const c_char,
    reason: c_int,
    msg: *const c_char,
);

/// xmlsec's reports at debug level. Called from C: must not unwind.
unsafe extern "C" fn xmlsec_error_to_tracing(
    _file: *const c_char,
    _line: c_int,
    func: *const c_char,
    _error_object: *const c_char,
    _error_subject: *const c_char,
    reason: c_int,
    msg: *const c_char,
) {
    let func = c_string(func);
    let msg = c_string(msg);
    tracing::debug!(target: "iam_gateway::saml::xmlsec", func = %func, reason, msg = %msg, "xmlsec");
}

static LIBXML: Once = Once::new();
static XMLSEC: Once = Once::new();

pub fn init_libxml() {
    LIBXML.call_once(|| {
        // SAFETY: library initialisation, run once.
        unsafe { libxml::bindings::xmlInitParser() }
    });
}

/// Initialises xmlsec through samael (with `cert`, a pinned certificate),
/// then silences its stderr reporter. Runs once per process.
pub fn quiet_xmlsec(cert: &CertificateDer) {
    init_libxml();
    XMLSEC.call_once(|| {
        // Outcome irrelevant: "<x/>" has no signature to verify.
        let _ = XmlSec::verify_signed_xml("<x/>", cert, None);
        // SAFETY: stores a function pointer in xmlsec's global.
        unsafe { xmlSecErrorsSetCallback(Some(xmlsec_error_to_tracing)) }
    });
}

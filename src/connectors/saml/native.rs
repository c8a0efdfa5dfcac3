//! One-time set-up of libxml2: initialised before any concurrent use, and
//! its error reports (a canonicalization refusing a relative namespace URI,
//! say) routed to `tracing` at debug level instead of stderr, where anyone
//! posting to the ACS could otherwise write lines.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::Once;

type StructuredErrorFunc = unsafe extern "C" fn(user: *mut c_void, error: *const c_void);

extern "C" {
    // libxml2. Declared here with the C calling convention: the `libxml`
    // crate's binding types the handler as a Rust function.
    fn xmlSetStructuredErrorFunc(ctx: *mut c_void, handler: Option<StructuredErrorFunc>);
    fn xmlThrDefSetStructuredErrorFunc(ctx: *mut c_void, handler: Option<StructuredErrorFunc>);
}

/// libxml2's report of one error, at debug level: its domain and code
/// only, since its message quotes names from the posted document. Called
/// from C: must not unwind.
unsafe extern "C" fn libxml_error_to_tracing(_user: *mut c_void, error: *const c_void) {
    if error.is_null() {
        return;
    }
    let error = &*(error as *const libxml::bindings::_xmlError);
    tracing::debug!(target: "iam_gateway::saml::libxml2", domain = error.domain, code = error.code, "libxml2");
}

static LIBXML: Once = Once::new();

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Initialises libxml2 once per process and routes its error reports on
/// this thread (they are per thread in libxml2) to `tracing`.
pub fn init_libxml() {
    LIBXML.call_once(|| {
        // SAFETY: library initialisation, run once; stores a function
        // pointer as the default handler of threads libxml2 meets later.
        unsafe {
            libxml::bindings::xmlInitParser();
            xmlThrDefSetStructuredErrorFunc(std::ptr::null_mut(), Some(libxml_error_to_tracing));
        }
    });
    QUIET.with(|quiet| {
        if !quiet.get() {
            // SAFETY: stores a function pointer in this thread's libxml2
            // error state.
            unsafe {
                xmlSetStructuredErrorFunc(std::ptr::null_mut(), Some(libxml_error_to_tracing))
            }
            quiet.set(true);
        }
    });
}

//! One-time set-up of libxml2: initialised before any concurrent use.

use std::sync::Once;

static LIBXML: Once = Once::new();

pub fn init_libxml() {
    LIBXML.call_once(|| {
        // SAFETY: library initialisation, run once.
        unsafe { libxml::bindings::xmlInitParser() }
    });
}

//! `return_to` validation: a relative path, or a URL on an allowed origin;
//! anything else (`//evil.test`, `/\evil.test`, `%09//evil.test`,
//! `https://app.example.com.evil.test`, `javascript:`) becomes the default
//! page.

pub const DEFAULT: &str = "/workspaces";

/// Returns a safe destination for `raw`.
pub fn sanitize(raw: Option<&str>, allowed_origins: &[String]) -> String {
    raw.and_then(|r| check(r, allowed_origins))
        .unwrap_or_else(|| DEFAULT.to_string())
}

fn check(raw: &str, allowed_origins: &[String]) -> Option<String> {
    if raw.is_empty() || raw.len() > 2048 {
        return None;
    }
    // Control characters, whitespace and backslashes are never needed and are
    // how browsers get talked into treating a path as a host.
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    if raw.starts_with('/') {
        if raw.starts_with("//") {
            return None;
        }
        // Encoded slashes or backslashes right after the first slash can be
        // decoded by a downstream hop into `//host`.
        let lower = raw.to_ascii_lowercase();
        if lower.starts_with("/%2f") || lower.starts_with("/%5c") {
            return None;
        }
        return Some(raw.to_string());
    }
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let origin = url.origin().ascii_serialization();
    if allowed_origins.iter().any(|o| o == &origin) {
        Some(url.to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["https://app.example.com".to_string()]
    }

    #[test]
    fn keeps_relative_paths_and_allowed_origins() {
        assert_eq!(
            sanitize(Some("/w/acme/access?tab=users"), &allowed()),
            "/w/acme/access?tab=users"
        );
        assert_eq!(
            sanitize(Some("https://app.example.com/dash?x=1"), &allowed()),
            "https://app.example.com/dash?x=1"
        );
    }

    #[test]
    fn refuses_the_security_cases() {
        for bad in [
            "//evil.test",
            "/\\evil.test",
            "%09//evil.test",
            "\t//evil.test",
            "https://app.example.com.evil.test",
            "https://app.example.com@evil.test/",
            "https://user@app.example.com/",
            "http://app.example.com/",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,hi",
            "/%2F%2Fevil.test",
            "/%5cevil.test",
            "evil.test",
            "",
        ] {
            assert_eq!(
                sanitize(Some(bad), &allowed()),
                DEFAULT,
                "{bad:?} must be refused"
            );
        }
        assert_eq!(sanitize(None, &allowed()), DEFAULT);
    }
}

/// Property tests: whatever `return_to` says, the browser ends up on the
/// gateway or on an allowed origin (resolved as browsers resolve a
/// `Location`, by the WHATWG URL rules the `url` crate implements).
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    const GATEWAY: &str = "https://gw.example.com/login/password";

    fn allowed() -> Vec<String> {
        vec![
            "https://app.example.com".to_string(),
            "http://127.0.0.1:3000".to_string(),
        ]
    }

    /// Pieces attackers combine: schemes, slashes of every kind and
    /// encoding, user info, look-alike hosts, whitespace and controls.
    fn tricky() -> impl Strategy<Value = String> {
        let piece = proptest::sample::select(
            &[
                "/",
                "//",
                "\\",
                "/\\",
                "%2f",
                "%2F",
                "%5c",
                "%5C",
                "%09",
                "%0a",
                "%00",
                "\t",
                "\n",
                "\r",
                " ",
                "\u{0}",
                "\u{a0}",
                "\u{3000}",
                "\u{ff0f}",
                "\u{2215}",
                "http:",
                "https:",
                "HTTPS:",
                "javascript:",
                "data:",
                "//evil.test",
                "evil.test",
                "app.example.com",
                "https://app.example.com",
                "http://127.0.0.1:3000",
                "https://app.example.com.evil.test",
                "@",
                "user:pw@",
                ":443",
                ":3000",
                "#",
                "?",
                ".",
                "..",
                "/..",
                "%2e%2e",
                "w",
                "acme",
                "access",
                "@evil.test",
                "xn--",
                "\u{2e}",
                "\u{ff0e}",
            ][..],
        );
        proptest::collection::vec(piece, 1..8).prop_map(|p| p.concat())
    }

    fn lands_on_allowed_origin(raw: &str) -> Result<(), TestCaseError> {
        let out = sanitize(Some(raw), &allowed());
        prop_assert!(
            !out.chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '\\'),
            "{raw:?} -> {out:?}"
        );
        let base = url::Url::parse(GATEWAY).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let target = base
            .join(&out)
            .map_err(|e| TestCaseError::fail(format!("{raw:?} -> {out:?}: {e}")))?;
        let origin = target.origin().ascii_serialization();
        prop_assert!(
            origin == base.origin().ascii_serialization() || allowed().contains(&origin),
            "{raw:?} -> {out:?} lands on {origin}"
        );
        prop_assert!(target.username().is_empty() && target.password().is_none());
        Ok(())
    }

    proptest! {
        #[test]
        fn no_text_leads_off_site(raw in any::<String>()) {
            lands_on_allowed_origin(&raw)?;
        }

        #[test]
        fn no_combination_of_tricks_leads_off_site(raw in tricky()) {
            lands_on_allowed_origin(&raw)?;
        }

        #[test]
        fn plain_paths_are_kept(path in "/[a-z0-9_-]{1,10}(/[a-z0-9_-]{1,10}){0,3}(\\?[a-z]{1,5}=[a-z0-9%]{0,8})?") {
            prop_assert_eq!(sanitize(Some(&path), &allowed()), path);
        }
    }
}

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

//! Typed configuration: a TOML file, then `IAMGW_` environment variables
//! (`__` for nesting) on top. Unknown keys are errors, and validation reports
//! every problem at once.

use crate::domain::duration;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    List,
}

struct Field {
    key: &'static str,
    kind: Kind,
    default: &'static str,
    secret: bool,
}

const fn f(key: &'static str, default: &'static str) -> Field {
    Field {
        key,
        kind: Kind::Str,
        default,
        secret: false,
    }
}

/// Every key the configuration knows, with its default.
const SCHEMA: &[Field] = &[
    f("public_url", "http://127.0.0.1:8080"),
    f("listen", "127.0.0.1:8080"),
    f("database_url", "sqlite://data/iam-gateway.db"),
    f("secret_key_file", "data/secret.key"),
    Field {
        key: "allowed_return_origins",
        kind: Kind::List,
        default: "",
        secret: false,
    },
    Field {
        key: "trusted_proxies",
        kind: Kind::List,
        default: "127.0.0.1/32",
        secret: false,
    },
    f("session.store", "database"),
    f("session.redis_url", "redis://127.0.0.1:6379"),
    f("session.idle_timeout", "12h"),
    f("session.absolute_timeout", "7d"),
    f("session.revocation_check", "channel"),
    f("tls.cert", ""),
    f("tls.key", ""),
    f("twilio.mode", "embedded"),
    f("twilio.issuer_url", "http://127.0.0.1:8081"),
    f("twilio.client_id", "segment"),
    Field {
        key: "twilio.client_secret",
        kind: Kind::Str,
        default: "",
        secret: true,
    },
    f("twilio_issuer.listen", "127.0.0.1:8081"),
    f("twilio_issuer.public_url", "http://127.0.0.1:8081"),
    f("dns.resolver", ""),
    f("mail.smtp_url", ""),
    f("mail.from", "IAM Gateway <no-reply@localhost>"),
    f("keys.publish_ahead", "10m"),
    f("keys.keep_published", "1d"),
    f("keys.refresh", "30s"),
    f("oidc.backchannel_private_networks", "false"),
    f("password.hash_priority", "idle"),
];

const SECTIONS: &[&str] = &[
    "session",
    "tls",
    "twilio",
    "twilio_issuer",
    "dns",
    "mail",
    "keys",
    "oidc",
    "password",
];

/// Environment variables with the prefix that are not configuration keys.
const ENV_NOT_CONFIG: &[&str] = &["IAMGW_LOG_FORMAT", "IAMGW_LOG", "IAMGW_CONFIG"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Raw {
    Str(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStoreKind {
    Database,
    Redis,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioMode {
    Embedded,
    External,
    Off,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub store: SessionStoreKind,
    pub redis_url: String,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    /// Whether a forward-auth cache hit also reads the session store
    /// (`every_request`) or trusts the revocation channel (`channel`).
    pub check_every_request: bool,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub mode: TwilioMode,
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Clone)]
pub struct TwilioIssuerConfig {
    pub listen: SocketAddr,
    pub public_url: String,
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    pub smtp_url: String,
    pub from: String,
}

/// Signing-key rotation (see [`crate::keys`]).
#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// How long a new key is published before it signs.
    pub publish_ahead: Duration,
    /// How long a replaced key stays published after it stopped signing.
    pub keep_published: Duration,
    /// How often each instance re-reads the keys.
    pub refresh: Duration,
}

impl KeysConfig {
    pub fn policy(&self) -> crate::keys::Policy {
        crate::keys::Policy {
            publish_ahead: self.publish_ahead.as_secs() as i64,
            keep_published: self.keep_published.as_secs() as i64,
        }
    }
}

/// Where the gateway accepts connections: a TCP address, or a Unix domain
/// socket (`listen = "unix:/run/iam-gateway/gw.sock"`) for a proxy on the
/// same host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The longest socket path the kernel takes (`sun_path` is 108 bytes on
/// Linux, with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

fn parse_listen(v: &str, err: &mut impl FnMut(String)) -> Option<Listen> {
    let Some(path) = v.strip_prefix("unix:") else {
        return parse_addr("listen", v, err).map(Listen::Tcp);
    };
    if path.is_empty() {
        err("listen: `unix:` needs a socket path, like unix:/run/iam-gateway/gw.sock".into());
        return None;
    }
    if path.len() > MAX_SOCKET_PATH {
        err(format!(
            "listen: the socket path `{path}` is longer than {MAX_SOCKET_PATH} bytes"
        ));
        return None;
    }
    let path = PathBuf::from(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        err(format!(
            "listen: the directory {} of the socket does not exist",
            dir.display()
        ));
        return None;
    }
    if path.is_dir() {
        err(format!("listen: {} is a directory", path.display()));
        return None;
    }
    Some(Listen::Unix(path))
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Without a trailing slash.
    pub public_url: String,
    pub listen: Listen,
    pub database_url: String,
    pub secret_key_file: PathBuf,
    /// Serialized origins (`https://app.example.com`).
    pub allowed_return_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub session: SessionConfig,
    pub tls: Option<TlsConfig>,
    pub twilio: TwilioConfig,
    pub twilio_issuer: TwilioIssuerConfig,
    pub dns_resolver: Option<SocketAddr>,
    pub mail: MailConfig,
    pub keys: KeysConfig,
    /// Whether apps' back-channel logout URIs may point at loopback and
    /// private addresses (`oidc.backchannel_private_networks`; off: https
    /// to public addresses only, so an owner cannot make the gateway post
    /// into its own network).
    pub oidc_backchannel_private: bool,
    /// How password hashing (argon2id) shares the CPU
    /// (`password.hash_priority`).
    pub hash_priority: crate::password::Priority,
    raw: BTreeMap<&'static str, Raw>,
}

impl Config {
    /// Loads `file` (if any) and the given environment, reporting every
    /// problem found.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, Vec<String>> {
        let mut errors = Vec::new();
        let mut raw: BTreeMap<&'static str, Raw> =
            SCHEMA.iter().map(|fd| (fd.key, default_raw(fd))).collect();
        if let Some(path) = file {
            match std::fs::read_to_string(path) {
                Ok(text) => match text.parse::<toml::Table>() {
                    Ok(table) => overlay_table(&mut raw, &table, "", &mut errors),
                    Err(e) => errors.push(format!("{}: {}", path.display(), e.message())),
                },
                Err(e) => errors.push(format!("cannot read {}: {e}", path.display())),
            }
        }
        // Sorted by name for stable error order; for a repeated name the last
        // value wins.
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        env.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("IAMGW_") else {
                continue;
            };
            if ENV_NOT_CONFIG.contains(&name.as_str()) || rest.starts_with("TEST_") {
                continue;
            }
            let key = rest.to_ascii_lowercase().replace("__", ".");
            match SCHEMA.iter().find(|fd| fd.key == key) {
                Some(fd) => {
                    let v = match fd.kind {
                        Kind::Str => Raw::Str(value),
                        Kind::List => Raw::List(parse_env_list(&value)),
                    };
                    raw.insert(fd.key, v);
                }
                None => errors.push(format!(
                    "unknown environment variable {name} (no config key `{key}`)"
                )),
            }
        }
        let cfg = build(raw, &mut errors);
        match cfg {
            Some(c) if errors.is_empty() => Ok(c),
            _ => Err(errors),
        }
    }

    /// The effective configuration as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        let mut out = String::new();
        let mut section = "";
        for fd in SCHEMA {
            let (sec, key) = fd.key.split_once('.').unwrap_or(("", fd.key));
            if sec != section {
                out.push_str(&format!("\n[{sec}]\n"));
                section = sec;
            }
            let value = match self.raw.get(fd.key) {
                Some(Raw::Str(s)) => {
                    let shown = if fd.secret && !s.is_empty() {
                        "********".to_string()
                    } else {
                        mask_url_password(s)
                    };
                    toml_string(&shown)
                }
                Some(Raw::List(items)) => {
                    let parts: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
                    format!("[{}]", parts.join(", "))
                }
                None => "\"\"".into(),
            };
            out.push_str(&format!("{key} = {value}\n"));
        }
        out
    }

    /// Whether the gateway is served over https (cookie names and flags follow).
    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The public origin, for same-origin checks.
    pub fn public_origin(&self) -> String {
        url::Url::parse(&self.public_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }

    /// Whether `ip` is a proxy whose `X-Forwarded-*` headers are believed.
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

fn default_raw(fd: &Field) -> Raw {
    match fd.kind {
        Kind::Str => Raw::Str(fd.default.to_string()),
        Kind::List => Raw::List(
            fd.default
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        ),
    }
}

fn parse_env_list(value: &str) -> Vec<String> {
    let v = value.trim();
    if v.starts_with('[') {
        if let Ok(t) = format!("v = {v}").parse::<toml::Table>() {
            if let Some(toml::Value::Array(items)) = t.get("v") {
                return items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect();
            }
        }
    }
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn overlay_table(
    raw: &mut BTreeMap<&'static str, Raw>,
    table: &toml::Table,
    prefix: &str,
    errors: &mut Vec<String>,
) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if prefix.is_empty() && SECTIONS.contains(&k.as_str()) {
            match v {
                toml::Value::Table(t) => overlay_table(raw, t, k, errors),
                _ => errors.push(format!("`{key}` must be a table ([{key}])")),
            }
            continue;
        }
        let Some(fd) = SCHEMA.iter().find(|fd| fd.key == key) else {
            errors.push(format!("unknown key `{key}`"));
            continue;
        };
        match (fd.kind, v) {
            (Kind::Str, toml::Value::String(s)) => {
                raw.insert(fd.key, Raw::Str(s.clone()));
            }
            (Kind::List, toml::Value::Array(items)) => {
                let mut out = Vec::new();
                for i in items {
                    match i.as_str() {
                        Some(s) => out.push(s.to_string()),
                        None => errors.push(format!("`{key}` must be a list of strings")),
                    }
                }
                raw.insert(fd.key, Raw::List(out));
            }
            (Kind::Str, _) => errors.push(format!("`{key}` must be a string")),
            (Kind::List, _) => errors.push(format!("`{key}` must be a list of strings")),
        }
    }
}

fn build(raw: BTreeMap<&'static str, Raw>, errors: &mut Vec<String>) -> Option<Config> {
    let s = |k: &str| match raw.get(k) {
        Some(Raw::Str(s)) => s.trim().to_string(),
        _ => String::new(),
    };
    let list = |k: &str| match raw.get(k) {
        Some(Raw::List(l)) => l.clone(),
        _ => Vec::new(),
    };
    let mut err = |m: String| errors.push(m);

    let public_url = check_http_url("public_url", &s("public_url"), &mut err)
        .map(|u| u.trim_end_matches('/').to_string());
    let listen = parse_listen(&s("listen"), &mut err);
    let database_url = s("database_url");
    if !(database_url.starts_with("sqlite:")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://"))
    {
        err(format!(
            "database_url: `{}` must start with sqlite:, postgres:// or postgresql://",
            mask_url_password(&database_url)
        ));
    }
    let secret_key_file = s("secret_key_file");
    if secret_key_file.is_empty() {
        err("secret_key_file: must not be empty".into());
    }
    let mut origins = Vec::new();
    for o in list("allowed_return_origins") {
        match url::Url::parse(&o) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && (u.path() == "/" || u.path().is_empty())
                    && u.query().is_none() =>
            {
                origins.push(u.origin().ascii_serialization())
            }
            _ => err(format!(
                "allowed_return_origins: `{o}` is not an origin like https://app.example.com"
            )),
        }
    }
    let mut proxies = Vec::new();
    for p in list("trusted_proxies") {
        match p
            .parse::<IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
        {
            Ok(n) => proxies.push(n),
            Err(_) => err(format!(
                "trusted_proxies: `{p}` is not an IP address or CIDR range"
            )),
        }
    }
    let store = match s("session.store").as_str() {
        "database" => Some(SessionStoreKind::Database),
        "redis" => Some(SessionStoreKind::Redis),
        "memory" => Some(SessionStoreKind::Memory),
        other => {
            err(format!(
                "session.store: `{other}` must be database, redis or memory"
            ));
            None
        }
    };
    let redis_url = s("session.redis_url");
    let redis_like = |u: &str| {
        ["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|p| u.starts_with(p))
    };
    let nodes = crate::session::redis::node_urls(&redis_url);
    if store == Some(SessionStoreKind::Redis)
        && (nodes.is_empty() || !nodes.iter().all(|u| redis_like(u)))
    {
        err(format!(
            "session.redis_url: `{}` must be a redis:// or rediss:// URL (several, comma-separated, for a Redis Cluster)",
            mask_url_password(&redis_url)
        ));
    }
    let check_every_request = match s("session.revocation_check").as_str() {
        "channel" => Some(false),
        "every_request" => Some(true),
        other => {
            err(format!(
                "session.revocation_check: `{other}` must be channel or every_request"
            ));
            None
        }
    };
    let idle = parse_duration("session.idle_timeout", &s("session.idle_timeout"), &mut err);
    let absolute = parse_duration(
        "session.absolute_timeout",
        &s("session.absolute_timeout"),
        &mut err,
    );
    if let (Some(i), Some(a)) = (idle, absolute) {
        if i > a {
            err("session.idle_timeout must not be longer than session.absolute_timeout".into());
        }
    }
    let (cert, key) = (s("tls.cert"), s("tls.key"));
    let tls = match (cert.is_empty(), key.is_empty()) {
        (true, true) => None,
        (false, false) => {
            for (k, p) in [("tls.cert", &cert), ("tls.key", &key)] {
                if !Path::new(p).is_file() {
                    err(format!("{k}: file `{p}` does not exist"));
                }
            }
            Some(TlsConfig {
                cert: cert.into(),
                key: key.into(),
            })
        }
        _ => {
            err("tls: set both cert and key, or neither".into());
            None
        }
    };
    if tls.is_some() && matches!(listen, Some(Listen::Unix(_))) {
        err("tls: cannot be used with a unix: listen socket; let the proxy in front terminate TLS, or listen on a TCP address".into());
    }
    let mode = match s("twilio.mode").as_str() {
        "embedded" => Some(TwilioMode::Embedded),
        "external" => Some(TwilioMode::External),
        "off" => Some(TwilioMode::Off),
        other => {
            err(format!(
                "twilio.mode: `{other}` must be embedded, external or off"
            ));
            None
        }
    };
    let issuer_url = check_http_url("twilio.issuer_url", &s("twilio.issuer_url"), &mut err);
    let client_id = s("twilio.client_id");
    let client_secret = s("twilio.client_secret");
    if mode != Some(TwilioMode::Off) && client_id.is_empty() {
        err("twilio.client_id: must not be empty unless twilio.mode is off".into());
    }
    if mode == Some(TwilioMode::External) && client_secret.is_empty() {
        err("twilio.client_secret: required when twilio.mode is external".into());
    }
    let issuer_listen = parse_addr("twilio_issuer.listen", &s("twilio_issuer.listen"), &mut err);
    let issuer_public = check_http_url(
        "twilio_issuer.public_url",
        &s("twilio_issuer.public_url"),
        &mut err,
    );
    if let (Some(Listen::Tcp(a)), Some(b), Some(TwilioMode::Embedded)) =
        (&listen, issuer_listen, mode)
    {
        let a = *a;
        if a == b && a.port() != 0 {
            err("twilio_issuer.listen must differ from listen".into());
        }
    }
    let oidc_backchannel_private = match s("oidc.backchannel_private_networks").as_str() {
        "true" => true,
        "false" => false,
        other => {
            err(format!(
                "oidc.backchannel_private_networks: `{other}` must be true or false"
            ));
            false
        }
    };
    let hash_priority = match s("password.hash_priority").as_str() {
        "idle" => crate::password::Priority::Idle,
        "normal" => crate::password::Priority::Normal,
        other => {
            err(format!(
                "password.hash_priority: `{other}` must be idle or normal"
            ));
            crate::password::Priority::Idle
        }
    };
    let resolver = s("dns.resolver");
    let dns_resolver = if resolver.is_empty() {
        None
    } else {
        parse_addr("dns.resolver", &resolver, &mut err)
    };
    let smtp_url = s("mail.smtp_url");
    if !(smtp_url.is_empty() || smtp_url.starts_with("smtp://") || smtp_url.starts_with("smtps://"))
    {
        err(format!(
            "mail.smtp_url: `{}` must be empty or an smtp:// or smtps:// URL",
            mask_url_password(&smtp_url)
        ));
    }
    let from = s("mail.from");
    if from.is_empty() {
        err("mail.from: must not be empty".into());
    }
    let publish_ahead = parse_duration("keys.publish_ahead", &s("keys.publish_ahead"), &mut err);
    let max_age = Duration::from_secs(crate::keys::JWKS_MAX_AGE_SECS as u64);
    if publish_ahead.is_some_and(|d| d < max_age) {
        err(format!(
            "keys.publish_ahead: must be at least {} (how long verifiers may cache the JWKS)",
            duration::format(max_age)
        ));
    }
    let keep_published = parse_duration("keys.keep_published", &s("keys.keep_published"), &mut err);
    let longest_token = Duration::from_secs(crate::keys::MIN_KEEP_PUBLISHED_SECS as u64);
    if keep_published.is_some_and(|d| d < longest_token) {
        err(format!(
            "keys.keep_published: must be at least {} (tokens signed with a replaced key must verify until they expire)",
            duration::format(longest_token)
        ));
    }
    let refresh = parse_duration("keys.refresh", &s("keys.refresh"), &mut err);
    if let (Some(r), Some(p)) = (refresh, publish_ahead) {
        if r * 2 > p {
            err("keys.refresh: must be at most half of keys.publish_ahead, so every instance reads a new key before it signs".into());
        }
    }

    Some(Config {
        public_url: public_url?,
        listen: listen?,
        database_url,
        secret_key_file: secret_key_file.into(),
        allowed_return_origins: origins,
        trusted_proxies: proxies,
        session: SessionConfig {
            store: store?,
            redis_url,
            idle_timeout: idle?,
            absolute_timeout: absolute?,
            check_every_request: check_every_request?,
        },
        tls,
        twilio: TwilioConfig {
            mode: mode?,
            issuer_url: issuer_url?.trim_end_matches('/').to_string(),
            client_id,
            client_secret,
        },
        twilio_issuer: TwilioIssuerConfig {
            listen: issuer_listen?,
            public_url: issuer_public?.trim_end_matches('/').to_string(),
        },
        dns_resolver,
        mail: MailConfig { smtp_url, from },
        keys: KeysConfig {
            publish_ahead: publish_ahead?,
            keep_published: keep_published?,
            refresh: refresh?,
        },
        oidc_backchannel_private,
        hash_priority,
        raw,
    })
}

fn check_http_url(key: &str, v: &str, err: &mut impl FnMut(String)) -> Option<String> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Some(v.to_string())
        }
        _ => {
            err(format!("{key}: `{v}` is not an http:// or https:// URL"));
            None
        }
    }
}

fn parse_addr(key: &str, v: &str, err: &mut impl FnMut(String)) -> Option<SocketAddr> {
    match v.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            err(format!(
                "{key}: `{v}` is not an address like 127.0.0.1:8080"
            ));
            None
        }
    }
}

fn parse_duration(key: &str, v: &str, err: &mut impl FnMut(String)) -> Option<Duration> {
    match duration::parse(v) {
        Ok(d) => Some(d),
        Err(e) => {
            err(format!("{key}: {e}"));
            None
        }
    }
}

/// `scheme://user:secret@host` → `scheme://user:********@host`.
pub fn mask_url_password(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            if u.set_password(Some("********")).is_ok() {
                u.to_string()
            } else {
                "********".into()
            }
        }
        _ => s.to_string(),
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://data/iam-gateway.db");
        assert!(
            !c.session.check_every_request,
            "the revocation channel is trusted by default"
        );
        assert_eq!(c.session.store, SessionStoreKind::Database);
        assert_eq!(c.session.idle_timeout, Duration::from_secs(12 * 3600));
        assert!(!c.is_https());
        assert_eq!(c.hash_priority, crate::password::Priority::Idle);
    }

    #[test]
    fn environment_wins_and_nests_with_double_underscore() {
        let c = Config::load(
            None,
            env(&[
                ("IAMGW_SESSION__STORE", "memory"),
                (
                    "IAMGW_ALLOWED_RETURN_ORIGINS",
                    "[\"https://app.example.com/\"]",
                ),
                ("IAMGW_LOG_FORMAT", "json"),
                ("IAMGW_TEST_DATABASE_URL", "x"),
                ("IAMGW_PASSWORD__HASH_PRIORITY", "normal"),
            ]),
        )
        .unwrap();
        assert_eq!(c.session.store, SessionStoreKind::Memory);
        assert_eq!(c.hash_priority, crate::password::Priority::Normal);
        assert_eq!(
            c.allowed_return_origins,
            vec!["https://app.example.com".to_string()]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = std::env::temp_dir().join(format!("iamgw-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "listen = \"nope\"\nbogus = 1\n[session]\nstore = \"disk\"\nidle_timeout = \"12x\"\nrevocation_check = \"sometimes\"\n[mail]\nfrom = 3\n[password]\nhash_priority = \"low\"\n").unwrap();
        let errs = Config::load(Some(&file), env(&[("IAMGW_SESION__STORE", "redis")])).unwrap_err();
        let all = errs.join("\n");
        for needle in [
            "listen",
            "unknown key `bogus`",
            "session.store",
            "session.idle_timeout",
            "session.revocation_check",
            "mail.from",
            "password.hash_priority: `low` must be idle or normal",
            "IAMGW_SESION__STORE",
        ] {
            assert!(all.contains(needle), "missing {needle} in {all}");
        }
        assert!(errs.len() >= 8);
    }

    #[test]
    fn listen_takes_a_unix_socket_whose_directory_exists() {
        let dir = std::env::temp_dir().join(format!("iamgw-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("gw.sock");
        let c = Config::load(
            None,
            env(&[("IAMGW_LISTEN", &format!("unix:{}", sock.display()))]),
        )
        .unwrap();
        assert_eq!(c.listen, Listen::Unix(sock.clone()));
        assert_eq!(c.listen.to_string(), format!("unix:{}", sock.display()));

        let missing = dir.join("nope/gw.sock");
        for (value, needle) in [
            (format!("unix:{}", missing.display()), "does not exist"),
            ("unix:".to_string(), "needs a socket path"),
            (format!("unix:/{}", "x".repeat(200)), "longer than"),
            (format!("unix:{}", dir.display()), "is a directory"),
        ] {
            let errs = Config::load(None, env(&[("IAMGW_LISTEN", &value)])).unwrap_err();
            assert!(
                errs.iter()
                    .any(|e| e.starts_with("listen: ") && e.contains(needle)),
                "{value}: {errs:?}"
            );
        }

        let cert = dir.join("c.pem");
        std::fs::write(&cert, "x").unwrap();
        let errs = Config::load(
            None,
            env(&[
                ("IAMGW_LISTEN", &format!("unix:{}", sock.display())),
                ("IAMGW_TLS__CERT", &cert.display().to_string()),
                ("IAMGW_TLS__KEY", &cert.display().to_string()),
            ]),
        )
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.starts_with("tls: ") && e.contains("unix:")),
            "{errs:?}"
        );
    }

    #[test]
    fn secrets_are_masked() {
        let c = Config::load(
            None,
            env(&[
                ("IAMGW_TWILIO__CLIENT_SECRET", "s3cret-value"),
                ("IAMGW_DATABASE_URL", "postgres://app:hunter22@db/iam"),
            ]),
        )
        .unwrap();
        let shown = c.to_masked_toml();
        assert!(!shown.contains("s3cret-value"));
        assert!(!shown.contains("hunter22"));
        assert!(shown.contains("postgres://app:********@db/iam"));
        assert!(shown.parse::<toml::Table>().is_ok());
    }
}

//! DNS for domain verification: the TXT records of a name, through
//! `hickory-resolver` (UDP with EDNS, TCP when an answer is truncated, answers
//! checked against the question). The configured `dns.resolver` is asked, or
//! the system's resolvers from `/etc/resolv.conf`.

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("no DNS resolver is configured")]
    NoResolver,
    #[error("the DNS resolver did not answer in time")]
    Timeout,
    #[error("DNS: {0}")]
    Failed(String),
}

/// A resolver for one verification: built for each use, so an answer is
/// never served from a cache (a record published a minute ago counts).
pub struct Resolver(TokioResolver);

fn options() -> ResolverOpts {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    opts.edns0 = true;
    opts.cache_size = 0;
    opts
}

/// The resolver to ask: `dns.resolver` (UDP and TCP on that address), else
/// the system's.
pub fn resolver(configured: Option<SocketAddr>) -> Result<Resolver, DnsError> {
    let builder = match configured {
        Some(addr) => {
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut server.connections {
                c.port = addr.port();
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![server]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|e| {
            tracing::warn!(error = %e, "cannot read the system's DNS configuration");
            DnsError::NoResolver
        })?,
    };
    builder
        .with_options(options())
        .build()
        .map(Resolver)
        .map_err(|e| DnsError::Failed(e.to_string()))
}

/// The TXT records of `name` (each record's strings joined); none when the
/// name does not exist or has no TXT records.
pub async fn txt(resolver: Resolver, name: &str) -> Result<Vec<String>, DnsError> {
    let name = name.trim().trim_end_matches('.');
    if name.is_empty() || name.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err(DnsError::Failed(format!("`{name}` is not a domain name")));
    }
    // Fully qualified: search domains never apply.
    let fqdn = format!("{name}.");
    let lookup = match tokio::time::timeout(
        Duration::from_secs(10),
        resolver.0.txt_lookup(fqdn.as_str()),
    )
    .await
    {
        Err(_) => return Err(DnsError::Timeout),
        Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => return Ok(Vec::new()),
        Ok(Err(e)) => return Err(DnsError::Failed(e.to_string())),
        Ok(Ok(l)) => l,
    };
    Ok(lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s))
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect())
}

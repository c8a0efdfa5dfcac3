//! Prometheus text metrics, kept in process.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    total: u64,
}

#[derive(Default)]
struct RouteStats {
    /// method → status → requests
    counts: BTreeMap<String, BTreeMap<u16, u64>>,
    latency: Histogram,
}

/// Keyed so that counting a request allocates nothing once its route and
/// method have been seen (every request passes through here).
#[derive(Default)]
struct Inner {
    requests: BTreeMap<String, RouteStats>,
    signins: BTreeMap<(String, String), u64>,
    forward_auth: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let Ok(mut g) = self.inner.lock() else { return };
        if !g.requests.contains_key(route) {
            g.requests.insert(route.to_string(), RouteStats::default());
        }
        let Some(stats) = g.requests.get_mut(route) else {
            return;
        };
        if !stats.counts.contains_key(method) {
            stats.counts.insert(method.to_string(), BTreeMap::new());
        }
        if let Some(by_status) = stats.counts.get_mut(method) {
            *by_status.entry(status).or_default() += 1;
        }
        let h = &mut stats.latency;
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.total += 1;
    }

    pub fn signin(&self, method: &str, outcome: &str) {
        if let Ok(mut g) = self.inner.lock() {
            *g.signins
                .entry((method.to_string(), outcome.to_string()))
                .or_default() += 1;
        }
    }

    pub fn forward_auth(&self, outcome: &'static str) {
        if let Ok(mut g) = self.inner.lock() {
            *g.forward_auth.entry(outcome).or_default() += 1;
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(g) = self.inner.lock() else { return out };
        let _ = writeln!(out, "# HELP iamgw_http_requests_total HTTP requests by route, method and status.\n# TYPE iamgw_http_requests_total counter");
        for (route, stats) in &g.requests {
            for (method, by_status) in &stats.counts {
                for (status, n) in by_status {
                    let _ = writeln!(
                        out,
                        "iamgw_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                        esc(route),
                        esc(method)
                    );
                }
            }
        }
        let _ = writeln!(out, "# HELP iamgw_http_request_duration_seconds Request latency by route.\n# TYPE iamgw_http_request_duration_seconds histogram");
        for (route, stats) in &g.requests {
            let h = &stats.latency;
            let r = esc(route);
            for (b, c) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(
                    out,
                    "iamgw_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {c}"
                );
            }
            let _ = writeln!(
                out,
                "iamgw_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                h.total
            );
            let _ = writeln!(
                out,
                "iamgw_http_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "iamgw_http_request_duration_seconds_count{{route=\"{r}\"}} {}",
                h.total
            );
        }
        let _ = writeln!(out, "# HELP iamgw_signins_total Sign-in attempts by method and outcome.\n# TYPE iamgw_signins_total counter");
        for ((method, outcome), n) in &g.signins {
            let _ = writeln!(
                out,
                "iamgw_signins_total{{method=\"{}\",outcome=\"{}\"}} {n}",
                esc(method),
                esc(outcome)
            );
        }
        let _ = writeln!(out, "# HELP iamgw_forward_auth_decisions_total Forward-auth decisions by outcome.\n# TYPE iamgw_forward_auth_decisions_total counter");
        for (outcome, n) in &g.forward_auth {
            let _ = writeln!(
                out,
                "iamgw_forward_auth_decisions_total{{outcome=\"{}\"}} {n}",
                esc(outcome)
            );
        }
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

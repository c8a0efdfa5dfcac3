//! Domain verification through a real DNS resolver: answers larger than a
//! UDP datagram are truncated by the server and fetched again over TCP.

use crate::access::Api;
use crate::dns_server::DnsServer;
use crate::support::*;
use serde_json::json;
use std::sync::atomic::Ordering;

/// What a corporate domain publishes: SPF, DKIM keys, site verifications.
fn corporate_txt_set(record: &str) -> Vec<String> {
    let mut set = vec![
        "v=spf1 include:_spf.google.com include:mailgun.org include:sendgrid.net ~all".to_string(),
        // A DKIM-like key longer than one 255-byte character-string.
        format!(
            "v=DKIM1; k=rsa; p={}",
            "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A".repeat(12)
        ),
    ];
    for i in 0..32 {
        set.push(format!("site-verification-{i}={}", "x".repeat(60)));
    }
    set.push(record.to_string());
    set
}

#[tokio::test]
async fn a_txt_set_larger_than_a_udp_answer_verifies_the_domain_over_tcp() {
    let dns = DnsServer::start().await;
    let srv = TestServer::start_with(
        Options::new(matrix()[0]).env("IAMGW_DNS__RESOLVER", &dns.addr.to_string()),
    )
    .await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
    let (st, d) = owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/domains",
            Some(json!({"domain": "big.test"})),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    let record = d["verification_record"].as_str().unwrap().to_string();

    // Without our record, a large set is read and still refused.
    let without: Vec<String> = corporate_txt_set("google-site-verification=abc");
    dns.set_txt(
        "big.test",
        &without.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (st, why) = owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/domains/big.test/verify",
            None,
        )
        .await;
    assert_eq!(st, 409, "{why}");
    assert!(
        why["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("no TXT record"),
        "the records were read, ours is not among them: {why}"
    );

    let set = corporate_txt_set(&record);
    let total: usize = set.iter().map(|s| s.len()).sum();
    assert!(total > 3000, "about 3 kB of TXT data ({total} bytes)");
    dns.set_txt(
        "big.test",
        &set.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let tcp_before = dns.tcp_answers.load(Ordering::SeqCst);
    let (st, ok) = owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/domains/big.test/verify",
            None,
        )
        .await;
    assert_eq!(st, 200, "{ok}");
    assert_eq!(ok["verified"], true);
    assert!(
        dns.truncated.load(Ordering::SeqCst) >= 1,
        "UDP answer truncated"
    );
    assert!(
        dns.tcp_answers.load(Ordering::SeqCst) > tcp_before,
        "the full answer came over TCP"
    );
}

#[tokio::test]
async fn a_resolver_that_does_not_answer_is_a_409_with_the_reason() {
    // A UDP socket that never answers, and nothing on TCP.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let srv = TestServer::start_with(
        Options::new(matrix()[0]).env("IAMGW_DNS__RESOLVER", &addr.to_string()),
    )
    .await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
    let (st, _) = owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/domains",
            Some(json!({"domain": "quiet.test"})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, why) = owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/domains/quiet.test/verify",
            None,
        )
        .await;
    assert_eq!(st, 409, "{why}");
    assert!(
        why["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("could not be read"),
        "{why}"
    );
    drop(silent);
}

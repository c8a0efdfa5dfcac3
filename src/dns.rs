//! A small DNS client for one question: the TXT records of a name (domain
//! verification). UDP to the configured resolver, or the first `nameserver`
//! of `/etc/resolv.conf`.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("no DNS resolver is configured")]
    NoResolver,
    #[error("the DNS resolver did not answer in time")]
    Timeout,
    #[error("DNS: {0}")]
    Failed(String),
}

/// The resolver to ask: `dns.resolver`, else the system's.
pub fn resolver(configured: Option<SocketAddr>) -> Result<SocketAddr, DnsError> {
    if let Some(a) = configured {
        return Ok(a);
    }
    let conf = std::fs::read_to_string("/etc/resolv.conf").map_err(|_| DnsError::NoResolver)?;
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .ok_or(DnsError::NoResolver)
}

fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let mut q = Vec::with_capacity(512);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::Failed(format!("`{name}` is not a domain name")));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, 16, 0, 1]);
    Ok(q)
}

/// Skips a (possibly compressed) name; returns the offset after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)? as usize;
        if len == 0 {
            return Some(pos + 1);
        }
        if len & 0xC0 == 0xC0 {
            return Some(pos + 2);
        }
        pos += 1 + len;
    }
}

fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

/// The TXT strings of the answer section (each record's strings joined).
pub fn parse_txt_answer(msg: &[u8], id: u16) -> Result<Vec<String>, DnsError> {
    let bad = || DnsError::Failed("malformed DNS answer".into());
    if u16_at(msg, 0) != Some(id) {
        return Err(DnsError::Failed("answer to another question".into()));
    }
    let flags = u16_at(msg, 2).ok_or_else(bad)?;
    match flags & 0x000F {
        0 => {}
        3 => return Ok(Vec::new()),
        rc => return Err(DnsError::Failed(format!("resolver error (rcode {rc})"))),
    }
    let qd = u16_at(msg, 4).ok_or_else(bad)?;
    let an = u16_at(msg, 6).ok_or_else(bad)?;
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos).ok_or_else(bad)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        pos = skip_name(msg, pos).ok_or_else(bad)?;
        let rtype = u16_at(msg, pos).ok_or_else(bad)?;
        let rdlen = u16_at(msg, pos + 8).ok_or_else(bad)? as usize;
        let start = pos + 10;
        let rdata = msg.get(start..start + rdlen).ok_or_else(bad)?;
        if rtype == 16 {
            let mut text = Vec::new();
            let mut i = 0;
            while i < rdata.len() {
                let l = rdata[i] as usize;
                text.extend_from_slice(rdata.get(i + 1..i + 1 + l).ok_or_else(bad)?);
                i += 1 + l;
            }
            out.push(String::from_utf8_lossy(&text).to_string());
        }
        pos = start + rdlen;
    }
    Ok(out)
}

/// Asks `server` for the TXT records of `name`.
pub async fn txt(server: SocketAddr, name: &str) -> Result<Vec<String>, DnsError> {
    let id = u16::from_be_bytes(
        crate::crypto::random_bytes::<2>().map_err(|e| DnsError::Failed(e.to_string()))?,
    );
    let query = encode_query(id, name)?;
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|_| DnsError::NoResolver)?;
    let sock = UdpSocket::bind(bind)
        .await
        .map_err(|e| DnsError::Failed(e.to_string()))?;
    sock.connect(server)
        .await
        .map_err(|e| DnsError::Failed(e.to_string()))?;
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        sock.send(&query)
            .await
            .map_err(|e| DnsError::Failed(e.to_string()))?;
        match tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await {
            Ok(Ok(n)) => return parse_txt_answer(&buf[..n], id),
            Ok(Err(e)) => return Err(DnsError::Failed(e.to_string())),
            Err(_) => continue,
        }
    }
    Err(DnsError::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_txt_question_and_refuses_bad_names() {
        let q = encode_query(7, "corp.test").unwrap();
        assert_eq!(&q[..2], &[0, 7]);
        assert_eq!(&q[12..23], b"\x04corp\x04test\x00");
        assert_eq!(&q[23..], &[0, 16, 0, 1]);
        assert!(encode_query(1, "a..b").is_err());
    }

    #[test]
    fn parses_txt_answers_with_compressed_names() {
        let mut m = encode_query(9, "corp.test").unwrap();
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 1;
        m.extend_from_slice(&[0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
        let s1 = b"iamgw-verification=";
        let s2 = b"abc";
        m.extend_from_slice(&((2 + s1.len() + s2.len()) as u16).to_be_bytes());
        m.push(s1.len() as u8);
        m.extend_from_slice(s1);
        m.push(s2.len() as u8);
        m.extend_from_slice(s2);
        assert_eq!(
            parse_txt_answer(&m, 9).unwrap(),
            vec!["iamgw-verification=abc".to_string()]
        );
        assert!(parse_txt_answer(&m, 10).is_err());
        assert!(parse_txt_answer(&m[..m.len() - 2], 9).is_err());
    }
}

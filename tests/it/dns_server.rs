//! A tiny authoritative DNS server for tests: answers TXT questions from a
//! map on 127.0.0.1 (UDP), NXDOMAIN otherwise.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

#[derive(Clone)]
pub struct DnsServer {
    pub addr: SocketAddr,
    records: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl DnsServer {
    pub async fn start() -> DnsServer {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let records: Arc<Mutex<HashMap<String, Vec<String>>>> = Default::default();
        let table = records.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let q = &buf[..n];
                // Question name (uncompressed in queries).
                let mut pos = 12;
                let mut labels = Vec::new();
                while pos < q.len() && q[pos] != 0 {
                    let l = q[pos] as usize;
                    labels.push(String::from_utf8_lossy(&q[pos + 1..pos + 1 + l]).to_lowercase());
                    pos += 1 + l;
                }
                let qend = pos + 5;
                let name = labels.join(".");
                let answers = table.lock().unwrap().get(&name).cloned();
                let mut r = q[..qend].to_vec();
                r[2] = 0x84 | (q[2] & 0x01);
                r[3] = if answers.is_some() { 0x00 } else { 0x03 };
                let list = answers.unwrap_or_default();
                r[6..8].copy_from_slice(&(list.len() as u16).to_be_bytes());
                for text in list {
                    r.extend_from_slice(&[0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 30]);
                    r.extend_from_slice(&((text.len() + 1) as u16).to_be_bytes());
                    r.push(text.len() as u8);
                    r.extend_from_slice(text.as_bytes());
                }
                let _ = sock.send_to(&r, from).await;
            }
        });
        DnsServer { addr, records }
    }

    pub fn set_txt(&self, name: &str, values: &[&str]) {
        self.records.lock().unwrap().insert(
            name.to_lowercase(),
            values.iter().map(|s| s.to_string()).collect(),
        );
    }
}

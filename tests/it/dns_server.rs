//! A tiny authoritative DNS server for tests: answers TXT questions from a
//! map on 127.0.0.1, over UDP and TCP on the same port, NXDOMAIN otherwise.
//! Like real servers, it truncates a UDP answer that does not fit in 512
//! bytes (TC bit, no records) and answers in full over TCP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

type Table = Arc<Mutex<HashMap<String, Vec<String>>>>;

#[derive(Clone)]
pub struct DnsServer {
    pub addr: SocketAddr,
    records: Table,
    /// Answers sent truncated over UDP, and questions answered over TCP.
    pub truncated: Arc<AtomicUsize>,
    pub tcp_answers: Arc<AtomicUsize>,
}

/// The answer to query `q`: `None` when it is not a question we can read.
fn answer(q: &[u8], table: &Table, udp: bool) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    // Question name (uncompressed in queries), then type and class.
    let mut pos = 12;
    let mut labels = Vec::new();
    while *q.get(pos)? != 0 {
        let l = q[pos] as usize;
        labels.push(String::from_utf8_lossy(q.get(pos + 1..pos + 1 + l)?).to_lowercase());
        pos += 1 + l;
    }
    let qend = pos + 5;
    let question = q.get(12..qend)?;
    let name = labels.join(".");
    let answers = table.lock().unwrap().get(&name).cloned();
    let mut r = Vec::new();
    r.extend_from_slice(&q[..2]);
    // QR, AA, RD as asked; RCODE NXDOMAIN when the name is unknown.
    r.push(0x84 | (q[2] & 0x01));
    r.push(if answers.is_some() { 0x00 } else { 0x03 });
    let list = answers.unwrap_or_default();
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(list.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(question);
    for text in list {
        // One record; its text in character-strings of at most 255 bytes.
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(255).collect();
        let rdlen: usize = chunks.iter().map(|c| c.len() + 1).sum();
        r.extend_from_slice(&[0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 30]);
        r.extend_from_slice(&(rdlen as u16).to_be_bytes());
        for c in chunks {
            r.push(c.len() as u8);
            r.extend_from_slice(c);
        }
    }
    if udp && r.len() > 512 {
        // Header and question only, with TC set and no records.
        let mut t = r[..12].to_vec();
        t[2] |= 0x02;
        t[6..8].copy_from_slice(&[0, 0]);
        t.extend_from_slice(question);
        return Some(t);
    }
    Some(r)
}

async fn serve_tcp(
    mut conn: tokio::net::TcpStream,
    table: Table,
    tcp_answers: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    loop {
        let len = conn.read_u16().await? as usize;
        let mut q = vec![0u8; len];
        conn.read_exact(&mut q).await?;
        let Some(r) = answer(&q, &table, false) else {
            return Ok(());
        };
        tcp_answers.fetch_add(1, Ordering::SeqCst);
        conn.write_u16(r.len() as u16).await?;
        conn.write_all(&r).await?;
    }
}

impl DnsServer {
    pub async fn start() -> DnsServer {
        // UDP and TCP on one port: retry until a free UDP port is free on TCP too.
        let (sock, tcp) = loop {
            let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            if let Ok(tcp) = TcpListener::bind(sock.local_addr().unwrap()).await {
                break (sock, tcp);
            }
        };
        let addr = sock.local_addr().unwrap();
        let records: Table = Default::default();
        let truncated = Arc::new(AtomicUsize::new(0));
        let tcp_answers = Arc::new(AtomicUsize::new(0));
        let (table, cut) = (records.clone(), truncated.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                if let Some(r) = answer(&buf[..n], &table, true) {
                    if r[2] & 0x02 != 0 {
                        cut.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = sock.send_to(&r, from).await;
                }
            }
        });
        let (table, served) = (records.clone(), tcp_answers.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = tcp.accept().await {
                tokio::spawn(serve_tcp(conn, table.clone(), served.clone()));
            }
        });
        DnsServer {
            addr,
            records,
            truncated,
            tcp_answers,
        }
    }

    pub fn set_txt(&self, name: &str, values: &[&str]) {
        self.records.lock().unwrap().insert(
            name.to_lowercase(),
            values.iter().map(|s| s.to_string()).collect(),
        );
    }
}

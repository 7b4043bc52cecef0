//! A misbehaving network between strata and a real registry: an HTTP/1.1 forwarding proxy on a
//! loopback port, one thread per connection, that a test scripts per request to answer errors
//! itself, cut connections in the middle of a body (having forwarded part of it, or having
//! forwarded nothing, as a buffering proxy would), lose the registry's answer, or throttle.
//!
//! Each request is forwarded on a fresh connection to the registry with `Connection: close`,
//! and the client connection is closed after the answer, so a cut never leaves a half-used
//! connection in a pool. The registry builds upload `Location`s from the `Host` header, which
//! is passed through: every later request of an upload comes back through the proxy.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A request as the proxy saw it (before deciding what to do with it).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header lines as sent (`Name: value`).
    pub headers: Vec<(String, String)>,
    /// The announced body length.
    pub body_len: u64,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    /// A blob upload carrying data: a PATCH, or a PUT with a body.
    pub fn is_upload_data(&self) -> bool {
        self.path().contains("/blobs/uploads/")
            && (self.method == "PATCH" || (self.method == "PUT" && self.body_len > 0))
    }
    /// A GET of a blob.
    pub fn is_blob_get(&self) -> bool {
        self.method == "GET" && self.path().contains("/blobs/sha256:")
    }
}

/// What the proxy does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Forward it and relay the answer.
    Forward,
    /// Forward it, relaying both directions at about this many bytes per second.
    Throttle(u64),
    /// Read the whole request, forward nothing, answer with this status and body.
    Answer(u16, String),
    /// Forward the head and this many body bytes, then cut both connections.
    CutAfter(u64),
    /// Read this many body bytes, forward nothing, cut the client connection (a buffering
    /// proxy that loses the client).
    CutBuffered(u64),
    /// Forward the whole request, let the registry answer, but cut the client connection
    /// instead of relaying the answer.
    LoseAnswer,
    /// Forward the request and relay the answer's head and this many body bytes, then cut.
    CutAnswerAfter(u64),
}

/// One request handled: what was seen, what was done, body bytes relayed each way.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The order in which request heads arrived (0, 1, …).
    pub arrival: usize,
    pub seen: Seen,
    pub action: Action,
    /// The registry's status line, when one was relayed (or answered by the proxy).
    pub status: Option<u16>,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

type Rule = dyn Fn(&Seen) -> Action + Send + Sync;

/// Arrival order of request heads.
static ARRIVALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A running proxy in front of `upstream` (a `127.0.0.1:PORT` registry).
pub struct FaultProxy {
    pub port: u16,
    log: Arc<Mutex<Vec<Logged>>>,
    stop: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
}

impl FaultProxy {
    pub fn start(upstream: &str, rule: impl Fn(&Seen) -> Action + Send + Sync + 'static) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let rule: Arc<Rule> = Arc::new(rule);
        let (log2, stop2, upstream) = (log.clone(), stop.clone(), upstream.to_string());
        let accept = thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (rule, log, upstream) = (rule.clone(), log2.clone(), upstream.clone());
                thread::spawn(move || {
                    if let Some(entry) = handle(conn, &upstream, &*rule) {
                        log.lock().unwrap().push(entry);
                    }
                });
            }
        });
        FaultProxy { port, log, stop, accept: Some(accept) }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request handled so far, in the order they finished.
    pub fn log(&self) -> Vec<Logged> {
        let mut log = self.log.lock().unwrap().clone();
        log.sort_by_key(|l| l.arrival);
        log
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Copies `n` bytes (or until EOF when `None`) at about `rate` bytes/s (unlimited if `None`).
fn relay(from: &mut impl Read, to: &mut impl Write, n: Option<u64>, rate: Option<u64>) -> u64 {
    let mut buf = vec![0u8; 16 << 10];
    let mut done = 0u64;
    let start = Instant::now();
    loop {
        let want = match n {
            Some(n) if done >= n => break,
            Some(n) => (n - done).min(buf.len() as u64) as usize,
            None => buf.len(),
        };
        let got = match from.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(k) => k,
        };
        if to.write_all(&buf[..got]).is_err() {
            break;
        }
        done += got as u64;
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(done as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
        }
    }
    let _ = to.flush();
    done
}

fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    std::str::from_utf8(line).ok()?.split_whitespace().nth(1)?.parse().ok()
}

/// Reads the response head (through the blank line) from the registry.
fn read_head(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return head,
            Ok(_) => {}
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            return head;
        }
    }
}

fn handle(client: TcpStream, upstream: &str, rule: &Rule) -> Option<Logged> {
    let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
    let mut reader = BufReader::new(client.try_clone().ok()?);
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let body_len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let seen = Seen { method, target, headers, body_len };
    let arrival = ARRIVALS.fetch_add(1, Ordering::SeqCst);
    let action = rule(&seen);
    let mut client_w = client;
    let mut entry = Logged {
        arrival,
        seen: seen.clone(),
        action: action.clone(),
        status: None,
        request_bytes: 0,
        response_bytes: 0,
    };

    match &action {
        Action::Answer(status, body) => {
            entry.request_bytes = relay(&mut reader, &mut std::io::sink(), Some(seen.body_len), None);
            let resp = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client_w.write_all(resp.as_bytes());
            entry.status = Some(*status);
            let _ = client_w.shutdown(Shutdown::Both);
            return Some(entry);
        }
        Action::CutBuffered(n) => {
            entry.request_bytes = relay(&mut reader, &mut std::io::sink(), Some((*n).min(seen.body_len)), None);
            let _ = client_w.shutdown(Shutdown::Both);
            return Some(entry);
        }
        _ => {}
    }

    let mut up = TcpStream::connect(upstream).ok()?;
    let mut head = format!("{} {} HTTP/1.1\r\n", seen.method, seen.target);
    for (k, v) in &seen.headers {
        if !k.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes()).ok()?;
    let rate = match action {
        Action::Throttle(r) => Some(r),
        _ => None,
    };
    match action {
        Action::CutAfter(n) => {
            entry.request_bytes = relay(&mut reader, &mut up, Some(n.min(seen.body_len)), None);
            let _ = up.shutdown(Shutdown::Both);
            let _ = client_w.shutdown(Shutdown::Both);
            return Some(entry);
        }
        _ => entry.request_bytes = relay(&mut reader, &mut up, Some(seen.body_len), rate),
    }
    let mut up_r = BufReader::new(up.try_clone().ok()?);
    let resp_head = read_head(&mut up_r);
    entry.status = status_of(&resp_head);
    if let Action::LoseAnswer = action {
        let _ = up.shutdown(Shutdown::Both);
        let _ = client_w.shutdown(Shutdown::Both);
        return Some(entry);
    }
    if client_w.write_all(&resp_head).is_err() {
        return Some(entry);
    }
    let limit = match action {
        Action::CutAnswerAfter(n) => Some(n),
        _ => None,
    };
    entry.response_bytes = relay(&mut up_r, &mut client_w, limit, rate);
    let _ = up.shutdown(Shutdown::Both);
    let _ = client_w.shutdown(Shutdown::Both);
    Some(entry)
}

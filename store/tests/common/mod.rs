//! Shared pieces of the registry tests: building small real images into a blob store, and a
//! tiny scriptable HTTP server on loopback for behaviour a real registry will not show (lying
//! about content, dropping connections, a Bearer token service).
#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use strata_store::blobs::BlobStore;
use strata_store::digest::Digest;
use strata_store::oci::{self, Descriptor, ImageConfig, Manifest, Platform, media};

pub fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
    Platform {
        architecture: arch.into(),
        os: os.into(),
        os_version: None,
        os_features: None,
        variant: variant.map(str::to_string),
    }
}

/// Which manifest format to build.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Oci,
    Docker,
}

/// A built image: its manifest descriptor and the documents.
pub struct Image {
    pub desc: Descriptor,
    pub manifest: Manifest,
    pub bytes: Vec<u8>,
}

/// A gzipped tar with one file, as a layer blob; returns (blob digest, size, diff id).
pub fn layer(blobs: &BlobStore, name: &str, content: &[u8]) -> (Digest, u64, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, name, content).unwrap();
    let tar = tar.into_inner().unwrap();
    let diff_id = Digest::of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let d = blobs.put(&gz).unwrap();
    (d, gz.len() as u64, diff_id)
}

/// Builds an image with the given layers (file name, content) into `blobs`.
pub fn build_image(blobs: &BlobStore, platform: &Platform, files: &[(&str, &[u8])], format: Format) -> Image {
    let (config_mt, manifest_mt, layer_mt) = match format {
        Format::Oci => (media::OCI_CONFIG, media::OCI_MANIFEST, media::OCI_LAYER_GZIP),
        Format::Docker => (media::DOCKER_CONFIG, media::DOCKER_MANIFEST, media::DOCKER_LAYER_GZIP),
    };
    let mut config = ImageConfig::scratch(platform);
    let mut layers = Vec::new();
    for (name, content) in files {
        let (d, size, diff) = layer(blobs, name, content);
        config.rootfs.diff_ids.push(diff);
        layers.push(Descriptor::new(layer_mt, d, size));
    }
    let config_bytes = oci::to_canonical_json(&config);
    let config_digest = blobs.put(&config_bytes).unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(manifest_mt.to_string()),
        artifact_type: None,
        config: Descriptor::new(config_mt, config_digest, config_bytes.len() as u64),
        layers,
        subject: None,
        annotations: None,
    };
    let bytes = oci::to_canonical_json(&manifest);
    let d = blobs.put(&bytes).unwrap();
    Image { desc: Descriptor::new(manifest_mt, d, bytes.len() as u64), manifest, bytes }
}

/// Stores an index over `images` (each with its platform) and returns its descriptor.
pub fn build_index(blobs: &BlobStore, images: &[(&Image, Platform)], format: Format) -> (Descriptor, Vec<u8>) {
    let mt = match format {
        Format::Oci => media::OCI_INDEX,
        Format::Docker => media::DOCKER_MANIFEST_LIST,
    };
    let mut index = oci::Index::empty();
    index.media_type = Some(mt.to_string());
    for (img, p) in images {
        index.manifests.push(Descriptor { platform: Some(p.clone()), ..img.desc.clone() });
    }
    let bytes = oci::to_canonical_json(&index);
    let d = blobs.put(&bytes).unwrap();
    (Descriptor::new(mt, d, bytes.len() as u64), bytes)
}

/// Files left in the store's ingest directory (failed writes must leave none).
pub fn ingest_files(root: &Path) -> usize {
    std::fs::read_dir(root.join("ingest")).map(|d| d.count()).unwrap_or(0)
}

/// A request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    /// Query parameters in order (percent-decoded, `+` as space).
    pub fn query(&self) -> Vec<(String, String)> {
        let Some((_, q)) = self.target.split_once('?') else { return Vec::new() };
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect()
    }
}

/// Form/percent decoding.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// What the fake server does with a request.
pub enum Reply {
    /// A full response.
    Full { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// Announces `body.len()` bytes, sends the first `send`, then closes the connection.
    Truncated { status: u16, headers: Vec<(String, String)>, body: Vec<u8>, send: usize },
    /// Exactly these bytes (status line, headers and body), then the connection is closed.
    Raw(Vec<u8>),
}

impl Reply {
    pub fn ok(content_type: &str, body: &[u8]) -> Reply {
        Reply::Full { status: 200, headers: vec![("Content-Type".into(), content_type.into())], body: body.to_vec() }
    }
    pub fn status(status: u16, body: &str) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Reply {
        match &mut self {
            Reply::Full { headers, .. } | Reply::Truncated { headers, .. } => headers.push((k.into(), v.into())),
            Reply::Raw(_) => panic!("headers of a raw reply are part of its bytes"),
        }
        self
    }
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

/// A scriptable HTTP/1.1 server on a free loopback port; every request is recorded and answered
/// by the handler, one request per connection.
pub struct FakeServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, stop2) = (requests.clone(), stop.clone());
        let accept = thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (handler, reqs) = (handler.clone(), reqs.clone());
                thread::spawn(move || serve(conn, &*handler, &reqs));
            }
        });
        FakeServer { port, requests, stop, accept: Some(accept) }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self, pred: impl Fn(&Req) -> bool) -> usize {
        self.requests().iter().filter(|r| pred(r)).count()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, handler: &Handler, reqs: &Mutex<Vec<Req>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(n) = headers.get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
    }
    let req = Req { method, target, headers, body };
    reqs.lock().unwrap().push(req.clone());
    let reply = handler(&req);
    let mut conn = conn;
    let (status, headers, body, send) = match reply {
        Reply::Full { status, headers, body } => {
            let n = body.len();
            (status, headers, body, n)
        }
        Reply::Truncated { status, headers, body, send } => (status, headers, body, send),
        Reply::Raw(bytes) => {
            let _ = conn.write_all(&bytes);
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return;
        }
    };
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    if req.method != "HEAD" {
        let _ = conn.write_all(&body[..send.min(body.len())]);
    }
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

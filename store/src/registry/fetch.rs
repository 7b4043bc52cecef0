//! Plain HTTP(S) downloads of arbitrary URLs (`ADD https://...` sources), over the registry
//! client's transport so that reqwest and tokio stay inside this module.
//!
//! A download is one GET (redirects followed, as Go's client and so BuildKit do), with optional
//! request headers (the builder sends `If-None-Match` / `If-Modified-Since` to revalidate a
//! cached copy). A 200 body streams into the caller's writer; a 304 has none; any other status
//! is an error naming the status, like BuildKit's "invalid response status 404". Connection
//! errors and 5xx responses are retried (3 attempts) as long as nothing was written yet.

use std::io::Write;

use reqwest::{StatusCode, Url};

use super::client::{ATTEMPTS, RegistryClient, backoff, error_chain};

/// What a download answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlResponse {
    /// 200 (the body was written) or 304 (not modified; nothing was written).
    pub status: u16,
    /// The `Last-Modified` header, as sent.
    pub last_modified: Option<String>,
    /// The `ETag` header, as sent.
    pub etag: Option<String>,
    /// Bytes written.
    pub bytes: u64,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: not a valid http(s) URL: {detail}")]
    BadUrl { url: String, detail: String },
    #[error("GET {url}: invalid response status {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: {detail}")]
    Connection { url: String, detail: String },
    #[error("GET {url}: writing the download: {source}")]
    Write {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("GET {url}: larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
}

impl RegistryClient {
    /// GETs `url`, streaming a 200 body into `out` (at most `limit` bytes); `progress` gets the
    /// byte count so far. A 304 is returned without a body (only sensible when `headers` ask for
    /// revalidation).
    pub fn fetch_url(
        &self,
        url: &str,
        headers: &[(&str, String)],
        out: &mut dyn Write,
        limit: u64,
        progress: &dyn Fn(u64),
    ) -> Result<UrlResponse, FetchError> {
        let parsed = Url::parse(url).map_err(|e| FetchError::BadUrl { url: url.to_string(), detail: e.to_string() })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(FetchError::BadUrl { url: url.to_string(), detail: "the scheme is not http or https".into() });
        }
        let mut attempt = 1;
        loop {
            let mut req = self.http.get(parsed.clone());
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            let result = self.rt.block_on(async move { req.send().await });
            let retry = match &result {
                Err(_) => true,
                Ok(r) => r.status().is_server_error(),
            };
            if retry && attempt < ATTEMPTS {
                tracing::debug!(url, attempt, "retrying download");
                std::thread::sleep(backoff(attempt));
                attempt += 1;
                continue;
            }
            let mut resp =
                result.map_err(|e| FetchError::Connection { url: url.to_string(), detail: error_chain(&e) })?;
            let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
            let last_modified = header("Last-Modified");
            let etag = header("ETag");
            let status = resp.status();
            if status == StatusCode::NOT_MODIFIED {
                return Ok(UrlResponse { status: 304, last_modified, etag, bytes: 0 });
            }
            if status != StatusCode::OK {
                return Err(FetchError::Status { url: url.to_string(), status: status.as_u16() });
            }
            if resp.content_length().is_some_and(|n| n > limit) {
                return Err(FetchError::TooLarge { url: url.to_string(), limit });
            }
            let mut bytes = 0u64;
            loop {
                let chunk = self
                    .rt
                    .block_on(async { resp.chunk().await })
                    .map_err(|e| FetchError::Connection { url: url.to_string(), detail: error_chain(&e) })?;
                let Some(chunk) = chunk else { break };
                bytes += chunk.len() as u64;
                if bytes > limit {
                    return Err(FetchError::TooLarge { url: url.to_string(), limit });
                }
                out.write_all(&chunk).map_err(|source| FetchError::Write { url: url.to_string(), source })?;
                progress(bytes);
            }
            return Ok(UrlResponse { status: 200, last_modified, etag, bytes });
        }
    }
}

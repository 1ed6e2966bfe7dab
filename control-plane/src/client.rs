//! The HTTP client side of the commands that talk to `portcullis serve`: push, rollback, history, status.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

/// The header naming who pushed, recorded in the bundle's history.
pub const ACTOR_HEADER: &str = "X-Portcullis-Actor";

/// A control plane at a base URL.
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

/// The server's answer to a refused request.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// The server's answer to a successful upload.
#[derive(Deserialize)]
pub struct Stored {
    /// The revision stored.
    pub revision: u64,
    /// The bundle's content digest.
    pub sha256: String,
    /// The key id of the signature envelope, if signed.
    pub signed_by: Option<String>,
    /// The revision restored, for rollbacks.
    pub rollback_of: Option<u64>,
    /// The exact bytes were already current (a retried push).
    #[serde(default)]
    pub unchanged: bool,
}

impl Client {
    /// A client of `server` (e.g. `http://127.0.0.1:8080`; a trailing `/` is ignored).
    pub fn new(server: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Client { base: server.trim_end_matches('/').to_owned(), agent }
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GETs `path` and decodes the JSON answer.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Http`] if the server cannot be reached, refuses (its JSON `error` is the message), or
    /// answers something else than the expected JSON.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let body = self.get_bytes(path)?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::new(ErrorKind::Http, format!("unexpected response from {}: {e}", self.url(path))))
    }

    /// GETs `path` and returns the body.
    ///
    /// # Errors
    ///
    /// As [`Client::get_json`].
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let url = self.url(path);
        let response =
            self.agent.get(&url).call().map_err(|e| Error::new(ErrorKind::Http, format!("cannot reach {url}: {e}")))?;
        read_ok(response, "GET", &url)
    }

    /// PUTs the bundle `bytes` to `path` with the bearer `token` and the `actor` header, and decodes the answer.
    ///
    /// # Errors
    ///
    /// As [`Client::get_json`].
    pub fn put_bundle(&self, path: &str, token: &str, actor: Option<&str>, bytes: &[u8]) -> Result<Stored> {
        let url = self.url(path);
        let mut request = self
            .agent
            .put(&url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/octet-stream");
        if let Some(actor) = actor {
            request = request.header(ACTOR_HEADER, actor);
        }
        let response =
            request.send(bytes).map_err(|e| Error::new(ErrorKind::Http, format!("cannot reach {url}: {e}")))?;
        let body = read_ok(response, "push to", &url)?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::new(ErrorKind::Http, format!("unexpected response from {url}: {e}")))
    }
}

/// The body of a 2xx response; for anything else, an error with the server's JSON `error`.
fn read_ok(mut response: ureq::http::Response<ureq::Body>, what: &str, url: &str) -> Result<Vec<u8>> {
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| Error::new(ErrorKind::Http, format!("cannot read the response from {url}: {e}")))?;
    if status.is_success() {
        return Ok(body);
    }
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .map(|b| b.error)
        .unwrap_or_else(|_| status.canonical_reason().unwrap_or("unexpected response").to_owned());
    Err(Error::new(ErrorKind::Http, format!("{what} {url} failed (HTTP {}): {message}", status.as_u16())))
}

/// Who is pushing: `--actor`, else `$USER` (or `%USERNAME%`) when it is a valid actor; `None` otherwise.
///
/// # Errors
///
/// [`ErrorKind::Usage`] if `--actor` is not 1 to [`MAX_ACTOR_LEN`] printable ASCII characters.
pub fn actor(flag: Option<String>) -> Result<Option<String>> {
    if let Some(actor) = flag {
        if !is_actor(&actor) {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("--actor: use 1 to {MAX_ACTOR_LEN} printable ASCII characters"),
            ));
        }
        return Ok(Some(actor));
    }
    // An unusual login name must not make pushes fail: it is only left out of the history.
    Ok(std::env::var("USER").ok().or_else(|| std::env::var("USERNAME").ok()).filter(|a| is_actor(a)))
}

/// Longest actor name, in bytes.
pub const MAX_ACTOR_LEN: usize = 128;

/// Whether `actor` is 1 to [`MAX_ACTOR_LEN`] printable ASCII characters without surrounding spaces (what a
/// header value can carry unchanged, and what the history can show safely).
pub fn is_actor(actor: &str) -> bool {
    (1..=MAX_ACTOR_LEN).contains(&actor.len())
        && actor.bytes().all(|b| (0x20..0x7f).contains(&b))
        && actor.trim() == actor
}

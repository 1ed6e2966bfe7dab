//! Helpers shared by the test binaries: a running `portcullis serve`, plain HTTP calls, bundles.

// Each test binary uses a different subset.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

use portcullis_policies::bundle::{self, BundleContent};
use portcullis_policies::program::{Action, Node, Phase, Rule};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
pub const TOKEN: &str = "test-token-5f2c9a";

/// A valid bundle with one rule, built without the compiler.
pub fn valid_bundle(name: &str, revision: u64) -> Vec<u8> {
    let rule = Rule {
        id: "always".to_owned(),
        action: Action::Block,
        status: 403,
        list: None,
        ttl_seconds: 0,
        retry_after_seconds: 0,
        condition: vec![Node::Bool(true)],
        phase: Phase::RequestHeaders,
        on_uninspectable: portcullis_policies::OnUninspectable::Block,
    };
    bundle::encode(&BundleContent {
        policy_name: name.to_owned(),
        revision,
        compiler_version: "test".to_owned(),
        rules: vec![rule],
        ..BundleContent::default()
    })
    .unwrap()
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    bundle::hex(&Sha256::digest(bytes))
}

/// `portcullis` with a clean environment for the token.
pub fn portcullis() -> Command {
    let mut command = Command::new(BIN);
    command.env_remove("PORTCULLIS_TOKEN");
    command
}

/// A running `portcullis serve`, killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
    pub log: PathBuf,
    _log_dir: TempDir,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Serves `data_dir` with the token from the environment.
    pub fn start(data_dir: &Path) -> Server {
        let mut command = portcullis();
        command.env("PORTCULLIS_TOKEN", TOKEN);
        Server::start_with(command, data_dir, &[])
    }

    /// Serves `data_dir` with `command`'s environment and `extra_args` after `serve`'s own.
    pub fn start_with(mut command: Command, data_dir: &Path, extra_args: &[&OsStr]) -> Server {
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("server.log");
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra_args)
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .trim_end()
            .strip_prefix("portcullis: serving on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}; log: {}", fs::read_to_string(&log).unwrap()))
            .to_owned();
        Server { child, url, log, _log_dir: log_dir, _stdout: stdout }
    }

    /// Serves `data_dir` with the token from the environment and `extra_args` after `serve`'s own.
    pub fn start_with_args(data_dir: &Path, extra_args: &[&str]) -> Server {
        let mut command = portcullis();
        command.env("PORTCULLIS_TOKEN", TOKEN);
        let extra: Vec<&OsStr> = extra_args.iter().map(OsStr::new).collect();
        Server::start_with(command, data_dir, &extra)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server has logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn bundle_url(&self, name: &str) -> String {
        format!("{}/v1/bundles/{name}", self.url)
    }

    pub fn addr(&self) -> &str {
        self.url.strip_prefix("http://").unwrap()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Status, selected headers and body of one response.
pub struct Reply {
    pub status: u16,
    pub etag: Option<String>,
    pub www_authenticate: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json_error(&self) -> String {
        let value: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        value["error"].as_str().unwrap().to_owned()
    }
}

pub fn reply(mut response: ureq::http::Response<ureq::Body>) -> Reply {
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (etag, www_authenticate, content_type) = (header("etag"), header("www-authenticate"), header("content-type"));
    Reply {
        status: response.status().as_u16(),
        etag,
        www_authenticate,
        content_type,
        body: response.body_mut().read_to_vec().unwrap(),
    }
}

pub fn get(url: &str, if_none_match: Option<&str>) -> Reply {
    let mut request = agent().get(url);
    if let Some(tag) = if_none_match {
        request = request.header("If-None-Match", tag);
    }
    reply(request.call().unwrap())
}

pub fn put(url: &str, token: Option<&str>, body: &[u8]) -> Reply {
    let mut request = agent().put(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    reply(request.send(body).unwrap())
}

pub fn data_dir() -> TempDir {
    tempfile::tempdir().unwrap()
}

pub fn run(command: &mut Command) -> (Output, String) {
    let output = command.output().unwrap();
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    (output, stderr)
}

//! The `portcullis` binary: `serve` as a [`ControlPlane`] (and its replicas), `push` to it, and [`compile`] policies
//! for it, signed or not.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tempfile::TempDir;

use crate::artifacts::{portcullis_binary, repo_root};
use crate::process::{random_token, terminate, unique_number};
use crate::signing::SigningKey;

/// The environment variable the control plane reads its push token from.
pub const TOKEN_ENV: &str = "PORTCULLIS_TOKEN";

/// What `portcullis serve` prints first on stdout, followed by `http://IP:PORT`.
const SERVING_PREFIX: &str = "portcullis: serving on ";

/// How long `portcullis serve` may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A `portcullis serve` process on 127.0.0.1 with its own data directory and token (or, for a
/// [`ControlPlane::replica`], another one's). Killed on drop.
pub struct ControlPlane {
    /// Its stderr files (and, unless it is a replica, its data directory).
    dir: TempDir,
    data_dir: PathBuf,
    token: String,
    addr: Option<SocketAddr>,
    child: Option<Child>,
    starts: u32,
}

impl ControlPlane {
    /// Starts a control plane on a free port with an empty data directory and a random token.
    ///
    /// # Panics
    ///
    /// If the binary is missing, exits early, or does not print its address in time.
    pub fn start_new() -> Self {
        let dir = tempfile::Builder::new().prefix("portcullis-cp-").tempdir().expect("control plane temp dir");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("create the data directory");
        let mut control_plane = Self { dir, data_dir, token: random_token(), addr: None, child: None, starts: 0 };
        control_plane.start();
        control_plane
    }

    /// Starts another `portcullis serve` on a free port, on the same data directory and with the same token: a
    /// replica behind the same name. Keep `self` alive at least as long as the replica (it owns the directory).
    ///
    /// # Panics
    ///
    /// As [`ControlPlane::start_new`].
    pub fn replica(&self) -> Self {
        let dir = tempfile::Builder::new().prefix("portcullis-cp-replica-").tempdir().expect("replica temp dir");
        let mut replica = Self {
            dir,
            data_dir: self.data_dir.clone(),
            token: self.token.clone(),
            addr: None,
            child: None,
            starts: 0,
        };
        replica.start();
        replica
    }

    /// Starts the process again after [`ControlPlane::stop`], on the same data directory and the same port.
    /// Does nothing if it is running.
    ///
    /// # Panics
    ///
    /// As [`ControlPlane::start_new`], or if the port it was on is now taken.
    pub fn start(&mut self) {
        if self.is_running() {
            return;
        }
        let listen = match self.addr {
            Some(addr) => addr.to_string(),
            None => "127.0.0.1:0".to_string(),
        };
        self.starts += 1;
        let stderr_path = self.dir.path().join(format!("serve-{}.stderr", self.starts));
        let stderr = std::fs::File::create(&stderr_path).expect("create the control plane stderr file");
        let mut child = Command::new(portcullis_binary())
            .args(["serve", "--listen", &listen, "--data-dir"])
            .arg(self.data_dir())
            .env(TOKEN_ENV, &self.token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn `portcullis serve`");
        let stdout = child.stdout.take().expect("piped stdout");
        let (first_line, lines) = mpsc::channel();
        // Keeps draining stdout after the first line so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = first_line.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = lines.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix(SERVING_PREFIX)
            .and_then(|url| url.strip_prefix("http://"))
            .and_then(|hostport| hostport.trim_end_matches('/').parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            terminate(&mut child, Duration::from_secs(1));
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!(
                "`portcullis serve --listen {listen}` did not announce `{SERVING_PREFIX}http://IP:PORT` \
                 (first stdout line: {line:?}); stderr:\n{stderr}"
            );
        };
        if let Some(previous) = self.addr {
            assert_eq!(addr, previous, "the control plane came back on another address");
        }
        self.addr = Some(addr);
        self.child = Some(child);
    }

    /// Stops the process (SIGTERM, then SIGKILL after 5 s). The data directory and the port number are kept for
    /// [`ControlPlane::start`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(5));
        }
    }

    /// Kills the process at once (SIGKILL): a crash, not a shutdown. [`ControlPlane::start`] brings it back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The address it serves on (kept across stop and start).
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("the control plane has started once")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The push token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The `--data-dir` it serves from.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    /// The file the server serves for bundle `name`: `<data-dir>/bundles/<name>.bundle`. Tests may overwrite it
    /// to serve bytes `push` would refuse.
    pub fn bundle_path(&self, name: &str) -> PathBuf {
        self.data_dir().join("bundles").join(format!("{name}.bundle"))
    }

    /// Everything the server wrote to stderr, over all its starts.
    pub fn stderr(&self) -> String {
        (1..=self.starts)
            .map(|n| std::fs::read_to_string(self.dir.path().join(format!("serve-{n}.stderr"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("")
    }

    /// Runs `portcullis push --server URL --name NAME FILE` with the token.
    ///
    /// # Panics
    ///
    /// If the push fails, with its output.
    pub fn push(&self, name: &str, bundle: &Path) {
        let output = self.try_push(name, bundle);
        assert!(
            output.status.success(),
            "`portcullis push --name {name} {}` failed ({}):\nstdout: {}\nstderr: {}\nserver stderr: {}",
            bundle.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.stderr(),
        );
    }

    /// Runs `portcullis push --server URL --name NAME FILE` with the token and returns its output, whatever it
    /// is: for pushes the server is expected to refuse.
    ///
    /// # Panics
    ///
    /// If the command cannot be run at all.
    pub fn try_push(&self, name: &str, bundle: &Path) -> Output {
        let mut args: Vec<OsString> = ["push", "--server", &self.url(), "--name", name].map(OsString::from).into();
        args.push(bundle.into());
        self.run(&args)
    }

    /// Runs `portcullis ARGS...` with the token in its environment and returns its output (`status`, `history`,
    /// `rollback`, ... pass `--server` themselves, e.g. with [`ControlPlane::url`]).
    ///
    /// # Panics
    ///
    /// If the command cannot be run at all.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        Command::new(portcullis_binary())
            .args(args)
            .env(TOKEN_ENV, &self.token)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run `portcullis {}`: {e}", describe_args(args)))
    }

    /// Runs `portcullis status --server URL ARGS...` and returns its stdout.
    ///
    /// # Panics
    ///
    /// If the command fails, with its output.
    pub fn status(&self, args: &[&str]) -> String {
        let mut all = vec!["status", "--server"];
        let url = self.url();
        all.push(&url);
        all.extend_from_slice(args);
        let output = self.run(&all);
        assert!(
            output.status.success(),
            "`portcullis {}` failed ({}):\nstdout: {}\nstderr: {}\nserver stderr: {}",
            all.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.stderr(),
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

fn describe_args<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Compiles `policy_yaml` with `portcullis compile FILE -o OUT --name NAME --revision N` and returns the bundle.
///
/// Files go to `<repo>/target/portcullis-it/compiled/` (small, and cleaned by `cargo clean`), so the path stays
/// valid for as long as the test wants it.
///
/// # Panics
///
/// If the compiler fails, with its output.
pub fn compile(policy_yaml: &str, name: &str, revision: u64) -> PathBuf {
    compile_with(policy_yaml, name, revision, None)
}

/// Like [`compile`], signed with `key` (`portcullis compile ... --sign KEYFILE`).
///
/// # Panics
///
/// If the compiler fails, with its output.
pub fn compile_signed(policy_yaml: &str, name: &str, revision: u64, key: &SigningKey) -> PathBuf {
    compile_with(policy_yaml, name, revision, Some(key))
}

fn compile_with(policy_yaml: &str, name: &str, revision: u64, key: Option<&SigningKey>) -> PathBuf {
    let dir =
        repo_root().join("target/portcullis-it/compiled").join(format!("{}-{}", std::process::id(), unique_number()));
    std::fs::create_dir_all(&dir).expect("create the compile directory");
    let policy = dir.join(format!("{name}.yaml"));
    let out = dir.join(format!("{name}-r{revision}.bundle"));
    std::fs::write(&policy, policy_yaml).expect("write the policy file");
    let mut command = Command::new(portcullis_binary());
    command.arg("compile").arg(&policy).arg("-o").arg(&out).args(["--name", name, "--revision", &revision.to_string()]);
    if let Some(key) = key {
        command.arg("--sign").arg(key.secret_path());
    }
    let output = command.stdin(Stdio::null()).output().expect("run `portcullis compile`");
    assert!(
        output.status.success() && out.is_file(),
        "`portcullis compile {}{}` failed ({}):\nstdout: {}\nstderr: {}",
        policy.display(),
        key.map(|k| format!(" --sign {}", k.secret_path().display())).unwrap_or_default(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    out
}

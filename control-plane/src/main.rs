//! `portcullis`: compile policies into bundles, inspect them, push them, and serve them to Envoy.
//!
//! # Commands
//!
//! - `compile POLICY.yaml -o BUNDLE [--name NAME] [--revision N] [--sign KEYFILE]`
//! - `inspect BUNDLE [--trust PUBFILE]...`: validate (and verify the signature) and print a JSON summary
//! - `keygen --key-id ID --out DIR`: a new signing key pair, `DIR/ID.key` and `DIR/ID.pub`
//! - `sign BUNDLE --key KEYFILE -o OUT`: sign a compiled bundle
//! - `serve --listen ADDR --data-dir DIR [--token-file PATH] [--trust PUBFILE]... [--max-revision-ahead 24h]
//!   [--max-connections N] [--header-timeout 10s] [--body-timeout 60s] [--max-waiters-per-client 100]`: the HTTP
//!   bundle server
//! - `push --server URL --name NAME BUNDLE [--token-file PATH] [--actor WHO] [--rollback]`: upload a bundle
//! - `rollback --server URL --name NAME --to REVISION [--sign KEYFILE] [--revision N]`: restore old content
//! - `history --server URL --name NAME`: every push of a bundle
//! - `status --server URL [--stale-after 30s]`: what every Envoy reports it enforces
//!
//! The upload token comes from `--token-file` or the `PORTCULLIS_TOKEN` environment variable, never from a
//! flag value. Every command exits 1 on failure with one line on stderr.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

mod client;
mod clock;
mod compile;
mod datadir;
mod error;
mod fleet;
mod inspect;
mod keys;
mod listener;
mod longpoll;
mod names;
mod objects;
mod push;
mod report;
mod rollback;
mod server;
mod store;
mod token;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::{ErrorKind, Result};

/// Command-line arguments.
#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Compile, sign, inspect, push and serve Portcullis policy bundles, and watch the fleet enforce them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
enum Command {
    /// Compile a policy file into a bundle.
    Compile {
        /// The policy YAML file.
        policy: PathBuf,
        /// Where to write the bundle.
        #[arg(short, long, value_name = "BUNDLE")]
        output: PathBuf,
        /// Policy name recorded in the bundle [default: the policy file's stem].
        #[arg(long)]
        name: Option<String>,
        /// Revision id recorded in the bundle [default: the current Unix time in seconds].
        #[arg(long, value_name = "N")]
        revision: Option<u64>,
        /// Sign the bundle with this secret key file (from `portcullis keygen`).
        #[arg(long, value_name = "KEYFILE")]
        sign: Option<PathBuf>,
    },
    /// Validate a bundle and print what it holds as JSON.
    Inspect {
        /// The bundle file.
        bundle: PathBuf,
        /// Require a valid signature by one of these public key files (repeatable).
        #[arg(long, value_name = "PUBFILE")]
        trust: Vec<PathBuf>,
    },
    /// Create a signing key pair: DIR/ID.key (secret, mode 0600) and DIR/ID.pub.
    Keygen {
        /// The key id bundles signed with the key will name (A-Z a-z 0-9 . _ -).
        #[arg(long, value_name = "ID")]
        key_id: String,
        /// Directory to write the key files to; created if missing.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Sign a bundle (an already signed bundle is re-signed).
    Sign {
        /// The bundle file.
        bundle: PathBuf,
        /// The secret key file.
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// Where to write the signed bundle.
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
    },
    /// Serve bundles over HTTP from a data directory.
    Serve {
        /// Address to listen on, e.g. 0.0.0.0:8080 (port 0 picks a free port).
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// Directory holding `bundles/`; created if missing.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// File holding the upload token [default: the PORTCULLIS_TOKEN environment variable].
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        /// Accept only bundles signed by one of these public key files (repeatable) [default: any bundle].
        #[arg(long, value_name = "PUBFILE")]
        trust: Vec<PathBuf>,
        /// Refuse a pushed revision further than this ahead of the server's clock (revisions are Unix seconds;
        /// keep it equal to the filter's `max_revision_ahead_seconds`, one day by default).
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = clock::parse_duration)]
        max_revision_ahead: std::time::Duration,
        /// Most connections open at once; past it a connection gets 503 and is closed
        /// [default: 16384, or RLIMIT_NOFILE - 128 if lower].
        #[arg(long, value_name = "N")]
        max_connections: Option<usize>,
        /// Close a connection that sends nothing for this long, or does not finish a request head within this
        /// long of starting it (also the idle timeout of kept-alive connections).
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
        header_timeout: std::time::Duration,
        /// Answer 408 to a PUT or POST whose body has not arrived within this time.
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = positive_duration)]
        body_timeout: std::time::Duration,
        /// Most long polls one client address (IPv6: one /64) may hold waiting; past it, 429. Behind a proxy
        /// that hides client addresses, raise it to the number of Envoys times their bundles.
        #[arg(long, value_name = "N", default_value_t = listener::DEFAULT_MAX_WAITERS_PER_CLIENT)]
        max_waiters_per_client: usize,
    },
    /// Upload a bundle to a control plane.
    Push {
        /// Base URL of the control plane, e.g. http://127.0.0.1:8080.
        #[arg(long, value_name = "URL")]
        server: String,
        /// Name to publish the bundle under.
        #[arg(long)]
        name: String,
        /// The bundle file.
        bundle: PathBuf,
        /// File holding the upload token [default: the PORTCULLIS_TOKEN environment variable].
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        /// Who is pushing, recorded in the history [default: $USER].
        #[arg(long, value_name = "WHO")]
        actor: Option<String>,
        /// Let the server go back to a revision that is not newer than its current one (recorded as a
        /// rollback). Filters that saw a newer revision keep it; prefer `portcullis rollback`.
        #[arg(long)]
        rollback: bool,
    },
    /// Publish an old revision's content again under a new, higher revision.
    Rollback {
        /// Base URL of the control plane.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The bundle name.
        #[arg(long)]
        name: String,
        /// The revision whose content to restore.
        #[arg(long, value_name = "REVISION")]
        to: u64,
        /// Sign the new bundle with this secret key file.
        #[arg(long, value_name = "KEYFILE")]
        sign: Option<PathBuf>,
        /// The new revision [default: the current Unix time, or the newest revision + 1 if that is higher].
        #[arg(long, value_name = "N")]
        revision: Option<u64>,
        /// File holding the upload token [default: the PORTCULLIS_TOKEN environment variable].
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        /// Who is rolling back, recorded in the history [default: $USER].
        #[arg(long, value_name = "WHO")]
        actor: Option<String>,
    },
    /// Print every push of a bundle: revision, when, by whom, signer, digest, rollbacks.
    History {
        /// Base URL of the control plane.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The bundle name.
        #[arg(long)]
        name: String,
    },
    /// Print what every Envoy reports it enforces, and whether it is ok, stale, failing or behind.
    Status {
        /// Base URL of the control plane.
        #[arg(long, value_name = "URL")]
        server: String,
        /// A node that has not reported for this long is stale (e.g. 500ms, 30s, 5m).
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = clock::parse_duration)]
        stale_after: std::time::Duration,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut stderr = std::io::stderr().lock();
            // Compile errors are printed bare: editors and CI parse `file:line:col: message`.
            let _ = match e.kind() {
                ErrorKind::Compile => writeln!(stderr, "{e}"),
                _ => writeln!(stderr, "portcullis: {e}"),
            };
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Compile { policy, output, name, revision, sign } => {
            let line = compile::compile(&policy, &output, name, revision, sign.as_deref())?;
            print_line(&mut std::io::stderr(), &line)
        }
        Command::Inspect { bundle, trust } => {
            let json = inspect::inspect(&bundle, &trust)?;
            print_line(&mut std::io::stdout(), &json)
        }
        Command::Keygen { key_id, out } => {
            let text = keys::keygen(&key_id, &out)?;
            print_line(&mut std::io::stdout(), &text)
        }
        Command::Sign { bundle, key, output } => {
            let line = keys::sign(&bundle, &key, &output)?;
            print_line(&mut std::io::stderr(), &line)
        }
        Command::Serve {
            listen,
            data_dir,
            token_file,
            trust,
            max_revision_ahead,
            max_connections,
            header_timeout,
            body_timeout,
            max_waiters_per_client,
        } => {
            let token = token::load(token_file.as_deref())?;
            let trusted = keys::load_public(&trust)?;
            server::serve(server::ServeOptions {
                listen,
                data_dir,
                token: token::TokenCheck::new(&token),
                trusted,
                max_revision_ahead,
                limits: listener::Limits { max_connections, header_timeout, body_timeout, max_waiters_per_client },
            })
        }
        Command::Push { server, name, bundle, token_file, actor, rollback } => {
            let token = token::load(token_file.as_deref())?;
            let actor = client::actor(actor)?;
            let line = push::push(&server, &name, &bundle, &token, actor.as_deref(), rollback)?;
            print_line(&mut std::io::stderr(), &line)
        }
        Command::Rollback { server, name, to, sign, revision, token_file, actor } => {
            let token = token::load(token_file.as_deref())?;
            let actor = client::actor(actor)?;
            let line = rollback::rollback(&rollback::Rollback {
                server: &server,
                name: &name,
                to,
                sign: sign.as_deref(),
                revision,
                token: &token,
                actor: actor.as_deref(),
            })?;
            print_line(&mut std::io::stderr(), &line)
        }
        Command::History { server, name } => {
            let table = report::history(&server, &name)?;
            print_line(&mut std::io::stdout(), &table)
        }
        Command::Status { server, stale_after } => {
            let table = report::status(&server, stale_after)?;
            print_line(&mut std::io::stdout(), &table)
        }
    }
}

/// A duration that is not zero: a zero timeout would close every connection at once.
fn positive_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    match clock::parse_duration(text)? {
        zero if zero.is_zero() => Err(format!("invalid duration '{text}': must be more than 0")),
        duration => Ok(duration),
    }
}

/// Prints one line, reporting a closed stream as an error instead of panicking like `println!`.
fn print_line(out: &mut impl Write, line: &str) -> Result<()> {
    writeln!(out, "{line}").map_err(|e| error::Error::new(ErrorKind::Io, format!("cannot write output: {e}")))
}

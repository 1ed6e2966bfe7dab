//! `portcullis`: compile policies into bundles, inspect them, push them, and serve them to Envoy.
//!
//! # Commands
//!
//! - `compile POLICY.yaml -o BUNDLE [--name NAME] [--revision N]`
//! - `inspect BUNDLE`: validate and print a JSON summary
//! - `serve --listen ADDR --data-dir DIR [--token-file PATH]`: the HTTP bundle server
//! - `push --server URL --name NAME BUNDLE [--token-file PATH]`: upload a bundle
//!
//! The upload token comes from `--token-file` or the `PORTCULLIS_TOKEN` environment variable, never from a
//! flag value. Every command exits 1 on failure with one line on stderr.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

mod compile;
mod error;
mod inspect;
mod names;
mod push;
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
#[command(name = "portcullis", version, about = "Compile, inspect, push and serve Portcullis policy bundles.")]
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
    },
    /// Validate a bundle and print what it holds as JSON.
    Inspect {
        /// The bundle file.
        bundle: PathBuf,
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
        Command::Compile { policy, output, name, revision } => {
            let line = compile::compile(&policy, &output, name, revision)?;
            print_line(&mut std::io::stderr(), &line)
        }
        Command::Inspect { bundle } => {
            let json = inspect::inspect(&bundle)?;
            print_line(&mut std::io::stdout(), &json)
        }
        Command::Serve { listen, data_dir, token_file } => {
            let token = token::load(token_file.as_deref())?;
            server::serve(&listen, &data_dir, token::TokenCheck::new(&token))
        }
        Command::Push { server, name, bundle, token_file } => {
            let token = token::load(token_file.as_deref())?;
            let line = push::push(&server, &name, &bundle, &token)?;
            print_line(&mut std::io::stderr(), &line)
        }
    }
}

/// Prints one line, reporting a closed stream as an error instead of panicking like `println!`.
fn print_line(out: &mut impl Write, line: &str) -> Result<()> {
    writeln!(out, "{line}").map_err(|e| error::Error::new(ErrorKind::Io, format!("cannot write output: {e}")))
}

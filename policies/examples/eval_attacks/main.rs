//! Attack detection scored on third-party corpora (`make eval`): detection per class and placement, and false
//! positives on benign text.
//!
//! ```text
//! cargo run --release -p portcullis-policies --features compiler --example eval_attacks -- \
//!     [--corpora ../shared/corpora] [--benign target/eval/benign-traffic.jsonl] \
//!     [--sensitivity low|medium|high | --all-levels] [--misses N]
//! ```
//!
//! One [`Inspector`](portcullis_policies::attacks::values::Inspector) with a check per attack class, every place, at
//! the chosen sensitivity (default medium; `--all-levels` runs low, medium and high) sees:
//! - every payload of the PayloadsAllTheThings lists ([`payloads`]) as a query value, a form field, a JSON string and
//!   a `user-agent` value (when it can be one), plus a path segment for traversal and file inclusion, and XXE
//!   documents as an XML body ([`encode`] says how each is encoded);
//! - the attack stages of the CRS regression families 930–934, 941, 942 and 944, rebuilt as requests ([`crs`]);
//! - the gotestwaf false-positive texts and the generated benign traffic (`scripts/benign-traffic.py`) in every
//!   placement.
//!
//! It prints a table per class and placement (detected / sent, false positives / sent) and the issue's aims, met or
//! not. `--misses N` also prints up to N missed payloads per class and placement, false positives and missed CRS
//! stages (corpus text, for tuning: never copy it into the project). The corpora are read only when given; they
//! live beside the project, never in it.
//!
//! Exit status: 0 after printing, whatever the rates; 2 when a corpus or the benign file is missing or unreadable.

mod crs;
mod encode;
mod payloads;
mod report;
mod request;
mod score;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use portcullis_policies::attacks::Sensitivity;

use crate::request::Scorer;
use crate::score::Benign;

struct Args {
    corpora: PathBuf,
    benign: PathBuf,
    levels: Vec<Sensitivity>,
    misses: usize,
}

fn parse_args() -> Result<Args, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = Args {
        corpora: manifest.join("../../shared/corpora"),
        benign: manifest.join("../target/eval/benign-traffic.jsonl"),
        levels: vec![Sensitivity::Medium],
        misses: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--corpora" => args.corpora = PathBuf::from(value("--corpora")?),
            "--benign" => args.benign = PathBuf::from(value("--benign")?),
            "--sensitivity" => {
                let name = value("--sensitivity")?;
                let level = Sensitivity::from_name(&name).ok_or(format!("unknown sensitivity {name}"))?;
                args.levels = vec![level];
            }
            "--all-levels" => args.levels = score::LEVELS.to_vec(),
            "--misses" => args.misses = value("--misses")?.parse().map_err(|_| "--misses needs a number")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("eval_attacks: {e}");
            return ExitCode::from(2);
        }
    };
    let corpora = match Corpora::load(&args) {
        Ok(corpora) => corpora,
        Err(e) => {
            eprintln!("eval_attacks: {e}");
            eprintln!("make eval needs ../shared/corpora beside the project (see README) and the benign file that");
            eprintln!("scripts/benign-traffic.py writes (make eval runs it)");
            return ExitCode::from(2);
        }
    };
    let mut summaries = Vec::new();
    for &level in &args.levels {
        let started = Instant::now();
        let mut scorer = Scorer::new(level);
        let folders: Vec<_> =
            corpora.folders.iter().map(|(folder, loaded)| score::attack_folder(&mut scorer, folder, loaded)).collect();
        let crs: Vec<_> = corpora
            .crs
            .iter()
            .map(|(prefix, title, family)| (*prefix, *title, family, score::crs_family(&mut scorer, family)))
            .collect();
        let gotestwaf = score::benign(&mut scorer, &corpora.gotestwaf);
        let benign = score::benign(&mut scorer, &corpora.benign);
        let results = report::Results {
            level,
            folders,
            crs,
            gotestwaf,
            benign,
            uninspectable: scorer.uninspectable,
            elapsed: started.elapsed(),
        };
        report::print(&results, &args, &corpora);
        summaries.push(report::aims(&results));
    }
    report::print_aims(&summaries);
    ExitCode::SUCCESS
}

/// Everything read from disk, once for every level.
pub struct Corpora {
    /// PayloadsAllTheThings folders and what was read from each (nothing for a folder without a class).
    pub folders: Vec<(&'static payloads::Folder, payloads::Loaded)>,
    /// CRS regression families.
    pub crs: Vec<(&'static str, &'static str, crs::Family)>,
    /// The gotestwaf false-positive texts.
    pub gotestwaf: Vec<Benign>,
    /// Generated benign traffic.
    pub benign: Vec<Benign>,
    /// Where the benign traffic came from.
    pub benign_path: PathBuf,
}

impl Corpora {
    fn load(args: &Args) -> Result<Corpora, String> {
        let patt = args.corpora.join("payloads-allthethings");
        let mut folders = Vec::new();
        for folder in payloads::FOLDERS {
            let loaded = if folder.class.is_some() { payloads::load(&patt, folder)? } else { Default::default() };
            folders.push((folder, loaded));
        }
        let crs = crs::load(&args.corpora.join("crs-regression"))?;
        let gotestwaf = gotestwaf(&args.corpora.join("gotestwaf-false-positives/texts.yml"))?;
        let benign = benign_traffic(&args.benign)?;
        Ok(Corpora { folders, crs, gotestwaf, benign, benign_path: args.benign.clone() })
    }
}

/// The `payload:` list of gotestwaf's `texts.yml`.
fn gotestwaf(path: &Path) -> Result<Vec<Benign>, String> {
    use saphyr::{LoadableYamlNode, Yaml};
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let docs = Yaml::load_from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let texts: Vec<Benign> = docs
        .first()
        .and_then(|doc| doc.as_mapping_get("payload"))
        .and_then(Yaml::as_vec)
        .ok_or(format!("{}: no payload list", path.display()))?
        .iter()
        .filter_map(|item| item.as_str())
        .map(|s| Benign { kind: "text".to_string(), text: s.as_bytes().to_vec() })
        .collect();
    if texts.is_empty() {
        return Err(format!("{}: empty payload list", path.display()));
    }
    Ok(texts)
}

/// The JSON Lines `scripts/benign-traffic.py` writes: `{"kind": ..., "value": ...}`.
fn benign_traffic(path: &Path) -> Result<Vec<Benign>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut values = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let record: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        let (Some(kind), Some(value)) =
            (record.get("kind").and_then(|k| k.as_str()), record.get("value").and_then(|v| v.as_str()))
        else {
            return Err(format!("{}:{}: expected {{\"kind\", \"value\"}}", path.display(), n + 1));
        };
        values.push(Benign { kind: kind.to_string(), text: value.as_bytes().to_vec() });
    }
    if values.is_empty() {
        return Err(format!("{}: no values", path.display()));
    }
    Ok(values)
}

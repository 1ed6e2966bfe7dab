//! Precision and recall of the built-in classifiers on a third-party corpus (`make eval`).
//!
//! ```text
//! cargo run --release -p portcullis-policies --features compiler --example eval_classifiers -- [CORPUS_DIR] [--misses]
//! ```
//!
//! The corpus is Presidio's synthetic PII sentences (`synth_dataset_v2.json`: `full_text` and labelled `spans`),
//! kept beside the project in `../shared/corpora/presidio-synth` and never copied into it. Every sentence goes through
//! the streaming scanner as a `text/plain` body, with one detection per built-in classifier, exactly as the filter
//! would inspect it. Per sentence and type: TP = min(found, labelled), FP = found − TP, FN = labelled − TP.
//! `--misses` prints the sentences behind the false positives and negatives (synthetic data; for tuning only).
//!
//! Exit status: 0 after printing the table, 2 when the corpus is missing or unreadable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use portcullis_policies::compiler::{compile_to_bytes, CompileOptions};
use portcullis_policies::scan::builtin::detections_yaml;
use portcullis_policies::scan::BodyInspector;
use portcullis_policies::{Bundle, Location};

/// Corpus entity types and the built-in classifiers that answer for them.
const TYPES: &[(&str, &[&str])] = &[
    ("CREDIT_CARD", &["credit_card"]),
    ("IBAN_CODE", &["iban"]),
    ("US_SSN", &["us_ssn"]),
    ("EMAIL_ADDRESS", &["email"]),
    ("PHONE_NUMBER", &["phone"]),
    ("IP_ADDRESS", &["ipv4", "ipv6"]),
];

#[derive(Default, Clone, Copy)]
struct Score {
    labelled: u64,
    tp: u64,
    fp: u64,
    fn_: u64,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let show_misses = args.iter().any(|a| a == "--misses");
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/presidio-synth"));
    let file = dir.join("synth_dataset_v2.json");
    let Ok(text) = std::fs::read_to_string(&file) else {
        eprintln!("corpus not found at {}: make eval needs ../shared/corpora (see README)", file.display());
        return ExitCode::from(2);
    };
    let sentences: Vec<serde_json::Value> = match serde_json::from_str(&text) {
        Ok(serde_json::Value::Array(items)) => items,
        _ => {
            eprintln!("{}: not a JSON array of sentences", file.display());
            return ExitCode::from(2);
        }
    };
    let bundle = match all_builtins() {
        Ok(bundle) => bundle,
        Err(e) => {
            eprintln!("cannot build the evaluation bundle: {e}");
            return ExitCode::from(2);
        }
    };
    let index_of = |id: &str| bundle.classifiers().iter().position(|c| c.id == id);

    let mut scores: BTreeMap<&str, Score> = BTreeMap::new();
    let mut others: BTreeMap<String, u64> = BTreeMap::new();
    let mut bytes = 0usize;
    let started = std::time::Instant::now();
    for sentence in &sentences {
        let Some(full_text) = sentence.get("full_text").and_then(|t| t.as_str()) else {
            continue;
        };
        bytes += full_text.len();
        let Some(mut inspector) = BodyInspector::new(&bundle, Location::RequestBody, Some(b"text/plain"), None) else {
            continue;
        };
        inspector.feed(&bundle, full_text.as_bytes());
        inspector.finish(&bundle);
        let counts = inspector.classifier_counts();
        let spans = sentence.get("spans").and_then(|s| s.as_array()).cloned().unwrap_or_default();
        for (kind, classifiers) in TYPES {
            let labelled =
                spans.iter().filter(|s| s.get("entity_type").and_then(|t| t.as_str()) == Some(kind)).count() as u64;
            let found: u64 =
                classifiers.iter().filter_map(|c| index_of(c).and_then(|i| counts.get(i))).map(|n| u64::from(*n)).sum();
            let tp = found.min(labelled);
            let score = scores.entry(kind).or_default();
            score.labelled += labelled;
            score.tp += tp;
            score.fp += found - tp;
            score.fn_ += labelled - tp;
            if show_misses && found != labelled {
                println!("{kind:14} labelled {labelled} found {found}: {full_text:?}");
            }
        }
        for (i, c) in bundle.classifiers().iter().enumerate() {
            let n = counts.get(i).copied().unwrap_or(0);
            if n > 0 && !TYPES.iter().any(|(_, ids)| ids.contains(&c.id.as_str())) {
                *others.entry(c.id.clone()).or_default() += u64::from(n);
            }
        }
    }
    let elapsed = started.elapsed();

    println!("Presidio synthetic corpus: {} sentences, {} bytes scanned in {:.1?}", sentences.len(), bytes, elapsed);
    println!();
    println!("| type | classifier | labelled | TP | FP | FN | precision | recall |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (kind, classifiers) in TYPES {
        let s = scores.get(kind).copied().unwrap_or_default();
        let precision = ratio(s.tp, s.tp + s.fp);
        let recall = ratio(s.tp, s.tp + s.fn_);
        println!(
            "| {kind} | {} | {} | {} | {} | {} | {precision} | {recall} |",
            classifiers.join("+"),
            s.labelled,
            s.tp,
            s.fp,
            s.fn_
        );
    }
    println!();
    if others.is_empty() {
        println!("Other built-ins (no labels in this corpus): no findings.");
    } else {
        let list: Vec<String> = others.iter().map(|(id, n)| format!("{id}={n}")).collect();
        println!(
            "Other built-ins (no labels in this corpus, so every finding is a false positive or card_expiry): {}",
            list.join(", ")
        );
    }
    ExitCode::SUCCESS
}

fn ratio(num: u64, den: u64) -> String {
    if den == 0 {
        "n/a".to_owned()
    } else {
        format!("{:.3}", num as f64 / den as f64)
    }
}

/// A bundle with one detection per built-in in `request.body`, compiled from a policy as a user would write it.
fn all_builtins() -> Result<Bundle, String> {
    let mut yaml = format!("version: 1\n{}", detections_yaml("request.body"));
    yaml.push_str("rules:\n  - id: eval\n    when: request.method == \"EVAL\"\n    action: monitor\n");
    let options = CompileOptions { policy_name: "eval".into(), revision: 1, file_name: "eval.yaml".into() };
    let bytes = compile_to_bytes(&yaml, &options).map_err(|e| e.to_string())?;
    Bundle::from_bytes(&bytes).map_err(|e| e.to_string())
}

//! The tables and the aims, as printed.

use std::time::Duration;

use portcullis_policies::attacks::{AttackClass, Sensitivity};

use crate::crs::Family;
use crate::encode::Placement;
use crate::payloads::related;
use crate::score::{self, CrsScore, FalsePositives, FolderScore, BENIGN_PLACEMENTS};
use crate::{Args, Corpora};

const LABEL: usize = 34;
const COLUMN: usize = 20;

/// Everything one sensitivity produced.
pub struct Results<'a> {
    /// The level.
    pub level: Sensitivity,
    /// Per attack folder.
    pub folders: Vec<FolderScore<'a>>,
    /// Per CRS family.
    pub crs: Vec<(&'static str, &'static str, &'a Family, CrsScore)>,
    /// gotestwaf texts.
    pub gotestwaf: FalsePositives,
    /// Generated benign traffic.
    pub benign: FalsePositives,
    /// Requests reported uninspectable.
    pub uninspectable: u64,
    /// Time taken.
    pub elapsed: Duration,
}

/// `part/whole (p%)`: one decimal for detection rates.
fn rate(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{part}/{whole} ({:.1}%)", score::percent(part, whole))
    }
}

/// Two decimals for false-positive rates, whose aim is 0.1%.
fn fp_rate(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{part}/{whole} ({:.2}%)", score::percent(part, whole))
    }
}

fn header(placements: &[Placement]) {
    print!("  {:LABEL$}", "");
    for placement in placements {
        print!("{:COLUMN$}", placement.name());
    }
    println!();
}

fn row(label: &str, cells: impl Iterator<Item = String>) {
    print!("  {label:LABEL$}");
    for cell in cells {
        print!("{cell:COLUMN$}");
    }
    println!();
}

/// Prints one level's tables.
pub fn print(results: &Results<'_>, args: &Args, corpora: &Corpora) {
    println!();
    println!("=== Attack detection, sensitivity {} ===", results.level.name());
    println!("(one check per class, every place; detected = the folder's class or a related one fired)");
    for folder in &results.folders {
        print_folder(folder, args.misses);
    }
    print_crs(results, args.misses);
    let texts = corpora.gotestwaf.len();
    print_false_positives(&format!("gotestwaf texts.yml ({texts} texts)"), &results.gotestwaf, args.misses);
    let benign =
        format!("generated benign traffic ({} values, {})", corpora.benign.len(), corpora.benign_path.display());
    print_false_positives(&benign, &results.benign, args.misses);
    if !results.benign.by_kind.is_empty() {
        let kinds: Vec<String> = results.benign.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("  false positives by kind of value: {}", kinds.join(", "));
    }
    println!();
    println!(
        "Requests reported uninspectable (over a cap): {}. Time at this level: {:.2} s.",
        results.uninspectable,
        results.elapsed.as_secs_f64()
    );
}

fn print_folder(score: &FolderScore<'_>, misses: usize) {
    let folder = score.folder;
    println!();
    let Some(class) = folder.class else {
        println!(
            "PayloadsAllTheThings / {}: skipped (no attack class: a redirect target is not an injection)",
            folder.dir
        );
        return;
    };
    let loaded = score.loaded;
    println!(
        "PayloadsAllTheThings / {} -> {}: {} distinct payloads ({} lines in {} files; skipped {} comment and {} blank lines)",
        folder.dir,
        class.name(),
        loaded.payloads.len(),
        loaded.lines,
        loaded.files - loaded.word_lists.len(),
        loaded.comments,
        loaded.blank,
    );
    let placements: Vec<Placement> = score.cells.iter().map(|(p, _)| *p).collect();
    header(&placements);
    row(class.name(), score.cells.iter().map(|(_, c)| rate(c.intended, c.sent)));
    let related = related(class);
    if !related.is_empty() {
        let names: Vec<&str> = related.iter().map(|c| c.name()).collect();
        row(&format!("or {} (scored)", names.join(", ")), score.cells.iter().map(|(_, c)| rate(c.accepted, c.sent)));
    }
    row("any class", score.cells.iter().map(|(_, c)| rate(c.any, c.sent)));
    for (placement, cell) in &score.cells {
        if cell.skipped > 0 {
            println!(
                "  {}: {} payloads not sent (CR, LF, NUL or another control byte once decoded, or empty)",
                placement.name(),
                cell.skipped
            );
        }
        if cell.as_written > 0 {
            println!(
                "  {}: {} payloads sent as written (decoding once gives bytes that are not UTF-8, which JSON cannot carry)",
                placement.name(),
                cell.as_written
            );
        }
        if cell.lossy > 0 {
            println!("  {}: {} payloads had bytes that are not UTF-8, sent as U+FFFD", placement.name(), cell.lossy);
        }
    }
    let files: Vec<String> = score
        .by_file
        .iter()
        .filter(|(_, payloads, _)| *payloads > 0)
        .map(|(name, payloads, detected)| format!("{name} {detected}/{payloads}"))
        .collect();
    println!("  by file (detected in every placement / distinct payloads first seen there): {}", files.join(", "));
    for (name, lines, why) in &loaded.word_lists {
        println!("  not sent: {name} ({lines} lines: {why})");
    }
    for &placement in &placements {
        let missed: Vec<_> = score.misses.iter().filter(|(p, _)| *p == placement).collect();
        for (_, payload) in missed.iter().take(misses) {
            println!("    missed in {}: {:?}", placement.name(), String::from_utf8_lossy(&payload.text));
        }
    }
}

fn print_crs(results: &Results<'_>, misses: usize) {
    println!();
    println!("CRS regression tests, attack stages (expect_ids non-empty), detected when any class fires:");
    println!("  {:LABEL$}{:COLUMN$}classes that fired (stages)", "family", "detected / stages");
    let (mut sent, mut detected, mut encoded, mut others) = (0, 0, 0, 0);
    for (prefix, title, family, score) in &results.crs {
        let classes: Vec<String> = score.by_class.iter().map(|(c, n)| format!("{} {n}", c.name())).collect();
        row(&format!("{prefix} {title}"), [rate(score.detected, score.sent), classes.join(", ")].into_iter());
        for name in &family.unreadable {
            println!("    unreadable (not ftw YAML): {name}");
        }
        for id in score.misses.iter().take(misses) {
            println!("    missed: {id}");
        }
        sent += score.sent;
        detected += score.detected;
        encoded += family.encoded_skipped;
        others += family.not_attacks;
    }
    row("all families", [rate(detected, sent)].into_iter());
    println!(
        "  not sent: {encoded} attack stage(s) given as encoded_request (raw request, not parsed); not scored: \
         {others} stages without expect_ids"
    );
}

fn print_false_positives(title: &str, fp: &FalsePositives, misses: usize) {
    println!();
    println!("False positives on {title}: requests on which a class fired / sent");
    header(BENIGN_PLACEMENTS);
    let sent = |p: &Placement| fp.sent.get(p).copied().unwrap_or(0);
    row("any class", BENIGN_PLACEMENTS.iter().map(|p| fp_rate(fp.any.get(p).copied().unwrap_or(0), sent(p))));
    let mut quiet = Vec::new();
    for class in AttackClass::ALL {
        if BENIGN_PLACEMENTS.iter().any(|p| fp.by_class.contains_key(&(class, *p))) {
            row(
                class.name(),
                BENIGN_PLACEMENTS.iter().map(|p| fp_rate(fp.by_class.get(&(class, *p)).copied().unwrap_or(0), sent(p))),
            );
        } else {
            quiet.push(class.name());
        }
    }
    if quiet.len() == AttackClass::ALL.len() {
        println!("  no class fired anywhere");
    } else {
        println!("  no false positive anywhere: {}", quiet.join(", "));
    }
    for (placement, skipped) in &fp.skipped {
        println!("  {}: {skipped} values not sent (line breaks or other control bytes)", placement.name());
    }
    for (placement, fired, kind, text) in fp.examples.iter().take(misses) {
        let classes: Vec<&str> = AttackClass::ALL.iter().filter(|c| fired & c.bit() != 0).map(|c| c.name()).collect();
        println!("    {} in {} ({kind}): {:?}", classes.join("+"), placement.name(), String::from_utf8_lossy(text));
    }
}

/// One aim's outcome.
pub struct Aim {
    /// What is aimed at.
    pub what: String,
    /// What was measured.
    pub measured: String,
    /// Whether it is met.
    pub met: bool,
}

/// The aims at one level.
pub fn aims(results: &Results<'_>) -> (Sensitivity, Vec<Aim>) {
    let mut aims = Vec::new();
    for folder in &results.folders {
        let Some(class) = folder.folder.class else {
            continue;
        };
        let worst = folder
            .cells
            .iter()
            .map(|(p, c)| (score::percent(c.accepted, c.sent), *p))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let Some((worst, placement)) = worst else {
            continue;
        };
        aims.push(Aim {
            what: format!("{} >= {}% in every placement", class.name(), score::aim(class)),
            measured: format!("lowest {worst:.1}% ({})", placement.name()),
            met: worst >= score::aim(class),
        });
    }
    let (sent, detected) = results.crs.iter().fold((0, 0), |(s, d), (_, _, _, c)| (s + c.sent, d + c.detected));
    let crs = score::percent(detected, sent);
    aims.push(Aim {
        what: format!("CRS attack stages >= {}%", score::CRS_AIM),
        measured: format!("{crs:.1}% ({detected}/{sent})"),
        met: crs >= score::CRS_AIM,
    });
    let gotestwaf: u64 = results.gotestwaf.any.values().sum();
    aims.push(Aim {
        what: "gotestwaf texts: no false positive".to_string(),
        measured: format!("{gotestwaf} in all placements"),
        met: gotestwaf == 0,
    });
    let worst = BENIGN_PLACEMENTS
        .iter()
        .map(|p| {
            let fired = results.benign.any.get(p).copied().unwrap_or(0);
            (score::percent(fired, results.benign.sent.get(p).copied().unwrap_or(0)), *p)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((0.0, Placement::Query));
    aims.push(Aim {
        what: format!("benign traffic <= {}% in every placement", score::BENIGN_AIM),
        measured: format!("highest {:.2}% ({})", worst.0, worst.1.name()),
        met: worst.0 <= score::BENIGN_AIM,
    });
    (results.level, aims)
}

/// Prints the aims of every level run.
pub fn print_aims(levels: &[(Sensitivity, Vec<Aim>)]) {
    for (level, aims) in levels {
        println!();
        println!("Aims at sensitivity {}:", level.name());
        for aim in aims {
            println!("  {:48}{:32}{}", aim.what, aim.measured, if aim.met { "met" } else { "NOT MET" });
        }
    }
    println!(
        "  (log4shell is measured through CRS 944 only; ssrf, crlf_injection and prototype_pollution have no corpus \
         here: their rows above are false positives only)"
    );
}

//! Sending every corpus through the inspector at one sensitivity, and counting.

use std::collections::BTreeMap;

use portcullis_policies::attacks::{AttackClass, ClassSet, Sensitivity};

use crate::crs::Family;
use crate::encode::{Payload, Placement};
use crate::payloads::{related, Folder, Loaded};
use crate::request::{JsonNote, OwnedPart, Request, Scorer};

/// Detections of one folder in one placement.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cell {
    /// Requests sent.
    pub sent: u64,
    /// On which the folder's class fired.
    pub intended: u64,
    /// On which it or a related class fired (what counts as detected).
    pub accepted: u64,
    /// On which any class fired.
    pub any: u64,
    /// Payloads that cannot be sent there (header values with CR, LF, NUL...).
    pub skipped: u64,
    /// JSON strings sent as written, because decoding once gives bytes that are not UTF-8.
    pub as_written: u64,
    /// JSON strings whose bytes that were not UTF-8 became U+FFFD.
    pub lossy: u64,
}

/// One attack folder's results.
pub struct FolderScore<'a> {
    /// The folder.
    pub folder: &'static Folder,
    /// What was read from it.
    pub loaded: &'a Loaded,
    /// Per placement, in table order.
    pub cells: Vec<(Placement, Cell)>,
    /// Missed payloads per placement (not accepted), for `--misses`.
    pub misses: Vec<(Placement, &'a Payload)>,
    /// Per payload file: distinct payloads first seen there, and how many of them were detected in every placement.
    pub by_file: Vec<(&'a str, u64, u64)>,
}

/// Sends every payload of `loaded` in every placement of its folder.
pub fn attack_folder<'a>(scorer: &mut Scorer, folder: &'static Folder, loaded: &'a Loaded) -> FolderScore<'a> {
    let mut score = FolderScore { folder, loaded, cells: Vec::new(), misses: Vec::new(), by_file: Vec::new() };
    let mut everywhere = vec![true; loaded.payloads.len()];
    let Some(class) = folder.class else {
        return score;
    };
    let accepted = related(class).iter().fold(class.bit(), |set, c| set | c.bit());
    for &placement in folder.placements {
        let mut cell = Cell::default();
        for (payload, detected_everywhere) in loaded.payloads.iter().zip(everywhere.iter_mut()) {
            let Some((request, note)) = Request::with_payload(payload, placement) else {
                cell.skipped += 1;
                continue;
            };
            let fired = scorer.fired(&request);
            cell.sent += 1;
            cell.as_written += u64::from(note == JsonNote::AsWritten);
            cell.lossy += u64::from(note == JsonNote::Replaced);
            cell.intended += u64::from(fired & class.bit() != 0);
            cell.any += u64::from(fired != 0);
            if fired & accepted != 0 {
                cell.accepted += 1;
            } else {
                *detected_everywhere = false;
                score.misses.push((placement, payload));
            }
        }
        score.cells.push((placement, cell));
    }
    score.by_file = loaded.file_names.iter().map(|name| (name.as_str(), 0, 0)).collect();
    for (&file, detected) in loaded.origin.iter().zip(&everywhere) {
        if let Some(entry) = score.by_file.get_mut(file) {
            entry.1 += 1;
            entry.2 += u64::from(*detected);
        }
    }
    score
}

/// False positives on one benign set.
#[derive(Debug, Default)]
pub struct FalsePositives {
    /// Requests sent per placement.
    pub sent: BTreeMap<Placement, u64>,
    /// Values that cannot be sent there.
    pub skipped: BTreeMap<Placement, u64>,
    /// Requests on which any class fired, per placement.
    pub any: BTreeMap<Placement, u64>,
    /// Requests on which each class fired, per placement.
    pub by_class: BTreeMap<(AttackClass, Placement), u64>,
    /// False positives per kind of value (benign traffic only).
    pub by_kind: BTreeMap<String, u64>,
    /// The values that fired, for `--misses`: placement, classes, kind, text.
    pub examples: Vec<(Placement, ClassSet, String, Vec<u8>)>,
}

/// The placements benign values are sent in.
pub const BENIGN_PLACEMENTS: &[Placement] =
    &[Placement::Query, Placement::Form, Placement::Json, Placement::Header, Placement::Path, Placement::XmlText];

/// A benign value: its kind (`name`, `json_document`...) and text.
pub struct Benign {
    /// What it is.
    pub kind: String,
    /// The text.
    pub text: Vec<u8>,
}

/// Sends every benign value in every placement; a JSON document is also the JSON body itself rather than a string.
pub fn benign(scorer: &mut Scorer, values: &[Benign]) -> FalsePositives {
    let mut fp = FalsePositives::default();
    for value in values {
        let payload = Payload::plain(&value.text);
        for &placement in BENIGN_PLACEMENTS {
            let request = if placement == Placement::Json && value.kind == "json_document" {
                Some(Request {
                    parts: vec![OwnedPart::Body {
                        content_type: b"application/json".to_vec(),
                        body: value.text.clone(),
                    }],
                })
            } else {
                Request::with_payload(&payload, placement).map(|(request, _)| request)
            };
            let Some(request) = request else {
                *fp.skipped.entry(placement).or_default() += 1;
                continue;
            };
            *fp.sent.entry(placement).or_default() += 1;
            let fired = scorer.fired(&request);
            if fired == 0 {
                continue;
            }
            *fp.any.entry(placement).or_default() += 1;
            *fp.by_kind.entry(value.kind.clone()).or_default() += 1;
            for class in AttackClass::ALL.into_iter().filter(|c| fired & c.bit() != 0) {
                *fp.by_class.entry((class, placement)).or_default() += 1;
            }
            fp.examples.push((placement, fired, value.kind.clone(), value.text.clone()));
        }
    }
    fp
}

/// One CRS family's results.
#[derive(Debug, Default)]
pub struct CrsScore {
    /// Attack stages sent.
    pub sent: u64,
    /// On which some class fired.
    pub detected: u64,
    /// Stages on which each class fired.
    pub by_class: BTreeMap<AttackClass, u64>,
    /// Missed stages (`file#test_id`).
    pub misses: Vec<String>,
}

/// Sends every attack stage of `family`.
pub fn crs_family(scorer: &mut Scorer, family: &Family) -> CrsScore {
    let mut score = CrsScore::default();
    for (id, request) in &family.attacks {
        let fired = scorer.fired(request);
        score.sent += 1;
        if fired == 0 {
            score.misses.push(id.clone());
            continue;
        }
        score.detected += 1;
        for class in AttackClass::ALL.into_iter().filter(|c| fired & c.bit() != 0) {
            *score.by_class.entry(class).or_default() += 1;
        }
    }
    score
}

/// The least a class must detect in every placement (percent).
pub fn aim(class: AttackClass) -> f64 {
    match class {
        AttackClass::Sqli | AttackClass::Xss => 99.0,
        _ => 95.0,
    }
}

/// The CRS aim, over the attack stages of all families together (percent).
pub const CRS_AIM: f64 = 90.0;
/// The most false positives on generated benign traffic, per placement (percent).
pub const BENIGN_AIM: f64 = 0.1;

/// `part` of `whole` in percent (0 when nothing was sent).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The sensitivities `--all-levels` runs.
pub const LEVELS: [Sensitivity; 3] = [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High];

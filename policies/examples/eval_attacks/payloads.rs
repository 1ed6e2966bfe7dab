//! The PayloadsAllTheThings "Intruder" lists: which folder is which class, and how each file is read.
//!
//! A file is one payload a line. What is not a payload, decided by reading every file:
//! - CR at the end of a line (several files have CRLF endings) is dropped; blank lines are skipped (in
//!   `MarioXSSVectors.txt` they split multi-line vectors, whose lines are then sent one by one).
//! - A line starting with `#` is a comment or a section heading (`# from wapiti`, `#Google.com:`), except in the
//!   files where `#` starts real payloads ([`HASH_IS_PAYLOAD`]: `#{7*7}` templates, `#getURL,javascript:` SWF
//!   vectors, CSS rules).
//! - In [`TAB_STARTS_DESCRIPTION`] a tab separates a payload from its explanation (`||<TAB>(double pipe)
//!   concatenate`): the text before the tab is the payload. A few prose lines there ("Comments:") stay and count.
//! - [`WORD_LISTS`] are not payloads but word lists meant to be combined with one (bare event-handler names, LDAP
//!   attribute names, iconv charset pairs, ordinary web files): not sent, listed in the report.
//! - Placeholders (`{FILE}` in the traversal lists) are left as written: the traversal itself is what is scored.
//! - Within a folder, identical payloads are sent once (several files repeat each other); the report gives both
//!   counts.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use portcullis_policies::attacks::AttackClass;

use crate::encode::{Payload, Placement};

/// One attack folder of the corpus.
#[derive(Debug)]
pub struct Folder {
    /// The folder's name under `payloads-allthethings/`.
    pub dir: &'static str,
    /// The class its payloads are meant to carry (`None`: no Portcullis class, skipped).
    pub class: Option<AttackClass>,
    /// Where its payloads are sent.
    pub placements: &'static [Placement],
}

const VALUES: &[Placement] = &[Placement::Query, Placement::Form, Placement::Json, Placement::Header];
const VALUES_AND_PATH: &[Placement] =
    &[Placement::Query, Placement::Form, Placement::Json, Placement::Header, Placement::Path];

/// Every folder, in report order.
pub const FOLDERS: &[Folder] = &[
    Folder { dir: "SQL Injection", class: Some(AttackClass::Sqli), placements: VALUES },
    Folder { dir: "XSS Injection", class: Some(AttackClass::Xss), placements: VALUES },
    Folder { dir: "Command Injection", class: Some(AttackClass::CommandInjection), placements: VALUES },
    Folder { dir: "Directory Traversal", class: Some(AttackClass::PathTraversal), placements: VALUES_AND_PATH },
    Folder { dir: "File Inclusion", class: Some(AttackClass::FileInclusion), placements: VALUES_AND_PATH },
    Folder { dir: "LDAP Injection", class: Some(AttackClass::LdapInjection), placements: VALUES },
    Folder { dir: "NoSQL Injection", class: Some(AttackClass::NosqlInjection), placements: VALUES },
    Folder { dir: "Server Side Template Injection", class: Some(AttackClass::TemplateInjection), placements: VALUES },
    Folder { dir: "XXE Injection", class: Some(AttackClass::Xxe), placements: &[Placement::XmlDocument] },
    // Open redirects are not one of the classes: a redirect target is the application's business, not an injection.
    Folder { dir: "Open Redirect", class: None, placements: &[] },
];

/// Classes whose firing also stops a payload of `class`, because the same payload is an attack of both kinds: a
/// local file inclusion climbs directories (and a traversal names a file to include), a template injection that
/// reaches the shell runs a command.
pub fn related(class: AttackClass) -> &'static [AttackClass] {
    match class {
        AttackClass::FileInclusion => &[AttackClass::PathTraversal],
        AttackClass::PathTraversal => &[AttackClass::FileInclusion],
        AttackClass::TemplateInjection => &[AttackClass::CommandInjection],
        _ => &[],
    }
}

/// Files in which a leading `#` belongs to the payload.
pub const HASH_IS_PAYLOAD: &[&str] = &["ssti.fuzz", "xss_swf_fuzz.txt", "MarioXSSVectors.txt"];
/// Files in which a tab separates the payload from a description.
pub const TAB_STARTS_DESCRIPTION: &[&str] = &["SQL-Injection"];
/// Files that are word lists, not payloads, and why.
pub const WORD_LISTS: &[(&str, &str)] = &[
    ("0xcela_event_handlers.txt", "bare event-handler names"),
    ("port_swigger_xss_cheatsheet_event_handlers.txt", "bare event-handler names"),
    ("LDAP_attributes.txt", "LDAP attribute names"),
    ("php-filter-iconv.txt", "iconv charset pairs for php://filter chains"),
    ("Web-files.txt", "ordinary web files (robots.txt, style.css)"),
];

/// A folder's payloads and what reading it left out.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Distinct payloads, in the order first seen.
    pub payloads: Vec<Payload>,
    /// For each payload, the index in `file_names` of the file it was first seen in.
    pub origin: Vec<usize>,
    /// The payload files' names, in the order read.
    pub file_names: Vec<String>,
    /// Files read (word lists included).
    pub files: usize,
    /// Payload lines before removing repeats.
    pub lines: usize,
    /// Comment and heading lines skipped.
    pub comments: usize,
    /// Blank lines skipped.
    pub blank: usize,
    /// Word-list files skipped: name, lines, why.
    pub word_lists: Vec<(String, usize, &'static str)>,
}

/// Reads every file under `root/dir`, or says why it cannot.
pub fn load(root: &Path, folder: &Folder) -> Result<Loaded, String> {
    let dir = root.join(folder.dir);
    let mut files = Vec::new();
    walk(&dir, &mut files).map_err(|e| format!("{}: {e}", dir.display()))?;
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no payload files", dir.display()));
    }
    let mut loaded = Loaded::default();
    let mut seen = HashSet::new();
    for file in &files {
        let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        loaded.files += 1;
        if let Some((_, why)) = WORD_LISTS.iter().find(|(list, _)| *list == name) {
            loaded.word_lists.push((name, bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), why));
            continue;
        }
        let file_index = loaded.file_names.len();
        for line in payload_lines(&name, &bytes, &mut loaded) {
            loaded.lines += 1;
            if seen.insert(line.to_vec()) {
                loaded.payloads.push(Payload::line(line));
                loaded.origin.push(file_index);
            }
        }
        loaded.file_names.push(name);
    }
    Ok(loaded)
}

/// The payload lines of one file, counting what is skipped.
fn payload_lines<'a>(name: &str, bytes: &'a [u8], counts: &mut Loaded) -> Vec<&'a [u8]> {
    let hash_is_payload = HASH_IS_PAYLOAD.contains(&name);
    let tab_describes = TAB_STARTS_DESCRIPTION.contains(&name);
    let mut lines = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = match (tab_describes, line.iter().position(|&b| b == b'\t')) {
            (true, Some(tab)) => line.get(..tab).unwrap_or(line),
            _ => line,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            counts.blank += 1;
        } else if line.starts_with(b"#") && !hash_is_payload {
            counts.comments += 1;
        } else {
            lines.push(line);
        }
    }
    // The split leaves an empty piece after the final newline: not a blank line of the file.
    if bytes.ends_with(b"\n") {
        counts.blank = counts.blank.saturating_sub(1);
    }
    lines
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blank_lines_and_crlf_are_not_payloads() {
        let mut counts = Loaded::default();
        let lines = payload_lines("list.txt", b"# heading\r\n' or 1=1 --\r\n\r\n  \n#{x}\n", &mut counts);
        assert_eq!(lines, vec![b"' or 1=1 --".as_slice()]);
        assert_eq!((counts.comments, counts.blank), (2, 2));
    }

    #[test]
    fn hash_lines_are_payloads_where_the_file_says_so_and_tabs_end_payloads_where_they_describe() {
        let mut counts = Loaded::default();
        assert_eq!(payload_lines("ssti.fuzz", b"#{7*7}\n", &mut counts), vec![b"#{7*7}".as_slice()]);
        let lines = payload_lines("SQL-Injection", b"||\t\tconcatenate\na\tb\n", &mut counts);
        assert_eq!(lines, vec![b"||".as_slice(), b"a".as_slice()]);
        assert_eq!(payload_lines("other.txt", b"a\tb\n", &mut counts), vec![b"a\tb".as_slice()]);
    }

    #[test]
    fn a_folder_repeating_a_payload_sends_it_once() {
        let dir = std::env::temp_dir().join(format!("eval-attacks-test-{}", std::process::id()));
        let sub = dir.join("Demo").join("Intruder");
        std::fs::create_dir_all(&sub).expect("temp dir");
        std::fs::write(sub.join("a.txt"), "one\ntwo\n").expect("write");
        std::fs::write(sub.join("b.txt"), "two\nthree%0a\n").expect("write");
        std::fs::write(sub.join("Web-files.txt"), "/index.html\n").expect("write");
        let folder = Folder { dir: "Demo", class: None, placements: &[] };
        let loaded = load(&dir, &folder).expect("loads");
        std::fs::remove_dir_all(&dir).ok();
        let texts: Vec<&[u8]> = loaded.payloads.iter().map(|p| p.text.as_slice()).collect();
        assert_eq!(texts, vec![b"one".as_slice(), b"two", b"three%0a"]);
        assert!(loaded.payloads.get(2).is_some_and(|p| p.url_encoded));
        assert_eq!((loaded.files, loaded.lines, loaded.word_lists.len()), (3, 4, 1));
        assert_eq!(loaded.file_names, vec!["a.txt", "b.txt"]);
        assert_eq!(loaded.origin, vec![0, 0, 1]);
    }
}

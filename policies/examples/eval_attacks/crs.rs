//! The OWASP CRS regression tests (ftw v2 YAML): their attack stages rebuilt as requests.
//!
//! A stage is an attack when `output.log.expect_ids` is non-empty (`no_expect_ids` alone only says one rule must
//! not fire; such stages are counted, not scored). The request is rebuilt from `input`: `method`, `uri` split into
//! path and query, `headers` (names lower-cased; `cookie` among them), and `data` as the body with the stage's
//! `Content-Type`, or `application/x-www-form-urlencoded` when it has none (what the test tool sends by default,
//! and how the CRS rules read such bodies). A stage given as `encoded_request` (base64 of a raw request) is not
//! parsed: it is counted as skipped.

use std::path::{Path, PathBuf};

use saphyr::{LoadableYamlNode, Scalar, Yaml};

use crate::request::{OwnedPart, Request};

/// The request-side families scored, by rule-id prefix.
pub const FAMILIES: &[(&str, &str)] = &[
    ("930", "LFI"),
    ("931", "RFI"),
    ("932", "RCE"),
    ("933", "PHP"),
    ("934", "generic"),
    ("941", "XSS"),
    ("942", "SQLi"),
    ("944", "Java/Log4Shell"),
];

/// One family's stages.
#[derive(Debug, Default)]
pub struct Family {
    /// Attack stages rebuilt as requests, with `file#test_id` for `--misses`.
    pub attacks: Vec<(String, Request)>,
    /// Stages without `expect_ids` (not scored).
    pub not_attacks: usize,
    /// Attack stages given as `encoded_request` (not parsed).
    pub encoded_skipped: usize,
    /// Files that are not valid YAML of the expected shape.
    pub unreadable: Vec<String>,
}

/// Reads the families under `root` (the corpus folder, holding `tests/regression/tests/REQUEST-9xx-*/`).
pub fn load(root: &Path) -> Result<Vec<(&'static str, &'static str, Family)>, String> {
    let tests = root.join("tests/regression/tests");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&tests)
        .map_err(|e| format!("{}: {e}", tests.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    let mut families = Vec::new();
    for &(prefix, title) in FAMILIES {
        let mut family = Family::default();
        let wanted = format!("REQUEST-{prefix}-");
        let mut files = Vec::new();
        for dir in dirs.iter().filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&wanted))) {
            for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
                let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    files.push(path);
                }
            }
        }
        if files.is_empty() {
            return Err(format!("{}: no REQUEST-{prefix}-* tests", tests.display()));
        }
        files.sort();
        for file in files {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            if read_file(&name, &text, &mut family).is_none() {
                family.unreadable.push(name);
            }
        }
        families.push((prefix, title, family));
    }
    Ok(families)
}

/// Adds one file's stages to `family`; `None` when it is not ftw YAML.
fn read_file(name: &str, text: &str, family: &mut Family) -> Option<()> {
    let docs = Yaml::load_from_str(text).ok()?;
    let tests = docs.first()?.as_mapping_get("tests")?.as_vec()?;
    for test in tests {
        let id = test.as_mapping_get("test_id").and_then(scalar).unwrap_or_default();
        for stage in test.as_mapping_get("stages")?.as_vec()? {
            // Older files wrap each stage in `stage:`.
            let stage = stage.as_mapping_get("stage").unwrap_or(stage);
            let attack = stage
                .as_mapping_get("output")
                .and_then(|o| o.as_mapping_get("log"))
                .and_then(|l| l.as_mapping_get("expect_ids"))
                .and_then(Yaml::as_vec)
                .is_some_and(|ids| !ids.is_empty());
            if !attack {
                family.not_attacks += 1;
                continue;
            }
            let input = stage.as_mapping_get("input")?;
            if input.as_mapping_get("encoded_request").is_some() {
                family.encoded_skipped += 1;
                continue;
            }
            family.attacks.push((format!("{name}#{id}"), request(input)));
        }
    }
    Some(())
}

/// The request a stage's `input` describes.
fn request(input: &Yaml<'_>) -> Request {
    let uri = input.as_mapping_get("uri").and_then(scalar).unwrap_or_else(|| "/".to_string());
    let (path, query) = match uri.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (uri.as_str(), None),
    };
    let mut headers = Vec::new();
    if let Some(map) = input.as_mapping_get("headers").and_then(Yaml::as_mapping) {
        for (name, value) in map {
            if let (Some(name), Some(value)) = (scalar(name), scalar(value)) {
                headers.push((name.to_ascii_lowercase().into_bytes(), value.into_bytes()));
            }
        }
    }
    let mut parts = vec![OwnedPart::Path(path.as_bytes().to_vec())];
    if let Some(query) = query {
        parts.push(OwnedPart::Query(query.as_bytes().to_vec()));
    }
    let content_type = headers
        .iter()
        .find(|(name, _)| name == b"content-type")
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| b"application/x-www-form-urlencoded".to_vec());
    parts.push(OwnedPart::Headers(headers));
    if let Some(data) = input.as_mapping_get("data").and_then(scalar).filter(|d| !d.is_empty()) {
        parts.push(OwnedPart::Body { content_type, body: data.into_bytes() });
    }
    Request { parts }
}

/// A scalar node as text (`port: 80` and `"80"` alike).
fn scalar(node: &Yaml<'_>) -> Option<String> {
    match node {
        Yaml::Value(Scalar::String(s)) => Some(s.to_string()),
        Yaml::Value(Scalar::Integer(i)) => Some(i.to_string()),
        Yaml::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
        Yaml::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        Yaml::Representation(s, _, _) => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGES: &str = r#"
rule_id: 999001
tests:
  - test_id: 1
    stages:
      - input:
          method: POST
          uri: "/post?a=1&b=2"
          headers:
            Host: localhost
            Cookie: "s=x"
          data: "v=1"
        output:
          log:
            expect_ids: [999001]
  - test_id: 2
    stages:
      - input:
          uri: "/get"
          headers:
            Content-Type: application/json
          data: '{"a": 1}'
        output:
          log:
            no_expect_ids: [999001]
  - test_id: 3
    stages:
      - input:
          encoded_request: "R0VUIC8gSFRUUC8xLjENCg0K"
        output:
          log:
            expect_ids: [999001]
"#;

    #[test]
    fn attack_stages_become_requests_and_the_rest_is_counted() {
        let mut family = Family::default();
        assert!(read_file("999001.yaml", STAGES, &mut family).is_some());
        assert_eq!((family.attacks.len(), family.not_attacks, family.encoded_skipped), (1, 1, 1));
        let (id, request) = family.attacks.first().expect("one attack");
        assert_eq!(id, "999001.yaml#1");
        assert_eq!(
            request.parts,
            vec![
                OwnedPart::Path(b"/post".to_vec()),
                OwnedPart::Query(b"a=1&b=2".to_vec()),
                OwnedPart::Headers(vec![
                    (b"host".to_vec(), b"localhost".to_vec()),
                    (b"cookie".to_vec(), b"s=x".to_vec())
                ]),
                OwnedPart::Body { content_type: b"application/x-www-form-urlencoded".to_vec(), body: b"v=1".to_vec() },
            ]
        );
    }

    #[test]
    fn a_file_of_another_shape_is_unreadable() {
        let mut family = Family::default();
        assert!(read_file("x.yaml", "just: text", &mut family).is_none());
        assert!(read_file("y.yaml", "tests: [", &mut family).is_none());
    }
}

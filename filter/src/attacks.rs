//! Attack detections in the filter: which checks a bundle asks for, running them on the request's parts, and the
//! evidence (`attacks=sqli@query.q,xss@body.comment`): class, place and parameter name, never the value.
//!
//! The path, query and headers are inspected with the request headers (so a rule on them decides before anything
//! goes upstream); the body once it is complete or past the inspection cap.

use std::cell::RefCell;

use portcullis_policies::attacks::values::{Check, Findings, Inspector, Limits, Part};
use portcullis_policies::attacks::Place;
use portcullis_policies::detect::Exclusion;
use portcullis_policies::scan;
use portcullis_policies::Bundle;

use crate::metrics::Metrics;

/// The bundle's attack detections, prepared once per bundle and VM.
#[derive(Debug, Default)]
pub struct AttackPlan {
    /// One check per attack detection, in bundle order, without exclusions: what most requests run as they are.
    checks: Vec<Check<'static>>,
    /// The detection index of each check.
    detections: Vec<u16>,
    /// The exclusions of each check.
    exclusions: Vec<Vec<Exclusion>>,
    /// Places some check looks at that come with the request headers.
    header_places: u8,
    /// Some check looks at the body.
    body: bool,
    /// The inspector's scratch space, reused by every request of this VM.
    inspector: RefCell<Option<Inspector>>,
}

/// The places that come with the request headers.
const HEADER_PLACES: u8 =
    (1 << Place::Path as u8) | (1 << Place::Query as u8) | (1 << Place::Header as u8) | (1 << Place::Cookie as u8);

impl AttackPlan {
    /// The attack detections of `bundle`.
    pub fn new(bundle: &Bundle) -> AttackPlan {
        let mut plan = AttackPlan::default();
        for (index, detection) in bundle.detections().iter().enumerate() {
            let (Some(attack), Ok(index)) = (&detection.attack, u16::try_from(index)) else { continue };
            let check =
                Check { class: attack.class, sensitivity: attack.sensitivity, places: attack.places, skip: &[] };
            plan.header_places |= attack.places & HEADER_PLACES;
            plan.body |= attack.places & !HEADER_PLACES != 0;
            plan.checks.push(check);
            plan.detections.push(index);
            plan.exclusions.push(attack.exclude.clone());
        }
        if !plan.checks.is_empty() {
            *plan.inspector.borrow_mut() = Some(Inspector::new(Limits::default()));
        }
        plan
    }

    /// True when the bundle has no attack detection.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// True when some attack detection looks at request headers or cookies.
    pub fn reads_headers(&self) -> bool {
        self.header_places & ((1 << Place::Header as u8) | (1 << Place::Cookie as u8)) != 0
    }

    /// True when some attack detection looks at the request body.
    pub fn reads_body(&self) -> bool {
        self.body
    }

    /// Inspects the path, query and headers, as far as some check looks at them.
    pub fn inspect_headers(
        &self,
        path: &[u8],
        query: &[u8],
        headers: &[(&[u8], &[u8])],
        endpoint: &[u8],
        findings: &mut Findings,
    ) {
        if self.header_places == 0 {
            return;
        }
        let place = |p: Place| self.header_places & (1 << p as u8) != 0;
        let mut parts: [Option<Part<'_>>; 3] = [None, None, None];
        if place(Place::Path) {
            parts[0] = Some(Part::Path(path));
        }
        if place(Place::Query) && !query.is_empty() {
            parts[1] = Some(Part::Query(query));
        }
        if place(Place::Header) || place(Place::Cookie) {
            parts[2] = Some(Part::Headers(headers));
        }
        self.run(parts.iter().flatten().copied(), endpoint, findings);
    }

    /// Inspects a complete request body (content coding still on): what cannot be decoded is uninspectable.
    pub fn inspect_body(
        &self,
        content_type: Option<&[u8]>,
        content_encoding: Option<&[u8]>,
        body: &[u8],
        cap: usize,
        endpoint: &[u8],
        findings: &mut Findings,
    ) {
        if !self.body || body.is_empty() {
            return;
        }
        match scan::decode_body(content_encoding, body, cap) {
            Some(decoded) => {
                let part = Part::Body { content_type: content_type.unwrap_or_default(), body: &decoded };
                self.run(std::iter::once(part), endpoint, findings);
            }
            None => findings.uninspectable = true,
        }
    }

    /// Runs every check on `parts`, with the exclusions that apply to `endpoint`.
    fn run<'p>(&self, parts: impl Iterator<Item = Part<'p>>, endpoint: &[u8], findings: &mut Findings) {
        let Ok(mut slot) = self.inspector.try_borrow_mut() else { return };
        let Some(inspector) = slot.as_mut() else { return };
        let applies = |e: &Exclusion| e.endpoint.is_empty() || e.endpoint.as_bytes() == endpoint;
        if !self.exclusions.iter().flatten().any(applies) {
            // No exclusion on this endpoint (most requests): the prepared checks, nothing allocated.
            for part in parts {
                inspector.inspect(part, &self.checks, findings);
            }
            return;
        }
        // The parameters each check skips on this endpoint.
        let skips: Vec<Vec<&[u8]>> = self
            .exclusions
            .iter()
            .map(|exclude| exclude.iter().filter(|e| applies(e)).map(|e| e.param.as_bytes()).collect())
            .collect();
        let checks: Vec<Check<'_>> =
            self.checks.iter().zip(&skips).map(|(check, skip)| Check { skip, ..*check }).collect();
        for part in parts {
            inspector.inspect(part, &checks, findings);
        }
    }

    /// The detection index of each check that fired, and how often, for the engine's `detected()`.
    pub fn counts<'a>(&'a self, findings: &'a Findings) -> impl Iterator<Item = (u16, u32)> + 'a {
        self.detections.iter().enumerate().filter_map(|(i, detection)| {
            let fired = findings.fired & (1u64 << i.min(63)) != 0;
            let named = findings.items.iter().flatten().filter(|f| usize::from(f.check) == i).count();
            fired.then(|| (*detection, u32::try_from(named.max(1)).unwrap_or(u32::MAX)))
        })
    }

    /// Counts each finding's class in the stats.
    pub fn count_classes(findings: &Findings, metrics: &Metrics) {
        for finding in findings.items.iter().flatten() {
            Metrics::add_later(metrics.attacks.get(finding.class as usize).copied().flatten(), 1);
        }
    }
}

/// The evidence of attack findings: `sqli@query.q,xss@body.comment`. Parameter names are the attacker's: anything
/// but letters, digits and `._-[]$` is written as `\xNN`, and a name cut at the inspector's limit ends in `~`.
pub fn evidence(findings: &Findings) -> Option<String> {
    let mut out = String::new();
    for finding in findings.items.iter().flatten() {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(finding.class.name());
        out.push('@');
        out.push_str(finding.place.evidence_name());
        let name = finding.name.get(..usize::from(finding.name_len)).unwrap_or_default();
        if !name.is_empty() {
            out.push('.');
        }
        for &b in name {
            if b.is_ascii_alphanumeric() || b"._-[]$".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        if usize::from(finding.name_len) >= portcullis_policies::attacks::values::MAX_NAME {
            out.push('~');
        }
    }
    let more = findings.total.saturating_sub(findings.items.iter().flatten().count() as u32);
    if more > 0 {
        out.push_str(&format!(",+{more}"));
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_policies::attacks::values::{Finding, MAX_NAME};
    use portcullis_policies::attacks::AttackClass;

    fn finding(class: AttackClass, place: Place, name: &[u8]) -> Finding {
        let mut bytes = [0u8; MAX_NAME];
        let len = name.len().min(MAX_NAME);
        bytes[..len].copy_from_slice(&name[..len]);
        Finding { check: 0, class, place, name: bytes, name_len: len as u8 }
    }

    #[test]
    fn evidence_names_class_place_and_parameter_never_the_value() {
        let mut findings = Findings::default();
        findings.items[0] = Some(finding(AttackClass::Sqli, Place::Query, b"q"));
        findings.items[1] = Some(finding(AttackClass::Xss, Place::Json, b"user.comment"));
        findings.total = 2;
        assert_eq!(evidence(&findings).unwrap(), "sqli@query.q,xss@body.user.comment");
    }

    #[test]
    fn hostile_names_are_escaped_and_cut_names_marked() {
        let mut findings = Findings::default();
        findings.items[0] = Some(finding(AttackClass::PathTraversal, Place::Query, b"a b\"=,\xff"));
        findings.items[1] = Some(finding(AttackClass::Xss, Place::Header, &[b'x'; 80]));
        findings.total = 5;
        let line = evidence(&findings).unwrap();
        assert!(line.starts_with("path_traversal@query.a\\x20b\\x22\\x3d\\x2c\\xff,xss@header.xxx"), "{line}");
        assert!(line.ends_with("x~,+3"), "{line}");
        assert!(line.bytes().all(|b| b.is_ascii_graphic()), "{line}");
        assert_eq!(evidence(&Findings::default()), None);
    }
}

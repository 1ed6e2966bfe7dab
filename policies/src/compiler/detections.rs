//! The sensitive-data tables of a policy while it compiles: the classifiers it declares, the detections that use
//! them (declared ones first, then the implicit `classifier@location` ones of `detected("c", "loc")`), and at the
//! end the scan set each location needs.

use crate::bundle::{MAX_DETECTION_ITEMS, MAX_DFAS};
use crate::detect::{AttackDef, ClassifierDef, DetectionDef, Location, ScanSetDef};
use crate::scan::builtin::{self, Builtin, BUILTINS};

/// Builds one location's multi-pattern DFA from `(pattern, classifier index)` pairs (`scan_set::build_scan_set`);
/// a parameter so the compiler's own tests can supply a builder.
pub(crate) type ScanSetBuilder = fn(&[(&str, u16)]) -> Result<(Vec<u8>, Vec<u16>), String>;

/// A classifier declared under `classifiers:`.
#[derive(Clone, Debug)]
pub(crate) struct CustomClassifier {
    /// What travels in the bundle when a detection uses it.
    pub def: ClassifierDef,
    /// Its regex, as written.
    pub pattern: String,
    /// 1-based line and column of the `pattern` value, for scan-set errors.
    pub pattern_at: (usize, usize),
}

/// What a classifier name resolves to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ClassifierRef {
    /// A built-in classifier.
    Builtin(&'static Builtin),
    /// Custom classifier number `.0`, in declaration order.
    Custom(usize),
}

/// Why the scan sets could not be built: a message, and the custom pattern at fault when one is.
#[derive(Debug)]
pub(crate) struct ScanSetError {
    /// 1-based line and column of the offending `pattern` value; `None` when no single pattern is to blame.
    pub at: Option<(usize, usize)>,
    /// The message.
    pub message: String,
}

/// The finished tables, ready for a bundle.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Every classifier a detection uses, in first-use order.
    pub classifiers: Vec<ClassifierDef>,
    /// Declared detections in policy order, then implicit ones in first-use order.
    pub detections: Vec<DetectionDef>,
    /// The scan set of each location, by [`Location::index`].
    pub scan_sets: [Option<ScanSetDef>; 3],
}

/// The tables being built.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    custom: Vec<CustomClassifier>,
    /// The bundle's classifiers in first-use order, each with where it came from (for its pattern).
    used: Vec<(ClassifierRef, ClassifierDef)>,
    detections: Vec<DetectionDef>,
    /// How many of `detections` were declared in the policy (they come first).
    declared: usize,
}

impl Tables {
    /// Adds a custom classifier; the caller has checked its id.
    pub(crate) fn add_custom(&mut self, classifier: CustomClassifier) {
        self.custom.push(classifier);
    }

    /// Resolves a classifier name: a custom classifier, or a built-in (ids cannot clash).
    pub(crate) fn classifier(&self, name: &str) -> Option<ClassifierRef> {
        if let Some(index) = self.custom.iter().position(|c| c.def.id == name) {
            return Some(ClassifierRef::Custom(index));
        }
        builtin::builtin(name).map(ClassifierRef::Builtin)
    }

    /// Every classifier name, built-ins first, for "known: ..." in messages.
    pub(crate) fn known_classifiers(&self) -> String {
        BUILTINS
            .iter()
            .map(|b| b.id)
            .chain(self.custom.iter().map(|c| c.def.id.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The message for an unknown classifier name, listing the known ones.
    pub(crate) fn unknown_classifier(&self, name: &str) -> String {
        format!("unknown classifier '{name}' (known: {})", self.known_classifiers())
    }

    /// The built-in classifier `classifier` is layered on, if any.
    pub(crate) fn layered_on(classifier: ClassifierRef) -> Option<&'static str> {
        match classifier {
            ClassifierRef::Builtin(b) => b.requires,
            ClassifierRef::Custom(_) => None,
        }
    }

    /// Adds a detection declared under `detections:`. All declared detections come before any implicit one.
    pub(crate) fn declare(
        &mut self,
        id: String,
        classifier: ClassifierRef,
        location: Location,
        requires: Option<u16>,
    ) -> Result<u16, String> {
        let index = self.push(id, classifier, location, requires)?;
        self.declared = self.detections.len();
        Ok(index)
    }

    /// Adds an attack detection declared under `detections:`, decided in the phase of `location`.
    pub(crate) fn declare_attack(&mut self, id: String, attack: AttackDef, location: Location) -> Result<u16, String> {
        if self.detections.len() >= MAX_DETECTION_ITEMS {
            return Err(too_many_detections());
        }
        let index = u16::try_from(self.detections.len()).map_err(|_| too_many_detections())?;
        self.detections.push(DetectionDef { id, classifier: 0, location, requires: None, attack: Some(attack) });
        self.declared = self.detections.len();
        Ok(index)
    }

    /// The index of the declared detection `id`.
    pub(crate) fn declared(&self, id: &str) -> Option<u16> {
        let index = self.detections.iter().take(self.declared).position(|d| d.id == id)?;
        u16::try_from(index).ok()
    }

    /// The ids of the declared detections, for "known: ..." in messages.
    pub(crate) fn declared_ids(&self) -> Vec<&str> {
        self.detections.iter().take(self.declared).map(|d| d.id.as_str()).collect()
    }

    /// Detection number `index`.
    pub(crate) fn detection(&self, index: u16) -> Option<&DetectionDef> {
        self.detections.get(usize::from(index))
    }

    /// The id of the classifier detection number `index` uses.
    pub(crate) fn detection_classifier(&self, index: u16) -> Option<&str> {
        let detection = self.detection(index)?;
        if let Some(attack) = &detection.attack {
            return Some(attack.class.name());
        }
        let (_, def) = self.used.get(usize::from(detection.classifier))?;
        Some(&def.id)
    }

    /// Every detection so far, indexed by `Node::Detected`.
    pub(crate) fn detections(&self) -> &[DetectionDef] {
        &self.detections
    }

    /// The implicit detection `classifier@location` of `detected("classifier", "location")`, added on first use.
    pub(crate) fn implicit(&mut self, classifier: ClassifierRef, location: Location) -> Result<u16, String> {
        let id = format!("{}@{}", self.classifier_id(classifier), location.name());
        if let Some(index) = self.detections.iter().skip(self.declared).position(|d| d.id == id) {
            return u16::try_from(self.declared + index).map_err(|_| too_many_detections());
        }
        self.push(id, classifier, location, None)
    }

    fn classifier_id(&self, classifier: ClassifierRef) -> &str {
        match classifier {
            ClassifierRef::Builtin(b) => b.id,
            ClassifierRef::Custom(i) => self.custom.get(i).map_or("", |c| c.def.id.as_str()),
        }
    }

    fn push(
        &mut self,
        id: String,
        classifier: ClassifierRef,
        location: Location,
        requires: Option<u16>,
    ) -> Result<u16, String> {
        if self.detections.len() >= MAX_DETECTION_ITEMS {
            return Err(too_many_detections());
        }
        let index = u16::try_from(self.detections.len()).map_err(|_| too_many_detections())?;
        let classifier = self.intern(classifier)?;
        self.detections.push(DetectionDef { id, classifier, location, requires, attack: None });
        Ok(index)
    }

    /// The bundle index of `classifier`, adding it on first use.
    fn intern(&mut self, classifier: ClassifierRef) -> Result<u16, String> {
        let id = self.classifier_id(classifier).to_owned();
        let index = match self.used.iter().position(|(_, def)| def.id == id) {
            Some(index) => index,
            None => {
                let def = match classifier {
                    ClassifierRef::Builtin(b) => builtin_def(b),
                    ClassifierRef::Custom(i) => {
                        self.custom.get(i).map(|c| c.def.clone()).ok_or_else(|| format!("unknown classifier '{id}'"))?
                    }
                };
                self.used.push((classifier, def));
                self.used.len() - 1
            }
        };
        if index >= MAX_DETECTION_ITEMS {
            return Err(format!("too many classifiers in use (at most {MAX_DETECTION_ITEMS})"));
        }
        u16::try_from(index).map_err(|_| format!("too many classifiers in use (at most {MAX_DETECTION_ITEMS})"))
    }

    fn pattern(&self, classifier: ClassifierRef) -> (&str, Option<(usize, usize)>) {
        match classifier {
            ClassifierRef::Builtin(b) => (b.pattern, None),
            ClassifierRef::Custom(i) => {
                self.custom.get(i).map_or(("", None), |c| (c.pattern.as_str(), Some(c.pattern_at)))
            }
        }
    }

    /// Builds the scan set of every location a detection looks in, appending its DFA to `dfas`.
    pub(crate) fn finish(self, dfas: &mut Vec<Vec<u8>>, build: ScanSetBuilder) -> Result<Finished, ScanSetError> {
        let mut scan_sets: [Option<ScanSetDef>; 3] = [None, None, None];
        for location in Location::ALL {
            // The distinct classifiers this location looks for, in first-use order.
            let mut members: Vec<u16> = Vec::new();
            for d in self.detections.iter().filter(|d| d.location == location && d.scans()) {
                if !members.contains(&d.classifier) {
                    members.push(d.classifier);
                }
            }
            if members.is_empty() {
                continue;
            }
            let mut patterns = Vec::with_capacity(members.len());
            for &member in &members {
                let (source, _) = self.used.get(usize::from(member)).ok_or_else(|| ScanSetError {
                    at: None,
                    message: "internal error: a detection names a classifier not in the table".to_owned(),
                })?;
                patterns.push((*source, member));
            }
            let (dfa, pattern_classifiers) = self.build_one(location, &patterns, build)?;
            if dfas.len() >= MAX_DFAS {
                return Err(ScanSetError {
                    at: None,
                    message: format!(
                        "too many distinct regexes (at most {MAX_DFAS} DFAs per policy, scan sets included)"
                    ),
                });
            }
            let index = u32::try_from(dfas.len())
                .map_err(|_| ScanSetError { at: None, message: "too many DFAs".to_owned() })?;
            dfas.push(dfa);
            if let Some(slot) = scan_sets.get_mut(location.index()) {
                *slot = Some(ScanSetDef { dfa: index, patterns: pattern_classifiers });
            }
        }
        Ok(Finished {
            classifiers: self.used.into_iter().map(|(_, def)| def).collect(),
            detections: self.detections,
            scan_sets,
        })
    }

    /// Builds one location's DFA; when that fails, blames the first custom pattern that fails on its own.
    fn build_one(
        &self,
        location: Location,
        members: &[(ClassifierRef, u16)],
        build: ScanSetBuilder,
    ) -> Result<(Vec<u8>, Vec<u16>), ScanSetError> {
        let inputs: Vec<(&str, u16)> = members.iter().map(|&(c, i)| (self.pattern(c).0, i)).collect();
        let message = match build(&inputs) {
            Ok(built) => return Ok(built),
            Err(message) => message,
        };
        for &(classifier, index) in members {
            if let (pattern, Some(at)) = self.pattern(classifier) {
                if let Err(alone) = build(&[(pattern, index)]) {
                    return Err(ScanSetError { at: Some(at), message: alone });
                }
            }
        }
        Err(ScanSetError { at: None, message: format!("cannot build the scan set of {}: {message}", location.name()) })
    }
}

/// The message for an unknown location name, listing the known ones.
pub(crate) fn unknown_location(name: &str) -> String {
    let known: Vec<&str> = Location::ALL.iter().map(|l| l.name()).collect();
    format!("unknown location '{name}' (expected one of: {})", known.join(", "))
}

/// A built-in classifier as it travels in a bundle.
fn builtin_def(b: &Builtin) -> ClassifierDef {
    ClassifierDef {
        id: b.id.to_owned(),
        validator: b.validator,
        context: b.context.iter().map(|k| (*k).to_owned()).collect(),
        context_window: b.context_window,
        max_len: b.max_len,
        confidence: b.confidence,
    }
}

fn too_many_detections() -> String {
    format!(
        "too many detections (at most {MAX_DETECTION_ITEMS}, counting those detected(\"classifier\", \"location\") \
         adds)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Validator;

    fn custom(id: &str, pattern: &str) -> CustomClassifier {
        CustomClassifier {
            def: ClassifierDef {
                id: id.into(),
                validator: Validator::None,
                context: vec![],
                context_window: 0,
                max_len: 10,
                confidence: 80,
            },
            pattern: pattern.into(),
            pattern_at: (7, 14),
        }
    }

    fn fake(patterns: &[(&str, u16)]) -> Result<(Vec<u8>, Vec<u16>), String> {
        if patterns.iter().any(|(p, _)| p.contains("BAD")) {
            return Err("bad regex: nope".into());
        }
        Ok((vec![patterns.len() as u8], patterns.iter().map(|p| p.1).collect()))
    }

    #[test]
    fn classifiers_are_shared_and_implicit_detections_deduplicated() {
        let mut t = Tables::default();
        t.add_custom(custom("emp", "EMP-[0-9]{6}"));
        let card = t.classifier("credit_card").unwrap();
        let emp = t.classifier("emp").unwrap();
        assert!(t.classifier("nope").is_none());
        let builtins: Vec<&str> = BUILTINS.iter().map(|b| b.id).collect();
        assert_eq!(t.known_classifiers(), format!("{}, emp", builtins.join(", ")));
        assert_eq!(t.declare("a".into(), card, Location::ResponseBody, None), Ok(0));
        assert_eq!(t.declare("b".into(), emp, Location::ResponseBody, None), Ok(1));
        assert_eq!(t.implicit(card, Location::RequestQuery), Ok(2));
        assert_eq!(t.implicit(card, Location::RequestQuery), Ok(2));
        assert_eq!(t.implicit(emp, Location::RequestQuery), Ok(3));
        assert_eq!(t.declared("a"), Some(0));
        assert_eq!(t.declared("credit_card@request.query"), None, "implicit ids are not declared names");
        assert_eq!(t.declared_ids(), ["a", "b"]);
        assert_eq!(t.detection_classifier(3), Some("emp"));
        let mut dfas = vec![vec![9u8]];
        let f = t.finish(&mut dfas, fake).unwrap();
        assert_eq!(f.classifiers.len(), 2);
        assert_eq!(f.detections[2].id, "credit_card@request.query");
        assert_eq!(dfas, [vec![9], vec![2], vec![2]]);
        assert_eq!(f.scan_sets[0], Some(ScanSetDef { dfa: 1, patterns: vec![0, 1] }));
        assert_eq!(f.scan_sets[1], None);
        assert_eq!(f.scan_sets[2].as_ref().map(|s| s.dfa), Some(2));
    }

    #[test]
    fn scan_set_errors_blame_the_custom_pattern() {
        let mut t = Tables::default();
        t.add_custom(custom("emp", "BAD"));
        let emp = t.classifier("emp").unwrap();
        t.declare("a".into(), t.classifier("credit_card").unwrap(), Location::RequestBody, None).unwrap();
        t.declare("b".into(), emp, Location::RequestBody, None).unwrap();
        let e = t.finish(&mut vec![], fake).unwrap_err();
        assert_eq!((e.at, e.message.as_str()), (Some((7, 14)), "bad regex: nope"));
    }

    #[test]
    fn detections_are_bounded() {
        let mut t = Tables::default();
        let card = t.classifier("credit_card").unwrap();
        for i in 0..MAX_DETECTION_ITEMS {
            t.declare(format!("d{i}"), card, Location::RequestBody, None).unwrap();
        }
        assert!(t.implicit(card, Location::RequestQuery).unwrap_err().starts_with("too many detections (at most 256"));
    }
}

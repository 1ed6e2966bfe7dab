//! Attack detections in a policy: `classifier:` names an attack class (`sqli`, `xss`, ...), `in:` where in the
//! request it looks, `sensitivity:` how eagerly, `exclude:` the parameters it skips on given endpoints.
//!
//! ```yaml
//! detections:
//!   - id: sqli
//!     classifier: sqli
//!     in: request              # request.path | request.query | request.headers | request.body | request, or a list
//!     sensitivity: medium      # low | medium (default) | high
//!     exclude:
//!       - { endpoint: "POST api.example.com/comments", param: body.html }
//! ```

use saphyr::{MarkedYaml, YamlData};

use super::{field, Compiler, Fields, PolicyError};
use crate::attacks::{AttackClass, Place, Sensitivity};
use crate::compiler::detections::Tables;
use crate::detect::{AttackDef, Exclusion, Location};

/// Keys of an attack detection.
pub(super) const ATTACK_DETECTION_KEYS: &str = "id, classifier, in, sensitivity, exclude";
/// Keys of an exclusion.
const EXCLUSION_KEYS: &str = "endpoint, param";
/// The most exclusions one detection may have.
const MAX_EXCLUSIONS: usize = 256;
/// The longest exclusion endpoint or parameter, in bytes.
const MAX_EXCLUSION_LEN: usize = 512;

/// Where an attack detection may look, by its `in:` name: the places, and the phase it is decided in.
const LOCATIONS: [(&str, &[Place], Location); 5] = [
    ("request.path", &[Place::Path], Location::RequestQuery),
    ("request.query", &[Place::Query], Location::RequestQuery),
    ("request.headers", &[Place::Header, Place::Cookie], Location::RequestQuery),
    ("request.body", &[Place::Form, Place::Json, Place::Xml, Place::Body], Location::RequestBody),
    (
        "request",
        &[Place::Path, Place::Query, Place::Header, Place::Cookie, Place::Form, Place::Json, Place::Xml, Place::Body],
        Location::RequestBody,
    ),
];

/// What a parameter's prefix in an exclusion (`body.html`) names.
const PARAM_PREFIXES: [&str; 5] = ["path", "query", "header", "cookie", "body"];

impl Compiler<'_> {
    /// An attack detection (the caller saw an attack class in `classifier:`), declared in `tables`.
    pub(super) fn attack_detection(
        &self,
        fields: &Fields<'_, '_>,
        node: &MarkedYaml<'_>,
        id: String,
        class: AttackClass,
        tables: &mut Tables,
    ) -> Result<(), PolicyError> {
        let owner = format!("detection '{id}'");
        let in_node = self.required(fields, "in", node, &owner)?;
        // `in:` is one location or a list of them: the places add up, the latest phase decides.
        let names: Vec<&MarkedYaml<'_>> = match &in_node.data {
            YamlData::Sequence(items) if !items.is_empty() => items.iter().collect(),
            YamlData::Sequence(_) => return Err(self.error(in_node, format!("'in' of detection '{id}' is empty"))),
            _ => vec![in_node],
        };
        let (mut places, mut location) = (0u8, Location::RequestQuery);
        for name_node in names {
            let name = self.text("in", name_node)?;
            let Some((_, these, phase)) = LOCATIONS.iter().find(|(known, _, _)| *known == name) else {
                let known: Vec<&str> = LOCATIONS.iter().map(|(known, _, _)| *known).collect();
                return Err(self.error(
                    name_node,
                    format!("attack detection '{id}' cannot look in '{name}' (expected one of: {})", known.join(", ")),
                ));
            };
            places |= these.iter().fold(0u8, |bits, place| bits | place.bit());
            location = location.max(*phase);
        }
        let sensitivity = match field(fields, "sensitivity") {
            None => Sensitivity::default(),
            Some(value) => {
                let name = self.text("sensitivity", value)?;
                Sensitivity::from_name(&name).ok_or_else(|| {
                    self.error(value, format!("unknown sensitivity '{name}' (expected one of: low, medium, high)"))
                })?
            }
        };
        let exclude = match field(fields, "exclude") {
            None => Vec::new(),
            Some(value) => self.exclusions(&id, self.sequence("exclude", value)?)?,
        };
        let attack = AttackDef { class, sensitivity, places, exclude };
        tables.declare_attack(id, attack, location).map_err(|message| self.error(node, message))?;
        Ok(())
    }

    fn exclusions(&self, id: &str, items: &[MarkedYaml<'_>]) -> Result<Vec<Exclusion>, PolicyError> {
        let mut exclusions = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if index >= MAX_EXCLUSIONS {
                return Err(
                    self.error(item, format!("too many exclusions in detection '{id}' (at most {MAX_EXCLUSIONS})"))
                );
            }
            let fields = self.fields(item, EXCLUSION_KEYS, "exclusion")?;
            let param_node = self.required(&fields, "param", item, "exclusion")?;
            let param = self.text("param", param_node)?;
            let prefix = param.split('.').next().unwrap_or_default();
            if !PARAM_PREFIXES.contains(&prefix) || param.len() <= prefix.len() + 1 || param.len() > MAX_EXCLUSION_LEN {
                return Err(self.error(
                    param_node,
                    format!(
                        "invalid param '{param}': name it as the verdict does, '<where>.<name>' with <where> one of \
                         {} (e.g. body.comment, query.q, header.referer)",
                        PARAM_PREFIXES.join(", ")
                    ),
                ));
            }
            let endpoint = match field(&fields, "endpoint") {
                None => String::new(),
                Some(value) => {
                    let endpoint = self.text("endpoint", value)?;
                    let valid = endpoint.len() <= MAX_EXCLUSION_LEN
                        && endpoint.split_once(' ').is_some_and(|(method, rest)| {
                            !method.is_empty()
                                && method.bytes().all(|b| b.is_ascii_uppercase())
                                && rest.contains('/')
                                && !rest.contains(' ')
                        });
                    if !valid {
                        return Err(self.error(
                            value,
                            format!(
                                "invalid endpoint '{endpoint}': write it as the verdict's endpoint= shows it, \
                                 'METHOD host/path' (e.g. \"POST api.example.com/comments\")"
                            ),
                        ));
                    }
                    endpoint
                }
            };
            exclusions.push(Exclusion { endpoint, param });
        }
        Ok(exclusions)
    }
}

//! The YAML layer: reads a policy file's structure, checks every key and value, and compiles each section.
//!
//! Sections are compiled in dependency order whatever their order in the file: `inspection`, `tokens`,
//! `classifiers`, `detections` (whose `requires` point backwards), `lists` (declared first, then their `add_when`
//! conditions, which may name any list), then `rules`; the scan sets are built last, once every detection is known.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::bundle::{
    self, BundleContent, MAX_CLASSIFIER_MATCH, MAX_DETECTION_ITEMS, MAX_LIST_ENTRIES, MAX_RULES, MAX_STATIC_ENTRIES,
    MAX_WINDOW_SECONDS,
};
use crate::detect::{ClassifierDef, InspectionDef, ListDef, ListKey, Location, Network, Validator};
use crate::program::{Action, Node, OnUninspectable, Phase, Rule};
use crate::scan::builtin;
use crate::token::TokenPolicy;

use super::check::{compile_condition, Scope};
use super::counters::signatures;
use super::detections::{unknown_location, CustomClassifier, ScanSetBuilder, Tables};
use super::regex::{parse_classifier_pattern, Regexes};
use super::scan_set::build_scan_set;
use super::source::{offset_in_scalar, SourceMap};
use crate::attacks::AttackClass;

mod attacks;

use attacks::ATTACK_DETECTION_KEYS;

/// The only policy language version this compiler reads.
const POLICY_VERSION: i64 = 1;
/// Keys of the top-level mapping.
const POLICY_KEYS: &str = "version, inspection, tokens, classifiers, detections, lists, counters, rules";
/// Keys of a rule.
const RULE_KEYS: &str = "id, when, action, status, list, ttl, retry_after, on_uninspectable";
/// Keys of `inspection`.
const INSPECTION_KEYS: &str = "max_body_bytes, inspect_binary";
/// Keys of a custom classifier.
const CLASSIFIER_KEYS: &str = "id, pattern, validator, context, context_window, confidence, max_length";
/// Keys of a detection.
const DETECTION_KEYS: &str = "id, classifier, in, requires";
/// Keys of a list.
const LIST_KEYS: &str = "id, key, add_when, ttl, max_entries, entries, batched";
/// Detection names starting with this are JWT findings (`detected("jwt.alg_none")`), never declared detections.
pub(super) const JWT_PREFIX: &str = "jwt.";
/// Longest id, in bytes (ids are ASCII).
const MAX_ID_LEN: usize = 64;
/// The status of a block when the rule does not say.
const DEFAULT_STATUS: u16 = 403;
/// The status of a throttle when the rule does not say.
const THROTTLE_STATUS: u16 = 429;
/// A throttle's `Retry-After` when the rule does not say.
const DEFAULT_RETRY_AFTER: u64 = 60;
/// Most body bytes inspected per direction that a policy may ask for.
const MAX_BODY_BYTES: u32 = 16 * 1024 * 1024;
/// How far before a match a custom classifier looks for context, when it has context and does not say.
const DEFAULT_CONTEXT_WINDOW: u16 = 64;
/// The widest context window: the scanner keeps this much of the stream behind every match.
const MAX_CONTEXT_WINDOW: u16 = 1024;
/// A custom classifier's confidence when it does not say.
const DEFAULT_CONFIDENCE: u8 = 80;
/// A list's capacity when it does not say.
const DEFAULT_MAX_ENTRIES: u32 = 10_000;
const DAY: u64 = 86_400;

/// A policy error with its position (1-based line and column).
#[derive(Debug)]
pub(crate) struct PolicyError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Compiles a policy file to the content of a bundle (everything but the name, revision and compiler version).
pub(crate) fn compile_policy(source: &str) -> Result<BundleContent, PolicyError> {
    compile_policy_with(source, build_scan_set)
}

/// [`compile_policy`], building scan sets with `build`.
fn compile_policy_with(source: &str, build: ScanSetBuilder) -> Result<BundleContent, PolicyError> {
    let compiler = Compiler { map: SourceMap::new(source), build };
    let docs = MarkedYaml::load_from_str(source).map_err(|e| PolicyError {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: format!("invalid YAML: {}", e.info()),
    })?;
    let mut docs = docs.iter();
    let Some(root) = docs.next() else {
        return Err(PolicyError {
            line: 1,
            column: 1,
            message: "empty policy: expected a mapping with keys version and rules".to_owned(),
        });
    };
    if let Some(second) = docs.next() {
        return Err(compiler.error(second, "a policy file holds one YAML document, found a second one"));
    }
    compiler.policy(root)
}

/// The compiler of one policy file: its source map, and how scan sets are built.
pub(super) struct Compiler<'s> {
    map: SourceMap<'s>,
    build: ScanSetBuilder,
}

/// The fields of one mapping, in file order: name, key node, value node.
pub(super) type Fields<'n, 'i> = Vec<(String, &'n MarkedYaml<'i>, &'n MarkedYaml<'i>)>;

/// The value of field `name`, if present.
pub(super) fn field<'n, 'i>(fields: &Fields<'n, 'i>, name: &str) -> Option<&'n MarkedYaml<'i>> {
    fields.iter().find(|(n, _, _)| n == name).map(|&(_, _, v)| v)
}

/// Ids already defined in one namespace, each with its line, for duplicate errors.
type Ids = Vec<(String, usize)>;

impl Compiler<'_> {
    pub(super) fn error(&self, node: &MarkedYaml<'_>, message: impl Into<String>) -> PolicyError {
        self.error_at(node.span.start.line(), node.span.start.col(), message)
    }

    pub(super) fn error_at(&self, line: usize, col: usize, message: impl Into<String>) -> PolicyError {
        PolicyError { line, column: col + 1, message: message.into() }
    }

    /// The fields of a mapping in file order, refusing keys not in `known` (`what` names the mapping).
    pub(super) fn fields<'n, 'i>(
        &self,
        node: &'n MarkedYaml<'i>,
        known: &str,
        what: &str,
    ) -> Result<Fields<'n, 'i>, PolicyError> {
        let YamlData::Mapping(mapping) = &node.data else {
            return Err(self.error(node, format!("{what} must be a mapping with keys {known}, found {}", kind(node))));
        };
        let mut fields = Vec::with_capacity(mapping.len());
        for (key, value) in mapping {
            let name = self.scalar_text(key).unwrap_or_else(|| format!("<{}>", kind(key)));
            if !known.split(", ").any(|k| k == name) {
                return Err(self.error(key, format!("unknown field '{name}' in {what} (expected one of: {known})")));
            }
            fields.push((name, key, value));
        }
        Ok(fields)
    }

    /// The items of a list-valued field.
    pub(super) fn sequence<'n, 'i>(
        &self,
        field: &str,
        node: &'n MarkedYaml<'i>,
    ) -> Result<&'n [MarkedYaml<'i>], PolicyError> {
        match &node.data {
            YamlData::Sequence(items) => Ok(items),
            _ => Err(self.error(node, format!("'{field}' must be a list, found {}", kind(node)))),
        }
    }

    /// The text of a scalar as written: decoded strings, and plain scalars YAML read as another type.
    pub(super) fn scalar_text(&self, node: &MarkedYaml<'_>) -> Option<String> {
        match &node.data {
            YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
            YamlData::Value(Scalar::Null) => None,
            YamlData::Value(_) => {
                let start = self.map.offset(node.span.start.line(), node.span.start.col());
                let end = self.map.offset(node.span.end.line(), node.span.end.col());
                self.map.rest(start).get(..end.saturating_sub(start)).map(str::to_owned)
            }
            _ => None,
        }
    }

    /// A field's value as text, or an error naming what was found instead.
    pub(super) fn text(&self, field: &str, node: &MarkedYaml<'_>) -> Result<String, PolicyError> {
        self.scalar_text(node)
            .ok_or_else(|| self.error(node, format!("'{field}' must be a string, found {}", kind(node))))
    }

    fn int(&self, field: &str, node: &MarkedYaml<'_>) -> Result<i64, PolicyError> {
        match node.data {
            YamlData::Value(Scalar::Integer(i)) => Ok(i),
            _ => Err(self.error(node, format!("'{field}' must be an integer, found {}", kind(node)))),
        }
    }

    /// An integer field in `range`, converted to `T`; the error names the range.
    pub(super) fn int_in<T: TryFrom<i64> + Copy + Into<i64>>(
        &self,
        field: &str,
        node: &MarkedYaml<'_>,
        range: core::ops::RangeInclusive<T>,
    ) -> Result<T, PolicyError> {
        let value = self.int(field, node)?;
        let (low, high) = (*range.start(), *range.end());
        T::try_from(value).ok().filter(|v| (low.into()..=high.into()).contains(&(*v).into())).ok_or_else(|| {
            self.error(node, format!("invalid {field} {value} (expected {} to {})", low.into(), high.into()))
        })
    }

    pub(super) fn bool(&self, field: &str, node: &MarkedYaml<'_>) -> Result<bool, PolicyError> {
        match node.data {
            YamlData::Value(Scalar::Boolean(b)) => Ok(b),
            _ => Err(self.error(node, format!("'{field}' must be true or false, found {}", kind(node)))),
        }
    }

    /// A required field's value, or an error at `node` naming what it belongs to.
    pub(super) fn required<'n, 'i>(
        &self,
        fields: &Fields<'n, 'i>,
        name: &str,
        node: &MarkedYaml<'_>,
        owner: &str,
    ) -> Result<&'n MarkedYaml<'i>, PolicyError> {
        field(fields, name).ok_or_else(|| self.error(node, format!("missing required field '{name}' in {owner}")))
    }

    /// The `id` of an item (`what`: rule, classifier, ...): well formed and not already in `ids`, then added to it.
    pub(super) fn item_id(
        &self,
        fields: &Fields<'_, '_>,
        node: &MarkedYaml<'_>,
        what: &str,
        ids: &mut Ids,
    ) -> Result<String, PolicyError> {
        let id_node = self.required(fields, "id", node, what)?;
        let id = self.text("id", id_node)?;
        if !valid_id(&id) {
            return Err(self.error(
                id_node,
                format!(
                    "invalid {what} id '{id}' (use a-z, 0-9, '.', '_' and '-', starting with a letter or digit, \
                     at most {MAX_ID_LEN} characters)"
                ),
            ));
        }
        if what == "detection" && id.starts_with(JWT_PREFIX) {
            return Err(self.error(
                id_node,
                format!("detection id '{id}' is reserved: ids starting with '{JWT_PREFIX}' name JWT findings"),
            ));
        }
        if what == "classifier" && builtin::builtin(&id).is_some() {
            return Err(self.error(
                id_node,
                format!("classifier id '{id}' is taken by a built-in classifier (choose another id)"),
            ));
        }
        if let Some((_, line)) = ids.iter().find(|(seen, _)| *seen == id) {
            return Err(self.error(id_node, format!("duplicate {what} id '{id}' (first defined at line {line})")));
        }
        ids.push((id.clone(), id_node.span.start.line()));
        Ok(id)
    }

    fn policy(&self, root: &MarkedYaml<'_>) -> Result<BundleContent, PolicyError> {
        let fields = self.fields(root, POLICY_KEYS, "policy")?;
        let missing = |name: &str| self.error(root, format!("missing required field '{name}' in policy"));

        let version = field(&fields, "version").ok_or_else(|| missing("version"))?;
        match self.int("version", version)? {
            POLICY_VERSION => {}
            other => {
                return Err(self.error(
                    version,
                    format!("unsupported policy version {other} (this compiler reads version {POLICY_VERSION})"),
                ));
            }
        }
        let rules = field(&fields, "rules").ok_or_else(|| missing("rules"))?;
        let rules = self.sequence("rules", rules)?;

        let inspection = match field(&fields, "inspection") {
            Some(node) => self.inspection(node)?,
            None => InspectionDef::default(),
        };
        let tokens = match field(&fields, "tokens") {
            Some(node) => Some(self.tokens(node)?),
            None => None,
        };
        let mut tables = Tables::default();
        if let Some(node) = field(&fields, "classifiers") {
            self.classifiers(self.sequence("classifiers", node)?, &mut tables)?;
        }
        if let Some(node) = field(&fields, "detections") {
            self.detections(self.sequence("detections", node)?, &mut tables)?;
        }

        // Lists are declared before any condition compiles: add_when and rules may name any of them.
        let list_items = match field(&fields, "lists") {
            Some(node) => self.sequence("lists", node)?,
            None => &[],
        };
        let mut lists = Vec::with_capacity(list_items.len());
        let mut add_whens = Vec::with_capacity(list_items.len());
        let mut list_ids = Ids::new();
        for (index, item) in list_items.iter().enumerate() {
            if index >= MAX_DETECTION_ITEMS {
                return Err(self.error(item, format!("too many lists (at most {MAX_DETECTION_ITEMS})")));
            }
            let (list, add_when) = self.list(item, &mut list_ids, tokens.as_ref())?;
            lists.push(list);
            add_whens.push(add_when);
        }
        let names: Vec<String> = list_ids.into_iter().map(|(id, _)| id).collect();

        let mut regexes = Regexes::default();
        // Counters first, in a scope without counters: a counter does not read counters.
        let mut counters = Vec::new();
        if let Some(node) = field(&fields, "counters") {
            let mut scope = Scope {
                regexes: &mut regexes,
                tables: &mut tables,
                lists: &names,
                tokens: tokens.as_ref(),
                counters: &[],
            };
            let mut counter_ids = Ids::new();
            for (index, item) in self.sequence("counters", node)?.iter().enumerate() {
                if index >= MAX_DETECTION_ITEMS {
                    return Err(self.error(item, format!("too many counters (at most {MAX_DETECTION_ITEMS})")));
                }
                counters.push(self.counter(item, &mut counter_ids, &mut scope)?);
            }
        }
        let sigs = signatures(&counters);
        let mut scope = Scope {
            regexes: &mut regexes,
            tables: &mut tables,
            lists: &names,
            tokens: tokens.as_ref(),
            counters: &sigs,
        };
        for (list, add_when) in lists.iter_mut().zip(add_whens) {
            if let Some(node) = add_when {
                list.add_when = self.condition("add_when", node, &mut scope)?;
            }
        }
        let mut compiled: Vec<Rule> = Vec::with_capacity(rules.len());
        let mut rule_ids = Ids::new();
        for (index, item) in rules.iter().enumerate() {
            if index >= MAX_RULES {
                return Err(self.error(item, format!("too many rules (at most {MAX_RULES})")));
            }
            compiled.push(self.rule(item, &mut rule_ids, &mut scope, &lists, &counters)?);
        }

        let mut dfas = regexes.into_dfas();
        let finished = tables.finish(&mut dfas, self.build).map_err(|e| {
            let (line, column) = e.at.unwrap_or((1, 1));
            PolicyError { line, column, message: e.message }
        })?;
        Ok(BundleContent {
            rules: compiled,
            dfas,
            classifiers: finished.classifiers,
            detections: finished.detections,
            scan_sets: finished.scan_sets,
            lists,
            inspection,
            tokens,
            counters,
            ..BundleContent::default()
        })
    }

    fn inspection(&self, node: &MarkedYaml<'_>) -> Result<InspectionDef, PolicyError> {
        let fields = self.fields(node, INSPECTION_KEYS, "inspection")?;
        let mut inspection = InspectionDef::default();
        if let Some(value) = field(&fields, "max_body_bytes") {
            inspection.max_body_bytes = self.int_in("max_body_bytes", value, 1..=MAX_BODY_BYTES)?;
        }
        if let Some(value) = field(&fields, "inspect_binary") {
            inspection.inspect_binary = self.bool("inspect_binary", value)?;
        }
        Ok(inspection)
    }

    fn classifiers(&self, items: &[MarkedYaml<'_>], tables: &mut Tables) -> Result<(), PolicyError> {
        let mut ids = Ids::new();
        for (index, item) in items.iter().enumerate() {
            if index >= MAX_DETECTION_ITEMS {
                return Err(self.error(item, format!("too many classifiers (at most {MAX_DETECTION_ITEMS})")));
            }
            let classifier = self.classifier(item, &mut ids)?;
            tables.add_custom(classifier);
        }
        Ok(())
    }

    fn classifier(&self, node: &MarkedYaml<'_>, ids: &mut Ids) -> Result<CustomClassifier, PolicyError> {
        let fields = self.fields(node, CLASSIFIER_KEYS, "classifier")?;
        let id = self.item_id(&fields, node, "classifier", ids)?;
        let owner = format!("classifier '{id}'");

        let pattern_node = self.required(&fields, "pattern", node, &owner)?;
        let pattern = self.text("pattern", pattern_node)?;
        let lengths = parse_classifier_pattern(&pattern).map_err(|message| self.error(pattern_node, message))?;
        if lengths.min == Some(0) {
            return Err(self.error(
                pattern_node,
                "pattern can match the empty string: a classifier must match at least one character",
            ));
        }

        let validator = match field(&fields, "validator") {
            None => Validator::None,
            Some(value) => match self.text("validator", value)?.as_str() {
                "none" => Validator::None,
                "luhn" => Validator::Luhn,
                "mod97" => Validator::Mod97,
                other => {
                    return Err(
                        self.error(value, format!("invalid validator '{other}' (expected one of: none, luhn, mod97)"))
                    );
                }
            },
        };

        let mut context = Vec::new();
        if let Some(value) = field(&fields, "context") {
            for keyword in self.sequence("context", value)? {
                let text = self.text("context", keyword)?;
                if text.trim().is_empty() {
                    return Err(self.error(keyword, "a context keyword must not be empty"));
                }
                context.push(text.to_lowercase());
            }
        }
        let context_window = match field(&fields, "context_window") {
            Some(value) if context.is_empty() => {
                return Err(self.error(
                    value,
                    "'context_window' has no effect without 'context' keywords: add context or remove it",
                ));
            }
            Some(value) => self.int_in("context_window", value, 1..=MAX_CONTEXT_WINDOW)?,
            None if context.is_empty() => 0,
            None => DEFAULT_CONTEXT_WINDOW,
        };
        let confidence = match field(&fields, "confidence") {
            Some(value) => self.int_in("confidence", value, 0..=100u8)?,
            None => DEFAULT_CONFIDENCE,
        };

        let max_len = match field(&fields, "max_length") {
            Some(value) => {
                let max = self.int_in("max_length", value, 1..=MAX_CLASSIFIER_MATCH)?;
                if let Some(min) = lengths.min.filter(|&min| min > usize::from(max)) {
                    return Err(self.error(
                        value,
                        format!("max_length {max} is shorter than the shortest match of the pattern ({min} bytes)"),
                    ));
                }
                max
            }
            None => match lengths.max {
                None => return Err(self.error(pattern_node, "pattern can match unbounded text: set max_length")),
                Some(max) => u16::try_from(max).ok().filter(|&m| m <= MAX_CLASSIFIER_MATCH).ok_or_else(|| {
                    self.error(
                        pattern_node,
                        format!(
                            "pattern can match {max} bytes, more than the {MAX_CLASSIFIER_MATCH} a classifier \
                                 may: set max_length"
                        ),
                    )
                })?,
            },
        };
        Ok(CustomClassifier {
            def: ClassifierDef { id, validator, context, context_window, max_len, confidence },
            pattern,
            pattern_at: (pattern_node.span.start.line(), pattern_node.span.start.col() + 1),
        })
    }

    fn detections(&self, items: &[MarkedYaml<'_>], tables: &mut Tables) -> Result<(), PolicyError> {
        // Every id with its line, so a `requires` that points forward can say so.
        let all: Ids = items.iter().filter_map(|item| self.peek_id(item)).collect();
        let mut ids = Ids::new();
        for (index, item) in items.iter().enumerate() {
            if index >= MAX_DETECTION_ITEMS {
                return Err(self.error(item, format!("too many detections (at most {MAX_DETECTION_ITEMS})")));
            }
            self.detection(item, &mut ids, &all, tables)?;
        }
        Ok(())
    }

    /// The text of field `name` of a mapping item, without checking anything else.
    fn peek_field(&self, item: &MarkedYaml<'_>, name: &str) -> Option<String> {
        let YamlData::Mapping(mapping) = &item.data else {
            return None;
        };
        let (_, value) = mapping.iter().find(|(key, _)| self.scalar_text(key).as_deref() == Some(name))?;
        self.scalar_text(value)
    }

    /// The `id` of a mapping item and its line, without checking anything else.
    fn peek_id(&self, item: &MarkedYaml<'_>) -> Option<(String, usize)> {
        let YamlData::Mapping(mapping) = &item.data else {
            return None;
        };
        let (_, value) = mapping.iter().find(|(key, _)| self.scalar_text(key).as_deref() == Some("id"))?;
        Some((self.scalar_text(value)?, value.span.start.line()))
    }

    fn detection(
        &self,
        node: &MarkedYaml<'_>,
        ids: &mut Ids,
        all: &Ids,
        tables: &mut Tables,
    ) -> Result<(), PolicyError> {
        // An attack class in `classifier:` makes it an attack detection, whose keys differ: known before any key is
        // judged, so that an unknown key is reported with the right list.
        let attack = self.peek_field(node, "classifier").and_then(|name| AttackClass::from_name(&name));
        let (keys, what) = match attack {
            Some(_) => (ATTACK_DETECTION_KEYS, "attack detection"),
            None => (DETECTION_KEYS, "detection"),
        };
        let fields = self.fields(node, keys, what)?;
        let id = self.item_id(&fields, node, "detection", ids)?;
        let owner = format!("detection '{id}'");
        if let Some(class) = attack {
            return self.attack_detection(&fields, node, id, class, tables);
        }
        let classifier_node = self.required(&fields, "classifier", node, &owner)?;
        let name = self.text("classifier", classifier_node)?;
        let classifier =
            tables.classifier(&name).ok_or_else(|| self.error(classifier_node, tables.unknown_classifier(&name)))?;
        let in_node = self.required(&fields, "in", node, &owner)?;
        let place = self.text("in", in_node)?;
        let location = Location::from_name(&place).ok_or_else(|| self.error(in_node, unknown_location(&place)))?;

        let requires = match field(&fields, "requires") {
            None => None,
            Some(value) => Some(self.requires(&id, location, value, all, tables)?),
        };
        if let Some(base) = Tables::layered_on(classifier) {
            match requires.map(|r| (r, tables.detection_classifier(r))) {
                Some((_, Some(found))) if found == base => {}
                Some((r, found)) => {
                    let required = tables.detection(r).map_or("", |d| d.id.as_str());
                    return Err(self.error(
                        classifier_node,
                        format!(
                            "classifier '{name}' is layered on '{base}', but 'requires:' names '{required}', which \
                             detects {}: name a {base} detection in {}",
                            found.unwrap_or("?"),
                            location.name()
                        ),
                    ));
                }
                None => {
                    return Err(self.error(
                        classifier_node,
                        format!(
                            "classifier '{name}' is layered on '{base}': add 'requires:' naming a {base} detection \
                             in {}",
                            location.name()
                        ),
                    ));
                }
            }
        }
        tables.declare(id, classifier, location, requires).map_err(|message| self.error(node, message))?;
        Ok(())
    }

    /// The detection a `requires` value names: declared earlier, in the same location.
    fn requires(
        &self,
        id: &str,
        location: Location,
        node: &MarkedYaml<'_>,
        all: &Ids,
        tables: &Tables,
    ) -> Result<u16, PolicyError> {
        let required = self.text("requires", node)?;
        let Some(index) = tables.declared(&required) else {
            let message = if required == id {
                format!("detection '{id}' cannot require itself")
            } else if let Some((_, line)) = all.iter().find(|(other, _)| *other == required) {
                format!(
                    "detection '{id}' requires '{required}', which is declared after it (line {line}): \
                     'requires' must name an earlier detection"
                )
            } else {
                let known = tables.declared_ids();
                if known.is_empty() {
                    format!("unknown detection '{required}' (no detection is declared before '{id}')")
                } else {
                    format!("unknown detection '{required}' (declared before '{id}': {})", known.join(", "))
                }
            };
            return Err(self.error(node, message));
        };
        match tables.detection(index).map(|d| d.location) {
            Some(other) if other != location => Err(self.error(
                node,
                format!(
                    "detection '{id}' requires '{required}', which looks in {}: a required detection must look in \
                     the same location ({})",
                    other.name(),
                    location.name()
                ),
            )),
            _ => Ok(index),
        }
    }

    /// A list's declaration, and its `add_when` node to compile once every list is known.
    fn list<'n, 'i>(
        &self,
        node: &'n MarkedYaml<'i>,
        ids: &mut Ids,
        tokens: Option<&TokenPolicy>,
    ) -> Result<(ListDef, Option<&'n MarkedYaml<'i>>), PolicyError> {
        let fields = self.fields(node, LIST_KEYS, "list")?;
        let id = self.item_id(&fields, node, "list", ids)?;
        let owner = format!("list '{id}'");

        let key_node = self.required(&fields, "key", node, &owner)?;
        let key = match self.text("key", key_node)?.as_str() {
            "endpoint" => ListKey::Endpoint,
            "source_ip" => ListKey::SourceIp,
            "token" if tokens.is_none() => {
                return Err(
                    self.error(key_node, "list key 'token' needs a 'tokens:' section (where to find the token)")
                );
            }
            "token" => ListKey::Token,
            other => {
                return Err(self.error(
                    key_node,
                    format!("invalid list key '{other}' (expected one of: endpoint, source_ip, token)"),
                ));
            }
        };
        let ttl_seconds = match field(&fields, "ttl") {
            Some(ttl_node) => self.duration("ttl", ttl_node, 1, MAX_WINDOW_SECONDS, "1s to 30d")?,
            None => 0,
        };
        let (mut entries, mut networks) = (Vec::new(), Vec::new());
        if let Some(entries_node) = field(&fields, "entries") {
            let items = self.sequence("entries", entries_node)?;
            if items.len() > MAX_STATIC_ENTRIES {
                return Err(self.error(entries_node, format!("too many entries (at most {MAX_STATIC_ENTRIES})")));
            }
            for item in items {
                let text = self.text("entries", item)?;
                if key != ListKey::SourceIp {
                    entries.push(text);
                    continue;
                }
                match Network::parse(&text) {
                    Some(network) => networks.push(network),
                    None => {
                        return Err(self.error(
                            item,
                            format!(
                                "invalid address or network '{text}' (expected 192.0.2.7, 10.0.0.0/8 or \
                                 2001:db8::/32, with no host bits past the prefix)"
                            ),
                        ));
                    }
                }
            }
            entries.sort();
            entries.dedup();
        }
        let add_when = field(&fields, "add_when");
        if ttl_seconds == 0 {
            if let Some(add_when) = add_when {
                return Err(
                    self.error(add_when, format!("{owner} has add_when but no ttl: dynamic entries need a ttl"))
                );
            }
            if field(&fields, "entries").is_none() {
                return Err(
                    self.error(node, format!("{owner} needs a ttl (dynamic entries), entries (static), or both"))
                );
            }
        }
        let max_entries = match field(&fields, "max_entries") {
            Some(value) => self.int_in("max_entries", value, 1..=MAX_LIST_ENTRIES)?,
            None => DEFAULT_MAX_ENTRIES,
        };
        let batched = match field(&fields, "batched") {
            Some(value) if ttl_seconds == 0 => {
                return Err(self.error(value, "'batched' applies to dynamic lists (with a ttl); a static list is free"));
            }
            Some(value) => self.bool("batched", value)?,
            None => false,
        };
        let list = ListDef { id, key, ttl_seconds, max_entries, add_when: Vec::new(), entries, networks, batched };
        Ok((list, add_when))
    }

    fn rule(
        &self,
        node: &MarkedYaml<'_>,
        ids: &mut Ids,
        scope: &mut Scope<'_>,
        lists: &[ListDef],
        counters: &[crate::detect::CounterDef],
    ) -> Result<Rule, PolicyError> {
        let fields = self.fields(node, RULE_KEYS, "rule")?;
        let id = self.item_id(&fields, node, "rule", ids)?;
        let owner = format!("rule '{id}'");

        let when = self.required(&fields, "when", node, &owner)?;
        let action_node = self.required(&fields, "action", node, &owner)?;
        let action = match self.text("action", action_node)?.as_str() {
            "block" => Action::Block,
            "monitor" => Action::Monitor,
            "throttle" => Action::Throttle,
            "add_to_list" => Action::AddToList,
            other => {
                return Err(self.error(
                    action_node,
                    format!("invalid action '{other}' (expected one of: block, throttle, monitor, add_to_list)"),
                ));
            }
        };
        let (list, ttl_seconds) = self.rule_list(&fields, node, &owner, action, lists)?;
        let retry_after_seconds = match (action, field(&fields, "retry_after")) {
            (Action::Throttle, Some(value)) => self.duration("retry_after", value, 1, DAY, "1s to 1d")?,
            (Action::Throttle, None) => DEFAULT_RETRY_AFTER,
            (_, Some(value)) => return Err(self.error(value, "'retry_after' only applies to action: throttle")),
            (_, None) => 0,
        };
        let retry_after_seconds = u32::try_from(retry_after_seconds).unwrap_or(u32::MAX);
        let status = match field(&fields, "status") {
            None if action == Action::Throttle => THROTTLE_STATUS,
            None => DEFAULT_STATUS,
            Some(status_node) => {
                let status = self.int("status", status_node)?;
                u16::try_from(status).ok().filter(|s| (100..=599).contains(s)).ok_or_else(|| {
                    self.error(
                        status_node,
                        format!("invalid status {status} (expected an HTTP status from 100 to 599)"),
                    )
                })?
            }
        };
        let on_uninspectable = match field(&fields, "on_uninspectable") {
            None => OnUninspectable::default_for(action),
            Some(value) => match self.text("on_uninspectable", value)?.as_str() {
                "block" => OnUninspectable::Block,
                "pass" => OnUninspectable::Pass,
                other => {
                    return Err(
                        self.error(value, format!("invalid on_uninspectable '{other}' (expected one of: block, pass)"))
                    )
                }
            },
        };
        let condition = self.condition("when", when, scope)?;
        let phase = bundle::phase_of(&condition, scope.tables.detections(), counters);
        if action.answers() && phase == Phase::Response {
            return Err(self.error(
                action_node,
                format!(
                    "rule '{id}' reads the response, which has already reached the client when it is decided: \
                     use action: monitor or add_to_list, or a list whose add_when uses the detection"
                ),
            ));
        }
        Ok(Rule { id, action, status, list, ttl_seconds, retry_after_seconds, condition, phase, on_uninspectable })
    }

    /// An `add_to_list` rule's `list` and `ttl` (the list's own ttl when it does not say); refused on other actions.
    fn rule_list(
        &self,
        fields: &Fields<'_, '_>,
        node: &MarkedYaml<'_>,
        owner: &str,
        action: Action,
        lists: &[ListDef],
    ) -> Result<(Option<u16>, u64), PolicyError> {
        if action != Action::AddToList {
            if let Some(extra) = ["list", "ttl"].into_iter().find_map(|name| fields.iter().find(|(n, _, _)| n == name))
            {
                return Err(self.error(extra.1, format!("'{}' only applies to action: add_to_list", extra.0)));
            }
            return Ok((None, 0));
        }
        let list_node = self.required(fields, "list", node, owner)?;
        let name = self.text("list", list_node)?;
        let Some((index, list)) = lists.iter().enumerate().find(|(_, l)| l.id == name) else {
            let known: Vec<&str> = lists.iter().map(|l| l.id.as_str()).collect();
            let known = if known.is_empty() { "no lists are declared".to_owned() } else { known.join(", ") };
            return Err(self.error(list_node, format!("unknown list '{name}' ({known})")));
        };
        if !list.is_dynamic() {
            return Err(
                self.error(list_node, format!("list '{name}' is static (no ttl): add_to_list needs a list with a ttl"))
            );
        }
        let ttl = match field(fields, "ttl") {
            Some(ttl) => self.duration("ttl", ttl, 1, MAX_WINDOW_SECONDS, "1s to 30d")?,
            None => list.ttl_seconds,
        };
        let index = u16::try_from(index).map_err(|_| self.error(list_node, "too many lists"))?;
        Ok((Some(index), ttl))
    }

    /// Compiles a condition (`field`: `when` or `add_when`); errors point at the offending token inside the scalar.
    fn condition(&self, field: &str, node: &MarkedYaml<'_>, scope: &mut Scope<'_>) -> Result<Vec<Node>, PolicyError> {
        let text = self.text(field, node)?;
        if text.trim().is_empty() {
            return Err(self.error(node, format!("'{field}' must not be empty")));
        }
        compile_condition(&text, scope).map_err(|e| self.error_in_scalar(node, &text, e.offset, e.message))
    }

    /// An error at byte `offset` of `text`, the decoded value of scalar `node`: the position is the character's
    /// in the file, through quotes, escapes and folding.
    pub(super) fn error_in_scalar(
        &self,
        node: &MarkedYaml<'_>,
        text: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> PolicyError {
        let start = self.map.offset(node.span.start.line(), node.span.start.col());
        let at = start + offset_in_scalar(self.map.rest(start), text, offset);
        let (line, column) = self.map.position(at);
        PolicyError { line, column, message: message.into() }
    }
}

/// A duration: one or more `<digits><unit>` with units `d`, `h`, `m`, `s` in that order, each at most once
/// (`90s`, `24h`, `1h30m`). `None` when malformed or past `u64`.
pub(super) fn parse_duration(text: &str) -> Option<u64> {
    const UNITS: [(char, u64); 4] = [('d', DAY), ('h', 3_600), ('m', 60), ('s', 1)];
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total: u64 = 0;
    // Units still allowed: those after the last one used.
    let mut allowed: &[(char, u64)] = &UNITS;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at_checked(digits)?;
        let number: u64 = number.parse().ok()?;
        let mut chars = tail.chars();
        let unit = chars.next()?;
        let position = allowed.iter().position(|&(u, _)| u == unit)?;
        let (_, seconds) = *allowed.get(position)?;
        total = total.checked_add(number.checked_mul(seconds)?)?;
        allowed = allowed.get(position + 1..)?;
        rest = chars.as_str();
    }
    Some(total)
}

/// `[a-z0-9][a-z0-9._-]*`, at most [`MAX_ID_LEN`] characters.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok
        && id.len() <= MAX_ID_LEN
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// What a node is, for "found ..." in messages.
pub(super) fn kind(node: &MarkedYaml<'_>) -> &'static str {
    match &node.data {
        YamlData::Mapping(_) => "a mapping",
        YamlData::Sequence(_) => "a list",
        YamlData::Value(Scalar::String(_)) | YamlData::Representation(..) => "a string",
        YamlData::Value(Scalar::Integer(_)) => "an integer",
        YamlData::Value(Scalar::FloatingPoint(_)) => "a float",
        YamlData::Value(Scalar::Boolean(_)) => "a bool",
        YamlData::Value(Scalar::Null) => "null",
        YamlData::Tagged(..) => "a tagged value",
        YamlData::Alias(_) => "an alias",
        YamlData::BadValue => "an invalid value",
    }
}
#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use regex_automata::dfa::{dense, StartKind};
    use regex_automata::nfa::thompson;
    use regex_automata::util::syntax;
    use regex_automata::MatchKind;

    use super::*;
    use crate::detect::{DetectionDef, ScanSetDef};
    use crate::engine::Request;
    use crate::program::Attribute;
    use crate::token::{TokenIdentity, TokenSource};
    use crate::Bundle;

    /// The example of the language documentation.
    const EXAMPLE: &str = r#"version: 1
inspection:
  max_body_bytes: 262144
  inspect_binary: false
classifiers:
  - id: employee-id
    pattern: "EMP-[0-9]{6}"
    validator: none
    context: [Employee, staff]
    confidence: 70
detections:
  - id: cards-out
    classifier: credit_card
    in: response.body
  - id: expiry-out
    classifier: card_expiry
    in: response.body
    requires: cards-out
  - id: staff-in
    classifier: employee-id
    in: request.body
lists:
  - id: sensitive-endpoints
    key: endpoint
    add_when: detected("cards-out")
    ttl: 24h
    max_entries: 500
  - id: static
    key: source_ip
    ttl: 1h30m
rules:
  - id: cards-in-query
    when: detected("credit_card", "request.query")
    action: block
  - id: watch-sensitive
    when: endpoint in lists["sensitive-endpoints"]
    action: monitor
  - id: staff-upload
    when: detected("staff-in") && request.method == "POST"
    action: block
  - id: cards-leaving
    when: detected("cards-out") && detected("expiry-out")
    action: monitor
"#;

    /// What `scan_set::build_scan_set` promises: an unanchored, overlapping multi-pattern DFA over bytes, serialized
    /// little-endian. Built here so these tests pin the compiler's side of the contract on their own.
    fn test_scan_set(patterns: &[(&str, u16)]) -> Result<(Vec<u8>, Vec<u16>), String> {
        let regexes: Vec<&str> = patterns.iter().map(|p| p.0).collect();
        let config = dense::Config::new().match_kind(MatchKind::All).start_kind(StartKind::Unanchored);
        let dfa = dense::Builder::new()
            .configure(config)
            .syntax(syntax::Config::new().utf8(false))
            .thompson(thompson::Config::new().utf8(false))
            .build_many(&regexes)
            .map_err(|e| format!("bad regex: {e}"))?;
        let (bytes, padding) = dfa.to_bytes_little_endian();
        Ok((bytes[padding..].to_vec(), patterns.iter().map(|p| p.1).collect()))
    }

    fn compile(source: &str) -> Result<BundleContent, (usize, usize, String)> {
        compile_policy_with(source, test_scan_set).map_err(|e| (e.line, e.column, e.message))
    }

    fn load(content: &BundleContent) -> Bundle {
        Bundle::from_bytes(&bundle::encode(content).unwrap()).unwrap()
    }

    /// A request with fixed detection counts and list contents.
    struct Exchange {
        method: &'static str,
        counts: Vec<(u16, u32)>,
        lists: Vec<(u16, &'static [u8])>,
    }

    impl Request for Exchange {
        fn attribute(&self, attribute: Attribute) -> Option<Cow<'_, [u8]>> {
            match attribute {
                Attribute::RequestMethod => Some(Cow::Borrowed(self.method.as_bytes())),
                Attribute::Endpoint => Some(Cow::Borrowed(b"GET api.example/users/{id}")),
                _ => None,
            }
        }
        fn header(&self, _: &[u8]) -> Option<Cow<'_, [u8]>> {
            None
        }
        fn detection_count(&self, detection: u16) -> u32 {
            self.counts.iter().find(|(d, _)| *d == detection).map_or(0, |&(_, n)| n)
        }
        fn in_list(&self, list: u16, key: &[u8]) -> Option<bool> {
            Some(self.lists.iter().any(|&(l, k)| l == list && k == key))
        }
    }

    #[test]
    fn the_example_compiles_to_the_intended_tables() {
        let c = compile(EXAMPLE).unwrap();
        let ids: Vec<&str> = c.detections.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["cards-out", "expiry-out", "staff-in", "credit_card@request.query"]);
        let classifiers: Vec<&str> = c.classifiers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(classifiers, ["credit_card", "card_expiry", "employee-id"]);
        assert_eq!(
            c.detections[1],
            DetectionDef {
                id: "expiry-out".into(),
                classifier: 1,
                location: Location::ResponseBody,
                requires: Some(0),
                attack: None,
            }
        );
        assert_eq!(c.detections[3].classifier, 0, "the built-in is shared across locations");
        assert_eq!(
            c.classifiers[2],
            ClassifierDef {
                id: "employee-id".into(),
                validator: Validator::None,
                context: vec!["employee".into(), "staff".into()],
                context_window: 64,
                max_len: 10,
                confidence: 70,
            }
        );
        assert_eq!(c.classifiers[0].max_len, builtin::builtin("credit_card").unwrap().max_len);
        assert_eq!(
            c.scan_sets,
            [
                Some(ScanSetDef { dfa: 0, patterns: vec![0] }),
                Some(ScanSetDef { dfa: 1, patterns: vec![2] }),
                Some(ScanSetDef { dfa: 2, patterns: vec![0, 1] }),
            ]
        );
        assert_eq!(c.dfas.len(), 3);
        assert_eq!(
            c.lists[0],
            ListDef {
                id: "sensitive-endpoints".into(),
                key: ListKey::Endpoint,
                ttl_seconds: 86_400,
                max_entries: 500,
                add_when: vec![Node::Detected(0)],
                entries: vec![],
                networks: vec![],
                batched: false,
            }
        );
        assert_eq!((c.lists[1].ttl_seconds, c.lists[1].max_entries), (5_400, 10_000));
        assert!(c.lists[1].add_when.is_empty());
        let phases: Vec<Phase> = c.rules.iter().map(|r| r.phase).collect();
        assert_eq!(phases, [Phase::RequestHeaders, Phase::RequestHeaders, Phase::RequestBody, Phase::Response]);
        assert_eq!(c.inspection, InspectionDef::default());
    }

    #[test]
    fn the_example_loads_and_evaluates() {
        let bundle = load(&compile(EXAMPLE).unwrap());
        let quiet = Exchange { method: "POST", counts: vec![], lists: vec![] };
        assert_eq!(bundle.evaluate(&quiet).matched, 0);
        assert!(bundle.lists_to_add(&quiet).is_empty());

        let card_in_query = Exchange { method: "GET", counts: vec![(3, 1)], lists: vec![] };
        let v = bundle.evaluate_phase(Phase::RequestHeaders, &card_in_query);
        assert_eq!(bundle.rule_id(v.rule.unwrap()), Some("cards-in-query"));
        assert!(v.is_block());

        let leak = Exchange { method: "GET", counts: vec![(0, 2), (1, 1)], lists: vec![] };
        let v = bundle.evaluate_phase(Phase::Response, &leak);
        assert_eq!((v.action, bundle.rule_id(v.rule.unwrap())), (Some(Action::Monitor), Some("cards-leaving")));
        assert_eq!(bundle.lists_to_add(&leak), [0]);

        let listed = Exchange { method: "GET", counts: vec![], lists: vec![(0, b"GET api.example/users/{id}")] };
        let v = bundle.evaluate_phase(Phase::RequestHeaders, &listed);
        assert_eq!((v.action, bundle.rule_id(v.rule.unwrap())), (Some(Action::Monitor), Some("watch-sensitive")));
        assert_eq!(bundle.evaluate_phase(Phase::RequestHeaders, &quiet).matched, 0);

        let staff = Exchange { method: "POST", counts: vec![(2, 1)], lists: vec![] };
        assert!(bundle.evaluate_phase(Phase::RequestBody, &staff).is_block());
        assert!(!bundle.evaluate_phase(Phase::RequestHeaders, &staff).is_block());
    }

    #[test]
    fn declaration_order_in_the_file_does_not_matter() {
        let source = r#"version: 1
rules:
  - id: r
    when: endpoint in lists["l"] || detected("d")
    action: block
lists:
  - id: l
    key: endpoint
    ttl: 10m
    add_when: detected("d") && "x" in lists["l"]
detections:
  - id: d
    classifier: credit_card
    in: request.body
"#;
        let c = compile(source).unwrap();
        assert_eq!(c.rules[0].phase, Phase::RequestBody);
        assert_eq!(c.lists[0].add_when.last(), Some(&Node::And(0, 2)));
    }

    #[test]
    fn classifier_defaults_and_limits() {
        let with = |classifier: &str| {
            compile(&format!(
                "version: 1\nclassifiers:\n  - id: c\n{classifier}\ndetections:\n  - id: d\n    classifier: c\n    \
                 in: request.body\nrules: []\n"
            ))
        };
        let c = with("    pattern: 'x[0-9]{3}'").unwrap();
        assert_eq!(
            (c.classifiers[0].max_len, c.classifiers[0].context_window, c.classifiers[0].confidence),
            (4, 0, 80)
        );
        let c = with("    pattern: 'x[0-9]+'\n    max_length: 20\n    validator: luhn").unwrap();
        assert_eq!((c.classifiers[0].max_len, c.classifiers[0].validator), (20, Validator::Luhn));
        assert_eq!(
            with("    pattern: 'x?'").unwrap_err(),
            (4, 14, "pattern can match the empty string: a classifier must match at least one character".into())
        );
        assert_eq!(
            with("    pattern: 'x{300}'").unwrap_err(),
            (4, 14, "pattern can match 300 bytes, more than the 256 a classifier may: set max_length".into())
        );
        assert_eq!(
            with("    pattern: 'x{30}'\n    max_length: 10").unwrap_err(),
            (5, 17, "max_length 10 is shorter than the shortest match of the pattern (30 bytes)".into())
        );
        assert_eq!(
            with("    pattern: 'x'\n    max_length: 257").unwrap_err().2,
            "invalid max_length 257 (expected 1 to 256)"
        );
        assert_eq!(
            with("    pattern: 'x'\n    context_window: 8").unwrap_err().2,
            "'context_window' has no effect without 'context' keywords: add context or remove it"
        );
        assert_eq!(
            with("    pattern: 'x'\n    context: [a]\n    context_window: 0").unwrap_err().2,
            "invalid context_window 0 (expected 1 to 1024)"
        );
        assert_eq!(
            with("    pattern: 'x'\n    confidence: 101").unwrap_err().2,
            "invalid confidence 101 (expected 0 to 100)"
        );
        assert_eq!(
            with("    pattern: 'x'\n    validator: iban").unwrap_err().2,
            "invalid validator 'iban' (expected one of: none, luhn, mod97)"
        );
        assert_eq!(
            with("    pattern: '\\bx'").unwrap_err().2,
            "bad regex: Unicode word boundaries (\\b, \\B) cannot be compiled to a DFA; use (?-u:\\b) for an \
             ASCII word boundary"
        );
        assert_eq!(
            with("    pattern: 'x'\n    context: ['  ']").unwrap_err(),
            (5, 15, "a context keyword must not be empty".into())
        );
    }

    #[test]
    fn inspection_values() {
        let with = |inspection: &str| compile(&format!("version: 1\ninspection:\n{inspection}\nrules: []\n"));
        let c = with("  max_body_bytes: 1024\n  inspect_binary: true").unwrap();
        assert_eq!(c.inspection, InspectionDef { max_body_bytes: 1024, inspect_binary: true });
        assert_eq!(
            with("  max_body_bytes: 0").unwrap_err(),
            (3, 19, "invalid max_body_bytes 0 (expected 1 to 16777216)".into())
        );
        assert_eq!(
            with("  inspect_binary: yes").unwrap_err().2,
            "'inspect_binary' must be true or false, found a string"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("24h"), Some(86_400));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("1d2h3m4s"), Some(93_784));
        assert_eq!(parse_duration("1h30m"), Some(5_400));
        for bad in ["", "10", "h", "1m1h", "1h1h", "1.5h", "1 h", "-1s", "1w", "99999999999999999999s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration("0s"), Some(0));
    }

    #[test]
    fn limits_on_items() {
        let many: String =
            (0..=MAX_DETECTION_ITEMS).map(|i| format!("  - {{id: l{i}, key: endpoint, ttl: 1h}}\n")).collect();
        let e = compile(&format!("version: 1\nlists:\n{many}rules: []\n")).unwrap_err();
        assert_eq!(e, (259, 5, "too many lists (at most 256)".into()));
    }

    /// The RFC 7515 appendix A.3 P-256 public key, as a flow mapping.
    const EC_KEY: &str = "{ kty: EC, crv: P-256, x: f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU, \
                          y: x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0 }";
    /// A 32-byte HMAC key, base64url.
    const OCT_KEY: &str = "{ kty: oct, kid: h1, \
                           k: AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow }";

    /// A policy whose `tokens:` section is `tokens` (indented by two).
    fn with_tokens(tokens: &str) -> Result<BundleContent, (usize, usize, String)> {
        compile(&format!("version: 1\ntokens:\n{tokens}\nrules: []\n"))
    }

    /// A policy with one cookie source and `jwt` (indented by four).
    fn with_jwt(jwt: &str) -> Result<BundleContent, (usize, usize, String)> {
        with_tokens(&format!("  sources: [{{ cookie: s }}]\n  jwt:\n{jwt}"))
    }

    #[test]
    fn token_defaults() {
        let c = with_tokens("  sources: [{ header: Authorization, scheme: Bearer }]").unwrap();
        let tokens = c.tokens.unwrap();
        assert_eq!(tokens.identity, TokenIdentity::Token);
        assert_eq!((tokens.hash_key, tokens.jwt), (None, None));
        assert_eq!(
            tokens.sources,
            [TokenSource::Header { name: "authorization".into(), scheme: Some("Bearer".into()) }]
        );
        assert_eq!(compile("version: 1\nrules: []\n").unwrap().tokens, None);

        let c = with_jwt(&format!("    keys: {{ jwks: {{ keys: [{EC_KEY}] }} }}\n    allowed_algs: [ES256]")).unwrap();
        let jwt = c.tokens.unwrap().jwt.unwrap();
        assert_eq!((jwt.clock_skew_seconds, jwt.require_exp, jwt.max_lifetime_seconds), (60, true, None));
        assert!(jwt.issuers.is_empty() && jwt.audiences.is_empty());
        let builtin: Vec<String> =
            crate::token_analysis::BUILTIN_WEAK_SECRETS.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(jwt.weak_secrets, builtin);
    }

    #[test]
    fn token_values() {
        let c = with_tokens(
            "  sources: [{ query: key }]\n  hash_key: base64:AAECAwQFBgcICQoLDA0ODw==\n  identity: claims(sub)",
        )
        .unwrap();
        let tokens = c.tokens.unwrap();
        assert_eq!(tokens.hash_key, Some((0..16).collect()));
        assert_eq!(tokens.identity, TokenIdentity::Claims(vec!["sub".into()]));

        let keys = format!("    keys: {{ jwks: {{ keys: [{OCT_KEY}, {EC_KEY}] }} }}\n");
        let jwt = |rest: &str| with_jwt(&format!("{keys}{rest}"));
        let c =
            jwt("    allowed_algs: [HS256, ES256]\n    weak_secrets: [hunter2, changeme]\n    clock_skew: 0s\n    \
                     require_exp: false\n    max_lifetime: 1h30m")
            .unwrap();
        let policy = c.tokens.unwrap().jwt.unwrap();
        assert_eq!(policy.weak_secrets, ["hunter2", "changeme"]);
        assert_eq!(
            (policy.clock_skew_seconds, policy.require_exp, policy.max_lifetime_seconds),
            (0, false, Some(5_400))
        );
        assert!(jwt("    allowed_algs: [HS256]\n    weak_secrets: none")
            .unwrap()
            .tokens
            .unwrap()
            .jwt
            .unwrap()
            .weak_secrets
            .is_empty());

        let err = |rest: &str| jwt(rest).unwrap_err().2;
        assert_eq!(err("    allowed_algs: []"), "'allowed_algs' must name at least one alg");
        assert_eq!(err("    allowed_algs: [ES256, ES256]"), "alg 'ES256' is listed twice");
        assert_eq!(err("    allowed_algs: [NONE]"), "alg none can never be allowed: it means an unsigned token");
        assert_eq!(
            err("    allowed_algs: [EdDSA]"),
            "no key in the JWKS verifies EdDSA (it needs an OKP Ed25519 key): add one, or remove EdDSA"
        );
        assert_eq!(
            err("    allowed_algs: [ES256]\n    max_lifetime: 0s"),
            "max_lifetime '0s' is out of range (from 1s to 365d)"
        );
        assert_eq!(
            err("    allowed_algs: [ES256]\n    clock_skew: 2h"),
            "clock_skew '2h' is out of range (from 0s to 1h)"
        );
        assert_eq!(
            err("    allowed_algs: [ES256]\n    clock_skew: 60"),
            "invalid clock_skew '60' (expected a duration such as 90s, 15m, 24h, 7d or 1h30m)"
        );
        assert_eq!(
            err("    allowed_algs: [ES256]\n    weak_secrets: ['']"),
            "an entry of 'weak_secrets' must not be empty"
        );
        assert_eq!(
            err("    allowed_algs: [ES256]\n    weak_secrets: 3"),
            "invalid weak_secrets '3' (expected builtin, none or a list of secrets)"
        );
        assert_eq!(
            err("    allowed_algs: [ES256]\n    require_exp: yes"),
            "'require_exp' must be true or false, found a string"
        );
        assert_eq!(
            with_jwt(&format!("    keys: {{ jwks: {{ keys: [{EC_KEY}] }} }}")).unwrap_err().2,
            "missing required field 'allowed_algs' in jwt"
        );
        // A policy's own weak secret list is checked against its HMAC keys.
        // base64url of "secret-secret-secret-secret-secret".
        let k = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";
        let c = with_jwt(&format!(
            "    keys: {{ jwks: {{ keys: [{{ kty: oct, k: {k} }}] }} }}\n    allowed_algs: [HS256]\n    \
             weak_secrets: [secret-secret-secret-secret-secret]"
        ));
        assert_eq!(c.unwrap_err().2, "the secret of key 1 is on the policy's weak_secrets list");
    }

    #[test]
    fn token_source_errors() {
        let err = |sources: &str| with_tokens(&format!("  sources:\n{sources}")).unwrap_err();
        assert_eq!(
            err("    - { cookie: s, scheme: Bearer }"),
            (4, 20, "'scheme' applies to header sources, not to a cookie".into())
        );
        assert_eq!(err("    - { header: 'x y' }"), (4, 17, "invalid header name 'x y'".into()));
        assert_eq!(err("    - { query: 'a=b' }"), (4, 16, "invalid query name 'a=b'".into()));
        assert_eq!(
            err("    - { header: authorization, scheme: 'Bearer x' }"),
            (4, 40, "invalid scheme 'Bearer x' (one word, such as Bearer)".into())
        );
        assert_eq!(
            err("    - cookie").2,
            "token source must be a mapping with keys header, scheme, cookie, query, found a string"
        );
        let many: String = (0..9).map(|i| format!("    - {{ cookie: c{i} }}\n")).collect();
        assert_eq!(err(many.trim_end()), (12, 7, "too many token sources (at most 8)".into()));
        assert_eq!(
            with_tokens("  identity: token").unwrap_err(),
            (3, 3, "missing required field 'sources' in tokens".into())
        );
        assert_eq!(
            with_tokens("  sources: [{ cookie: s }]\n  identity: \"claims( iss, \\\"sub\\\")\"").unwrap_err(),
            (4, 27, "expected a claim name, found '\"'".into())
        );
        for (key, message) in [
            ("hash_key: 'base64:AAEC'", "invalid hash_key: 3 bytes (expected base64:... or hex:... of 16 to 64 bytes)"),
            (
                "hash_key: 'base64:A'",
                "invalid hash_key: malformed base64 (expected base64:... or hex:... of 16 to 64 bytes)",
            ),
            (
                "hash_key: 'hex:zz'",
                "invalid hash_key: malformed hex (expected base64:... or hex:... of 16 to 64 bytes)",
            ),
            ("hash_key: 'secret'", "invalid hash_key (expected base64:... or hex:... of 16 to 64 bytes)"),
        ] {
            assert_eq!(with_tokens(&format!("  sources: [{{ cookie: s }}]\n  {key}")).unwrap_err().2, message);
        }
    }

    #[test]
    fn jwks_checks() {
        let err = |keys: &str, algs: &str| {
            with_jwt(&format!("    keys: {{ jwks: {{ keys: [{keys}] }} }}\n    allowed_algs: [{algs}]")).unwrap_err().2
        };
        assert_eq!(err("", "ES256"), "a JWKS needs at least one key");
        assert_eq!(
            err(&format!("{EC_KEY}, {{ kty: EC, crv: P-256, kid: a }}"), "ES256"),
            "missing required field 'x' in key 'a'"
        );
        assert_eq!(
            err(&EC_KEY.replace("P-256", "P-384"), "ES384"),
            "'x' of key 1 must be 48 bytes for its curve, found 32"
        );
        assert_eq!(
            err(&EC_KEY.replace("P-256", "secp256k1"), "ES256"),
            "invalid crv 'secp256k1' for an EC key (expected one of: P-256, P-384)"
        );
        assert_eq!(
            err("{ kty: OKP, crv: X25519, x: AA }", "EdDSA"),
            "invalid crv 'X25519' for an OKP key (expected Ed25519)"
        );
        assert_eq!(
            err("{ kty: RSA, n: AQAB, e: AQAB }", "RS256"),
            "the RSA modulus of key 1 has 24 bits; at least 2048 are needed"
        );
        assert_eq!(
            err("{ kty: oct, k: c2hvcnQ }", "HS256"),
            "the secret of key 1 is 5 bytes; an HMAC key for HS256 needs at least 32 (RFC 7518 §3.2: the hash output \
             size)"
        );
        assert_eq!(
            err(&EC_KEY.replace("}", ", alg: RS256 }"), "ES256"),
            "alg 'RS256' does not fit key 1, an EC P-256 key"
        );
        assert_eq!(
            err(&EC_KEY.replace("}", ", alg: ES256 }"), "ES256, HS256"),
            "no key in the JWKS verifies HS256 (it needs an oct key): add one, or remove HS256"
        );
        // A key for another use verifies nothing.
        assert_eq!(
            err(&EC_KEY.replace("}", ", use: enc }"), "ES256"),
            "no key in the JWKS verifies ES256 (it needs an EC P-256 key): add one, or remove ES256"
        );
        assert_eq!(
            err(&EC_KEY.replace("}", ", key_ops: [sign] }"), "ES256"),
            "no key in the JWKS verifies ES256 (it needs an EC P-256 key): add one, or remove ES256"
        );
        assert_eq!(
            err(&format!("{}, {}", EC_KEY.replace("}", ", kid: 7 }"), EC_KEY.replace("}", ", kid: '7' }")), "ES256"),
            "duplicate kid '7' (first used at line 5)"
        );
        assert_eq!(err("[]", "ES256"), "a JWK must be a mapping with 'kty', found a list");
        assert_eq!(
            with_jwt("    keys: { jwks: { keys: [] }, url: x }\n    allowed_algs: [ES256]").unwrap_err().2,
            "unknown field 'url' in keys (expected one of: jwks)"
        );

        // What passes travels as JSON, with YAML scalars that look like numbers kept as the strings they name.
        let c = with_jwt(&format!(
            "    keys: {{ jwks: {{ keys: [{}, {}], note: 1.5 }} }}\n    allowed_algs: [ES256]",
            EC_KEY.replace("}", ", kid: 7, x5c: [a, b], exp: 12, ok: true }"),
            EC_KEY.replace("}", ", use: enc }"),
        ));
        let jwt = c.unwrap().tokens.unwrap().jwt.unwrap();
        let json: serde_json::Value = serde_json::from_str(&jwt.jwks).unwrap();
        assert_eq!(json["keys"][0]["kid"], "7");
        assert_eq!(json["keys"][0]["exp"], 12);
        assert_eq!(json["keys"][0]["ok"], true);
        assert_eq!(json["keys"][0]["x5c"], serde_json::json!(["a", "b"]));
        assert_eq!(json["keys"][1]["use"], "enc");
        assert_eq!(json["note"], 1.5);
    }

    #[test]
    fn ids() {
        assert!(valid_id("admin-needs-key"));
        assert!(valid_id("0.a_b-c"));
        assert!(!valid_id(""));
        assert!(!valid_id("-a"));
        assert!(!valid_id("Admin"));
        assert!(!valid_id("a b"));
        assert!(valid_id(&"a".repeat(64)));
        assert!(!valid_id(&"a".repeat(65)));
    }
}

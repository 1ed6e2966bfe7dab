//! The YAML layer: reads a policy file's structure, checks every key and value, and compiles each rule.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::bundle::MAX_RULES;
use crate::program::{Action, Rule};

use super::check::compile_condition;
use super::regex::Regexes;
use super::source::{offset_in_scalar, SourceMap};

/// The only policy language version this compiler reads.
const POLICY_VERSION: i64 = 1;
/// Keys of the top-level mapping.
const POLICY_KEYS: &str = "version, rules";
/// Keys of a rule.
const RULE_KEYS: &str = "id, when, action, status";
/// Longest rule id, in bytes (ids are ASCII).
const MAX_ID_LEN: usize = 64;
/// The status of a block when the rule does not say.
const DEFAULT_STATUS: u16 = 403;

/// A policy error with its position (1-based line and column).
#[derive(Debug)]
pub(crate) struct PolicyError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Compiles a policy file to its rules and DFAs.
pub(crate) fn compile_policy(source: &str) -> Result<(Vec<Rule>, Vec<Vec<u8>>), PolicyError> {
    let compiler = Compiler {
        map: SourceMap::new(source),
    };
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

struct Compiler<'s> {
    map: SourceMap<'s>,
}

impl Compiler<'_> {
    fn error(&self, node: &MarkedYaml<'_>, message: impl Into<String>) -> PolicyError {
        self.error_at(node.span.start.line(), node.span.start.col(), message)
    }

    fn error_at(&self, line: usize, col: usize, message: impl Into<String>) -> PolicyError {
        PolicyError {
            line,
            column: col + 1,
            message: message.into(),
        }
    }

    /// The fields of a mapping in file order, refusing keys not in `known` (`what` names the mapping).
    fn fields<'n, 'i>(
        &self,
        node: &'n MarkedYaml<'i>,
        known: &str,
        what: &str,
    ) -> Result<Vec<(String, &'n MarkedYaml<'i>, &'n MarkedYaml<'i>)>, PolicyError> {
        let YamlData::Mapping(mapping) = &node.data else {
            return Err(self.error(
                node,
                format!("{what} must be a mapping with keys {known}, found {}", kind(node)),
            ));
        };
        let mut fields = Vec::with_capacity(mapping.len());
        for (key, value) in mapping {
            let name = self.scalar_text(key).unwrap_or_else(|| format!("<{}>", kind(key)));
            if !known.split(", ").any(|k| k == name) {
                return Err(self.error(
                    key,
                    format!("unknown field '{name}' in {what} (expected one of: {known})"),
                ));
            }
            fields.push((name, key, value));
        }
        Ok(fields)
    }

    /// The text of a scalar as written: decoded strings, and plain scalars YAML read as another type.
    fn scalar_text(&self, node: &MarkedYaml<'_>) -> Option<String> {
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
    fn text(&self, field: &str, node: &MarkedYaml<'_>) -> Result<String, PolicyError> {
        self.scalar_text(node)
            .ok_or_else(|| self.error(node, format!("'{field}' must be a string, found {}", kind(node))))
    }

    fn int(&self, field: &str, node: &MarkedYaml<'_>) -> Result<i64, PolicyError> {
        match node.data {
            YamlData::Value(Scalar::Integer(i)) => Ok(i),
            _ => Err(self.error(node, format!("'{field}' must be an integer, found {}", kind(node)))),
        }
    }

    fn policy(&self, root: &MarkedYaml<'_>) -> Result<(Vec<Rule>, Vec<Vec<u8>>), PolicyError> {
        let fields = self.fields(root, POLICY_KEYS, "policy")?;
        let field = |name: &str| fields.iter().find(|(n, _, _)| n == name).map(|&(_, _, v)| v);
        let missing = |name: &str| self.error(root, format!("missing required field '{name}' in policy"));

        let version = field("version").ok_or_else(|| missing("version"))?;
        match self.int("version", version)? {
            POLICY_VERSION => {}
            other => {
                return Err(self.error(
                    version,
                    format!("unsupported policy version {other} (this compiler reads version {POLICY_VERSION})"),
                ));
            }
        }

        let rules = field("rules").ok_or_else(|| missing("rules"))?;
        let YamlData::Sequence(items) = &rules.data else {
            return Err(self.error(rules, format!("'rules' must be a list, found {}", kind(rules))));
        };
        let mut regexes = Regexes::default();
        let mut compiled: Vec<Rule> = Vec::with_capacity(items.len());
        // Each id with the line it was defined on, for duplicate errors.
        let mut ids: Vec<(String, usize)> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if index >= MAX_RULES {
                return Err(self.error(item, format!("too many rules (at most {MAX_RULES})")));
            }
            let rule = self.rule(item, &mut ids, &mut regexes)?;
            compiled.push(rule);
        }
        Ok((compiled, regexes.into_dfas()))
    }

    fn rule(
        &self,
        node: &MarkedYaml<'_>,
        ids: &mut Vec<(String, usize)>,
        regexes: &mut Regexes,
    ) -> Result<Rule, PolicyError> {
        let fields = self.fields(node, RULE_KEYS, "rule")?;
        let field = |name: &str| fields.iter().find(|(n, _, _)| n == name).map(|&(_, _, v)| v);

        let id_node = field("id").ok_or_else(|| self.error(node, "missing required field 'id' in rule"))?;
        let id = self.text("id", id_node)?;
        if !valid_id(&id) {
            return Err(self.error(
                id_node,
                format!(
                    "invalid rule id '{id}' (use a-z, 0-9, '.', '_' and '-', starting with a letter or digit, \
                     at most {MAX_ID_LEN} characters)"
                ),
            ));
        }
        if let Some((_, line)) = ids.iter().find(|(seen, _)| *seen == id) {
            return Err(self.error(
                id_node,
                format!("duplicate rule id '{id}' (first defined at line {line})"),
            ));
        }
        ids.push((id.clone(), id_node.span.start.line()));
        let missing = |name: &str| self.error(node, format!("missing required field '{name}' in rule '{id}'"));

        let when = field("when").ok_or_else(|| missing("when"))?;
        let action_node = field("action").ok_or_else(|| missing("action"))?;
        let action = match self.text("action", action_node)?.as_str() {
            "block" => Action::Block,
            "monitor" => Action::Monitor,
            other => {
                return Err(self.error(
                    action_node,
                    format!("invalid action '{other}' (expected one of: block, monitor)"),
                ));
            }
        };
        let status = match field("status") {
            None => DEFAULT_STATUS,
            Some(status_node) => {
                let status = self.int("status", status_node)?;
                u16::try_from(status)
                    .ok()
                    .filter(|s| (100..=599).contains(s))
                    .ok_or_else(|| {
                        self.error(
                            status_node,
                            format!("invalid status {status} (expected an HTTP status from 100 to 599)"),
                        )
                    })?
            }
        };
        let condition = self.condition(when, regexes)?;
        Ok(Rule {
            id,
            action,
            status,
            condition,
            phase: crate::program::Phase::RequestHeaders,
        })
    }

    /// Compiles a `when` value; errors point at the offending token inside the scalar.
    fn condition(
        &self,
        node: &MarkedYaml<'_>,
        regexes: &mut Regexes,
    ) -> Result<Vec<crate::program::Node>, PolicyError> {
        let text = self.text("when", node)?;
        if text.trim().is_empty() {
            return Err(self.error(node, "'when' must not be empty"));
        }
        compile_condition(&text, regexes).map_err(|e| {
            let start = self.map.offset(node.span.start.line(), node.span.start.col());
            let offset = start + offset_in_scalar(self.map.rest(start), &text, e.offset);
            let (line, column) = self.map.position(offset);
            PolicyError {
                line,
                column,
                message: e.message,
            }
        })
    }
}

/// `[a-z0-9][a-z0-9._-]*`, at most [`MAX_ID_LEN`] characters.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok
        && id.len() <= MAX_ID_LEN
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// What a node is, for "found ..." in messages.
fn kind(node: &MarkedYaml<'_>) -> &'static str {
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
    use super::*;

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

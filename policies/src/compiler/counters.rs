//! The `counters:` section: what is counted over time, per what key, and when it is updated.
//!
//! ```yaml
//! counters:
//!   - id: errors-by-token          # BOLA probing: distinct endpoints answering 4xx to one token
//!     kind: distinct
//!     per: token.id
//!     of: endpoint
//!     when: response.code >= 400 && response.code < 500
//!     window: 5m
//! ```
//!
//! `per`, `of` and `when` are expressions in the rule language; a counter does not read other counters.

use saphyr::{MarkedYaml, YamlData};

use crate::bundle::{self, MAX_DISTINCT, MAX_KEY_PARTS, MAX_LIST_ENTRIES, MAX_WINDOW_SECONDS};
use crate::detect::{CounterDef, CounterKind};
use crate::program::{Node, Phase, Type};

use super::check::{compile_expression, CounterSig, Scope};
use super::policy::{field, Compiler, PolicyError};

/// Keys of a counter.
const COUNTER_KEYS: &str = "id, kind, per, of, when, window, max_keys, max_distinct, batched";
/// Keys a counter tracks when it does not say.
const DEFAULT_MAX_KEYS: u32 = 10_000;
/// Values a `distinct` counter tracks per key when it does not say.
const DEFAULT_MAX_DISTINCT: u32 = 32;
/// The kinds, for error messages.
const KINDS: &str = "requests, sum, distinct, last_seen";

impl Compiler<'_> {
    /// Compiles one counter. `scope` has the policy's lists and detections; its counters are empty.
    pub(super) fn counter(
        &self,
        node: &MarkedYaml<'_>,
        ids: &mut Vec<(String, usize)>,
        scope: &mut Scope<'_>,
    ) -> Result<CounterDef, PolicyError> {
        let fields = self.fields(node, COUNTER_KEYS, "counter")?;
        let id = self.item_id(&fields, node, "counter", ids)?;
        let owner = format!("counter '{id}'");

        let kind_node = self.required(&fields, "kind", node, &owner)?;
        let kind = match self.text("kind", kind_node)?.as_str() {
            "requests" => CounterKind::Requests,
            "sum" => CounterKind::Sum,
            "distinct" => CounterKind::Distinct,
            "last_seen" => CounterKind::LastSeen,
            other => {
                return Err(self.error(kind_node, format!("invalid counter kind '{other}' (expected one of: {KINDS})")))
            }
        };

        let per_node = self.required(&fields, "per", node, &owner)?;
        let part_nodes: Vec<&MarkedYaml<'_>> = match &per_node.data {
            YamlData::Sequence(items) => items.iter().collect(),
            _ => vec![per_node],
        };
        if part_nodes.is_empty() || part_nodes.len() > MAX_KEY_PARTS {
            return Err(self.error(per_node, format!("'per' takes 1 to {MAX_KEY_PARTS} key expressions")));
        }
        let mut per = Vec::with_capacity(part_nodes.len());
        for part in part_nodes {
            per.push(self.expression("per", part, scope, Type::String, "a counter key")?);
        }

        let of = match (kind, field(&fields, "of")) {
            (CounterKind::Requests, None) => Vec::new(),
            (CounterKind::Requests, Some(of)) => {
                return Err(self.error(of, "a requests counter counts exchanges: it takes no 'of' (use kind: sum)"));
            }
            (_, None) => {
                let what = if kind == CounterKind::Sum { "the amount to add" } else { "the value to track" };
                return Err(self.error(node, format!("missing required field 'of' in {owner} ({what})")));
            }
            (CounterKind::Sum, Some(of)) => self.expression("of", of, scope, Type::Int, "the amount of a sum")?,
            (_, Some(of)) => self.expression("of", of, scope, Type::String, "the value of a counter")?,
        };
        let when = match field(&fields, "when") {
            Some(when) => self.expression("when", when, scope, Type::Bool, "the condition")?,
            None => Vec::new(),
        };

        let window_node = self.required(&fields, "window", node, &owner)?;
        let window_seconds = self.duration("window", window_node, 1, MAX_WINDOW_SECONDS, "1s to 30d")?;
        let max_keys = match field(&fields, "max_keys") {
            Some(value) => self.int_in("max_keys", value, 1..=MAX_LIST_ENTRIES)?,
            None => DEFAULT_MAX_KEYS,
        };
        let max_distinct = match (kind, field(&fields, "max_distinct")) {
            (CounterKind::Distinct, Some(value)) => self.int_in("max_distinct", value, 1..=MAX_DISTINCT)?,
            (CounterKind::Distinct, None) => DEFAULT_MAX_DISTINCT,
            (_, Some(value)) => return Err(self.error(value, "'max_distinct' only applies to kind: distinct")),
            (_, None) => 0,
        };

        let batched = match field(&fields, "batched") {
            Some(value) if kind == CounterKind::LastSeen => {
                return Err(
                    self.error(value, "'batched' does not apply to kind: last_seen (it compares every exchange)")
                );
            }
            Some(value) => self.bool("batched", value)?,
            None => false,
        };
        let detections = scope.tables.detections();
        let reads = per.iter().chain([&of, &when]);
        let needed = reads.map(|nodes| bundle::phase_of(nodes, detections, &[])).max().unwrap_or_default();
        if kind == CounterKind::LastSeen && needed != Phase::RequestHeaders {
            let at = field(&fields, "when").or(field(&fields, "of")).unwrap_or(node);
            return Err(self.error(
                at,
                format!(
                    "{owner} is read by seen_elsewhere() before the rules that can block: it may only use what the \
                     request headers carry (no bodies, no response)"
                ),
            ));
        }
        // Updated with the request headers when possible (the count then includes this exchange), else at the end.
        let phase = if needed == Phase::RequestHeaders { Phase::RequestHeaders } else { Phase::Response };
        Ok(CounterDef { id, kind, per, of, when, window_seconds, max_keys, max_distinct, phase, batched })
    }

    /// A counter's expression field, errors pointing inside the scalar.
    fn expression(
        &self,
        field: &str,
        node: &MarkedYaml<'_>,
        scope: &mut Scope<'_>,
        want: Type,
        what: &str,
    ) -> Result<Vec<Node>, PolicyError> {
        let text = self.text(field, node)?;
        if text.trim().is_empty() {
            return Err(self.error(node, format!("'{field}' must not be empty")));
        }
        compile_expression(&text, scope, want, what).map_err(|e| self.error_in_scalar(node, &text, e.offset, e.message))
    }
}

/// What conditions need to know of the compiled counters.
pub(super) fn signatures(counters: &[CounterDef]) -> Vec<CounterSig> {
    counters.iter().map(|c| CounterSig { id: c.id.clone(), kind: c.kind, parts: c.per.len() }).collect()
}

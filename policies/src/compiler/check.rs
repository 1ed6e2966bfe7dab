//! Name resolution, type checking and emission of the node arena, in one post-order walk.

use crate::bundle::{MAX_CONDITION_DEPTH, MAX_NODES_PER_RULE};
use crate::detect::{CounterKind, Location};
use crate::program::{Attribute, Node, NodeIndex, Type};
use crate::token::{JwtFinding, TokenField, TokenPolicy};

use super::detections::{unknown_location, Tables};
use super::parser::{parse, Expr, ExprKind, LogicalOp, RelOp};
use super::policy::JWT_PREFIX;
use super::regex::Regexes;
use super::ExprError;

/// The map attribute; everything else in [`Attribute::ALL`] is a string.
const HEADERS: &str = "request.headers";
/// The name dynamic lists are indexed under: `key in lists["id"]`.
const LISTS: &str = "lists";
/// The root of the token attributes (`token.present`, `token.claims["sub"]`, ...).
const TOKEN: &str = "token";
/// The token's JWT claims, a map: `token.claims["name"]`.
const TOKEN_CLAIMS: &str = "token.claims";
/// The token's JOSE header, a map: `token.header["name"]`.
const TOKEN_HEADER: &str = "token.header";
/// The token attributes, for error messages.
const TOKEN_ATTRIBUTES: &str = "token.present, token.id, token.kind, token.claims, token.header";
/// What an index (`x["name"]`) applies to.
const NOT_INDEXABLE: &str = "only request.headers, request.body, token.claims and token.header can be indexed";
/// The request body's fields, a map: `request.body["username"]`.
const BODY: &str = "request.body";
/// Why a token attribute cannot be used.
const NO_TOKENS: &str = "token attributes need a 'tokens:' section";
/// The functions a condition may call, for error messages.
const FUNCTIONS: &str =
    "startsWith, endsWith, contains, matches, size, detected, count, distinct_count, seen_elsewhere";
/// The int attributes of the response.
const RESPONSE_CODE: &str = "response.code";
const RESPONSE_BYTES: &str = "response.bytes";

/// What a condition can refer to besides the request: the policy's regexes, detections and lists.
pub(crate) struct Scope<'s> {
    /// The DFAs of `matches`, shared by every condition of the policy.
    pub regexes: &'s mut Regexes,
    /// Classifiers and detections; `detected("classifier", "location")` adds implicit detections.
    pub tables: &'s mut Tables,
    /// The ids of the policy's lists, in declaration order (`Node::InList::list` indexes this).
    pub lists: &'s [String],
    /// The policy's `tokens:` section; token attributes and JWT findings need it.
    pub tokens: Option<&'s TokenPolicy>,
    /// The policy's counters, in declaration order (`Node::Counter::counter` indexes this); empty while the
    /// counters' own expressions compile (a counter does not read counters).
    pub counters: &'s [CounterSig],
}

/// What a condition needs to know of a counter to read it.
#[derive(Clone, Debug)]
pub(crate) struct CounterSig {
    pub id: String,
    pub kind: CounterKind,
    /// Number of parts in its key.
    pub parts: usize,
}

/// Compiles one condition (`when`, `add_when`) to its node arena (root last), adding what it uses to `scope`.
pub(crate) fn compile_condition(text: &str, scope: &mut Scope<'_>) -> Result<Vec<Node>, ExprError> {
    compile_expression(text, scope, Type::Bool, "the condition")
}

/// Compiles an expression that must have type `want` (`what` names it in the error, e.g. "a counter key").
pub(crate) fn compile_expression(
    text: &str,
    scope: &mut Scope<'_>,
    want: Type,
    what: &str,
) -> Result<Vec<Node>, ExprError> {
    let expr = parse(text)?;
    let mut emitter = Emitter { nodes: Vec::new(), depths: Vec::new(), scope };
    let (_, ty) = emitter.emit(&expr)?;
    if ty != want {
        return Err(ExprError::new(
            expr.start,
            format!("type error: {what} must be a {}, found {}", want.name(), ty.name()),
        ));
    }
    Ok(emitter.nodes)
}

struct Emitter<'r, 's> {
    nodes: Vec<Node>,
    // Operand depth of each node, as the bundle loader computes it.
    depths: Vec<u16>,
    scope: &'r mut Scope<'s>,
}

/// A node already emitted: its index and type.
type Emitted = (NodeIndex, Type);

impl Emitter<'_, '_> {
    /// Appends `node` over `operands`, refusing a condition too large or too deep for a bundle.
    fn push(&mut self, node: Node, operands: &[NodeIndex], at: usize) -> Result<NodeIndex, ExprError> {
        let depth =
            operands.iter().filter_map(|&i| self.depths.get(usize::try_from(i).ok()?)).max().map_or(0, |d| d + 1);
        if depth > MAX_CONDITION_DEPTH {
            return Err(ExprError::new(
                at,
                format!("condition nested too deeply (at most {MAX_CONDITION_DEPTH} levels once compiled)"),
            ));
        }
        if self.nodes.len() >= MAX_NODES_PER_RULE {
            return Err(ExprError::new(at, format!("condition too large (more than {MAX_NODES_PER_RULE} operations)")));
        }
        let index =
            NodeIndex::try_from(self.nodes.len()).map_err(|_| ExprError::new(at, "condition too large".to_owned()))?;
        self.nodes.push(node);
        self.depths.push(depth);
        Ok(index)
    }

    fn emit(&mut self, e: &Expr) -> Result<Emitted, ExprError> {
        match &e.kind {
            ExprKind::Bool(b) => Ok((self.push(Node::Bool(*b), &[], e.start)?, Type::Bool)),
            ExprKind::Int(i) => Ok((self.push(Node::Int(*i), &[], e.start)?, Type::Int)),
            ExprKind::Str(s) => Ok((self.push(Node::String(s.clone()), &[], e.start)?, Type::String)),
            ExprKind::Ident(_) | ExprKind::Member { .. } => self.attribute(e),
            ExprKind::Index { target, index } => self.index(target, index),
            ExprKind::Call { target, name, name_start, args } => self.call(target.as_deref(), name, *name_start, args),
            ExprKind::Not(operand) => {
                let (a, ty) = self.emit(operand)?;
                if ty != Type::Bool {
                    return Err(type_error(operand.start, format!("'!' needs a bool operand, found {}", ty.name())));
                }
                Ok((self.push(Node::Not(a), &[a], e.start)?, Type::Bool))
            }
            ExprKind::Logical { op, operands } => self.logical(*op, operands),
            ExprKind::Relation { op, op_start, lhs, rhs } => self.relation(*op, *op_start, lhs, rhs),
        }
    }

    /// `request.path`, `request.headers.name`, or an unknown name.
    fn attribute(&mut self, e: &Expr) -> Result<Emitted, ExprError> {
        let Some(name) = dotted_name(e) else {
            let at = match &e.kind {
                ExprKind::Member { field_start, .. } => *field_start,
                _ => e.start,
            };
            return Err(ExprError::new(at, "field selection is only supported on attribute names"));
        };
        if let Some(attribute) = Attribute::from_name(&name) {
            return Ok((self.push(Node::Attribute(attribute), &[], e.start)?, Type::String));
        }
        if name == RESPONSE_CODE || name == RESPONSE_BYTES {
            let node = if name == RESPONSE_CODE { Node::ResponseCode } else { Node::ResponseBytes };
            return Ok((self.push(node, &[], e.start)?, Type::Int));
        }
        if name == TOKEN || name.starts_with("token.") {
            return self.token_attribute(&name, e.start);
        }
        if name == HEADERS {
            return Err(ExprError::new(
                e.start,
                "request.headers is a map: read a header with request.headers[\"name\"] \
                 or test for one with \"name\" in request.headers",
            ));
        }
        // CEL allows `map.key` for `map["key"]`.
        if let Some(header) = name.strip_prefix("request.headers.").filter(|h| !h.contains('.')) {
            return Ok((self.push(Node::Header(header.to_ascii_lowercase()), &[], e.start)?, Type::String));
        }
        Err(unknown_attribute(e.start, &name))
    }

    /// `request.headers["name"]`, `request.body["field"]`, `token.claims["name"]`, `token.header["name"]`.
    fn index(&mut self, target: &Expr, index: &Expr) -> Result<Emitted, ExprError> {
        match dotted_name(target) {
            Some(name) if name == HEADERS => {}
            Some(name) if name == BODY => {
                let ExprKind::Str(field) = &index.kind else {
                    return Err(ExprError::new(index.start, "a body field name must be a string literal"));
                };
                if field.is_empty() || field.split('.').any(str::is_empty) {
                    return Err(ExprError::new(index.start, "a body field is a name or a dotted path (user.name)"));
                }
                return Ok((self.push(Node::BodyField(field.clone()), &[], target.start)?, Type::String));
            }
            Some(name) if name == TOKEN_CLAIMS || name == TOKEN_HEADER => {
                self.need_tokens(target.start)?;
                let what = if name == TOKEN_CLAIMS { "claim" } else { "header field" };
                let ExprKind::Str(key) = &index.kind else {
                    return Err(ExprError::new(index.start, format!("a {what} name must be a string literal")));
                };
                return self.token_map_entry(&name, key, target.start);
            }
            Some(name) if name == TOKEN || name.starts_with("token.") => {
                self.token_attribute(&name, target.start)?;
                return Err(ExprError::new(target.start, NOT_INDEXABLE));
            }
            Some(name) if name == LISTS => {
                return Err(ExprError::new(
                    target.start,
                    "lists[\"id\"] is only used on the right of 'in': key in lists[\"id\"]",
                ));
            }
            Some(name) if Attribute::from_name(&name).is_none() => return Err(unknown_attribute(target.start, &name)),
            _ => return Err(ExprError::new(target.start, NOT_INDEXABLE)),
        }
        let ExprKind::Str(header) = &index.kind else {
            return Err(ExprError::new(index.start, "a header name must be a string literal"));
        };
        Ok((self.push(Node::Header(header.to_ascii_lowercase()), &[], target.start)?, Type::String))
    }

    fn call(&mut self, target: Option<&Expr>, name: &str, at: usize, args: &[Expr]) -> Result<Emitted, ExprError> {
        if name == "detected" {
            if target.is_some() {
                return Err(ExprError::new(
                    at,
                    "'detected' is a function, not a method: detected(\"id\") or detected(\"classifier\", \"location\")",
                ));
            }
            return self.detected(at, args);
        }
        if matches!(name, "count" | "distinct_count" | "seen_elsewhere") {
            if target.is_some() {
                return Err(ExprError::new(
                    at,
                    format!("'{name}' is a function, not a method: {name}(\"counter-id\")"),
                ));
            }
            return self.counter(name, at, args);
        }
        // `size(s)` and `matches(s, re)` also exist in global form: normalise to receiver + arguments.
        let (receiver, args) = match (target, name, args) {
            (Some(t), _, _) => (t, args),
            (None, "size" | "matches", [first, rest @ ..]) => (first, rest),
            (None, "size" | "matches", []) => {
                let want = if name == "size" { 1 } else { 2 };
                return Err(arity(at, name, want, 0));
            }
            (None, _, _) => return Err(unknown_function(at, name)),
        };
        let want = match name {
            "startsWith" | "endsWith" | "contains" | "matches" => 1,
            "size" => 0,
            _ => return Err(unknown_function(at, name)),
        };
        if args.len() != want {
            // Count the receiver too when the call was written in global form.
            let extra = usize::from(target.is_none());
            return Err(arity(at, name, want + extra, args.len() + extra));
        }
        let (subject, ty) = self.emit(receiver)?;
        if ty != Type::String {
            return Err(type_error(receiver.start, format!("'{name}' needs a string receiver, found {}", ty.name())));
        }
        let Some(arg) = args.first() else {
            return Ok((self.push(Node::Size(subject), &[subject], at)?, Type::Int));
        };
        if name == "matches" {
            let ExprKind::Str(pattern) = &arg.kind else {
                return Err(ExprError::new(arg.start, "the pattern of 'matches' must be a string literal"));
            };
            let dfa = self.scope.regexes.intern(pattern).map_err(|message| ExprError::new(arg.start, message))?;
            return Ok((self.push(Node::Matches { subject, dfa }, &[subject], at)?, Type::Bool));
        }
        let (needle, arg_ty) = self.emit(arg)?;
        if arg_ty != Type::String {
            return Err(type_error(arg.start, format!("'{name}' needs a string argument, found {}", arg_ty.name())));
        }
        let node = match name {
            "startsWith" => Node::StartsWith(subject, needle),
            "endsWith" => Node::EndsWith(subject, needle),
            _ => Node::Contains(subject, needle),
        };
        Ok((self.push(node, &[subject, needle], at)?, Type::Bool))
    }

    /// `detected("id")` for a declared detection, `detected("classifier", "location")` for an implicit one.
    fn detected(&mut self, at: usize, args: &[Expr]) -> Result<Emitted, ExprError> {
        let index = match args {
            [id] => {
                let (id, id_at) = literal(id, "a detection id")?;
                if id.starts_with(JWT_PREFIX) {
                    return self.jwt_finding(id, id_at);
                }
                self.scope.tables.declared(id).ok_or_else(|| self.unknown_detection(id_at, id))?
            }
            [classifier, location] => {
                let (name, name_at) = literal(classifier, "a classifier id")?;
                let (place, place_at) = literal(location, "a location")?;
                let tables = &mut *self.scope.tables;
                let Some(classifier) = tables.classifier(name) else {
                    return Err(ExprError::new(name_at, tables.unknown_classifier(name)));
                };
                let Some(location) = Location::from_name(place) else {
                    return Err(ExprError::new(place_at, unknown_location(place)));
                };
                if let Some(base) = Tables::layered_on(classifier) {
                    return Err(ExprError::new(
                        name_at,
                        format!(
                            "classifier '{name}' is layered on '{base}': declare it under detections, with \
                             'requires:' naming a {base} detection"
                        ),
                    ));
                }
                tables.implicit(classifier, location).map_err(|message| ExprError::new(at, message))?
            }
            _ => {
                return Err(ExprError::new(at, format!("'detected' takes 1 or 2 arguments, found {}", args.len())));
            }
        };
        Ok((self.push(Node::Detected(index), &[], at)?, Type::Bool))
    }

    /// `count("id")`, `count("id", key)`, `distinct_count(...)` (ints) and `seen_elsewhere("id")` (bool).
    fn counter(&mut self, name: &str, at: usize, args: &[Expr]) -> Result<Emitted, ExprError> {
        let (first, key) = match args {
            [first] => (first, None),
            [first, key] if name != "seen_elsewhere" => (first, Some(key)),
            _ => {
                let takes = if name == "seen_elsewhere" { "1 argument" } else { "1 or 2 arguments" };
                return Err(ExprError::new(at, format!("'{name}' takes {takes}, found {}", args.len())));
            }
        };
        let ExprKind::Str(id) = &first.kind else {
            return Err(ExprError::new(first.start, format!("the first argument of '{name}' is a counter id literal")));
        };
        let Some((index, sig)) = self.scope.counters.iter().enumerate().find(|(_, c)| c.id == *id) else {
            let known: Vec<&str> = self.scope.counters.iter().map(|c| c.id.as_str()).collect();
            let known = if known.is_empty() { "no counters are declared".to_owned() } else { known.join(", ") };
            return Err(ExprError::new(first.start, format!("unknown counter '{id}' ({known})")));
        };
        let counter = u16::try_from(index).map_err(|_| ExprError::new(at, "too many counters"))?;
        let (kind, parts) = (sig.kind, sig.parts);
        let fits = match name {
            "count" => matches!(kind, CounterKind::Requests | CounterKind::Sum),
            "distinct_count" => kind == CounterKind::Distinct,
            _ => kind == CounterKind::LastSeen,
        };
        if !fits {
            let use_instead = match kind {
                CounterKind::Requests | CounterKind::Sum => "count",
                CounterKind::Distinct => "distinct_count",
                CounterKind::LastSeen => "seen_elsewhere",
            };
            return Err(ExprError::new(
                at,
                format!("counter '{id}' is a {} counter: read it with {use_instead}(\"{id}\")", kind.name()),
            ));
        }
        if name == "seen_elsewhere" {
            return Ok((self.push(Node::SeenElsewhere(counter), &[], at)?, Type::Bool));
        }
        let Some(key) = key else {
            return Ok((self.push(Node::Counter { counter, key: None }, &[], at)?, Type::Int));
        };
        if parts != 1 {
            return Err(ExprError::new(
                key.start,
                format!(
                    "counter '{id}' is keyed by {parts} values: read this exchange's own key with {name}(\"{id}\")"
                ),
            ));
        }
        let (key_index, ty) = self.emit(key)?;
        if ty != Type::String {
            return Err(type_error(key.start, format!("a counter key must be a string, found {}", ty.name())));
        }
        Ok((self.push(Node::Counter { counter, key: Some(key_index) }, &[key_index], at)?, Type::Int))
    }

    fn unknown_detection(&self, at: usize, id: &str) -> ExprError {
        let tables = &*self.scope.tables;
        if tables.classifier(id).is_some() {
            return ExprError::new(
                at,
                format!(
                    "unknown detection '{id}': '{id}' is a classifier; name a location too, \
                     e.g. detected(\"{id}\", \"request.body\")"
                ),
            );
        }
        let known = tables.declared_ids();
        if known.is_empty() {
            return ExprError::new(at, format!("unknown detection '{id}' (no detections are declared)"));
        }
        ExprError::new(at, format!("unknown detection '{id}' (known: {})", known.join(", ")))
    }

    /// Refuses a token attribute (at `at`) in a policy without a `tokens:` section.
    fn need_tokens(&self, at: usize) -> Result<&TokenPolicy, ExprError> {
        self.scope.tokens.ok_or_else(|| ExprError::new(at, NO_TOKENS))
    }

    /// `token.present`, `token.id`, `token.kind`, and `token.claims.name` / `token.header.name` (CEL's `map.key`).
    fn token_attribute(&mut self, name: &str, at: usize) -> Result<Emitted, ExprError> {
        let (node, ty) = match name {
            "token.present" => (Node::TokenPresent, Type::Bool),
            "token.id" => (Node::TokenField(TokenField::Id), Type::String),
            "token.kind" => (Node::TokenField(TokenField::Kind), Type::String),
            TOKEN_CLAIMS | TOKEN_HEADER => {
                self.need_tokens(at)?;
                let (what, example) = if name == TOKEN_CLAIMS { ("claim", "sub") } else { ("header field", "kid") };
                return Err(ExprError::new(at, format!("{name} is a map: read a {what} with {name}[\"{example}\"]")));
            }
            _ => {
                let entry = [TOKEN_CLAIMS, TOKEN_HEADER].into_iter().find_map(|map| {
                    let key = name.strip_prefix(map)?.strip_prefix('.')?;
                    (!key.contains('.')).then_some((map, key))
                });
                let Some((map, key)) = entry else {
                    return Err(ExprError::new(
                        at,
                        format!("unknown token attribute '{name}' (known: {TOKEN_ATTRIBUTES})"),
                    ));
                };
                self.need_tokens(at)?;
                return self.token_map_entry(map, key, at);
            }
        };
        self.need_tokens(at)?;
        Ok((self.push(node, &[], at)?, ty))
    }

    /// `token.claims["name"]` or `token.header["name"]` (`map` names which); names are case-sensitive, as in JSON.
    fn token_map_entry(&mut self, map: &str, key: &str, at: usize) -> Result<Emitted, ExprError> {
        let node =
            if map == TOKEN_CLAIMS { Node::TokenClaim(key.to_owned()) } else { Node::TokenHeader(key.to_owned()) };
        Ok((self.push(node, &[], at)?, Type::String))
    }

    /// `detected("jwt.…")`: a finding of the JWT analysis, which needs `tokens.jwt`.
    fn jwt_finding(&mut self, name: &str, at: usize) -> Result<Emitted, ExprError> {
        let Some(finding) = JwtFinding::from_name(name) else {
            let known: Vec<&str> = JwtFinding::ALL.iter().map(|f| f.name()).collect();
            return Err(ExprError::new(at, format!("unknown JWT finding '{name}' (known: {})", known.join(", "))));
        };
        if self.need_tokens(at)?.jwt.is_none() {
            return Err(ExprError::new(
                at,
                format!("JWT findings need a 'jwt:' section under 'tokens:' ('{name}' is never reported without one)"),
            ));
        }
        Ok((self.push(Node::JwtFinding(finding), &[], at)?, Type::Bool))
    }

    /// A `&&` / `||` chain, emitted as a balanced tree (both operators are associative, errors included).
    fn logical(&mut self, op: LogicalOp, operands: &[Expr]) -> Result<Emitted, ExprError> {
        let mut level = Vec::with_capacity(operands.len());
        for operand in operands {
            let (index, ty) = self.emit(operand)?;
            if ty != Type::Bool {
                return Err(type_error(
                    operand.start,
                    format!("'{}' needs bool operands, found {}", op.symbol(), ty.name()),
                ));
            }
            level.push((index, operand.start));
        }
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len().div_ceil(2));
            for pair in level.chunks(2) {
                match *pair {
                    [(a, at), (b, _)] => {
                        let node = match op {
                            LogicalOp::And => Node::And(a, b),
                            LogicalOp::Or => Node::Or(a, b),
                        };
                        next.push((self.push(node, &[a, b], at)?, at));
                    }
                    _ => next.extend_from_slice(pair),
                }
            }
            level = next;
        }
        let (root, _) = level.first().copied().ok_or_else(|| ExprError::new(0, "empty condition"))?;
        Ok((root, Type::Bool))
    }

    fn relation(&mut self, op: RelOp, at: usize, lhs: &Expr, rhs: &Expr) -> Result<Emitted, ExprError> {
        if op == RelOp::In {
            if let ExprKind::Index { target, index } = &rhs.kind {
                if dotted_name(target).as_deref() == Some(LISTS) {
                    return self.in_list(at, lhs, index);
                }
            }
            return self.has_header(at, lhs, rhs);
        }
        let (a, ta) = self.emit(lhs)?;
        let (b, tb) = self.emit(rhs)?;
        let symbol = op.symbol();
        if ta != tb {
            return Err(type_error(
                at,
                format!("'{symbol}' needs operands of the same type, found {} and {}", ta.name(), tb.name()),
            ));
        }
        let node = match op {
            RelOp::Eq => Node::Eq(a, b),
            RelOp::Ne => Node::Ne(a, b),
            ordering => {
                if ta == Type::Bool {
                    return Err(type_error(at, format!("'{symbol}' needs int or string operands, found bool")));
                }
                match ordering {
                    RelOp::Lt => Node::Lt(a, b),
                    RelOp::Le => Node::Le(a, b),
                    RelOp::Gt => Node::Gt(a, b),
                    _ => Node::Ge(a, b),
                }
            }
        };
        Ok((self.push(node, &[a, b], at)?, Type::Bool))
    }

    /// `key in lists["id"]`: the key is any string expression.
    fn in_list(&mut self, at: usize, lhs: &Expr, index: &Expr) -> Result<Emitted, ExprError> {
        let (key, ty) = self.emit(lhs)?;
        if ty != Type::String {
            return Err(type_error(
                lhs.start,
                format!("the key of 'in lists[...]' must be a string, found {}", ty.name()),
            ));
        }
        let ExprKind::Str(id) = &index.kind else {
            return Err(ExprError::new(index.start, "a list id must be a string literal"));
        };
        let lists = self.scope.lists;
        let Some(list) = lists.iter().position(|l| l == id) else {
            let message = if lists.is_empty() {
                format!("unknown list '{id}' (no lists are declared)")
            } else {
                format!("unknown list '{id}' (known: {})", lists.join(", "))
            };
            return Err(ExprError::new(index.start, message));
        };
        let list = u16::try_from(list).map_err(|_| ExprError::new(index.start, "too many lists"))?;
        Ok((self.push(Node::InList { list, key }, &[key], at)?, Type::Bool))
    }

    /// `"name" in request.headers`.
    fn has_header(&mut self, at: usize, lhs: &Expr, rhs: &Expr) -> Result<Emitted, ExprError> {
        let usage = "'in' is only supported as \"name\" in request.headers and key in lists[\"id\"]";
        match dotted_name(rhs) {
            Some(name) if name == HEADERS => {}
            Some(name) if name == TOKEN_CLAIMS || name == TOKEN_HEADER => {
                return Err(ExprError::new(
                    at,
                    format!(
                        "'in' is not supported on {name}: read the entry with {name}[\"name\"] (an absent one is an \
                         error, so the rule does not match)"
                    ),
                ));
            }
            Some(name) if name == TOKEN || name.starts_with("token.") => {
                self.token_attribute(&name, rhs.start)?;
                return Err(ExprError::new(rhs.start, usage));
            }
            Some(name) if Attribute::from_name(&name).is_none() => return Err(unknown_attribute(rhs.start, &name)),
            _ => return Err(ExprError::new(rhs.start, usage)),
        }
        let ExprKind::Str(header) = &lhs.kind else {
            return Err(ExprError::new(lhs.start, usage));
        };
        Ok((self.push(Node::HasHeader(header.to_ascii_lowercase()), &[], at)?, Type::Bool))
    }
}

/// `a.b.c` for a chain of names, `None` for anything else.
fn dotted_name(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Ident(name) => Some(name.clone()),
        ExprKind::Member { target, field, .. } => {
            let mut name = dotted_name(target)?;
            name.push('.');
            name.push_str(field);
            Some(name)
        }
        _ => None,
    }
}

/// A string literal argument of `detected`, with its offset.
fn literal<'e>(e: &'e Expr, what: &str) -> Result<(&'e str, usize), ExprError> {
    match &e.kind {
        ExprKind::Str(s) => Ok((s, e.start)),
        _ => Err(ExprError::new(e.start, format!("the arguments of 'detected' are string literals: expected {what}"))),
    }
}

fn type_error(at: usize, message: String) -> ExprError {
    ExprError::new(at, format!("type error: {message}"))
}

fn unknown_attribute(at: usize, name: &str) -> ExprError {
    let known: Vec<&str> =
        Attribute::ALL.iter().map(|a| a.name()).chain([HEADERS, RESPONSE_CODE, RESPONSE_BYTES]).collect();
    ExprError::new(at, format!("unknown attribute '{name}' (known: {})", known.join(", ")))
}

fn unknown_function(at: usize, name: &str) -> ExprError {
    ExprError::new(at, format!("unknown function '{name}' (known: {FUNCTIONS})"))
}

fn arity(at: usize, name: &str, want: usize, found: usize) -> ExprError {
    let plural = if want == 1 { "" } else { "s" };
    ExprError::new(at, format!("'{name}' takes {want} argument{plural}, found {found}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<Vec<Node>, (usize, String)> {
        compile_in(text, &mut Tables::default(), &[])
    }

    fn compile_in(text: &str, tables: &mut Tables, lists: &[String]) -> Result<Vec<Node>, (usize, String)> {
        let mut scope = Scope { regexes: &mut Regexes::default(), tables, lists, tokens: None, counters: &[] };
        compile_condition(text, &mut scope).map_err(|e| (e.offset, e.message))
    }

    /// Tables with detections `cards` (credit_card in response.body) and `ssn-in` (credit_card in request.body).
    fn tables() -> Tables {
        let mut t = Tables::default();
        let card = t.classifier("credit_card").unwrap();
        t.declare("cards".into(), card, Location::ResponseBody, None).unwrap();
        t.declare("ssn-in".into(), card, Location::RequestBody, None).unwrap();
        t
    }

    #[test]
    fn detections_and_lists() {
        let mut t = tables();
        let lists = ["hot".to_owned(), "sensitive".to_owned()];
        assert_eq!(
            compile_in(r#"detected("ssn-in") || endpoint in lists["sensitive"]"#, &mut t, &lists).unwrap(),
            vec![
                Node::Detected(1),
                Node::Attribute(Attribute::Endpoint),
                Node::InList { list: 1, key: 1 },
                Node::Or(0, 2)
            ]
        );
        // Implicit detections are appended once, whatever the number of uses.
        assert_eq!(
            compile_in(
                r#"detected("credit_card", "request.query") && !detected("credit_card", "request.query")"#,
                &mut t,
                &lists
            )
            .unwrap(),
            vec![Node::Detected(2), Node::Detected(2), Node::Not(1), Node::And(0, 2)]
        );
        assert_eq!(t.detections().len(), 3);
        assert_eq!(t.detections()[2].id, "credit_card@request.query");
        assert_eq!(
            compile_in(r#"request.headers["x"].size() > 1 && "a" in lists["hot"]"#, &mut t, &lists).unwrap().last(),
            Some(&Node::And(3, 5))
        );
    }

    #[test]
    fn detection_and_list_errors() {
        let mut t = tables();
        let lists = ["hot".to_owned()];
        let mut err = |text: &str| compile_in(text, &mut t, &lists).unwrap_err();
        assert_eq!(err(r#"detected("nope")"#), (9, "unknown detection 'nope' (known: cards, ssn-in)".into()));
        assert_eq!(
            err(r#"detected("credit_card")"#).1,
            "unknown detection 'credit_card': 'credit_card' is a classifier; name a location too, \
             e.g. detected(\"credit_card\", \"request.body\")"
        );
        let builtins: Vec<&str> = crate::scan::builtin::BUILTINS.iter().map(|b| b.id).collect();
        assert_eq!(
            err(r#"detected("passport", "request.body")"#),
            (9, format!("unknown classifier 'passport' (known: {})", builtins.join(", ")))
        );
        assert_eq!(
            err(r#"detected("credit_card", "request.bdy")"#),
            (24, "unknown location 'request.bdy' (expected one of: request.query, request.body, response.body)".into())
        );
        assert_eq!(
            err(r#"detected("card_expiry", "request.body")"#),
            (
                9,
                "classifier 'card_expiry' is layered on 'credit_card': declare it under detections, with \
                 'requires:' naming a credit_card detection"
                    .into()
            )
        );
        assert_eq!(err("detected()"), (0, "'detected' takes 1 or 2 arguments, found 0".into()));
        assert_eq!(
            err("detected(request.path)"),
            (9, "the arguments of 'detected' are string literals: expected a detection id".into())
        );
        assert_eq!(
            err(r#"request.path.detected("cards")"#).1,
            "'detected' is a function, not a method: detected(\"id\") or detected(\"classifier\", \"location\")"
        );
        assert_eq!(err(r#"endpoint in lists["cold"]"#), (18, "unknown list 'cold' (known: hot)".into()));
        assert_eq!(
            err(r#"size(endpoint) in lists["hot"]"#),
            (0, "type error: the key of 'in lists[...]' must be a string, found int".into())
        );
        assert_eq!(err(r#"endpoint in lists[endpoint]"#), (18, "a list id must be a string literal".into()));
        assert_eq!(
            err(r#"lists["hot"] == "a""#),
            (0, "lists[\"id\"] is only used on the right of 'in': key in lists[\"id\"]".into())
        );
        assert_eq!(
            compile(r#"endpoint in lists["hot"]"#).unwrap_err(),
            (18, "unknown list 'hot' (no lists are declared)".into())
        );
        assert_eq!(
            compile(r#"detected("x")"#).unwrap_err(),
            (9, "unknown detection 'x' (no detections are declared)".into())
        );
    }

    /// A token section with `jwt` (`with_jwt`) or without.
    fn token_policy(with_jwt: bool) -> TokenPolicy {
        TokenPolicy {
            sources: vec![crate::token::TokenSource::Cookie { name: "s".into() }],
            identity: crate::token::TokenIdentity::Token,
            hash_key: None,
            jwt: with_jwt.then(|| crate::token::JwtPolicy {
                jwks: "{}".into(),
                allowed_algs: vec![],
                issuers: vec![],
                audiences: vec![],
                max_lifetime_seconds: None,
                clock_skew_seconds: 60,
                require_exp: true,
                weak_secrets: vec![],
            }),
        }
    }

    fn compile_with_tokens(text: &str, tokens: Option<&TokenPolicy>) -> Result<Vec<Node>, (usize, String)> {
        let mut scope = Scope {
            regexes: &mut Regexes::default(),
            tables: &mut Tables::default(),
            lists: &["hot".to_owned()],
            tokens,
            counters: &[],
        };
        compile_condition(text, &mut scope).map_err(|e| (e.offset, e.message))
    }

    #[test]
    fn token_attributes() {
        let policy = token_policy(true);
        let ok = |text: &str| compile_with_tokens(text, Some(&policy)).unwrap();
        assert_eq!(
            ok(r#"token.present && token.kind == "jwt" && token.id in lists["hot"]"#),
            vec![
                Node::TokenPresent,
                Node::TokenField(TokenField::Kind),
                Node::String("jwt".into()),
                Node::Eq(1, 2),
                Node::TokenField(TokenField::Id),
                Node::InList { list: 0, key: 4 },
                Node::And(0, 3),
                Node::And(6, 5),
            ]
        );
        // Claim and header names keep their case; `map.key` is `map["key"]`.
        assert_eq!(
            ok(r#"token.claims["Roles"].contains("admin") || token.header.kid == "k1""#),
            vec![
                Node::TokenClaim("Roles".into()),
                Node::String("admin".into()),
                Node::Contains(0, 1),
                Node::TokenHeader("kid".into()),
                Node::String("k1".into()),
                Node::Eq(3, 4),
                Node::Or(2, 5),
            ]
        );
        assert_eq!(
            ok(r#"detected("jwt.alg_none") && !detected("jwt.expired")"#),
            vec![
                Node::JwtFinding(JwtFinding::AlgNone),
                Node::JwtFinding(JwtFinding::Expired),
                Node::Not(1),
                Node::And(0, 2),
            ]
        );
    }

    #[test]
    fn token_attribute_errors() {
        let with_jwt = token_policy(true);
        let err = |text: &str| compile_with_tokens(text, Some(&with_jwt)).unwrap_err();
        let known = "known: token.present, token.id, token.kind, token.claims, token.header";
        assert_eq!(err(r#"token.sub == "a""#), (0, format!("unknown token attribute 'token.sub' ({known})")));
        assert_eq!(err(r#"token == "a""#), (0, format!("unknown token attribute 'token' ({known})")));
        assert_eq!(
            err(r#"token.claims == "a""#),
            (0, "token.claims is a map: read a claim with token.claims[\"sub\"]".into())
        );
        assert_eq!(err(r#"token.header["a"]["b"] == "a""#), (0, NOT_INDEXABLE.into()));
        assert_eq!(err(r#"token.claims[token.id] == "a""#), (13, "a claim name must be a string literal".into()));
        assert_eq!(err(r#"token.id["x"] == "a""#), (0, NOT_INDEXABLE.into()));
        assert_eq!(
            err(r#""sub" in token.claims"#).1,
            "'in' is not supported on token.claims: read the entry with token.claims[\"name\"] (an absent one is \
             an error, so the rule does not match)"
        );
        assert_eq!(
            err("token.present == 1"),
            (14, "type error: '==' needs operands of the same type, found bool and int".into())
        );
        assert!(err(r#"detected("jwt.nope")"#).1.starts_with("unknown JWT finding 'jwt.nope' (known: jwt.malformed, "));

        let no_jwt = token_policy(false);
        assert_eq!(
            compile_with_tokens(r#"token.present || detected("jwt.bad_signature")"#, Some(&no_jwt)).unwrap_err(),
            (
                26,
                "JWT findings need a 'jwt:' section under 'tokens:' ('jwt.bad_signature' is never reported without \
                 one)"
                    .into()
            )
        );
        assert!(compile_with_tokens(r#"token.claims["sub"] == "a""#, Some(&no_jwt)).is_ok());
        for (text, at) in [
            ("token.present", 0),
            (r#"true && token.claims["sub"] == "a""#, 8),
            (r#"token.header.alg == "a""#, 0),
            (r#"detected("jwt.alg_none")"#, 9),
            (r#"token.id in lists["hot"]"#, 0),
        ] {
            assert_eq!(
                compile_with_tokens(text, None).unwrap_err(),
                (at, "token attributes need a 'tokens:' section".into()),
                "{text}"
            );
        }
    }

    #[test]
    fn emits_post_order_with_root_last() {
        let nodes = compile(r#"request.path.startsWith("/admin") && !("X-Admin-Key" in request.headers)"#).unwrap();
        assert_eq!(
            nodes,
            vec![
                Node::Attribute(Attribute::RequestPath),
                Node::String("/admin".into()),
                Node::StartsWith(0, 1),
                Node::HasHeader("x-admin-key".into()),
                Node::Not(3),
                Node::And(2, 4),
            ]
        );
    }

    #[test]
    fn headers_sizes_and_comparisons() {
        assert_eq!(
            compile(r#"size(request.headers["User-Agent"]) > 200"#).unwrap(),
            vec![Node::Header("user-agent".into()), Node::Size(0), Node::Int(200), Node::Gt(1, 2)]
        );
        assert_eq!(
            compile("request.headers.host.size() <= -1").unwrap(),
            vec![Node::Header("host".into()), Node::Size(0), Node::Int(-1), Node::Le(1, 2)]
        );
        assert_eq!(
            compile(r#"matches(request.query, "a") || true"#).unwrap(),
            vec![
                Node::Attribute(Attribute::RequestQuery),
                Node::Matches { subject: 0, dfa: 0 },
                Node::Bool(true),
                Node::Or(1, 2)
            ]
        );
    }

    #[test]
    fn long_chains_are_balanced() {
        let text = (0..300).map(|i| format!("request.path == \"/{i}\"")).collect::<Vec<_>>().join(" || ");
        let nodes = compile(&text).unwrap();
        assert_eq!(nodes.len(), 300 * 3 + 299);
        let content = crate::bundle::BundleContent {
            policy_name: "t".into(),
            revision: 1,
            compiler_version: "t".into(),
            rules: vec![crate::program::Rule {
                id: "r".into(),
                action: crate::Action::Block,
                status: 403,
                list: None,
                ttl_seconds: 0,
                retry_after_seconds: 0,
                condition: nodes,
                phase: crate::program::Phase::RequestHeaders,
                on_uninspectable: crate::OnUninspectable::Block,
            }],
            ..Default::default()
        };
        assert!(crate::Bundle::from_bytes(&crate::bundle::encode(&content).unwrap()).is_ok());
    }

    #[test]
    fn too_large_is_refused() {
        let text = vec!["true"; 5000].join(" && ");
        assert_eq!(compile(&text).unwrap_err().1, "condition too large (more than 4096 operations)");
    }

    #[test]
    fn type_errors_name_both_types() {
        assert_eq!(
            compile(r#"request.path && true"#).unwrap_err(),
            (0, "type error: '&&' needs bool operands, found string".into())
        );
        assert_eq!(compile(r#"true || 1"#).unwrap_err(), (8, "type error: '||' needs bool operands, found int".into()));
        assert_eq!(
            compile(r#"request.path == 1"#).unwrap_err(),
            (13, "type error: '==' needs operands of the same type, found string and int".into())
        );
        assert_eq!(
            compile("true < false").unwrap_err(),
            (5, "type error: '<' needs int or string operands, found bool".into())
        );
        assert_eq!(
            compile("!request.path").unwrap_err(),
            (1, "type error: '!' needs a bool operand, found string".into())
        );
        assert_eq!(
            compile("size(1) == 1").unwrap_err(),
            (5, "type error: 'size' needs a string receiver, found int".into())
        );
        assert_eq!(
            compile("request.path.startsWith(1)").unwrap_err(),
            (24, "type error: 'startsWith' needs a string argument, found int".into())
        );
        assert_eq!(
            compile("request.path").unwrap_err(),
            (0, "type error: the condition must be a bool, found string".into())
        );
    }

    #[test]
    fn name_errors() {
        let (at, message) = compile(r#"request.pathz == "/""#).unwrap_err();
        assert_eq!(at, 0);
        assert!(message.starts_with("unknown attribute 'request.pathz' (known: request.path, request.url_path, "));
        assert!(message
            .ends_with(", destination.address, endpoint, source.ip, request.headers, response.code, response.bytes)"));
        assert_eq!(
            compile(r#"request.path.foo("x")"#).unwrap_err().1,
            format!("unknown function 'foo' (known: {FUNCTIONS})")
        );
        assert_eq!(
            compile(r#"request.path.startsWith()"#).unwrap_err(),
            (13, "'startsWith' takes 1 argument, found 0".into())
        );
        assert_eq!(compile(r#"size()"#).unwrap_err(), (0, "'size' takes 1 argument, found 0".into()));
        assert_eq!(
            compile(r#"request.path.matches(request.host)"#).unwrap_err(),
            (21, "the pattern of 'matches' must be a string literal".into())
        );
        assert_eq!(
            compile(r#"request.headers[request.host] == "a""#).unwrap_err(),
            (16, "a header name must be a string literal".into())
        );
        assert_eq!(compile(r#"request.path["a"] == "a""#).unwrap_err(), (0, NOT_INDEXABLE.into()));
        assert_eq!(
            compile(r#"request.path in request.headers"#).unwrap_err().1,
            "'in' is only supported as \"name\" in request.headers and key in lists[\"id\"]"
        );
        assert!(compile(r#"request.headers == "a""#).unwrap_err().1.starts_with("request.headers is a map"));
        assert_eq!(compile(r#"request.path.matches("(")"#).unwrap_err(), (21, "bad regex: unclosed group".into()));
    }
}

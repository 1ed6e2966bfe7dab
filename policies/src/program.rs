//! The evaluable form of a rule condition.
//!
//! A condition is a flat arena of [`Node`]s. Every node refers to its operands by index, and an operand always
//! comes *before* the node that uses it; the last node is the root. That shape has three properties the filter
//! relies on: it cannot contain a cycle, it is validated in one pass, and postcard never has to decode a recursive
//! type (which, on hostile bytes, could exhaust the stack).

use serde::{Deserialize, Serialize};

/// Index of a node inside its rule's node arena.
pub type NodeIndex = u32;

/// What a rule does when its condition is true. Ordered by strength: the strongest matching action decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    /// Add this exchange's key (token, address or endpoint) to the rule's list for the rule's ttl, at once (later
    /// rules of the same request already see it), and let the request through.
    AddToList,
    /// Record the verdict in the access log and let the request through.
    Monitor,
    /// Answer `429 Too Many Requests` (or the rule's status) with `Retry-After`; nothing reaches the upstream.
    Throttle,
    /// Answer the request from the filter with the rule's status; nothing reaches the upstream.
    Block,
}

impl Action {
    /// The name used in policies and access logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::AddToList => "add_to_list",
            Action::Monitor => "monitor",
            Action::Throttle => "throttle",
            Action::Block => "block",
        }
    }

    /// True for the actions the filter answers itself (block, throttle).
    pub fn answers(self) -> bool {
        matches!(self, Action::Throttle | Action::Block)
    }
}

/// A scalar request attribute, named after Envoy's attribute vocabulary.
///
/// See <https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/advanced/attributes>.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Attribute {
    /// `request.path`: the `:path` pseudo-header, query included.
    RequestPath,
    /// `request.url_path`: the path without the query string.
    RequestUrlPath,
    /// `request.host`: the `:authority` pseudo-header.
    RequestHost,
    /// `request.scheme`: the `:scheme` pseudo-header.
    RequestScheme,
    /// `request.method`: the `:method` pseudo-header.
    RequestMethod,
    /// `request.query`: the query string, without the `?`; empty when there is none.
    RequestQuery,
    /// `request.id`: the `x-request-id` header.
    RequestId,
    /// `request.useragent`: the `user-agent` header.
    RequestUserAgent,
    /// `request.referer`: the `referer` header.
    RequestReferer,
    /// `request.protocol`: `HTTP/1.1`, `HTTP/2`, ...
    RequestProtocol,
    /// `source.address`: the downstream peer address, `ip:port`.
    SourceAddress,
    /// `destination.address`: the local address the request arrived on, `ip:port`.
    DestinationAddress,
    /// `endpoint`: the endpoint template, `METHOD host/path` with identifiers folded (`/users/{id}`).
    Endpoint,
    /// `source.ip`: the downstream peer address without the port (`10.1.2.3`, `2001:db8::1`).
    SourceIp,
}

impl Attribute {
    /// Every attribute, in a fixed order (used by the compiler's name lookup and by tests).
    pub const ALL: [Attribute; 14] = [
        Attribute::RequestPath,
        Attribute::RequestUrlPath,
        Attribute::RequestHost,
        Attribute::RequestScheme,
        Attribute::RequestMethod,
        Attribute::RequestQuery,
        Attribute::RequestId,
        Attribute::RequestUserAgent,
        Attribute::RequestReferer,
        Attribute::RequestProtocol,
        Attribute::SourceAddress,
        Attribute::DestinationAddress,
        Attribute::Endpoint,
        Attribute::SourceIp,
    ];

    /// The attribute's name in policies, e.g. `request.path`.
    pub fn name(self) -> &'static str {
        match self {
            Attribute::RequestPath => "request.path",
            Attribute::RequestUrlPath => "request.url_path",
            Attribute::RequestHost => "request.host",
            Attribute::RequestScheme => "request.scheme",
            Attribute::RequestMethod => "request.method",
            Attribute::RequestQuery => "request.query",
            Attribute::RequestId => "request.id",
            Attribute::RequestUserAgent => "request.useragent",
            Attribute::RequestReferer => "request.referer",
            Attribute::RequestProtocol => "request.protocol",
            Attribute::SourceAddress => "source.address",
            Attribute::DestinationAddress => "destination.address",
            Attribute::Endpoint => "endpoint",
            Attribute::SourceIp => "source.ip",
        }
    }

    /// Looks an attribute up by its policy name.
    pub fn from_name(name: &str) -> Option<Attribute> {
        Attribute::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// The static type of a node's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// `true` / `false`.
    Bool,
    /// A signed 64-bit integer.
    Int,
    /// A string; request strings are bytes and may not be UTF-8.
    String,
}

impl Type {
    /// The CEL name of the type, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Type::Bool => "bool",
            Type::Int => "int",
            Type::String => "string",
        }
    }
}

/// One operation in a condition. Operands are indices of earlier nodes in the same arena.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Node {
    /// A boolean literal.
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A string literal.
    String(String),
    /// A scalar request attribute; an error when the request does not carry it.
    Attribute(Attribute),
    /// `request.headers["name"]` (name lower-cased by the compiler); an error when the header is absent.
    /// Repeated headers are joined with `,`, as Envoy does.
    Header(String),
    /// `"name" in request.headers`.
    HasHeader(String),
    /// `!x`.
    Not(NodeIndex),
    /// `a && b`, with CEL's error absorption (`false && error` is `false`).
    And(NodeIndex, NodeIndex),
    /// `a || b`, with CEL's error absorption (`true || error` is `true`).
    Or(NodeIndex, NodeIndex),
    /// `a == b` on operands of the same type.
    Eq(NodeIndex, NodeIndex),
    /// `a != b` on operands of the same type.
    Ne(NodeIndex, NodeIndex),
    /// `a < b` on two ints or two strings (bytewise).
    Lt(NodeIndex, NodeIndex),
    /// `a <= b`.
    Le(NodeIndex, NodeIndex),
    /// `a > b`.
    Gt(NodeIndex, NodeIndex),
    /// `a >= b`.
    Ge(NodeIndex, NodeIndex),
    /// `s.startsWith(prefix)`.
    StartsWith(NodeIndex, NodeIndex),
    /// `s.endsWith(suffix)`.
    EndsWith(NodeIndex, NodeIndex),
    /// `s.contains(needle)`.
    Contains(NodeIndex, NodeIndex),
    /// `s.matches("re")`: an unanchored search with the bundle's DFA number `dfa`.
    Matches {
        /// The string searched.
        subject: NodeIndex,
        /// Index into the bundle's DFA table.
        dfa: u32,
    },
    /// `size(s)`: the number of bytes of a string.
    Size(NodeIndex),
    /// `detected("id")`: detection number `.0` found something in this exchange.
    Detected(u16),
    /// `token.present`: the request carries a token in one of the policy's sources.
    TokenPresent,
    /// `token.id` / `token.kind`; an error when there is no token.
    TokenField(crate::token::TokenField),
    /// `token.claims["name"]` as a string (numbers in decimal, other JSON as JSON text); an error when absent.
    TokenClaim(String),
    /// `token.header["name"]`, like [`Node::TokenClaim`] for the JOSE header.
    TokenHeader(String),
    /// `detected("jwt.…")`: the token's analysis found this.
    JwtFinding(crate::token::JwtFinding),
    /// `key in lists["id"]`: the string `key` is a live entry of list number `list`.
    InList {
        /// Index into the bundle's lists.
        list: u16,
        /// The key looked up.
        key: NodeIndex,
    },
    /// `count("id")` / `distinct_count("id")` (int): counter number `counter` for `key`, or for this exchange's own
    /// key (the counter's `per`) when `key` is `None`; an error when the exchange has no such key.
    Counter {
        /// Index into the bundle's counters.
        counter: u16,
        /// An explicit key (a string node), for counters keyed by one value.
        key: Option<NodeIndex>,
    },
    /// `seen_elsewhere("id")`: last-seen counter number `.0` had this exchange's key, within its window, with
    /// another value than this exchange's.
    SeenElsewhere(u16),
    /// `response.code` (int): the response status; an error before (or without) a response.
    ResponseCode,
    /// `response.bytes` (int): response body bytes that went through the filter so far.
    ResponseBytes,
    /// `request.body["field"]`: a field of a JSON or form request body (a dotted path reaches into JSON objects),
    /// as a string (numbers and booleans as their JSON text); an error when absent, or when the body is not JSON or
    /// a form, or longer than the filter keeps for fields.
    BodyField(String),
}

/// When a rule can be decided: the latest part of the exchange its condition reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// With the request headers (attributes, headers, query detections, lists). Can block.
    #[default]
    RequestHeaders,
    /// After the request body (or the inspection cap). Can block: the body is held until then.
    RequestBody,
    /// After the response body. Monitor only: the response is already flowing to the client.
    Response,
}

/// A compiled rule as it travels in a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// The rule's id from the policy; unique in a bundle.
    pub id: String,
    /// What happens when the condition is true.
    pub action: Action,
    /// The HTTP status of a block or throttle (ignored otherwise).
    pub status: u16,
    /// `add_to_list`: index of the list the exchange's key is added to.
    pub list: Option<u16>,
    /// `add_to_list`: how long the entry stays (seconds).
    pub ttl_seconds: u64,
    /// `throttle`: the `Retry-After` the client is given (seconds).
    pub retry_after_seconds: u32,
    /// The condition; the last node is the root and has type `bool`.
    pub condition: Vec<Node>,
    /// When the rule is evaluated (computed by the compiler from what the condition reads).
    pub phase: Phase,
    /// What the rule does when its condition depends on data that could not be inspected (a body in an encoding
    /// that cannot be decoded, a body field that cannot be read).
    pub on_uninspectable: OnUninspectable,
}

/// A rule's `on_uninspectable`: what an uninspectable body means to it. Nothing is ever silently passed: the
/// finding (`inspection=encoded`, `inspection=unreadable`) is in the verdict either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnUninspectable {
    /// The rule matches (takes its action) as if what it could not read had held: the default of `block` and
    /// `throttle` rules.
    Block,
    /// The rule does not match: the default of `monitor` and `add_to_list` rules.
    Pass,
}

impl OnUninspectable {
    /// The default for a rule of `action`: rules that answer act, the others pass.
    pub fn default_for(action: Action) -> OnUninspectable {
        if action.answers() {
            OnUninspectable::Block
        } else {
            OnUninspectable::Pass
        }
    }

    /// The name used in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            OnUninspectable::Block => "block",
            OnUninspectable::Pass => "pass",
        }
    }
}

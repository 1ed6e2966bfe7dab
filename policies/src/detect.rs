//! The sensitive-data side of a bundle: classifiers, detections, body inspection limits and dynamic lists.
//!
//! - A **classifier** recognises one kind of data (`credit_card`, `us_ssn`, a custom regex, ...): a pattern the
//!   compiler turns into part of a multi-pattern DFA, plus a validator run on each candidate (Luhn, mod-97, ...).
//! - A **detection** is a classifier looked for in one [`Location`] of the request or response, optionally layered
//!   on another detection (`requires`): it only counts in a body where the required detection also fired.
//! - A **scan set** is what one location scans for: one DFA built with every pattern the location needs, so a body
//!   is read once whatever the number of classifiers.
//! - A **list** is a dynamic, self-expiring set of keys (endpoints, client addresses, token identities) kept in
//!   proxy shared data; a list's `add_when` condition adds the current request's key when it holds at the end of
//!   the exchange.
//!
//! Findings are counts per classifier and detection, never values.

use serde::{Deserialize, Serialize};

use crate::attacks::{AttackClass, Sensitivity};
use crate::program::{Node, Phase};

/// Where a detection looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Location {
    /// The query string of the request (`request.query`), percent-decoded; available with the request headers.
    RequestQuery,
    /// The request body, up to the inspection cap.
    RequestBody,
    /// The response body, up to the inspection cap. Findings here act on *later* requests (through lists).
    ResponseBody,
}

impl Location {
    /// Every location, in the order of [`crate::bundle::BundleContent::scan_sets`].
    pub const ALL: [Location; 3] = [Location::RequestQuery, Location::RequestBody, Location::ResponseBody];

    /// The name used in policies: `request.query`, `request.body`, `response.body`.
    pub fn name(self) -> &'static str {
        match self {
            Location::RequestQuery => "request.query",
            Location::RequestBody => "request.body",
            Location::ResponseBody => "response.body",
        }
    }

    /// Looks a location up by its policy name.
    pub fn from_name(name: &str) -> Option<Location> {
        Location::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Index into per-location tables.
    pub fn index(self) -> usize {
        match self {
            Location::RequestQuery => 0,
            Location::RequestBody => 1,
            Location::ResponseBody => 2,
        }
    }
}

/// How a classifier's candidates are confirmed after the DFA found them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Validator {
    /// Every DFA match counts.
    None,
    /// The digits of the candidate pass the Luhn check.
    Luhn,
    /// Card number: Luhn, and issuer prefix and length fit a known network.
    CreditCard,
    /// The candidate (letters and digits) passes the ISO 13616 mod-97 check.
    Mod97,
    /// IBAN: country code with its registered length, then mod-97.
    Iban,
    /// US SSN area/group/serial rules (no 000, 666 or 9xx areas, no 00 group, no 0000 serial).
    UsSsn,
    /// A card expiry `MM/YY` or `MM/YYYY` with a valid month.
    CardExpiry,
    /// An email address with a plausible domain (a dot, a TLD of letters).
    Email,
    /// A phone number: E.164, or a national form with enough digits.
    Phone,
    /// Four octets, each 0–255.
    Ipv4,
    /// A valid IPv6 address (as `std::net::Ipv6Addr` parses it).
    Ipv6,
    /// A JWT: three base64url segments, the first two decoding to JSON objects.
    Jwt,
}

/// One classifier as it travels in a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifierDef {
    /// The classifier's id (`credit_card`, or a custom id from the policy).
    pub id: String,
    /// How candidates are confirmed.
    pub validator: Validator,
    /// Lower-case keywords, one of which must appear within `context_window` bytes before the match (empty: none needed).
    pub context: Vec<String>,
    /// How far before a match to look for a context keyword.
    pub context_window: u16,
    /// The longest match the pattern can produce (bytes), so the scanner keeps enough of the stream to validate it.
    pub max_len: u16,
    /// Confidence the policy author gives a confirmed finding (0–100), reported with findings.
    pub confidence: u8,
}

/// One detection: a classifier in a location.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionDef {
    /// The detection's id (a policy id, or an implicit `classifier@location` for `detected("c", "loc")`).
    pub id: String,
    /// Index into [`crate::bundle::BundleContent::classifiers`].
    pub classifier: u16,
    /// Where it looks.
    pub location: Location,
    /// Index of a detection (same location) that must also have fired for this one to count.
    pub requires: Option<u16>,
    /// For an attack detection (`classifier: sqli`, ...): what it looks for and where; `classifier` is then unused
    /// (0) and `location` is the phase it is decided in (`request.query` for the path, query and headers,
    /// `request.body` when it also reads the body).
    pub attack: Option<AttackDef>,
}

impl DetectionDef {
    /// Whether this detection is found by a scan set (a classifier), not by the attack inspector.
    pub fn scans(&self) -> bool {
        self.attack.is_none()
    }
}

/// An attack detection: a class of injection, how eagerly, where, and the parameters it skips.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackDef {
    /// The class of attack.
    pub class: AttackClass,
    /// How eagerly it reports.
    pub sensitivity: Sensitivity,
    /// Where it looks: a bit per [`crate::attacks::Place`] (`1 << place as u8`).
    pub places: u8,
    /// Parameters it does not look at on given endpoints.
    pub exclude: Vec<Exclusion>,
}

/// A parameter an attack detection skips on one endpoint (or on every endpoint).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    /// The endpoint template (`POST api.example.com/comments`, as the verdict's `endpoint=` shows it); empty: every
    /// endpoint.
    pub endpoint: String,
    /// The parameter as the verdict names it: `body.html`, `query.q`, `header.referer`, `cookie.session`.
    pub param: String,
}

/// What one location scans for: a multi-pattern DFA whose pattern `i` belongs to classifier `patterns[i]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSetDef {
    /// Index into [`crate::bundle::BundleContent::dfas`]: an unanchored, overlapping (`MatchKind::All`) DFA.
    pub dfa: u32,
    /// Classifier index of each DFA pattern.
    pub patterns: Vec<u16>,
}

/// What identifies an entry of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListKey {
    /// The endpoint template: method, host and path with identifiers folded.
    Endpoint,
    /// The client address (`source.address` without the port).
    SourceIp,
    /// The caller's token identity (`token.id`, a keyed hash, never the token); an exchange without a token has no
    /// key and is not added.
    Token,
}

/// A list: static entries from the bundle, dynamic entries in shared data, or both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListDef {
    /// The list's id.
    pub id: String,
    /// What its entries are.
    pub key: ListKey,
    /// How long a dynamic entry stays after it was last added; 0: the list is static (no shared data).
    pub ttl_seconds: u64,
    /// The most dynamic entries the list holds; past it, the entry closest to expiry in the key's bucket is evicted.
    pub max_entries: u32,
    /// When the current request's key is added (evaluated at the end of the exchange); empty: never.
    pub add_when: Vec<Node>,
    /// Static entries, sorted: exact keys (token ids, endpoint templates, addresses).
    pub entries: Vec<String>,
    /// Static networks (`source_ip` lists): an address is in the list when one of them contains it.
    pub networks: Vec<Network>,
    /// Each worker remembers a lookup's answer until its next tick (250 ms), and sees its own additions at once:
    /// cheaper, and another worker's additions reach it within a tick.
    pub batched: bool,
}

impl ListDef {
    /// True when the list keeps entries in shared data (it has a ttl).
    pub fn is_dynamic(&self) -> bool {
        self.ttl_seconds > 0
    }

    /// True when `key` is one of the static entries or inside one of the static networks.
    pub fn contains_static(&self, key: &[u8]) -> bool {
        if self.entries.binary_search_by(|e| e.as_bytes().cmp(key)).is_ok() {
            return true;
        }
        if self.networks.is_empty() {
            return false;
        }
        std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| self.networks.iter().any(|n| n.contains(ip)))
    }
}

/// An IP network (CIDR), IPv4 kept as IPv4-mapped IPv6 so one comparison serves both families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// The network address, IPv6 octets (IPv4 mapped as `::ffff:a.b.c.d`), host bits zero.
    pub address: [u8; 16],
    /// Prefix length over the 128 bits (an IPv4 `/24` is 120).
    pub prefix: u8,
}

impl Network {
    /// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a /32 or /128). `None` when malformed or when host
    /// bits are set past the prefix (`10.0.0.1/8` is refused: it is probably a typo).
    pub fn parse(text: &str) -> Option<Network> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let ip: std::net::IpAddr = addr.parse().ok()?;
        let (octets, offset, width) = match ip {
            std::net::IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), 96u8, 32u8),
            std::net::IpAddr::V6(v6) => (v6.octets(), 0, 128),
        };
        let prefix = prefix.unwrap_or(width);
        if prefix > width {
            return None;
        }
        let network = Network { address: octets, prefix: offset + prefix };
        (network.mask(octets) == octets).then_some(network)
    }

    /// True when `ip` is inside the network.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let octets = match ip {
            std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(v6.octets(), |v4| v4.to_ipv6_mapped().octets()),
        };
        self.mask(octets) == self.address
    }

    fn mask(&self, octets: [u8; 16]) -> [u8; 16] {
        let bits = u128::from_be_bytes(octets);
        let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix.min(128))).unwrap_or(0);
        (bits & mask).to_be_bytes()
    }
}

/// What a counter counts, per key, over its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterKind {
    /// Exchanges (excessive usage, failed logins): a sliding-window count.
    Requests,
    /// The sum of an int (`of`, e.g. `response.bytes`) over a sliding window (data harvesting).
    Sum,
    /// Distinct values of a string (`of`, e.g. `endpoint`) since the key's first one in the window (enumeration).
    Distinct,
    /// The last value of a string (`of`, e.g. `source.ip`) and when (token sharing, impossible travel).
    LastSeen,
}

impl CounterKind {
    /// The name used in policies.
    pub fn name(self) -> &'static str {
        match self {
            CounterKind::Requests => "requests",
            CounterKind::Sum => "sum",
            CounterKind::Distinct => "distinct",
            CounterKind::LastSeen => "last_seen",
        }
    }
}

/// A counter over time, kept in shared data and shared by every worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterDef {
    /// The counter's id (also its name in shared data).
    pub id: String,
    /// What it counts.
    pub kind: CounterKind,
    /// The key, one string expression per part (`per: [token.id, endpoint]`), joined with `0x1f`. An exchange for
    /// which a part does not evaluate (no token, say) is not counted.
    pub per: Vec<Vec<Node>>,
    /// The value counted: an int (`sum`) or a string (`distinct`, `last_seen`); empty for `requests`.
    pub of: Vec<Node>,
    /// The exchanges counted (a bool expression); empty: all of them.
    pub when: Vec<Node>,
    /// The window, in seconds.
    pub window_seconds: u64,
    /// The most keys tracked at once; past it, the key with the lowest count in its bucket is evicted.
    pub max_keys: u32,
    /// `distinct`: the most values tracked per key (a count past it reads as `max_distinct + 1`).
    pub max_distinct: u32,
    /// When the counter is updated: with the request headers (before the rules, so the count includes this
    /// exchange) when everything it reads is known then, else at the end of the exchange.
    pub phase: Phase,
    /// Each worker adds up its updates and writes them to shared data once per tick instead of once per exchange
    /// (`requests`, `sum`), or skips items it already recorded in the key's window (`distinct`). Cheaper; other
    /// workers' updates reach a rule up to a tick later.
    pub batched: bool,
}

/// Which bodies are inspected, and how much of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionDef {
    /// Bytes inspected per direction; past it inspection stops and the verdict says the body was truncated.
    pub max_body_bytes: u32,
    /// Inspect bodies whose content type is not recognised as text (off by default: binary is skipped).
    pub inspect_binary: bool,
}

impl Default for InspectionDef {
    fn default() -> Self {
        InspectionDef { max_body_bytes: 256 * 1024, inspect_binary: false }
    }
}

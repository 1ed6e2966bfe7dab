//! `portcullis rollback`: publish an old revision's content again, under a new, higher revision.
//!
//! Filters never accept an older revision than the one they enforce, so a rollback is a forward push: the old
//! bundle is fetched from the server's object store, its content re-encoded with a new revision, re-signed and
//! pushed with `?rollback_of=OLD`, which the history records.

use std::path::Path;

use portcullis_policies::bundle::{self, decode_content, encode};
use portcullis_policies::signing;
use sha2::{Digest, Sha256};

use crate::client::Client;
use crate::clock;
use crate::datadir::HistoryEntry;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::SecretKey;
use crate::names;
use crate::report::History;

/// What to roll back, and how to sign and name the result.
pub struct Rollback<'a> {
    /// The control plane's base URL.
    pub server: &'a str,
    /// The bundle name.
    pub name: &'a str,
    /// The revision whose content to restore.
    pub to: u64,
    /// The secret key file to sign with; `None` pushes an unsigned bundle.
    pub sign: Option<&'a Path>,
    /// The new revision [default: the current Unix time, or the newest revision + 1 if that is not higher].
    pub revision: Option<u64>,
    /// The upload token.
    pub token: &'a str,
    /// Who is rolling back.
    pub actor: Option<&'a str>,
}

/// Runs the rollback. Returns the line to print.
///
/// # Errors
///
/// If revision `to` is not in the history, its object is missing or does not match its hash, the new revision
/// is not higher than the newest one, the key cannot be used, or the push is refused.
pub fn rollback(args: &Rollback<'_>) -> Result<String> {
    if !names::is_valid(args.name) {
        return Err(Error::new(ErrorKind::Usage, names::invalid_message(args.name)));
    }
    let key = args.sign.map(SecretKey::load).transpose()?;
    let client = Client::new(args.server);
    let history: History = client.get_json(&format!("/v1/bundles/{}/history", args.name))?;
    let newest = newest_enforceable(&history.entries, clock::now_ms() / 1000);
    let Some(old) = history.entries.iter().rev().find(|e| e.revision == args.to) else {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("revision {} is not in the history of '{}' (see `portcullis history`)", args.to, args.name),
        ));
    };
    let bytes = fetch_object(&client, old)?;
    let invalid = |e: &dyn std::fmt::Display| {
        Error::new(ErrorKind::InvalidBundle, format!("revision {} as stored is not a valid bundle: {e}", args.to))
    };
    let envelope = signing::open(&bytes).map_err(|e| invalid(&e))?;
    let mut content = decode_content(envelope.bundle).map_err(|e| invalid(&e))?;
    let revision = args.revision.unwrap_or_else(|| (clock::now_ms() / 1000).max(newest.saturating_add(1)));
    if revision <= newest {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("--revision {revision} is not higher than the newest revision {newest}; filters would refuse it"),
        ));
    }
    content.revision = revision;
    let rebuilt = encode(&content).map_err(|e| invalid(&e))?;
    let (upload, signed) = match &key {
        Some(key) => (key.seal(&rebuilt)?, format!(", signed by {}", key.key_id)),
        None => (rebuilt, String::new()),
    };
    let path = format!("/v1/bundles/{}?rollback_of={}", args.name, args.to);
    let stored = client.put_bundle(&path, args.token, args.actor, &upload)?;
    Ok(format!(
        "rolled back {} to the content of revision {} as revision {} (sha256 {}{signed})",
        args.name, args.to, stored.revision, stored.sha256
    ))
}

/// How far ahead of the clock a revision in the history may be and still count as one filters may hold: the
/// default of `serve --max-revision-ahead` and of the filter's `max_revision_ahead_seconds`.
const FAR_AHEAD_SECS: u64 = 86_400;

/// The newest revision in `entries` that a filter may enforce. A revision further than [`FAR_AHEAD_SECS`] ahead of
/// `now_secs` (2^64 - 1 stored by an older control plane, then undone with `push --rollback`) is left out: filters
/// refuse it, and counting it would make every rollback after it impossible.
fn newest_enforceable(entries: &[HistoryEntry], now_secs: u64) -> u64 {
    let latest = now_secs.saturating_add(FAR_AHEAD_SECS);
    entries.iter().map(|e| e.revision).filter(|&r| r <= latest).max().unwrap_or(0)
}

/// The object an entry names, checked against its name (the SHA-256 of its bytes).
fn fetch_object(client: &Client, entry: &HistoryEntry) -> Result<Vec<u8>> {
    let bytes = client.get_bytes(&format!("/v1/objects/{}", entry.object))?;
    if bundle::hex(&Sha256::digest(&bytes)) != entry.object {
        return Err(Error::new(
            ErrorKind::Http,
            format!("object {} from the server does not match its SHA-256", entry.object),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(revision: u64) -> HistoryEntry {
        HistoryEntry {
            revision,
            sha256: String::new(),
            object: String::new(),
            pushed_at: String::new(),
            pushed_by: None,
            signed_by: None,
            rollback_of: None,
        }
    }

    #[test]
    fn far_future_revisions_do_not_block_rollbacks() {
        let now = 1_800_000_000;
        assert_eq!(newest_enforceable(&[entry(5), entry(u64::MAX), entry(now)], now), now);
        assert_eq!(newest_enforceable(&[entry(now + 3600)], now), now + 3600);
        assert_eq!(newest_enforceable(&[], now), 0);
    }
}

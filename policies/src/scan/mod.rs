//! Streaming inspection of bodies and values for sensitive data (STUB: being written).
//!
//! Contract used by the filter (keep these signatures). NOTE: the inspector OWNS its state and does not borrow
//! the bundle (the filter keeps it next to an `Rc<Bundle>` for the whole exchange, so a borrow would be
//! self-referential); the bundle is passed to `feed` and `finish` instead, like regex-automata's separate caches.
//!
//! ```ignore
//! let mut inspector = BodyInspector::new(&bundle, Location::ResponseBody, content_type, content_encoding)?;
//! inspector.feed(&bundle, chunk);  // any number of times; never allocates; stops at the inspection cap
//! inspector.finish(&bundle);       // end of stream
//! findings.absorb(&bundle, Location::ResponseBody, inspector.classifier_counts());
//! ```

pub mod builtin;

use crate::bundle::Bundle;
use crate::detect::Location;

/// Why a body was not inspected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The content type is binary (images, archives, protobuf, ...) and the policy does not inspect binary.
    Binary,
    /// The body is compressed (`content-encoding`); put Envoy's decompressor filter before Portcullis.
    Encoded,
}

/// Streams one body through the scan set of its location, chunk by chunk, up to the inspection cap.
#[derive(Debug)]
pub struct BodyInspector {
    location: Location,
    counts: Vec<u32>,
    inspected: u64,
    truncated: bool,
    skipped: Option<SkipReason>,
}

impl BodyInspector {
    /// An inspector for a body in `location`; `None` when the bundle looks for nothing there.
    pub fn new(
        bundle: &Bundle,
        location: Location,
        content_type: Option<&[u8]>,
        content_encoding: Option<&[u8]>,
    ) -> Option<BodyInspector> {
        let _ = (content_type, content_encoding);
        bundle.scan_set(location)?;
        Some(BodyInspector {
            location,
            counts: vec![0; bundle.classifiers().len()],
            inspected: 0,
            truncated: false,
            skipped: None,
        })
    }

    /// Inspects the next chunk. Never allocates; past the cap it only records that the body was truncated.
    pub fn feed(&mut self, bundle: &Bundle, chunk: &[u8]) {
        let _ = (bundle, self.location, chunk);
    }

    /// Ends the stream (flushes matches that end at the last byte).
    pub fn finish(&mut self, bundle: &Bundle) {
        let _ = bundle;
    }

    /// True when the body was longer than the inspection cap.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Why the body was not inspected at all, if it was not.
    pub fn skipped(&self) -> Option<SkipReason> {
        self.skipped
    }

    /// Bytes inspected so far.
    pub fn inspected_bytes(&self) -> u64 {
        self.inspected
    }

    /// Confirmed findings so far, per classifier index.
    pub fn classifier_counts(&self) -> &[u32] {
        &self.counts
    }
}

/// Scans a complete value (e.g. the query string, percent-decoded) and returns confirmed findings per classifier.
pub fn scan_value(bundle: &Bundle, location: Location, value: &[u8]) -> Vec<u32> {
    let _ = (location, value);
    vec![0; bundle.classifiers().len()]
}

/// Findings per detection for one exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    counts: Vec<u32>,
}

impl Findings {
    /// No findings yet, sized for `bundle`'s detections.
    pub fn new(bundle: &Bundle) -> Findings {
        Findings {
            counts: vec![0; bundle.detections().len()],
        }
    }

    /// Sets the counts of the detections in `location` from that location's classifier counts, applying layering
    /// (`requires`): a layered detection counts only if the detection it requires fired too.
    pub fn absorb(&mut self, bundle: &Bundle, location: Location, classifier_counts: &[u32]) {
        for (i, d) in bundle.detections().iter().enumerate() {
            if d.location != location {
                continue;
            }
            let mut n = classifier_counts.get(usize::from(d.classifier)).copied().unwrap_or(0);
            if let Some(r) = d.requires {
                if self.counts.get(usize::from(r)).copied().unwrap_or(0) == 0 {
                    n = 0;
                }
            }
            if let Some(slot) = self.counts.get_mut(i) {
                *slot = n;
            }
        }
    }

    /// Findings of detection number `detection`.
    pub fn count(&self, detection: u16) -> u32 {
        self.counts.get(usize::from(detection)).copied().unwrap_or(0)
    }

    /// `(detection index, count)` for every detection that found something.
    pub fn nonzero(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .filter_map(|(i, c)| Some((u16::try_from(i).ok()?, *c)))
    }
}

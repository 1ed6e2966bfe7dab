//! Detector stub: attacks carried by names (NoSQL operators, prototype pollution); replaced by the real detectors.

use super::{Sensitivity, Subject};

/// Whether `subject` carries a NoSQL operator injection at `sensitivity`.
pub fn detect_nosql(_subject: &Subject<'_>, _sensitivity: Sensitivity) -> bool {
    false
}

/// Whether `subject` reaches an object's prototype at `sensitivity`.
pub fn detect_prototype_pollution(_subject: &Subject<'_>, _sensitivity: Sensitivity) -> bool {
    false
}

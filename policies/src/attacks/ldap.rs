//! Detector stub: replaced by the real detector.

use super::{Sensitivity, Subject};

/// Whether `subject` carries this class of attack at `sensitivity`.
pub fn detect(_subject: &Subject<'_>, _sensitivity: Sensitivity) -> bool {
    false
}

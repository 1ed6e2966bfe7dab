//! Stub: undoing evasions into reusable scratch space; replaced by the real normaliser.

//! Bundle names: what may appear in `/v1/bundles/{name}` and on disk as `{name}.bundle`.

/// Longest bundle name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` matches `^[a-z0-9][a-z0-9._-]{0,63}$`.
///
/// No `/`, no leading `.`, nothing outside ASCII: a valid name cannot leave the bundles directory and cannot
/// collide with the hidden temporary files that uploads are written to.
pub fn is_valid(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some((first, rest)) = bytes.split_first() else {
        return false;
    };
    bytes.len() <= MAX_NAME_LEN
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && rest.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

/// The message given for a name that is not valid.
pub fn invalid_message(name: &str) -> String {
    format!("invalid bundle name '{name}': use 1 to 64 of a-z 0-9 . _ - starting with a letter or digit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for name in ["a", "0", "checkout-api", "api.v2_internal", &"a".repeat(64)] {
            assert!(is_valid(name), "{name}");
        }
    }

    #[test]
    fn refuses_traversal_hidden_upper_and_long_names() {
        for name in ["", ".", "..", ".hidden", "-x", "_x", "a/b", "../etc", "A", "caf\u{e9}", "a b", &"a".repeat(65)] {
            assert!(!is_valid(name), "{name}");
        }
    }
}

//! The built-in list of weak HMAC secrets.

/// HMAC secrets that show up in tutorials, framework defaults and leaked configurations. An HS-signed token that
/// verifies with one of them can be forged by anyone (`jwt.weak_secret`). Policies add their own on top.
///
/// Kept short on purpose: every entry costs one HMAC per new HS-signed token (the analysis is cached per token).
pub const BUILTIN_WEAK_SECRETS: &[&str] = &[
    "",
    "secret",
    "Secret",
    "SECRET",
    "secret123",
    "secretkey",
    "secret-key",
    "secret_key",
    "mysecret",
    "my_secret",
    "mysecretkey",
    "my-secret-key",
    "your-256-bit-secret",
    "your-384-bit-secret",
    "your-512-bit-secret",
    "your_jwt_secret",
    "your-secret-key",
    "yoursecret",
    "jwt",
    "jwt_secret",
    "jwt-secret",
    "jwtsecret",
    "JWT_SECRET",
    "jwtkey",
    "jwt_key",
    "token",
    "tokensecret",
    "secrettoken",
    "key",
    "Key",
    "privatekey",
    "private_key",
    "signingkey",
    "password",
    "Password",
    "password1",
    "password123",
    "passw0rd",
    "pass",
    "changeme",
    "changeit",
    "change_me",
    "change-this-secret",
    "123",
    "1234",
    "12345",
    "123456",
    "1234567",
    "12345678",
    "123456789",
    "1234567890",
    "qwerty",
    "abc123",
    "test",
    "testing",
    "test123",
    "testsecret",
    "admin",
    "admin123",
    "root",
    "default",
    "dev",
    "development",
    "demo",
    "example",
    "sample",
    "foobar",
    "hello",
    "letmein",
    "welcome",
    "shhhhh",
    "s3cr3t",
    "supersecret",
    "super-secret",
    "topsecret",
    "notasecret",
    "keyboard cat",
    "HS256",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_short_and_has_no_duplicates() {
        assert!((40..=80).contains(&BUILTIN_WEAK_SECRETS.len()));
        for (i, a) in BUILTIN_WEAK_SECRETS.iter().enumerate() {
            assert!(!BUILTIN_WEAK_SECRETS[i + 1..].contains(a), "duplicate {a:?}");
        }
        assert!(BUILTIN_WEAK_SECRETS.contains(&""));
    }
}

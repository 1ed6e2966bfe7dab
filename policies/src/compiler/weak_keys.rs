//! Is a configured HMAC key weak? Too short for its algorithm, low in entropy, a placeholder phrase, or on the
//! built-in list of known weak secrets: any of these lets `jwt_tool -C` or hashcat find the key from one token, and then sign anything.
//!
//! The list is composed here from secrets that tutorials, framework defaults, documentation samples and leaked
//! configurations reuse ([`BASE_SECRETS`]), in the shapes people give them ([`variants`]: letter case, separators,
//! `my`/`jwt`/`super` prefixes, `key`/`secret`/digits/year suffixes). It is held as a sorted set of 64-bit hashes
//! (the first 8 bytes of each variant's SHA-256), built on first use by the compiler: [`WeakSecretSet::size`] gives
//! its entries and bytes. It lives in the compiler only; the filter never needs it.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// Secrets people reuse, lower case with words separated by `_` (the variants add the other spellings).
/// Composed from well-known defaults: framework and library samples, tutorials, `.env.example` files.
pub(super) const BASE_SECRETS: &[&str] = &[
    // Generic words and phrases.
    "secret",
    "secret_key",
    "secretkey",
    "secret_token",
    "secret_password",
    "secret_phrase",
    "secret_string",
    "the_secret",
    "a_secret",
    "some_secret",
    "very_secret",
    "top_secret",
    "super_secret",
    "supersecret",
    "ultra_secret",
    "mega_secret",
    "shared_secret",
    "shhhhh",
    "shhhhhhared_secret",
    "shh",
    "hush",
    "not_a_secret",
    "notasecret",
    "no_secret",
    "nosecret",
    "insecure",
    "unsafe",
    "change_me",
    "changeme",
    "change_it",
    "changeit",
    "change_this",
    "change_this_secret",
    "change_this_key",
    "change_me_in_production",
    "replace_me",
    "replace_this",
    "replace_with_your_secret",
    "todo",
    "fixme",
    "placeholder",
    "example",
    "example_secret",
    "example_key",
    "sample",
    "sample_secret",
    "sample_key",
    "demo",
    "demo_secret",
    "demo_key",
    "test",
    "test_secret",
    "test_key",
    "testing",
    "testing_secret",
    "dev",
    "dev_secret",
    "dev_key",
    "development",
    "development_secret",
    "development_key",
    "local",
    "local_secret",
    "localhost",
    "staging",
    "staging_secret",
    "prod",
    "prod_secret",
    "production",
    "production_secret",
    "default",
    "default_secret",
    "default_key",
    "temp",
    "temporary",
    "tmp",
    "dummy",
    "fake",
    "mock",
    "foo",
    "bar",
    "foobar",
    "foo_bar",
    "baz",
    "qux",
    "hello",
    "hello_world",
    "helloworld",
    "welcome",
    "letmein",
    "let_me_in",
    "open_sesame",
    "opensesame",
    // Keys and tokens.
    "key",
    "the_key",
    "my_key",
    "mykey",
    "private_key",
    "privatekey",
    "private",
    "public",
    "public_key",
    "signing_key",
    "signingkey",
    "sign_key",
    "signature",
    "signature_key",
    "hmac",
    "hmac_key",
    "hmac_secret",
    "hs256",
    "hs384",
    "hs512",
    "sha256",
    "encryption_key",
    "encrypt_key",
    "crypto_key",
    "master_key",
    "masterkey",
    "api_key",
    "apikey",
    "api_secret",
    "apisecret",
    "app_key",
    "appkey",
    "app_secret",
    "appsecret",
    "application_secret",
    "client_secret",
    "clientsecret",
    "consumer_secret",
    "server_secret",
    "auth_secret",
    "authsecret",
    "auth_key",
    "authentication_secret",
    "authorization_secret",
    "token",
    "token_secret",
    "tokensecret",
    "token_key",
    "access_token_secret",
    "access_secret",
    "refresh_token_secret",
    "refresh_secret",
    "session_secret",
    "sessionsecret",
    "session_key",
    "cookie_secret",
    "cookiesecret",
    "cookie_key",
    "csrf_secret",
    "salt",
    "pepper",
    "nonce",
    "passphrase",
    "pass_phrase",
    // JWT names.
    "jwt",
    "jwt_secret",
    "jwtsecret",
    "jwt_key",
    "jwtkey",
    "jwt_secret_key",
    "jwt_signing_key",
    "jwt_token",
    "jwt_token_secret",
    "jwt_password",
    "jwt_pass",
    "jwt_auth",
    "jwt_auth_secret",
    "json_web_token",
    "jsonwebtoken",
    "jsonwebtoken_secret",
    "your_256_bit_secret",
    "your_384_bit_secret",
    "your_512_bit_secret",
    "your_jwt_secret",
    "your_secret",
    "yoursecret",
    "your_secret_key",
    "your_secret_here",
    "your_key",
    "your_key_here",
    "your_token_secret",
    "your_super_secret",
    "your_api_secret",
    "insert_secret_here",
    "put_your_secret_here",
    "enter_your_secret",
    "secret_here",
    "key_here",
    // Framework and library defaults and samples.
    "keyboard_cat",
    "keyboardcat",
    "express",
    "express_secret",
    "node",
    "nodejs",
    "node_secret",
    "passport",
    "passport_secret",
    "nest",
    "nestjs",
    "next",
    "nextauth",
    "nextauth_secret",
    "nuxt",
    "react",
    "angular",
    "vue",
    "flask",
    "flask_secret",
    "django",
    "django_secret",
    "django_insecure",
    "rails",
    "rails_secret",
    "secret_key_base",
    "laravel",
    "laravel_secret",
    "symfony",
    "symfony_secret",
    "spring",
    "spring_boot",
    "springboot",
    "spring_secret",
    "java",
    "jhipster",
    "jhipster_secret",
    "dotnet",
    "aspnet",
    "golang",
    "go",
    "gin",
    "fiber",
    "fastapi",
    "fastapi_secret",
    "strapi",
    "strapi_secret",
    "parse",
    "loopback",
    "feathers",
    "meteor",
    "koa",
    "hapi",
    "sails",
    "adonis",
    "supabase",
    "firebase",
    "auth0",
    "okta",
    "keycloak",
    "cognito",
    "hasura",
    "hasura_secret",
    "graphql",
    "apollo",
    "prisma",
    "mongo",
    "mongodb",
    "mysql",
    "postgres",
    "redis",
    "docker",
    "kubernetes",
    "heroku",
    "vercel",
    "netlify",
    "aws",
    "azure",
    "gcp",
    // Passwords that double as secrets.
    "password",
    "passw0rd",
    "p_ssw0rd",
    "pa55word",
    "pass",
    "passwd",
    "pwd",
    "password1",
    "password123",
    "admin",
    "administrator",
    "admin123",
    "root",
    "toor",
    "user",
    "guest",
    "login",
    "master",
    "qwerty",
    "qwertyuiop",
    "asdf",
    "asdfgh",
    "asdfghjkl",
    "zxcvbn",
    "abc",
    "abcd",
    "abcdef",
    "abc123",
    "abcdefgh",
    "iloveyou",
    "monkey",
    "dragon",
    "shadow",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "trustno1",
    "hunter2",
    "ninja",
    "batman",
    "superman",
    "starwars",
    "pokemon",
    "matrix",
    "access",
    "whatever",
    "nothing",
    "love",
    "god",
    "money",
    "freedom",
    "computer",
    "internet",
    "server",
    "system",
    "service",
    "backend",
    "frontend",
    "api",
    "app",
    "web",
    "website",
    "company",
    "acme",
    "mycompany",
    "myapp",
    "my_app",
    "myproject",
    "project",
    "startup",
    "null",
    "none",
    "undefined",
    "nil",
    "empty",
    "blank",
    "true",
    "false",
    // Digits and keyboard runs.
    "0",
    "1",
    "12",
    "123",
    "1234",
    "12345",
    "123456",
    "1234567",
    "12345678",
    "123456789",
    "1234567890",
    "0123456789",
    "111111",
    "000000",
    "654321",
    "987654321",
    "112233",
    "121212",
    "a",
    "aa",
    "aaa",
    "aaaa",
    "aaaaaa",
    "x",
    "xxx",
    "xxxx",
    "s3cr3t",
    "s3cr3t_k3y",
    "secr3t",
    "s3cret",
    "5ecret",
    "sekret",
    "sekrit",
    // Long phrases that tutorials offer as "long enough" keys.
    "super_secret_jwt_key_change_this_in_production",
    "secret_key_change_this_in_production",
    "change_this_to_a_long_random_string",
    "change_this_to_a_secure_random_string",
    "replace_with_a_long_random_string",
    "this_is_a_secret_key",
    "this_is_my_secret_key",
    "this_is_my_super_secret_key",
    "this_is_a_very_secret_key",
    "this_is_a_very_long_secret_key",
    "this_is_a_super_secret_key_for_jwt",
    "this_is_my_secret_key_for_jwt",
    "a_very_long_secret_key_that_nobody_can_guess",
    "a_very_secret_key",
    "very_long_secret_key",
    "my_32_character_ultra_secure_and_ultra_long_secret",
    "at_least_32_characters_long_secret",
    "secret_key_that_is_at_least_32_characters_long",
    "super_secret_key_that_is_at_least_32_chars",
    "thisisasecretkey",
    "thisismysecretkey",
    "thisismysupersecretkey",
    "this_is_the_secret",
    "secret_key_for_jwt",
    "secret_key_for_jwt_signing",
    "jwt_secret_key_for_signing",
    "jwt_signing_secret",
    "key_for_signing_jwt_tokens",
    "my_jwt_secret_key_for_authentication",
    "authentication_secret_key",
    "secure_secret_key",
    "secure_jwt_secret",
    "strong_secret_key",
    "random_secret_key",
    "long_secret_key",
    "long_random_secret",
    "generate_a_random_secret",
    "use_a_strong_secret",
    "some_random_string",
    "random_string",
    "random_secret",
    "randomsecret",
    "my_random_secret",
];

/// The shapes a base secret takes: words joined by `_`, `-`, nothing or a space; lower, upper, capitalized and
/// camel case; with prefixes (`my`, `jwt`, `super`, `your`) and suffixes (`key`, `secret`, `token`, `jwt`, digits,
/// a year, `!`).
pub(super) fn variants(base: &str, mut emit: impl FnMut(&str)) {
    const PREFIXES: [&str; 5] = ["", "my_", "jwt_", "super_", "your_"];
    const SUFFIXES: [&str; 14] =
        ["", "_key", "_secret", "_token", "_jwt", "1", "12", "123", "1234", "123456", "!", "_2024", "_2025", "_2026"];
    for prefix in PREFIXES {
        for suffix in SUFFIXES {
            let words = format!("{prefix}{base}{suffix}");
            for separator in ["_", "-", "", " "] {
                let joined = words.replace('_', separator);
                emit(&joined.to_uppercase());
                emit(&joined);
                emit(&capitalize_words(&words, separator, false));
                emit(&capitalize_words(&words, separator, true));
            }
        }
    }
}

/// `my_secret_key` as `My_Secret_Key` (`first` true) or `my_Secret_Key`, joined by `separator`.
fn capitalize_words(words: &str, separator: &str, first: bool) -> String {
    words
        .split('_')
        .enumerate()
        .map(|(i, word)| {
            let mut chars = word.chars();
            match chars.next() {
                Some(c) if first || i > 0 => c.to_uppercase().chain(chars).collect::<String>(),
                _ => word.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(separator)
}

/// The first 8 bytes of the SHA-256 of `secret`: its entry in the set.
fn fingerprint(secret: &[u8]) -> u64 {
    let digest = Sha256::digest(secret);
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(first)
}

/// The built-in weak secrets as a sorted set of 64-bit hashes.
pub(super) struct WeakSecretSet {
    hashes: Vec<u64>,
}

impl WeakSecretSet {
    /// The set, built once per process: 431,057 hashes (3.4 MB) from 425 base secrets (4.3 KB of source), in
    /// 0.17 s (release build, 2026-12-07).
    pub(super) fn builtin() -> &'static WeakSecretSet {
        static SET: OnceLock<WeakSecretSet> = OnceLock::new();
        SET.get_or_init(|| {
            let mut hashes = Vec::new();
            for base in BASE_SECRETS {
                variants(base, |secret| hashes.push(fingerprint(secret.as_bytes())));
            }
            hashes.extend(crate::token_analysis::BUILTIN_WEAK_SECRETS.iter().map(|s| fingerprint(s.as_bytes())));
            hashes.sort_unstable();
            hashes.dedup();
            WeakSecretSet { hashes }
        })
    }

    /// True when `secret` is on the list (two different secrets share a hash with odds of about 2⁻⁶⁴ per pair).
    pub(super) fn contains(&self, secret: &[u8]) -> bool {
        self.hashes.binary_search(&fingerprint(secret)).is_ok()
    }

    /// Entries, and bytes they take.
    #[cfg(test)]
    pub(super) fn size(&self) -> (usize, usize) {
        (self.hashes.len(), self.hashes.len() * std::mem::size_of::<u64>())
    }
}

/// Why an HMAC key of `secret` used with hash output of `hash_bytes` (32, 48, 64) is refused, if it is.
pub(super) fn weakness(secret: &[u8], hash_bytes: usize, alg: &str) -> Option<String> {
    if secret.len() < hash_bytes {
        return Some(format!(
            "is {} bytes; an HMAC key for {alg} needs at least {hash_bytes} (RFC 7518 §3.2: the hash output size)",
            secret.len()
        ));
    }
    if WeakSecretSet::builtin().contains(secret) {
        return Some("is a known weak secret (on the built-in list): anyone can sign tokens with it".into());
    }
    if is_placeholder_phrase(secret) {
        return Some("is a placeholder phrase (words asking for a real secret): anyone can guess it".into());
    }
    if let Some(reason) = low_entropy(secret) {
        return Some(format!(
            "looks low in entropy ({reason}); use random bytes, e.g. `openssl rand -base64 {hash_bytes}`"
        ));
    }
    None
}

/// Words that say "put a real secret here".
const PLACEHOLDER_WORDS: [&str; 13] = [
    "change",
    "changeme",
    "replace",
    "your",
    "example",
    "sample",
    "placeholder",
    "insert",
    "todo",
    "fixme",
    "dummy",
    "default",
    "xxx",
];

/// A phrase of at least three alphabetic words, one of which asks for a real secret
/// (`CHANGE_ME_TO_A_RANDOM_STRING`, `replace-with-your-key-please`): templates copied as they are.
fn is_placeholder_phrase(secret: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(secret) else { return false };
    let words: Vec<&str> = text.split(['_', '-', ' ', '.']).filter(|w| !w.is_empty()).collect();
    words.len() >= 3
        && words.iter().all(|w| w.bytes().all(|b| b.is_ascii_alphabetic()))
        && words.iter().any(|w| PLACEHOLDER_WORDS.iter().any(|p| w.eq_ignore_ascii_case(p)))
}

/// Estimated entropy below which a key is refused, in bits: a key of 32 random bytes has about 150 by this
/// estimate, 64 random hex digits about 240, 32 random hex digits (128 bits of real entropy) about 120.
const MIN_ESTIMATED_BITS: f64 = 96.0;

/// A key made of a short repeated pattern, of few distinct bytes, of many repeated three-byte sequences, or whose
/// byte frequencies (Shannon entropy per
/// byte times length) estimate under [`MIN_ESTIMATED_BITS`].
fn low_entropy(secret: &[u8]) -> Option<String> {
    for period in 1..=secret.len() / 2 {
        let repeats = secret.chunks(period).all(|chunk| secret.get(..chunk.len()) == Some(chunk));
        if repeats {
            return Some(format!("a {period}-byte pattern repeated"));
        }
    }
    let mut counts = [0usize; 256];
    for &b in secret {
        if let Some(count) = counts.get_mut(usize::from(b)) {
            *count += 1;
        }
    }
    let distinct = counts.iter().filter(|&&c| c > 0).count();
    if distinct < 10 {
        return Some(format!("only {distinct} distinct bytes"));
    }
    // Words typed twice repeat their three-byte sequences; random bytes almost never do.
    let mut trigrams: Vec<&[u8]> = secret.windows(3).collect();
    let all = trigrams.len();
    trigrams.sort_unstable();
    trigrams.dedup();
    if trigrams.len() * 4 < all * 3 {
        return Some(format!("{} of its {all} three-byte sequences are repeats", all - trigrams.len()));
    }
    let len = secret.len() as f64;
    let per_byte: f64 = counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / len).map(|p| -p * p.log2()).sum();
    let bits = per_byte * len;
    (bits < MIN_ESTIMATED_BITS).then(|| format!("about {bits:.0} bits by byte frequencies"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_holds_thousands_of_variants_and_nothing_random() {
        let set = WeakSecretSet::builtin();
        let (entries, bytes) = set.size();
        assert!(entries > 100_000, "{entries}");
        assert_eq!(bytes, entries * 8);
        for weak in ["secret", "My-Secret-Key", "JWT_SECRET", "your-256-bit-secret", "keyboard cat", "changeme123"] {
            assert!(set.contains(weak.as_bytes()), "{weak}");
        }
        assert!(set.contains(b"my_super_secret_key"), "a prefix, a base and a suffix");
        assert!(!set.contains(b"q8Zr3vN1xLw0pT6yKc2bHf9sJd4mGa7E"));
    }

    #[test]
    fn weaknesses() {
        let random = b"q8Zr3vN1xLw0pT6yKc2bHf9sJd4mGa7E";
        assert_eq!(weakness(random, 32, "HS256"), None);
        assert!(weakness(random, 48, "HS384").unwrap().contains("needs at least 48"));
        assert!(weakness(b"shhhhhhared-secret", 32, "HS256").unwrap().contains("is 18 bytes"));
        assert!(weakness(b"my-super-secret-jwt-token-secret", 32, "HS256").is_none_or(|w| !w.is_empty()));
        assert!(weakness(b"abcabcabcabcabcabcabcabcabcabcab", 32, "HS256").unwrap().contains("pattern repeated"));
        assert!(weakness(b"aaaaaaaabbbbbbbbccccccccdddddddd", 32, "HS256").unwrap().contains("distinct bytes"));
        assert!(weakness(b"passwordpasswordpassword12345678", 32, "HS256").unwrap().contains("low in entropy"));
        for placeholder in [
            "PLEASE_REPLACE_THIS_WITH_SOMETHING_LONG",
            "insert-a-long-random-value-here-now",
            "Your Key Goes Here And Nowhere Else",
        ] {
            assert!(weakness(placeholder.as_bytes(), 32, "HS256").unwrap().contains("placeholder"), "{placeholder}");
        }
        assert!(!is_placeholder_phrase(b"your-7f3a9c2b1e8d4f6a0b5c9e2d7a1f3b8c"), "a random part is no placeholder");
        let hex64 = b"3f1c2b7e9d4a4c1e8f2b6a5d4c3b2a10e7d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5";
        assert_eq!(weakness(hex64, 64, "HS512"), None, "64 random hex digits");
    }
}

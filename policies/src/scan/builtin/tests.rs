//! Unit tests of the validators, one candidate at a time.

use super::*;

/// Runs a validator as the scanner would at the end of `text`, with `next` after it.
fn check(v: Validator, text: &str, next: Option<u8>) -> Option<String> {
    let tail = text.as_bytes();
    confirm(v, tail, next, 48).map(|(s, e)| text[s..e].to_owned())
}

fn card(text: &str) -> Option<String> {
    // The pattern includes a terminator; emulate it with a trailing space-and-quote.
    check(Validator::CreditCard, &format!("{text}\""), None)
}

#[test]
fn credit_cards() {
    for good in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "2223003122003222",
        "378282246310005",
        "3782 822463 10005",
        "6011111111111117",
        "30569309025904",
        "3530111333300000",
        "6200000000000005",
        "4222222222222",
        "630427373398",
    ] {
        assert!(card(&format!("card {good}")).is_some(), "{good}");
    }
    assert_eq!(card("pan=4111 1111 1111 1111").as_deref(), Some("4111 1111 1111 1111"));
    // Terminators of up to three bytes: `. C`, a sentence going on.
    assert!(check(Validator::CreditCard, "card 4574911566148561. C", None).is_some());
    for bad in [
        "4111111111111112",     // Luhn fails
        "1234567812345670",     // Luhn passes, no network
        "9111111111111111",     // no network
        "41111111111111111111", // 20 digits
        "id4111111111111111",   // glued to a word
        "5555555555554444555",  // Mastercard is 16 only... and Luhn fails
        "4111  1111 1111 1111", // double separator: only the tail is a run
        "371449635398431 23",   // Amex then more digits: the whole run does not fit
    ] {
        assert!(card(bad).is_none(), "{bad}");
    }
    assert!(check(Validator::Luhn, "x 79927398713 ", None).is_some());
    assert!(check(Validator::Luhn, "x 79927398710 ", None).is_none());
}

#[test]
fn card_expiries() {
    assert_eq!(check(Validator::CardExpiry, "exp 12/25", Some(b' ')).as_deref(), Some("12/25"));
    assert_eq!(check(Validator::CardExpiry, "exp 01/2031", None).as_deref(), Some("01/2031"));
    assert!(check(Validator::CardExpiry, "on 12/05", Some(b'/')).is_none());
    assert!(check(Validator::CardExpiry, "12/05/2024", None).is_none());
    assert!(check(Validator::CardExpiry, "exp 12/20", Some(b'2')).is_none());
    assert!(check(Validator::CardExpiry, "exp 13/25", None).is_none());
}

#[test]
fn ssns() {
    assert_eq!(check(Validator::UsSsn, "SSN: 123-45-6789", Some(b'"')).as_deref(), Some("123-45-6789"));
    assert!(check(Validator::UsSsn, "x 123 45 6789", None).is_some());
    assert!(check(Validator::UsSsn, "my ssn is 123456789", None).is_some());
    for bad in ["x 123456789", "x 000-12-3456", "x 666-12-3456", "x 912-12-3456", "x 123-00-4567", "x 123-45-0000"] {
        assert!(check(Validator::UsSsn, bad, None).is_none(), "{bad}");
    }
    assert!(check(Validator::UsSsn, "x 123-45 6789", None).is_none());
    assert!(check(Validator::UsSsn, "x 123-45-67890", None).is_none());
    assert!(check(Validator::UsSsn, "x 123-45-6789-", None).is_none());
    assert!(check(Validator::UsSsn, "x1123-45-6789", None).is_none());
}

#[test]
fn ibans() {
    for good in [
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "DE89370400440532013000",
        "gb82west12345698765432",
        "NO9386011117947",
    ] {
        assert!(check(Validator::Iban, &format!("iban {good}"), Some(b' ')).is_some(), "{good}");
    }
    assert_eq!(
        check(Validator::Iban, "pay to GB82 WEST 1234 5698 7654 32", None).as_deref(),
        Some("GB82 WEST 1234 5698 7654 32")
    );
    for bad in [
        "GB82WEST12345698765433",
        "GB82WEST1234569876543",
        "XX82WEST12345698765432",
        "GB8 2WEST12345698765432",
        "GB82 WEST12 345698765432",
    ] {
        assert!(check(Validator::Iban, &format!("iban {bad}"), None).is_none(), "{bad}");
    }
    assert!(check(Validator::Iban, "GB82WEST12345698765432", Some(b'1')).is_none());
    assert!(check(Validator::Mod97, "ref GB82WEST12345698765432", None).is_some());
}

#[test]
fn emails() {
    assert_eq!(
        check(Validator::Email, "mail: jane.doe+x@mail.example.co.uk", Some(b'"')).as_deref(),
        Some("jane.doe+x@mail.example.co.uk")
    );
    assert_eq!(check(Validator::Email, "<a@b.io", Some(b'>')).as_deref(), Some("a@b.io"));
    assert!(check(Validator::Email, "a@b.io", Some(b'x')).is_none());
    assert!(check(Validator::Email, "a@b.c1", None).is_none());
    assert!(check(Validator::Email, "@b.com", None).is_none());
    assert!(check(Validator::Email, "a@.com", None).is_none());
}

#[test]
fn phones() {
    let ok = |t: &str| check(Validator::Phone, &format!("{t}\n"), None);
    assert_eq!(ok("+44 20 7946 0958").as_deref(), Some("+44 20 7946 0958"));
    assert!(ok("reach me: +14155552671").is_some());
    assert_eq!(ok("Phone: (555) 123-4567").as_deref(), Some("(555) 123-4567"));
    assert!(ok("call 555-123-4567").is_some());
    assert!(ok("Tel: 030 1234567").is_some());
    assert!(ok("order 555-123-4567").is_none(), "national form without a keyword");
    assert!(ok("hotel 555-123-4567").is_none(), "keywords start a word");
    assert!(ok("phone 106.31.73.20").is_none());
    assert!(ok("call 2024-01-15").is_none());
    assert!(ok("+1234567").is_none(), "too short");
    assert!(ok("+1234567890123456").is_none(), "too long");
    assert!(ok("v1.555-123-4567").is_none());
}

#[test]
fn ip_addresses() {
    let v4 = |t: &str| check(Validator::Ipv4, t, None);
    assert_eq!(v4("ip 192.168.0.1 ").as_deref(), Some("192.168.0.1"));
    assert_eq!(v4("ip 10.0.0.255").as_deref(), Some("10.0.0.255"));
    assert!(v4("v 1.2.3.4.5 ").is_none());
    assert!(v4("ip 256.1.1.1 ").is_none());
    assert!(v4("ip 01.2.3.4 ").is_none());
    assert!(v4("v1.2.3.4 ").is_none());
    let v6 = |t: &str| check(Validator::Ipv6, t, Some(b' '));
    assert_eq!(v6("addr 2001:db8:85a3::8a2e:370:7334").as_deref(), Some("2001:db8:85a3::8a2e:370:7334"));
    assert_eq!(check(Validator::Ipv6, "x fe80::1", None).as_deref(), Some("fe80::1"));
    assert!(check(Validator::Ipv6, "x 2001:db8::1", Some(b'g')).is_none());
    assert!(v6("x ::1").is_some());
    assert!(v6("at 12:34:56").is_none());
    assert!(v6("mac aa:bb:cc:dd:ee:ff").is_none());
    assert!(v6("std::fmt").is_none());
    assert!(v6("x 1:2:3:4:5:6:7:8:9").is_none());
}

#[test]
fn jwts() {
    // {"alg":"HS256","typ":"JWT"} . {"sub":"1234567890"...
    let header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
    assert!(check(Validator::Jwt, &format!("Bearer {header}.eyJ"), None).is_some());
    // {"foo":"bar"}: an object, but no "alg".
    assert!(check(Validator::Jwt, "x eyJmb28iOiJiYXIifQ.eyJ", None).is_none());
    assert!(check(Validator::Jwt, "x eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9x.eyJ", None).is_none());
    assert!(check(Validator::Jwt, &format!("a.{header}.eyJ"), None).is_none());
}

fn token(track: Track, text: &str, next: Option<u8>) -> Option<String> {
    track.confirm(text.as_bytes(), next).map(|(s, e)| text[s..e].to_owned())
}

#[test]
fn secrets() {
    let aws = "AKIAIOSFODNN7EXAMPLE";
    assert_eq!(token(Track::AwsAccessKeyId, &format!("key={aws}"), Some(b'&')).as_deref(), Some(aws));
    assert!(token(Track::AwsAccessKeyId, &format!("key={aws}"), Some(b'x')).is_none());
    assert!(token(Track::AwsAccessKeyId, "key=AKIAIOSFODNN7EXAMPL", None).is_none());
    assert!(token(Track::AwsAccessKeyId, "xAKIAIOSFODNN7EXAMPLE", None).is_none());
    let gh = format!("ghp_{}", "a1B2".repeat(9));
    assert!(token(Track::GithubToken, &format!("token {gh}"), Some(b'"')).is_some());
    assert!(token(Track::GithubToken, &format!("token {gh}x"), None).is_none());
    assert!(token(Track::GithubToken, &format!("github_pat_{}", "A_b1".repeat(20) + "xy"), None).is_some());
    assert!(token(Track::SlackToken, "xoxb-123456789012-1234567890123-AbCdEfGhIjKl", None).is_some());
    assert!(token(Track::SlackToken, "xoxb-short", None).is_none());
    assert!(token(Track::StripeSecretKey, &format!("sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc"), None).is_some());
    assert!(token(Track::StripeSecretKey, "sk_live_tooShort123", None).is_none());
    assert_eq!(Track::for_id("github_token"), Some(Track::GithubToken));
    assert_eq!(Track::for_id("credit_card"), None);
    for good in
        ["-----BEGIN PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN PGP PRIVATE KEY BLOCK-----"]
    {
        assert!(token(Track::PrivateKey, &format!("\n{good}"), Some(b'\n')).is_some(), "{good}");
    }
    assert!(token(Track::PrivateKey, "-----BEGIN PUBLIC KEY-----", None).is_none());
    assert!(token(Track::PrivateKey, "-----BEGIN CERTIFICATE-----", None).is_none());
}

#[test]
fn keywords() {
    assert!(has_keyword(b"Tel: ", [b"tel".as_slice()]));
    assert!(has_keyword(b"MOBILE ", [b"mobile".as_slice()]));
    assert!(!has_keyword(b"hotel ", [b"tel".as_slice()]));
    assert!(!has_keyword(b"", [b"tel".as_slice()]));
}

#[test]
fn builtin_table() {
    assert!(builtin("credit_card").is_some());
    assert!(builtin("nope").is_none());
    for b in BUILTINS {
        assert!(b.max_len > 0 && b.max_len <= crate::bundle::MAX_CLASSIFIER_MATCH, "{}", b.id);
        assert!(b.requires.is_none_or(|r| builtin(r).is_some()));
    }
}

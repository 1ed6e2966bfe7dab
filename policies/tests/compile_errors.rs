//! One fixture per failure mode in `tests/fixtures/errors/`, each asserting the exact `file:line:col: message`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg(feature = "compiler")]

use portcullis_policies::compiler::{compile, compile_to_bytes, CompileError, CompileOptions};
use portcullis_policies::scan::builtin::BUILTINS;
use portcullis_policies::token::JwtFinding;

/// The full error message for fixture `name`, compiled with the relative file name users would see.
fn error_of(name: &str) -> String {
    let path = format!("{}/tests/fixtures/errors/{name}", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let options = CompileOptions { policy_name: "t".into(), revision: 1, file_name: format!("fixtures/errors/{name}") };
    match compile(&source, &options) {
        Ok(_) => panic!("{name} compiled, but it is an error fixture"),
        Err(e) => e.to_string(),
    }
}

const KNOWN: &str =
    "known: request.path, request.url_path, request.host, request.scheme, request.method, request.query, \
                     request.id, request.useragent, request.referer, request.protocol, source.address, \
                     destination.address, endpoint, source.ip, request.headers, response.code, response.bytes";

#[test]
fn yaml_syntax() {
    assert_eq!(
        error_of("yaml_syntax.yaml"),
        "fixtures/errors/yaml_syntax.yaml:4:11: invalid YAML: invalid indentation in quoted scalar"
    );
}

#[test]
fn empty_file() {
    assert_eq!(
        error_of("empty.yaml"),
        "fixtures/errors/empty.yaml:1:1: empty policy: expected a mapping with keys version and rules"
    );
}

#[test]
fn unknown_field_in_policy() {
    assert_eq!(
        error_of("unknown_field_policy.yaml"),
        "fixtures/errors/unknown_field_policy.yaml:2:1: unknown field 'rule' in policy \
         (expected one of: version, inspection, tokens, classifiers, detections, lists, counters, rules)"
    );
}

#[test]
fn unknown_field_in_rule() {
    assert_eq!(
        error_of("unknown_field_rule.yaml"),
        "fixtures/errors/unknown_field_rule.yaml:5:5: unknown field 'actoin' in rule \
         (expected one of: id, when, action, status, list, ttl, retry_after, on_uninspectable)"
    );
}

#[test]
fn unknown_attribute() {
    assert_eq!(
        error_of("unknown_attribute.yaml"),
        format!("fixtures/errors/unknown_attribute.yaml:4:38: unknown attribute 'request.pathz' ({KNOWN})")
    );
}

#[test]
fn type_error_in_logical_operand() {
    assert_eq!(
        error_of("type_error.yaml"),
        "fixtures/errors/type_error.yaml:4:48: type error: '&&' needs bool operands, found string"
    );
}

#[test]
fn type_error_in_comparison_names_both_types() {
    assert_eq!(
        error_of("type_error_comparison.yaml"),
        "fixtures/errors/type_error_comparison.yaml:4:30: type error: '>' needs operands of the same type, \
         found int and string"
    );
}

#[test]
fn condition_not_bool() {
    assert_eq!(
        error_of("not_bool.yaml"),
        "fixtures/errors/not_bool.yaml:4:11: type error: the condition must be a bool, found string"
    );
}

#[test]
fn bad_regex() {
    assert_eq!(error_of("bad_regex.yaml"), "fixtures/errors/bad_regex.yaml:4:49: bad regex: unclosed group");
}

#[test]
fn unicode_word_boundary_is_refused() {
    assert_eq!(
        error_of("unicode_word_boundary.yaml"),
        "fixtures/errors/unicode_word_boundary.yaml:4:33: bad regex: Unicode word boundaries (\\b, \\B) cannot be \
         compiled to a DFA; use (?-u:\\b) for an ASCII word boundary"
    );
}

#[test]
fn regex_too_large() {
    assert_eq!(
        error_of("regex_too_large.yaml"),
        "fixtures/errors/regex_too_large.yaml:4:32: bad regex: too large for a DFA (over the 2 MiB limit)"
    );
}

#[test]
fn duplicate_rule_id() {
    assert_eq!(
        error_of("duplicate_rule_id.yaml"),
        "fixtures/errors/duplicate_rule_id.yaml:6:9: duplicate rule id 'x' (first defined at line 3)"
    );
}

#[test]
fn missing_required_field_in_rule() {
    assert_eq!(
        error_of("missing_field.yaml"),
        "fixtures/errors/missing_field.yaml:3:5: missing required field 'action' in rule 'no-action'"
    );
}

#[test]
fn missing_required_field_in_policy() {
    assert_eq!(
        error_of("missing_version.yaml"),
        "fixtures/errors/missing_version.yaml:1:1: missing required field 'version' in policy"
    );
}

#[test]
fn bad_action() {
    assert_eq!(
        error_of("bad_action.yaml"),
        "fixtures/errors/bad_action.yaml:5:13: invalid action 'deny' (expected one of: block, throttle, monitor, add_to_list)"
    );
}

#[test]
fn bad_on_uninspectable() {
    assert_eq!(
        error_of("bad_on_uninspectable.yaml"),
        "fixtures/errors/bad_on_uninspectable.yaml:6:23: invalid on_uninspectable 'allow' (expected one of: block, pass)"
    );
}

#[test]
fn bad_status() {
    assert_eq!(
        error_of("bad_status.yaml"),
        "fixtures/errors/bad_status.yaml:6:13: invalid status 700 (expected an HTTP status from 100 to 599)"
    );
}

#[test]
fn bad_version() {
    assert_eq!(
        error_of("bad_version.yaml"),
        "fixtures/errors/bad_version.yaml:1:10: unsupported policy version 2 (this compiler reads version 1)"
    );
}

#[test]
fn bad_rule_id() {
    assert_eq!(
        error_of("bad_id.yaml"),
        "fixtures/errors/bad_id.yaml:3:9: invalid rule id 'Admin Rule' (use a-z, 0-9, '.', '_' and '-', starting \
         with a letter or digit, at most 64 characters)"
    );
}

#[test]
fn cel_syntax_error() {
    assert_eq!(error_of("cel_syntax.yaml"), "fixtures/errors/cel_syntax.yaml:4:34: syntax error: unexpected '&&'");
}

#[test]
fn position_inside_double_quoted_scalar_counts_escapes() {
    assert_eq!(
        error_of("double_quoted.yaml"),
        format!("fixtures/errors/double_quoted.yaml:4:55: unknown attribute 'requst.method' ({KNOWN})")
    );
}

#[test]
fn position_inside_single_quoted_scalar_counts_doubled_quotes() {
    assert_eq!(
        error_of("single_quoted.yaml"),
        "fixtures/errors/single_quoted.yaml:4:50: unknown function 'endswith' \
         (known: startsWith, endsWith, contains, matches, size, detected, count, distinct_count, seen_elsewhere)"
    );
}

#[test]
fn position_inside_block_scalar() {
    assert_eq!(
        error_of("block_scalar.yaml"),
        "fixtures/errors/block_scalar.yaml:7:49: floating-point numbers are not supported"
    );
}

#[test]
fn position_inside_folded_plain_scalar() {
    assert_eq!(
        error_of("folded_plain.yaml"),
        "fixtures/errors/folded_plain.yaml:5:31: type error: 'startsWith' needs a string argument, found int"
    );
}

#[test]
fn unknown_field_in_inspection() {
    assert_eq!(
        error_of("unknown_field_inspection.yaml"),
        "fixtures/errors/unknown_field_inspection.yaml:4:3: unknown field 'inspect_binaries' in inspection \
         (expected one of: max_body_bytes, inspect_binary)"
    );
}

#[test]
fn unknown_field_in_classifier() {
    assert_eq!(
        error_of("unknown_field_classifier.yaml"),
        "fixtures/errors/unknown_field_classifier.yaml:5:5: unknown field 'validate' in classifier \
         (expected one of: id, pattern, validator, context, context_window, confidence, max_length)"
    );
}

#[test]
fn unknown_field_in_detection() {
    assert_eq!(
        error_of("unknown_field_detection.yaml"),
        "fixtures/errors/unknown_field_detection.yaml:5:5: unknown field 'location' in detection \
         (expected one of: id, classifier, in, requires)"
    );
}

#[test]
fn unknown_field_in_list() {
    assert_eq!(
        error_of("unknown_field_list.yaml"),
        "fixtures/errors/unknown_field_list.yaml:6:5: unknown field 'add_if' in list \
         (expected one of: id, key, add_when, ttl, max_entries, entries, batched)"
    );
}

#[test]
fn unknown_classifier_lists_built_in_and_custom_ones() {
    let builtins: Vec<&str> = BUILTINS.iter().map(|b| b.id).collect();
    assert_eq!(
        error_of("unknown_classifier.yaml"),
        format!(
            "fixtures/errors/unknown_classifier.yaml:7:17: unknown classifier 'credit-card' \
             (known: {}, employee-id)",
            builtins.join(", ")
        )
    );
    assert!(builtins.starts_with(&["credit_card", "card_expiry"]));
}

#[test]
fn unknown_location() {
    assert_eq!(
        error_of("unknown_location.yaml"),
        "fixtures/errors/unknown_location.yaml:5:9: unknown location 'response.bodies' \
         (expected one of: request.query, request.body, response.body)"
    );
}

#[test]
fn unknown_location_in_detected() {
    assert_eq!(
        error_of("unknown_location_in_detected.yaml"),
        "fixtures/errors/unknown_location_in_detected.yaml:4:35: unknown location 'request.bodies' \
         (expected one of: request.query, request.body, response.body)"
    );
}

#[test]
fn unknown_detection_in_detected() {
    assert_eq!(
        error_of("unknown_detection.yaml"),
        "fixtures/errors/unknown_detection.yaml:11:48: unknown detection 'cards_in' (known: cards-out, cards-in)"
    );
}

#[test]
fn unknown_list() {
    assert_eq!(
        error_of("unknown_list.yaml"),
        "fixtures/errors/unknown_list.yaml:8:29: unknown list 'sensitive-endpoint' (known: sensitive-endpoints)"
    );
}

#[test]
fn layered_builtin_without_requires() {
    assert_eq!(
        error_of("layered_without_requires.yaml"),
        "fixtures/errors/layered_without_requires.yaml:7:17: classifier 'card_expiry' is layered on 'credit_card': \
         add 'requires:' naming a credit_card detection in response.body"
    );
}

#[test]
fn layered_builtin_requiring_another_classifier() {
    assert_eq!(
        error_of("layered_wrong_requires.yaml"),
        "fixtures/errors/layered_wrong_requires.yaml:10:17: classifier 'card_expiry' is layered on 'credit_card', \
         but 'requires:' names 'staff-out', which detects employee-id: name a credit_card detection in response.body"
    );
}

#[test]
fn layered_builtin_in_implicit_detection() {
    assert_eq!(
        error_of("layered_implicit.yaml"),
        "fixtures/errors/layered_implicit.yaml:4:20: classifier 'card_expiry' is layered on 'credit_card': \
         declare it under detections, with 'requires:' naming a credit_card detection"
    );
}

#[test]
fn requires_pointing_forward() {
    assert_eq!(
        error_of("requires_forward.yaml"),
        "fixtures/errors/requires_forward.yaml:6:15: detection 'expiry-out' requires 'cards-out', which is declared \
         after it (line 7): 'requires' must name an earlier detection"
    );
}

#[test]
fn requires_in_another_location() {
    assert_eq!(
        error_of("requires_other_location.yaml"),
        "fixtures/errors/requires_other_location.yaml:9:15: detection 'expiry-out' requires 'cards-in', which looks \
         in request.body: a required detection must look in the same location (response.body)"
    );
}

#[test]
fn block_decided_on_the_response() {
    assert_eq!(
        error_of("block_on_response.yaml"),
        "fixtures/errors/block_on_response.yaml:9:13: rule 'stop-leaks' reads the response, which has already \
         reached the client when it is decided: use action: monitor or add_to_list, or a list whose add_when uses \
         the detection"
    );
}

#[test]
fn bad_ttl() {
    assert_eq!(
        error_of("bad_ttl.yaml"),
        "fixtures/errors/bad_ttl.yaml:5:10: invalid ttl '1 day' (expected a duration such as 90s, 15m, 24h, 7d or \
         1h30m)"
    );
}

#[test]
fn ttl_out_of_range() {
    assert_eq!(
        error_of("ttl_out_of_range.yaml"),
        "fixtures/errors/ttl_out_of_range.yaml:5:10: ttl '31d' is out of range (from 1s to 30d)"
    );
}

#[test]
fn bad_max_entries() {
    assert_eq!(
        error_of("bad_max_entries.yaml"),
        "fixtures/errors/bad_max_entries.yaml:6:18: invalid max_entries 2000000 (expected 1 to 1048576)"
    );
}

#[test]
fn bad_list_key() {
    assert_eq!(
        error_of("bad_list_key.yaml"),
        "fixtures/errors/bad_list_key.yaml:4:10: invalid list key 'client_ip' (expected one of: endpoint, source_ip, \
         token)"
    );
}

#[test]
fn custom_classifier_with_a_built_in_id() {
    assert_eq!(
        error_of("classifier_builtin_id.yaml"),
        "fixtures/errors/classifier_builtin_id.yaml:3:9: classifier id 'credit_card' is taken by a built-in \
         classifier (choose another id)"
    );
}

#[test]
fn unbounded_custom_pattern_needs_max_length() {
    assert_eq!(
        error_of("unbounded_pattern.yaml"),
        "fixtures/errors/unbounded_pattern.yaml:4:14: pattern can match unbounded text: set max_length"
    );
}

#[test]
fn bad_custom_classifier_regex() {
    assert_eq!(
        error_of("bad_classifier_regex.yaml"),
        "fixtures/errors/bad_classifier_regex.yaml:4:14: bad regex: unclosed character class"
    );
}

#[test]
fn duplicate_detection_id() {
    assert_eq!(
        error_of("duplicate_detection_id.yaml"),
        "fixtures/errors/duplicate_detection_id.yaml:6:9: duplicate detection id 'cards' (first defined at line 3)"
    );
}

#[test]
fn duplicate_list_id() {
    assert_eq!(
        error_of("duplicate_list_id.yaml"),
        "fixtures/errors/duplicate_list_id.yaml:6:9: duplicate list id 'hot' (first defined at line 3)"
    );
}

#[test]
fn duplicate_classifier_id() {
    assert_eq!(
        error_of("duplicate_classifier_id.yaml"),
        "fixtures/errors/duplicate_classifier_id.yaml:5:9: duplicate classifier id 'employee-id' \
         (first defined at line 3)"
    );
}

#[test]
fn unknown_field_in_tokens() {
    assert_eq!(
        error_of("tokens_unknown_field.yaml"),
        "fixtures/errors/tokens_unknown_field.yaml:4:3: unknown field 'identiy' in tokens (expected one of: \
         sources, identity, hash_key, jwt)"
    );
}

#[test]
fn unknown_field_in_jwt() {
    assert_eq!(
        error_of("tokens_unknown_field_jwt.yaml"),
        "fixtures/errors/tokens_unknown_field_jwt.yaml:7:5: unknown field 'issuer' in jwt (expected one of: keys, \
         allowed_algs, issuers, audiences, max_lifetime, clock_skew, require_exp, weak_secrets)"
    );
}

#[test]
fn unknown_field_in_token_source() {
    assert_eq!(
        error_of("tokens_unknown_field_source.yaml"),
        "fixtures/errors/tokens_unknown_field_source.yaml:4:32: unknown field 'prefix' in token source (expected \
         one of: header, scheme, cookie, query)"
    );
}

#[test]
fn token_source_without_a_place() {
    assert_eq!(
        error_of("tokens_source_without_place.yaml"),
        "fixtures/errors/tokens_source_without_place.yaml:5:7: a token source needs one of header, cookie or query"
    );
}

#[test]
fn token_source_with_two_places() {
    assert_eq!(
        error_of("tokens_source_two_places.yaml"),
        "fixtures/errors/tokens_source_two_places.yaml:4:28: a token source names one place, found 'header' and \
         'query' (list them as two sources, tried in order)"
    );
}

#[test]
fn empty_token_sources() {
    assert_eq!(
        error_of("tokens_empty_sources.yaml"),
        "fixtures/errors/tokens_empty_sources.yaml:3:12: 'sources' must name at least one place to find the token"
    );
}

#[test]
fn bad_identity_points_inside_the_value() {
    assert_eq!(
        error_of("tokens_bad_identity.yaml"),
        "fixtures/errors/tokens_bad_identity.yaml:4:24: expected ',' or ')' after a claim name, found 's'"
    );
}

#[test]
fn hash_key_too_short() {
    assert_eq!(
        error_of("tokens_bad_hash_key.yaml"),
        "fixtures/errors/tokens_bad_hash_key.yaml:4:13: invalid hash_key: 4 bytes (expected base64:... or hex:... \
         of 16 to 64 bytes)"
    );
}

#[test]
fn unknown_alg() {
    assert_eq!(
        error_of("jwt_unknown_alg.yaml"),
        "fixtures/errors/jwt_unknown_alg.yaml:6:27: unknown alg 'ES512' (known: HS256, HS384, HS512, RS256, RS384, \
         RS512, PS256, \
         PS384, PS512, ES256, ES384, EdDSA)"
    );
}

#[test]
fn alg_none_is_never_allowed() {
    assert_eq!(
        error_of("jwt_alg_none.yaml"),
        "fixtures/errors/jwt_alg_none.yaml:6:27: alg none can never be allowed: it means an unsigned token"
    );
}

#[test]
fn allowed_alg_without_a_key() {
    assert_eq!(
        error_of("jwt_alg_without_key.yaml"),
        "fixtures/errors/jwt_alg_without_key.yaml:6:27: no key in the JWKS verifies RS256 (it needs an RSA key): \
         add one, or remove RS256"
    );
}

#[test]
fn bad_weak_secrets() {
    assert_eq!(
        error_of("jwt_bad_weak_secrets.yaml"),
        "fixtures/errors/jwt_bad_weak_secrets.yaml:7:19: invalid weak_secrets 'all' (expected builtin, none or a \
         list of secrets)"
    );
}

#[test]
fn jwks_not_a_mapping() {
    assert_eq!(
        error_of("jwks_not_a_mapping.yaml"),
        "fixtures/errors/jwks_not_a_mapping.yaml:6:13: 'jwks' must be a JWKS document: a mapping with a 'keys' \
         list, found a string"
    );
}

#[test]
fn jwks_without_keys() {
    assert_eq!(
        error_of("jwks_without_keys.yaml"),
        "fixtures/errors/jwks_without_keys.yaml:6:13: missing required field 'keys' in jwks"
    );
}

#[test]
fn jwks_bad_kty() {
    assert_eq!(
        error_of("jwks_bad_kty.yaml"),
        "fixtures/errors/jwks_bad_kty.yaml:8:20: invalid kty 'DSA' (expected one of: RSA, EC, OKP, oct)"
    );
}

#[test]
fn jwks_ec_key_without_y() {
    assert_eq!(
        error_of("jwks_ec_without_y.yaml"),
        "fixtures/errors/jwks_ec_without_y.yaml:8:13: missing required field 'y' in key 'k1'"
    );
}

#[test]
fn jwks_rsa_key_without_e() {
    assert_eq!(
        error_of("jwks_rsa_without_e.yaml"),
        "fixtures/errors/jwks_rsa_without_e.yaml:9:13: missing required field 'e' in key 2"
    );
}

#[test]
fn jwks_oct_key_without_k() {
    assert_eq!(
        error_of("jwks_oct_without_k.yaml"),
        "fixtures/errors/jwks_oct_without_k.yaml:8:13: missing required field 'k' in key 'shared'"
    );
}

#[test]
fn jwks_okp_key_without_x() {
    assert_eq!(
        error_of("jwks_okp_without_x.yaml"),
        "fixtures/errors/jwks_okp_without_x.yaml:8:13: missing required field 'x' in key 'ed'"
    );
}

#[test]
fn jwks_bad_base64url_points_at_the_character() {
    assert_eq!(
        error_of("jwks_bad_base64url.yaml"),
        "fixtures/errors/jwks_bad_base64url.yaml:11:18: invalid base64url in 'y' of key 1: '/' is standard base64, \
         not base64url (use '-' for '+' and '_' for '/')"
    );
}

#[test]
fn jwks_private_key_material() {
    assert_eq!(
        error_of("jwks_private_key.yaml"),
        "fixtures/errors/jwks_private_key.yaml:13:13: key 'k1' carries private key material ('d'): a policy goes to \
         every proxy, give the public key only"
    );
}

#[test]
fn token_attribute_without_tokens_section() {
    assert_eq!(
        error_of("token_without_tokens.yaml"),
        "fixtures/errors/token_without_tokens.yaml:4:39: token attributes need a 'tokens:' section"
    );
}

#[test]
fn unknown_jwt_finding() {
    let known: Vec<&str> = JwtFinding::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(
        error_of("jwt_unknown_finding.yaml"),
        format!(
            "fixtures/errors/jwt_unknown_finding.yaml:9:48: unknown JWT finding 'jwt.forged' (known: {})",
            known.join(", ")
        )
    );
}

#[test]
fn jwt_finding_without_jwt_section() {
    assert_eq!(
        error_of("jwt_finding_without_jwt.yaml"),
        "fixtures/errors/jwt_finding_without_jwt.yaml:6:37: JWT findings need a 'jwt:' section under 'tokens:' \
         ('jwt.alg_none' is never reported without one)"
    );
}

#[test]
fn token_list_key_without_tokens_section() {
    assert_eq!(
        error_of("list_token_key_without_tokens.yaml"),
        "fixtures/errors/list_token_key_without_tokens.yaml:4:10: list key 'token' needs a 'tokens:' section (where \
         to find the token)"
    );
}

#[test]
fn detection_id_with_the_jwt_prefix() {
    assert_eq!(
        error_of("detection_id_reserved.yaml"),
        "fixtures/errors/detection_id_reserved.yaml:3:9: detection id 'jwt.in-body' is reserved: ids starting with \
         'jwt.' name JWT findings"
    );
}

#[test]
fn jwks_key_the_verifier_cannot_load() {
    assert_eq!(
        error_of("jwks_point_off_curve.yaml"),
        "fixtures/errors/jwks_point_off_curve.yaml:8:13: key 'k1' cannot be loaded: not a point on the curve"
    );
}

#[test]
fn error_fields_and_display_agree() {
    let options = CompileOptions { policy_name: "t".into(), revision: 1, file_name: "p.yaml".into() };
    let e: CompileError = compile_to_bytes("version: 1\nrules: {}\n", &options).unwrap_err();
    assert_eq!((e.file.as_str(), e.line, e.column), ("p.yaml", 2, 8));
    assert_eq!(e.message, "'rules' must be a list, found a mapping");
    assert_eq!(e.to_string(), "p.yaml:2:8: 'rules' must be a list, found a mapping");
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.to_string().ends_with("found a mapping"));
}

#[test]
fn every_fixture_has_a_test() {
    let source = include_str!("compile_errors.rs");
    let dir = format!("{}/tests/fixtures/errors", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(source.contains(&format!("error_of(\"{name}\")")), "fixture {name} has no test");
    }
}

#[test]
fn hmac_key_shorter_than_its_algorithms_hash() {
    assert_eq!(
        error_of("jwks_hmac_key_short_for_hs512.yaml"),
        "fixtures/errors/jwks_hmac_key_short_for_hs512.yaml:8:53: the secret of key 'shared' is 36 bytes; an HMAC \
         key for HS512 needs at least 64 (RFC 7518 §3.2: the hash output size)"
    );
}

#[test]
fn hmac_key_on_the_builtin_weak_list() {
    assert_eq!(
        error_of("jwks_hmac_key_weak.yaml"),
        "fixtures/errors/jwks_hmac_key_weak.yaml:10:16: the secret of key 'shared' is a known weak secret (on the \
         built-in list): anyone can sign tokens with it"
    );
}

#[test]
fn hmac_key_low_in_entropy() {
    assert_eq!(
        error_of("jwks_hmac_key_low_entropy.yaml"),
        "fixtures/errors/jwks_hmac_key_low_entropy.yaml:5:55: the secret of key 1 looks low in entropy (a 8-byte \
         pattern repeated); use random bytes, e.g. `openssl rand -base64 32`"
    );
}

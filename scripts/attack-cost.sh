#!/bin/sh
# Wasm instructions the attack inspector spends per class on a benign GET and a 16 KiB JSON POST (see
# policies/examples/attack_class_cost.rs). Run from the repository root after `make setup`.
set -e
cargo build -q --release --target wasm32-wasip1 -p portcullis-policies --example attack_class_cost
wasm=${CARGO_TARGET_DIR:-target}/wasm32-wasip1/release/examples/attack_class_cost.wasm
count() { WASI_RUN_FUEL=1 .venv/bin/python scripts/wasi-run.py "$wasm" --one "$1" "$2" 2>&1 | sed -n 's/^wasi-run.py: \([0-9]*\) instructions$/\1/p'; }
printf '%-22s %14s %14s\n' class get post
for class in none sqli xss command_injection path_traversal file_inclusion log4shell ssrf xxe nosql_injection \
    template_injection crlf_injection ldap_injection prototype_pollution all; do
    printf '%-22s %14s %14s\n' "$class" "$(count "$class" get)" "$(count "$class" post)"
done

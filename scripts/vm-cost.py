#!/usr/bin/env python3
"""Counts what one request costs Portcullis inside its VM: wasm instructions and proxy-wasm calls.

    vm-cost.py FILTER.wasm BUNDLE [--name NAME] [--requests N] [--keys K] [--header NAME:VALUE ...] [--path PATH]
               [--body FILE] [--profile N]

Loads the filter under Wasmtime with a small proxy-wasm host written here (headers, properties, shared data, the
clock, metrics; no network), configures it with BUNDLE inline (`bundle_base64`), and sends N requests through
the same callbacks Envoy makes: context create, request headers (and, with `--body`, the request body in one
call), response headers, log, done, delete, after
`--warmup` requests that are not counted. Every `--tick` requests the root's tick runs, as Envoy's timer would
(the time advances by 250 ms per tick; at 12,000 requests per second a worker sees about 3,000 per tick).

It prints, per measured request, the wasm instructions executed (Wasmtime fuel: deterministic, unlike a
timing) and the number of each proxy-wasm call the filter made. With `--profile N` it also samples N stacks: each
sample is a fresh VM, warmed up, whose next request runs out of fuel at a random point; the trap's backtrace says
where that instruction was. This is a diagnostic for finding where the filter's time goes; `make bench` measures
the real cost in Envoy, where each proxy-wasm call that returns data also costs a call back into the VM.
"""
import argparse
import base64
import collections
import json
import os
import random
import struct
import sys

try:
    import wasmtime
except ImportError:
    sys.exit("vm-cost.py: the `wasmtime` Python package is missing: run `make setup`")

OK, NOT_FOUND, BAD_ARGUMENT, CAS_MISMATCH = 0, 1, 2, 8
TICK_MS = 250


class Host:
    """The proxy-wasm host: one VM, one root context (id 1), one request context at a time."""

    def __init__(self, plugin_config: bytes):
        self.plugin_config = plugin_config
        self.now_ns = 1_800_000_000 * 10**9
        self.shared = {}  # key -> (value, cas)
        self.next_cas = 1
        self.request_headers = []
        self.request_body = b""
        self.response_headers = [(":status", "200"), ("content-type", "application/json")]
        self.properties = {
            ("source", "address"): b"127.0.0.1:54321",
            ("destination", "address"): b"127.0.0.1:10000",
            ("request", "protocol"): b"HTTP/1.1",
        }
        self.calls = collections.Counter()  # made by request callbacks
        self.tick_calls = collections.Counter()  # made by the root's ticks
        self.ticks = 0
        self.logs = []
        self.instance = None
        self.store = None

    # Memory helpers.
    def memory(self):
        return self.instance.exports(self.store)["memory"]

    def read(self, ptr, size):
        return bytes(self.memory().read(self.store, ptr, ptr + size))

    def write_u32(self, ptr, value):
        self.memory().write(self.store, struct.pack("<I", value & 0xFFFFFFFF), ptr)

    def write_u64(self, ptr, value):
        self.memory().write(self.store, struct.pack("<Q", value), ptr)

    def give(self, data: bytes, ret_ptr, ret_size):
        """Hands `data` to the guest the way Envoy does: allocated by the guest, pointer and size written back."""
        alloc = self.instance.exports(self.store)["proxy_on_memory_allocate"]
        ptr = alloc(self.store, max(len(data), 1))
        self.memory().write(self.store, data, ptr)
        self.write_u32(ret_ptr, ptr)
        self.write_u32(ret_size, len(data))

    @staticmethod
    def serialize_map(pairs):
        names = [(k.encode() if isinstance(k, str) else k, v.encode() if isinstance(v, str) else v) for k, v in pairs]
        out = struct.pack("<I", len(names))
        for k, v in names:
            out += struct.pack("<II", len(k), len(v))
        for k, v in names:
            out += k + b"\0" + v + b"\0"
        return out

    # The imports.
    def proxy_log(self, level, ptr, size):
        self.logs.append((level, self.read(ptr, size).decode(errors="replace")))
        return OK

    def proxy_get_current_time_nanoseconds(self, ret):
        self.write_u64(ret, self.now_ns)
        return OK

    def proxy_get_buffer_bytes(self, kind, start, max_size, ret_ptr, ret_size):
        start, max_size = start & 0xFFFFFFFF, max_size & 0xFFFFFFFF  # usize::MAX arrives as -1
        if kind == 7:
            self.give(self.plugin_config[start : start + max_size], ret_ptr, ret_size)
            return OK
        if kind == 0:
            self.give(self.request_body[start : start + max_size], ret_ptr, ret_size)
            return OK
        if kind == 6:
            self.give(b"", ret_ptr, ret_size)
            return OK
        return NOT_FOUND

    def proxy_get_header_map_pairs(self, kind, ret_ptr, ret_size):
        pairs = self.request_headers if kind == 0 else self.response_headers if kind == 2 else []
        self.give(self.serialize_map(pairs), ret_ptr, ret_size)
        return OK

    def proxy_get_header_map_value(self, kind, key_ptr, key_size, ret_ptr, ret_size):
        name = self.read(key_ptr, key_size).decode()
        pairs = self.request_headers if kind == 0 else self.response_headers if kind == 2 else []
        for k, v in pairs:
            if k == name:
                self.give(v.encode() if isinstance(v, str) else v, ret_ptr, ret_size)
                return OK
        return NOT_FOUND

    def proxy_get_property(self, path_ptr, path_size, ret_ptr, ret_size):
        path = tuple(p.decode() for p in self.read(path_ptr, path_size).split(b"\0") if p)
        value = self.properties.get(path)
        if value is None:
            return NOT_FOUND
        self.give(value, ret_ptr, ret_size)
        return OK

    def proxy_get_shared_data(self, key_ptr, key_size, ret_ptr, ret_size, ret_cas):
        key = self.read(key_ptr, key_size)
        if key not in self.shared:
            return NOT_FOUND
        value, cas = self.shared[key]
        self.give(value, ret_ptr, ret_size)
        self.write_u32(ret_cas, cas)
        return OK

    def proxy_set_shared_data(self, key_ptr, key_size, value_ptr, value_size, cas):
        key = self.read(key_ptr, key_size)
        if key in self.shared and cas != 0 and self.shared[key][1] != cas:
            return CAS_MISMATCH
        self.next_cas += 1
        self.shared[key] = (self.read(value_ptr, value_size), self.next_cas)
        return OK

    def proxy_http_call(self, *_):
        return BAD_ARGUMENT  # no cluster here: the filter's fetches fail, and it keeps its inline bundle

    def proxy_define_metric(self, kind, name_ptr, name_size, ret_id):
        self.write_u32(ret_id, len(self.calls) + 1)
        return OK


BROWSER_HEADERS = [
    (":authority", "127.0.0.1:10000"),
    (":method", "GET"),
    (":scheme", "http"),
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"),
    ("accept", "application/json, text/plain, */*"),
    ("accept-language", "en-GB,en;q=0.9"),
    ("accept-encoding", "gzip, deflate, br"),
    ("referer", "https://shop.example.com/account/orders"),
    ("cookie", "session=6f1c2a9d8e7b4c3a; theme=dark; consent=analytics:0,ads:0"),
    ("x-forwarded-proto", "https"),
    ("x-request-id", "5b3c1d2e-0f4a-4b6c-9d8e-7f6a5b4c3d2e"),
]


class Vm:
    """One configured filter VM and the requests sent to it."""

    def __init__(self, args, engine, module):
        with open(args.bundle, "rb") as f:
            bundle = f.read()
        config = {
            # The filter refuses a bundle signed for another name than control_plane.bundle.
            "control_plane": {"cluster": "none", "bundle": args.name, "poll_interval_ms": 3_600_000, "max_backoff_ms": 3_600_000},
            "bundle_base64": base64.b64encode(bundle).decode(),
        }
        config.update(json.loads(args.config))
        self.args = args
        self.host = host = Host(json.dumps(config).encode())
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        self.store = store = wasmtime.Store(engine)
        store.set_wasi(wasmtime.WasiConfig())
        host.store = store
        for imp in module.imports:
            if imp.module == "env":
                linker.define_func("env", imp.name, imp.type, self._import(imp.name, getattr(host, imp.name, None)))
        store.set_fuel(10**15)
        host.instance = linker.instantiate(store, module)
        self.exports = exports = host.instance.exports(store)
        exports["_initialize"](store)
        exports["proxy_on_context_create"](store, 1, 0)
        exports["proxy_on_vm_start"](store, 1, 0)
        if not exports["proxy_on_configure"](store, 1, len(host.plugin_config)):
            print("\n".join(m for _, m in host.logs), file=sys.stderr)
            sys.exit("vm-cost.py: the filter refused its configuration")
        self.headers = BROWSER_HEADERS + [(":path", args.path)] + [tuple(h.split(":", 1)) for h in args.header]
        self.body = b""
        if args.body:
            with open(args.body, "rb") as f:
                self.body = f.read()
            host.request_body = self.body
            self.headers = [(k, "POST") if k == ":method" else (k, v) for k, v in self.headers]
            self.headers.append(("content-length", str(len(self.body))))
        self.keys = [f"k{n:039d}" for n in range(args.keys)]
        self.sent = 0
        self.tick()

    def _import(self, name, handler):
        host = self.host

        def call(*a):
            host.calls[name] += 1
            return handler(*a) if handler else OK

        return call

    def tick(self):
        host = self.host
        host.now_ns += TICK_MS * 10**6
        before = collections.Counter(host.calls)
        self.exports["proxy_on_tick"](self.store, 1)
        host.tick_calls.update(host.calls - before)
        host.calls = before
        host.ticks += 1

    def request(self):
        """Sends the next request through every callback Envoy makes; returns the wasm instructions it took."""
        if self.sent and self.sent % self.args.tick == 0:
            self.tick()
        n, exports, store = self.sent, self.exports, self.store
        self.sent += 1
        self.host.request_headers = self.headers + [("x-api-key", self.keys[n % len(self.keys)])]
        before = store.get_fuel()
        ctx = 2 + n
        exports["proxy_on_context_create"](store, ctx, 1)
        if self.body:
            exports["proxy_on_request_headers"](store, ctx, len(self.host.request_headers), 0)
            exports["proxy_on_request_body"](store, ctx, len(self.body), 1)
        else:
            exports["proxy_on_request_headers"](store, ctx, len(self.host.request_headers), 1)
        exports["proxy_on_response_headers"](store, ctx, len(self.host.response_headers), 1)
        exports["proxy_on_log"](store, ctx)
        exports["proxy_on_done"](store, ctx)
        exports["proxy_on_delete"](store, ctx)
        return before - store.get_fuel()


def engine_and_module(path):
    config = wasmtime.Config()
    config.consume_fuel = True
    config.cache = True
    engine = wasmtime.Engine(config)
    return engine, wasmtime.Module.from_file(engine, path)


def profile(args, engine, module, cost):
    """Samples where a request spends its instructions: a fresh VM per sample, warmed up, then one request run out of
    fuel at a random point; the trap's wasm backtrace is the sample."""
    import random

    rng = random.Random(7)
    inclusive, exclusive = collections.Counter(), collections.Counter()
    for _ in range(args.profile):
        vm = Vm(args, engine, module)
        for _ in range(args.warmup):
            vm.request()
        vm.store.set_fuel(rng.randrange(1, cost))
        try:
            vm.request()
            continue
        except wasmtime.Trap as trap:
            names = [f.func_name or f"#{f.func_index}" for f in trap.frames]
        if names:
            exclusive[names[0]] += 1
        for name in set(names):
            inclusive[name] += 1
    total = args.profile
    print(f"\nsampled stacks: {total}; self (top 25)")
    for name, n in exclusive.most_common(25):
        print(f"  {100 * n / total:5.1f}%  {name[:150]}")
    print("inclusive (top 40)")
    for name, n in inclusive.most_common(40):
        print(f"  {100 * n / total:5.1f}%  {name[:150]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wasm")
    parser.add_argument("bundle")
    parser.add_argument("--name", help="the bundle's policy name (default: the file's name without its extension)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300, help="requests before measuring")
    parser.add_argument("--keys", type=int, default=64, help="distinct x-api-key values, rotated")
    parser.add_argument("--tick", type=int, default=3000, help="requests between two ticks")
    parser.add_argument("--path", default="/api/v1/orders?page=2")
    parser.add_argument("--header", action="append", default=[], help="extra request header NAME:VALUE")
    parser.add_argument("--body", help="send this file as the request body (POST), in one body callback")
    parser.add_argument("--config", default="{}", help="extra plugin configuration (JSON object)")
    parser.add_argument("--profile", type=int, default=0, help="also sample N stacks of a request (out-of-fuel traps)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (for tests) instead of text")
    args = parser.parse_args()
    if args.name is None:
        args.name = os.path.splitext(os.path.basename(args.bundle))[0]

    engine, module = engine_and_module(args.wasm)
    vm = Vm(args, engine, module)
    for _ in range(args.warmup):
        vm.request()
    vm.host.calls.clear()
    vm.host.tick_calls.clear()
    vm.host.ticks = 0
    costs = sorted(vm.request() for _ in range(args.requests))
    count = len(costs)
    median = costs[count // 2]
    if args.json:
        calls = {name: n / count for name, n in vm.host.calls.items()}
        ticks = max(vm.host.ticks, 1)
        per_tick = {name: n / ticks for name, n in vm.host.tick_calls.items()}
        errors = [m for level, m in vm.host.logs if level >= 4]
        report = {
            "instructions_median": median,
            "instructions_max": costs[-1],
            "calls_per_request": calls,
            "calls_per_tick": per_tick,
        }
        print(json.dumps({**report, "ticks": vm.host.ticks, "errors": errors}))
        return 0
    print(f"wasm instructions per request: mean {sum(costs) / count:.0f}, median {median}")
    print("proxy-wasm calls per request (by the request's callbacks):")
    for name, n in sorted(vm.host.calls.items(), key=lambda kv: -kv[1]):
        print(f"  {name:40} {n / count:8.3f}")
    if vm.host.ticks:
        print(f"proxy-wasm calls per tick ({vm.host.ticks} ticks, one every {args.tick} requests; the sweep's reads included):")
        for name, n in sorted(vm.host.tick_calls.items(), key=lambda kv: -kv[1]):
            print(f"  {name:40} {n / vm.host.ticks:8.1f}")
    errors = [m for level, m in vm.host.logs if level >= 3]
    if errors:
        print("filter logged:", *errors[:5], sep="\n  ")
    if args.profile:
        profile(args, engine, module, median)
    return 0


if __name__ == "__main__":
    sys.exit(main())

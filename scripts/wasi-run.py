#!/usr/bin/env python3
"""Runs a wasm32-wasip1 program under Wasmtime: cargo's test runner for `--target wasm32-wasip1`.

Cargo calls it as `wasi-run.py PROGRAM.wasm [ARGS...]` (see CARGO_TARGET_WASM32_WASIP1_RUNNER in the Makefile).
Wasmtime comes from the `wasmtime` package on PyPI, installed into the repository's virtualenv by `make setup`,
so the only requirement is Python 3. The program sees its arguments, the environment, stdout/stderr, and the
current directory pre-opened as `.` (read-only use: the engine tests read nothing from disk). The exit code is
the program's. With `WASI_RUN_FUEL=1` it also counts the wasm instructions the program executed (Wasmtime fuel:
the same on every machine, unlike a timing) and prints `wasi-run.py: N instructions` to stderr at the end.
"""
import os
import sys

try:
    import wasmtime
except ImportError:
    sys.exit("wasi-run.py: the `wasmtime` Python package is missing: run `make setup`")


def main() -> int:
    if len(sys.argv) < 2:
        sys.exit("usage: wasi-run.py PROGRAM.wasm [ARGS...]")
    program = sys.argv[1]
    config = wasmtime.Config()
    config.cache = True  # Cranelift compiles a test binary in seconds; the cache makes reruns instant.
    fuel = os.environ.get("WASI_RUN_FUEL") == "1"
    config.consume_fuel = fuel
    engine = wasmtime.Engine(config)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    if fuel:
        store.set_fuel(2**62)
    wasi = wasmtime.WasiConfig()
    wasi.argv = [os.path.basename(program)] + sys.argv[2:]
    wasi.inherit_env()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.preopen_dir(".", ".")
    store.set_wasi(wasi)
    module = wasmtime.Module.from_file(engine, program)
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    try:
        start(store)
    except wasmtime.ExitTrap as exit_trap:
        return exit_trap.code
    except wasmtime.Trap as trap:
        # A panic under panic=abort (or any trap): the test binary failed.
        print(f"wasi-run.py: trap: {trap}", file=sys.stderr)
        return 101
    finally:
        if fuel:
            print(f"wasi-run.py: {2**62 - store.get_fuel()} instructions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`make demo`: the whole Portcullis loop on 127.0.0.1, with the Python standard library only.

1. starts the demo upstream (envoy-examples/upstream.py), the control plane (`portcullis serve`) and Envoy with
   Portcullis (envoy-examples/envoy.yaml);
2. compiles and pushes envoy-examples/policies/demo.yaml;
3. sends a few requests and prints what happened, then the access-log lines with Portcullis' verdicts.

Run state (logs, bundles, token) goes to .run/demo/. With a terminal attached the stack keeps running until
Ctrl-C so you can send your own requests (try `curl -i localhost:10000/admin`); without one (CI) it stops.
"""
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RUN = os.path.join(ROOT, ".run", "demo")
ENVOY = os.environ.get("PORTCULLIS_ENVOY", os.path.join(ROOT, ".venv", "bin", "envoy"))
PORTCULLIS = os.path.join(ROOT, "target", "debug", "portcullis")
GATEWAY, ADMIN, CONTROL_PLANE, REPLICA, UPSTREAM = 10000, 9901, 18000, 18001, 18080

processes = []


def fail(message):
    print(f"demo: {message}", file=sys.stderr)
    stop_all()
    sys.exit(1)


def stop_all():
    for proc in reversed(processes):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in processes:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start(name, args, env=None):
    log = open(os.path.join(RUN, f"{name}.log"), "wb")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    processes.append(proc)
    return proc


def wait_for(what, check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    fail(f"timed out waiting for {what}; see the logs in {RUN}")


def request(path, headers=None, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{GATEWAY}{path}", headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def main():
    for tool, hint in [(ENVOY, "run `make setup`"), (PORTCULLIS, "run `make build`"),
                       (os.path.join(ROOT, "dist", "portcullis.wasm"), "run `make build`")]:
        if not os.path.exists(tool):
            fail(f"{tool} is missing: {hint}")
    for port in (GATEWAY, ADMIN, CONTROL_PLANE, REPLICA, UPSTREAM):
        if not port_free(port):
            fail(f"port {port} on 127.0.0.1 is in use (a previous demo still running?)")
    os.makedirs(RUN, exist_ok=True)
    for stale in ("access.log",):
        path = os.path.join(RUN, stale)
        if os.path.exists(path):
            os.remove(path)

    token_file = os.path.join(RUN, "token")
    with open(token_file, "w") as f:
        f.write(secrets.token_hex(24))
    os.chmod(token_file, 0o600)

    start("upstream", [sys.executable, "envoy-examples/upstream.py", str(UPSTREAM)])
    # Two replicas on one data directory: the Envoy cluster lists both (envoy-examples/envoy.yaml).
    for name, port in (("control-plane", CONTROL_PLANE), ("control-plane-replica", REPLICA)):
        start(name, [PORTCULLIS, "serve", "--listen", f"127.0.0.1:{port}",
                     "--data-dir", os.path.join(RUN, "control-plane"), "--token-file", token_file])
    start("envoy", [ENVOY, "-c", "envoy-examples/envoy.yaml", "--concurrency", "2", "--base-id", "41",
                    "--log-level", "info", "--file-flush-interval-msec", "250"])
    wait_for("Envoy", lambda: urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/ready", timeout=1).status == 200)
    wait_for("the control plane", lambda: not port_free(CONTROL_PLANE) and not port_free(REPLICA))
    print(f"demo: upstream :{UPSTREAM}, control plane :{CONTROL_PLANE} and :{REPLICA}, Envoy with Portcullis :{GATEWAY}"
          f" (admin :{ADMIN}); logs in .run/demo/\n")

    bundle = os.path.join(RUN, "demo.bundle")
    for step in ([PORTCULLIS, "compile", "envoy-examples/policies/demo.yaml", "-o", bundle, "--name", "demo"],
                 [PORTCULLIS, "push", "--server", f"http://127.0.0.1:{CONTROL_PLANE}", "--name", "demo",
                  "--token-file", token_file, bundle]):
        print("$ " + " ".join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in step))
        if subprocess.run(step, cwd=ROOT).returncode != 0:
            fail("the step above failed")
    wait_for("Envoy to enforce the pushed bundle", lambda: request("/admin")[0] == 403)
    print()

    cases = [
        ("an ordinary API call", "/api/v1/orders", {}),
        ("the admin area without a key", "/admin/users", {}),
        ("the admin area with a key", "/admin/users", {"x-admin-key": "demo"}),
        ("a scanner", "/api/v1/orders", {"user-agent": "sqlmap/1.7.2#stable"}),
        ("a bulk export (monitored)", "/api/v1/export?format=csv", {}),
    ]
    for label, path, headers in cases:
        status, body = request(path, headers)
        shown = " ".join(f"-H '{k}: {v}'" for k, v in headers.items())
        print(f"{label:32} GET {path} {shown}\n    -> {status} {body.strip()[:160]}")

    def access_log():
        with open(os.path.join(RUN, "access.log")) as f:
            return [json.loads(line) for line in f if line.strip()]

    # Envoy flushes the access log on a timer: wait until our requests are in it.
    wait_for("the access log", lambda: any(e.get("path") == cases[-1][1] for e in access_log()), timeout=10)
    lines = access_log()
    print("\nEnvoy's access log (.run/demo/access.log), field `portcullis` is the verdict:")
    for entry in lines[-len(cases):]:
        print("  " + json.dumps(entry))
    if not any((e.get("portcullis") or "").startswith("action=block") for e in lines):
        fail("no block verdict in the access log")

    if sys.stdin.isatty() and not os.environ.get("CI"):
        print(f"\ndemo: running; try `curl -i localhost:{GATEWAY}/admin`. Ctrl-C stops everything.")
        try:
            while all(p.poll() is None for p in processes):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    stop_all()
    print("demo: stopped")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()

#!/usr/bin/env python3
"""Run type checkers on client files with and without a directory of `.pyi` overlays.

Usage: run_checkers.py --repo DIR --overlays DIR --client FILE [--client FILE ...]
                       [--checkers mypy,pyright,basedpyright,pyrefly] [--timeout SECONDS]
                       [--python EXE]

The overlays mirror the package paths of REPO (REPO/pkg/dyn.py -> OVERLAYS/pkg/dyn.pyi) and
hold only some modules; every module without an overlay must still resolve from REPO. Each
checker runs twice on the client files: `without` (REPO only) and `with` (OVERLAYS in front
of REPO), under the configuration FINDINGS.md (beside this file) found to work:

  mypy          MYPYPATH=OVERLAYS:REPO (without: MYPYPATH=REPO), --follow-imports=silent
  pyright,      stubPath=OVERLAYS (without: an empty dir), extraPaths=[REPO, client dirs],
  basedpyright  typeCheckingMode=standard
  pyrefly       search-path=[OVERLAYS, client dirs] (without: [client dirs]),
                site-package-path=[REPO, site-packages of --python],
                disable-search-path-heuristics, preset=default

Prints {checker: {"version", "without": {"ok", "errors", "seconds"}, "with": {...}}} on
stdout; a checker that is not installed is {"skipped": reason} (also said on stderr).
`ok` is true when the checker ran and reported no error (warnings do not count) in the
client files; each error is {"file", "line", "column", "code", "message"}, lines 1-based.
A checker that crashed or rejected its configuration is `ok: false` with one error whose
code is "checker-failure". Exits 0 whatever the checkers say; the caller asserts.

Hermetic: configs, caches and the working directory live in a temporary directory, so no
config of REPO or of the caller's directory is read and nothing is written into REPO; no
network is used (the pip `pyright` wrapper is kept from its PyPI version check and npm is
forced offline).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CHECKERS = ("mypy", "pyright", "basedpyright", "pyrefly")


def find_exe(name):
    """`name` next to this interpreter (an unactivated venv), else on PATH."""
    for d in (os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable))):
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def base_env():
    env = dict(os.environ)
    for k in ("MYPYPATH", "PYTHONPATH", "PYREFLY_CONFIG", "MYPY_CACHE_DIR"):
        env.pop(k, None)
    env["PYRIGHT_PYTHON_IGNORE_WARNINGS"] = "1"  # no PyPI "latest version" query
    env["npm_config_offline"] = "true"  # a wrapper that would npm-install fails fast instead
    env["NO_COLOR"] = "1"
    return env


def run(cmd, cwd, env, timeout):
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = None, e.stdout or "", f"timed out after {timeout}s"
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
    return rc, out, err, round(time.monotonic() - t0, 3)


def failure(msg):
    return {"file": None, "line": None, "column": None, "code": "checker-failure",
            "message": msg.strip()[-2000:]}


def version_of(cmd, env):
    try:
        p = subprocess.run(cmd + ["--version"], capture_output=True, text=True, env=env,
                           timeout=120, stdin=subprocess.DEVNULL)
        return " ".join((p.stdout or p.stderr).split())
    except Exception as e:  # noqa: BLE001
        return f"unknown ({e})"


def site_packages(python):
    code = "import json, site; print(json.dumps(site.getsitepackages() + [site.getusersitepackages()]))"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL).stdout
        return [d for d in json.loads(out) if os.path.isdir(d)]
    except Exception:  # noqa: BLE001
        return []


def in_clients(path, clients):
    return path is not None and os.path.realpath(path) in clients


def toml_list(items):
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


# --- mypy -------------------------------------------------------------------------------

def mypy_cmd():
    exe = find_exe("mypy")
    if exe:
        return [exe]
    try:
        import mypy  # noqa: F401
        return [sys.executable, "-m", "mypy"]
    except ImportError:
        return None


def run_mypy(cmd, repo, overlays, clients, tmp, mode, timeout, python):
    d = os.path.join(tmp, "mypy-" + mode)
    os.makedirs(d)
    cfg = os.path.join(d, "mypy.ini")
    with open(cfg, "w") as f:
        f.write("[mypy]\n")
    env = base_env()
    env["MYPYPATH"] = os.pathsep.join(([overlays] if mode == "with" else []) + [repo])
    rc, out, err, secs = run(cmd + [
        "--config-file", cfg, "--cache-dir", os.path.join(d, "cache"),
        "--python-executable", python, "--follow-imports=silent",
        "--show-absolute-path", "--no-error-summary", "-O", "json", *clients,
    ], d, env, timeout)
    errors, seen = [], 0
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        e = json.loads(line)
        if e.get("severity") != "error":
            continue
        seen += 1
        if not in_clients(e.get("file"), clients):
            continue
        errors.append({"file": e["file"], "line": e["line"], "column": e["column"] + 1,
                       "code": e.get("code"), "message": e["message"]})
    if rc not in (0, 1) or (rc == 1 and not seen):
        errors.append(failure(f"mypy exit {rc}: {err or out}"))
    return {"ok": rc in (0, 1) and not errors, "errors": errors, "seconds": secs}


# --- pyright / basedpyright -------------------------------------------------------------

def run_pyright(cmd, repo, overlays, clients, tmp, mode, timeout, python, name):
    d = os.path.join(tmp, name + "-" + mode)
    os.makedirs(d)
    empty = os.path.join(d, "no-stubs")
    os.makedirs(empty)
    client_dirs = [x for x in dict.fromkeys(os.path.dirname(c) for c in clients) if x != repo]
    cfg = os.path.join(d, "pyrightconfig.json")
    with open(cfg, "w") as f:
        json.dump({
            "typeCheckingMode": "standard",
            "extraPaths": [repo] + client_dirs,
            "stubPath": overlays if mode == "with" else empty,
            "reportMissingModuleSource": "none",
        }, f, indent=1)
    rc, out, err, secs = run(cmd + ["-p", cfg, "--pythonpath", python, "--outputjson", *clients],
                             d, base_env(), timeout)
    errors = []
    try:
        report = json.loads(out)
    except ValueError:
        report = None
    if report is None:
        errors.append(failure(f"{name} exit {rc}, no JSON: {err or out}"))
    else:
        seen = 0
        for e in report.get("generalDiagnostics", []):
            if e.get("severity") != "error":
                continue
            seen += 1
            if not in_clients(e.get("file"), clients):
                continue
            start = e.get("range", {}).get("start", {})
            errors.append({"file": e["file"], "line": start.get("line", -1) + 1,
                           "column": start.get("character", -1) + 1,
                           "code": e.get("rule"), "message": e["message"]})
        if rc not in (0, 1) or (rc == 1 and not seen):
            errors.append(failure(f"{name} exit {rc}: {err}"))
    return {"ok": rc in (0, 1) and report is not None and not errors, "errors": errors,
            "seconds": secs}


# --- pyrefly ----------------------------------------------------------------------------

def run_pyrefly(cmd, repo, overlays, clients, tmp, mode, timeout, python):
    d = os.path.join(tmp, "pyrefly-" + mode)
    os.makedirs(d)
    client_dirs = [x for x in dict.fromkeys(os.path.dirname(c) for c in clients)]
    search = ([overlays] if mode == "with" else []) + client_dirs
    version = "{}.{}".format(*sys.version_info[:2])
    try:
        version = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=60).stdout.strip() or version
    except Exception:  # noqa: BLE001
        pass
    cfg = os.path.join(d, "pyrefly.toml")
    with open(cfg, "w") as f:
        f.write(
            'preset = "default"\n'
            f"search-path = {toml_list(search)}\n"
            f"site-package-path = {toml_list([repo] + site_packages(python))}\n"
            "disable-search-path-heuristics = true\n"
            "skip-interpreter-query = true\n"
            f'python-version = "{version}"\n'
        )
    rc, out, err, secs = run(cmd + [
        "check", "-c", cfg, "--output-format", "json", "--summary=none",
        "--progress-bar", "no", "--relative-to", "", "--threads", "1", *clients,
    ], d, base_env(), timeout)
    errors = []
    try:
        report = json.loads(out)
    except ValueError:
        report = None
    if report is None:
        errors.append(failure(f"pyrefly exit {rc}, no JSON: {err or out}"))
    else:
        seen = 0
        for e in report.get("errors", []):
            path = e.get("path")
            if path and not os.path.isabs(path):
                path = os.path.join(d, path)
            if e.get("severity") != "error":
                continue
            seen += 1
            if not in_clients(path, clients):
                continue
            errors.append({"file": path, "line": e["line"], "column": e["column"],
                           "code": e.get("name"), "message": e["description"]})
        if rc not in (0, 1) or (rc == 1 and not seen):
            errors.append(failure(f"pyrefly exit {rc}: {err}"))
    return {"ok": rc in (0, 1) and report is not None and not errors, "errors": errors,
            "seconds": secs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, help="import root of the source tree")
    ap.add_argument("--overlays", required=True, help="directory of .pyi overlays")
    ap.add_argument("--client", required=True, action="append", help="file to check (repeatable)")
    ap.add_argument("--checkers", default=",".join(CHECKERS),
                    help="comma-separated subset of " + ",".join(CHECKERS))
    ap.add_argument("--timeout", type=float, default=600, help="seconds per checker run")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter whose site-packages the checkers see (default: this one)")
    a = ap.parse_args()

    repo = os.path.realpath(a.repo)
    overlays = os.path.realpath(a.overlays)
    clients = [os.path.realpath(c) for c in a.client]
    for p in [repo, overlays]:
        if not os.path.isdir(p):
            ap.error(f"not a directory: {p}")
    for c in clients:
        if not os.path.isfile(c):
            ap.error(f"not a file: {c}")
    client_set = set(clients)
    wanted = [c.strip() for c in a.checkers.split(",") if c.strip()]
    for c in wanted:
        if c not in CHECKERS:
            ap.error(f"unknown checker {c!r}")

    report = {}
    env = base_env()
    with tempfile.TemporaryDirectory(prefix="run-checkers-") as tmp:
        for name in wanted:
            if name == "mypy":
                cmd = mypy_cmd()
            else:
                exe = find_exe(name)
                cmd = [exe] if exe else None
            if cmd is None:
                msg = f"{name} is not installed (pip install {name})"
                print(f"run_checkers: skipping {name}: {msg}", file=sys.stderr)
                report[name] = {"skipped": msg}
                continue
            entry = {"version": version_of(cmd, env), "command": cmd}
            for mode in ("without", "with"):
                args = (cmd, repo, overlays, clients, tmp, mode, a.timeout, a.python)
                if name == "mypy":
                    res = run_mypy(*args)
                elif name == "pyrefly":
                    res = run_pyrefly(*args)
                else:
                    res = run_pyright(*args, name)
                for e in res["errors"]:
                    if e["file"] is not None and e["file"] not in client_set:
                        e["file"] = os.path.realpath(e["file"])
                entry[mode] = res
            report[name] = entry
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A step for the launcher tests, keeping the real steps' contract in a few lines and milliseconds:

    python toy_step.py config/<cfg>.json --name N [--reads A,B] [--settings S] [--record]

- output result/<cfg>/<N>.json = {settings, model_id (fresh per run), parents: {read: its model_id}}, written
  through a temporary file and a rename (storage.atomic_write), so a kill never leaves a half output;
- up to date (output exists, same settings, parents' model_ids as recorded): skipped, nothing written;
  a parent remade since (another model_id): stale, made again; other settings: refused (exit 2);
- a read that does not exist: `error:` line, exit 2 (a step run before its dependency);
- --record appends one results record (storage.append_jsonl, the real writer) of RECORD_BYTES characters
  to log/<cfg>/results.jsonl, so interleaved appends would show as broken lines;
- every run that does work appends its name to runs.log in the working folder (tests count these).

Faults, from the environment: TOY_SLEEP (seconds before writing), TOY_FAULT="<name>:<kind>[,...]", kind one of
kill-once (SIGKILL itself, first run only), kill-parent-once (SIGKILL the process that started it, i.e. the
Ray worker; first run only), kill-parent (the same, every run), sleep-once (sleep 300 s, first run only: to
be preempted), midwrite (SIGKILL itself after writing half the temporary file, every run), fail (exit 1).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's core/storage.py

from core.storage import append_jsonl, atomic_write  # noqa: E402

RECORD_BYTES = 100_000  # well above a pipe or stdio buffer (4-8 KiB): a split write would interleave


def fault(name: str) -> str:
    faults = dict(f.partition(":")[::2] for f in os.environ.get("TOY_FAULT", "").split(",") if f)
    return faults.get(name, "")


def once(marker: Path) -> bool:
    """True the first time (per marker), for faults that hit only the first attempt."""
    if marker.exists():
        return False
    marker.write_text("1")
    return True


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("--name", required=True)
    p.add_argument("--reads", default="")
    p.add_argument("--settings", default="s")
    p.add_argument("--record", action="store_true")
    args, _ = p.parse_known_args()  # the launchers add --quiet --device auto --threads N
    cfg = Path(args.config).stem
    root = Path("result") / cfg
    parents = {}
    for read in filter(None, args.reads.split(",")):
        path = root / f"{read}.json"
        if not path.is_file():
            sys.stderr.write(f"error: {path} not found (run {read} first)\n")
            sys.exit(2)
        parents[read] = json.loads(path.read_text())["model_id"]
    out = root / f"{args.name}.json"
    if out.is_file():
        old = json.loads(out.read_text())
        if old["settings"] != args.settings:
            sys.stderr.write(f"error: {out} was made with settings {old['settings']}, not {args.settings}\n")
            sys.exit(2)
        if old["parents"] == parents:
            print(f"{args.name}: up to date, skipped")
            return
    kind = fault(args.name)
    if kind == "fail":
        sys.stderr.write(f"error: {args.name} failed on purpose\n")
        sys.exit(1)
    if kind == "kill-parent" or kind in ("kill-once", "kill-parent-once") and once(Path(f".{args.name}.{kind}")):
        os.kill(os.getppid() if kind.startswith("kill-parent") else os.getpid(), signal.SIGKILL)
        sys.exit(3)  # the killed parent never reads this
    if kind == "sleep-once" and once(Path(f".{args.name}.{kind}")):
        time.sleep(300)  # until a test preempts it
    time.sleep(float(os.environ.get("TOY_SLEEP", "0")))
    body = json.dumps({"settings": args.settings, "model_id": uuid.uuid4().hex, "parents": parents})

    def write(f) -> None:
        if kind == "midwrite":
            f.write(body[: len(body) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        f.write(body)
    atomic_write(out, write, mode="w")
    if args.record:
        append_jsonl(Path("log") / cfg / "results.jsonl", {"name": args.name, "pad": "x" * RECORD_BYTES})
    with open("runs.log", "a") as f:
        f.write(args.name + "\n")
    print(f"{args.name}: made")


if __name__ == "__main__":
    main()

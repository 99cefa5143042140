"""Where the time goes, printed as Markdown tables (paste them into the README): the training loop vs a bare
optimiser step, sensitivity features, threshold fitting, one full setting through the step scripts, victim +
shadows in one process vs several, mem-score and reference models per hour, SAMIA's epoch, many models at
once, a no-op rerun of a finished grid, and the paper-scale projection on a GPU. One module per section in
benchmarks/ (their registry numbers the headings).

    python bench.py [--quick] [--threads N] [--configs digits_resnet18,synthetic_purchase_columnfc]
                    [--sections train,sens,threshold,pipeline,workers,memscore,refs,samia,ensemble,rerun,cuda]
                    [--device cuda|cpu --bench_rows N --bench_models N --bench_attack_epochs N]   # the cuda section

The default runs every section this machine can (cuda only when torch sees a CUDA device). Writes nothing in
the repository (the sections that run steps do so in temporary folders); the load average at the start and
end is printed so a reader can judge the noise. --quick takes about 3-5 minutes on 2 CPU cores, the full run
about 13 (measured before the rerun section, which adds about 1 and 2).
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning, as in the step scripts (spinning made small models 10x
# slower on 2 loaded cores). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import logging  # noqa: E402

import torch  # noqa: E402

from benchmarks import SECTIONS, plan  # noqa: E402
from benchmarks.common import CONFIGS, fmt_s, header, now, say  # noqa: E402
from core.cli import Parser, bounded, run_main  # noqa: E402
from core.version import add_version_flag  # noqa: E402


def parser() -> Parser:
    p = Parser(description=__doc__.split("\n\n")[0], once=True)
    p.add_argument("--quick", action="store_true", help="fewer repeats and a short pipeline (~3-5 min)")
    p.add_argument("--threads", type=bounded(int, 1, 4096), default=None,
                   help="torch CPU threads here and in the step scripts (default: torch's choice)")
    p.add_argument("--configs", default=None, help=f"comma list of config stems (default {','.join(CONFIGS)})")
    p.add_argument("--sections", default=None, help="comma list of: " + ", ".join(
        f"{s.name} ({s.help})" for s in SECTIONS) + " (default: every section this machine can run)")
    p.add_argument("--device", default=None, help="device of the cuda section (default cuda; cpu: exercise it "
                                                  "without a GPU)")
    p.add_argument("--bench_rows", type=bounded(int, 16, 10_000_000), default=None,
                   help="train rows of the cuda section (default 13,500 = CIFAR-10's)")
    p.add_argument("--bench_models", type=bounded(int, 1, 64), default=None,
                   help="models trained at once there (victim + shadows; default 6)")
    p.add_argument("--bench_attack_epochs", type=bounded(int, 1, 10_000), default=None,
                   help="epochs of the learned attacks there (default 100)")
    add_version_flag(p)
    return p


def main() -> None:
    args = parser().parse_args()
    bench, sections = plan(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    logging.getLogger("prune_mia").setLevel(logging.WARNING)  # fit() logs every epoch at INFO
    start = now()
    print(header(bench), flush=True)
    for number, section in sections:
        say(f"{number}. {section.name}")
        print(f"### {number}. {section.run(bench)}\n", flush=True)
    print(f"\nWhole bench: {fmt_s(now() - start)}; load average at end {os.getloadavg()[0]:.2f}.")


if __name__ == "__main__":
    run_main(main)

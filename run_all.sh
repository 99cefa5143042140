#!/usr/bin/env bash
# Reproduce the paper's experiments, then draw the tables and figures.
#
#   bash run_all.sh --quick            CPU, embedded data (digits, synthetic_purchase); 13 min 15 s measured on 2 cores
#   bash run_all.sh --paper            the paper's full grid; a GPU machine with the datasets in data/datasets
#   options: --dry-run (print the task graph), --jobs N (tasks side by side; default 2 for --quick, 1 for --paper),
#            --launcher local|ray|slurm (default local) and any other grid.py flag (python grid.py --help),
#            e.g. --launcher ray --address HOST:6379, or --launcher slurm --partition gpu --gpus_per_task 1
#
# The grid itself lives in grid.py (one line per config block). A rerun skips finished work (the steps
# check their outputs); a failing task is reported at the end and does not stop the tasks that do not need it.
set -uo pipefail
cd "$(dirname "$0")"

profile="" dry="" jobs="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) profile=quick ;;
    --paper) profile=paper ;;
    --dry-run) dry=--dry-run ;;
    --jobs) shift; jobs="${1:-}" ;;
    --jobs=*) jobs="${1#--jobs=}" ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    --*=*) extra+=("$1") ;;
    --*) extra+=("$1"); case "${2:-}" in ""|--*) ;; *) shift; extra+=("$1") ;; esac ;;  # grid.py checks them
    *) echo "error: unknown argument '$1' (use --quick or --paper, then grid.py's flags)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$profile" ]; then
  echo "error: choose a profile (bash run_all.sh --quick, or --paper on a GPU machine with the data)" >&2
  exit 2
fi
case "$jobs" in
  "") [ "$profile" = quick ] && jobs=2 || jobs=1 ;;
  *[!0-9]*|0) echo "error: --jobs needs a positive integer, got '$jobs'" >&2; exit 2 ;;
esac

# $PYTHON if set, else the repository's virtual environment (the README's set-up makes .venv), else python3.
py="${PYTHON:-python3}"
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && py=.venv/bin/python
export OMP_WAIT_POLICY=PASSIVE

start=$(date +%s)
"$py" grid.py --profile "$profile" --jobs "$jobs" $dry "${extra[@]}"
status=$?
# 2: grid.py refused its flags before any work (its `error:` line says why); nothing new to report
{ [ -n "$dry" ] || [ $status -eq 2 ]; } && exit $status
"$py" report.py log --out "report/$profile" || status=$?
echo "run_all.sh --$profile: $(( $(date +%s) - start )) s; tables and figures in report/$profile/"
exit $status

#!/usr/bin/env bash
# Reproduce the paper's experiments, then draw the tables and figures.
#
#   bash run_all.sh --quick            CPU, embedded data (digits, synthetic_purchase); 13 min 15 s measured on 2 cores
#   bash run_all.sh --paper            the paper's full grid; a GPU machine with the datasets in data/datasets
#   options: --dry-run (print the task graph), --jobs N (tasks side by side; default 2 for --quick, 1 for --paper),
#            --launcher local|ray|slurm (default local) and any other grid.py flag (python grid.py --help),
#            e.g. --launcher ray --address HOST:6379, or --launcher slurm --partition gpu --gpus_per_task 1
#
# The grid itself lives in launch/profiles.py (one line per config block). A rerun skips finished work (tasks
# whose records match, without starting them; the others' steps check their outputs); a failing task is
# reported at the end and does not stop the tasks that do not need it. PYTHON=... picks the interpreter.
set -uo pipefail
cd "$(dirname "$0")"

die() { echo "error: $1" >&2; exit 2; }

profile="" dry="" jobs="" extra=()
choose() {  # one profile per run: --quick --paper (or --quick --profile paper) is a mistake, not a choice
  [ -n "$profile" ] && [ "$profile" != "$1" ] && die "two profiles given, $profile and $1 (pass one of --quick, --paper)"
  profile="$1"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) choose quick ;;
    --paper) choose paper ;;
    --profile) [ $# -ge 2 ] || die "--profile needs a value (quick or paper)"; shift; choose "$1" ;;
    --profile=*) choose "${1#--profile=}" ;;
    --dry-run) dry=--dry-run ;;
    --jobs|--jobs=*)
      [ -n "$jobs" ] && die "--jobs given twice (give each option once)"
      if [ "$1" = --jobs ]; then shift; jobs="${1:-}"; else jobs="${1#--jobs=}"; fi
      case "$jobs" in ""|*[!0-9]*) die "--jobs needs a positive integer, got '$jobs'" ;; esac
      case "$jobs" in *[1-9]*) ;; *) die "--jobs needs a positive integer, got '$jobs'" ;; esac ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    --*=*) extra+=("$1") ;;
    --*) extra+=("$1"); case "${2:-}" in ""|--*) ;; *) shift; extra+=("$1") ;; esac ;;  # grid.py checks them
    *) die "unknown argument '$1' (use --quick or --paper, then grid.py's flags)" ;;
  esac
  shift
done
[ -n "$profile" ] || die "choose a profile (bash run_all.sh --quick, or --paper on a GPU machine with the data)"
case "$profile" in quick|paper) ;; *) die "unknown profile '$profile' (quick or paper)" ;; esac
[ -n "$jobs" ] || { [ "$profile" = quick ] && jobs=2 || jobs=1; }

# $PYTHON if set, else the repository's virtual environment (the README's set-up makes .venv), else python3.
py="${PYTHON:-python3}"
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && py=.venv/bin/python
# A PYTHON that is no Python 3.11+ fails here, in one line (grid.py then checks its packages, also in one).
hint="set PYTHON to a Python 3.11 or newer with requirements.txt installed, or leave it unset"
answer=$(timeout 60 "$py" -c 'import sys; print("python", sys.version_info >= (3, 11))' </dev/null 2>/dev/null)
case $? in
  0) [ "$answer" = "python True" ] || die "PYTHON=$py is not a Python 3.11 or newer ($hint)" ;;
  124) die "PYTHON=$py did not answer within 60 s ($hint)" ;;
  126) die "PYTHON=$py is not executable ($hint)" ;;
  127) command -v -- "$py" >/dev/null || die "PYTHON=$py: no such program ($hint)"
       die "PYTHON=$py is not a Python 3.11 or newer ($hint)" ;;
  *) die "PYTHON=$py is not a Python 3.11 or newer ($hint)" ;;
esac
export OMP_WAIT_POLICY=PASSIVE

start=$(date +%s)
"$py" grid.py --profile "$profile" --jobs "$jobs" $dry "${extra[@]}"
status=$?
# 2: grid.py refused its flags before any work (its `error:` line says why); nothing new to report
{ [ -n "$dry" ] || [ $status -eq 2 ]; } && exit $status
"$py" report.py log --out "report/$profile" || status=$?
echo "run_all.sh --$profile: $(( $(date +%s) - start )) s; tables and figures in report/$profile/"
exit $status

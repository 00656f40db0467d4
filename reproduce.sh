#!/usr/bin/env bash
# The whole reproduction in one command: prepare the data, train every Table-1 run, build Table 1, draw the
# figures. Each stage is a Make target whose products are files, and each run resumes from its last checkpoint,
# so after an interruption the same command goes on where it stopped.
#
#   ./reproduce.sh                         every stage
#   ./reproduce.sh --dry-run               print the plan (the commands still to run), run nothing
#   ./reproduce.sh --stages train,table    only these stages (prep, train, table, figures)
#   ./reproduce.sh -j 2 THREADS=1          parallel runs (workers x THREADS <= cores); VAR=value goes to make
#
# Raw ModelNet40 / NVGesture are included when MODELNET40_RAW / NVGESTURE_RAW (and NVGESTURE_WEIGHTS for the
# pretrained setting) are set, in the environment or as VAR=value arguments.
set -euo pipefail
cd "$(dirname "$0")"

ALL_STAGES="prep train table figures"
declare -A TARGET=([prep]=data [train]=table1-runs [table]=table1 [figures]=figures)

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

stages=$ALL_STAGES dry_run=0 make_args=()
while (($#)); do
  case "$1" in
    --dry-run|-n) dry_run=1 ;;
    --stages) [[ $# -ge 2 ]] || { echo "reproduce.sh: --stages needs a list, e.g. --stages prep,train" >&2; exit 2; }
              stages=${2//,/ }; shift ;;
    --stages=*) stages=${1#--stages=}; stages=${stages//,/ } ;;
    -j) [[ $# -ge 2 ]] || { echo "reproduce.sh: -j needs a number" >&2; exit 2; }
        make_args+=("-j" "$2"); shift ;;
    -j*) make_args+=("$1") ;;
    -h|--help) usage; exit 0 ;;
    *=*) make_args+=("$1") ;;
    *) echo "reproduce.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

for stage in $stages; do
  [[ -n "${TARGET[$stage]:-}" ]] || { echo "reproduce.sh: unknown stage '$stage'; stages: ${ALL_STAGES// /,}" >&2; exit 2; }
done

targets=()
for stage in $ALL_STAGES; do  # always in pipeline order, whatever order --stages gave
  [[ " $stages " == *" $stage "* ]] && targets+=("${TARGET[$stage]}")
done

if ((dry_run)); then
  # One `make -n` over every selected target, so a run listed for "train" is not listed again for "table".
  echo "== plan for stages ${stages// /,} (make ${targets[*]}):"
  plan=$(make --no-print-directory -n "${make_args[@]}" "${targets[@]}" | grep -v -E '^make(\[[0-9]+\])?: ' || true)
  if [[ -n "$plan" ]]; then sed 's/^/    /' <<<"$plan"; else echo "    (nothing to do: every product is up to date)"; fi
  exit 0
fi

for target in "${targets[@]}"; do
  echo "== make $target ($(date '+%F %T'))"
  make --no-print-directory "${make_args[@]}" "$target"
done
echo "== done ($(date '+%F %T')): results/table1/table1.md (standard evaluation), results/table1/table1-reference.md (both protocols, docs/fidelity.md), results/figures/table1/"

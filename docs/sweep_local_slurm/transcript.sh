#!/usr/bin/env bash
# Writes docs/sweep_local_slurm/transcript.md: a real sweep on the one-machine SLURM cluster with one run
# requeued by hand on the way (`scontrol requeue`), then sacct, `crl sweep status` and `crl report`.
# Run from the repo root as root, with the venv built (make install): bash docs/sweep_local_slurm/transcript.sh
set -euo pipefail
export PATH="$PWD/.venv/bin:$PATH"
OUT=${OUT:-runs/sweeps/local_slurm_demo}
REQUEUE_RUN=seed-0
REQUEUE_AFTER_RECORDS=3  # epoch 0 and two trained epochs
DOC=docs/sweep_local_slurm/transcript.md
rm -rf "$OUT"

typed() {  # the command line as one would type it: arguments with spaces or | in single quotes
  local arg line=""
  for arg in "$@"; do [[ "$arg" =~ [[:space:]\|] ]] && line+="'$arg' " || line+="$arg "; done
  echo "${line% }"
}
show() {  # show COMMAND...: print it as typed, then its output, into the transcript
  { echo; echo "\$ $(typed "$@")"; "$@" 2>&1 || true; } | tee -a "$DOC.tmp"
}
jobs_of() { python -c "import yaml,sys; print(','.join(yaml.safe_load(open('$OUT/sweep.yaml'))['jobs'].values()))"; }
job_of() { python -c "import yaml,sys; print(yaml.safe_load(open('$OUT/sweep.yaml'))['jobs']['$1'])"; }
records() { [ -f "$OUT/runs/$1/metrics.jsonl" ] && wc -l <"$OUT/runs/$1/metrics.jsonl" || echo 0; }

: >"$DOC.tmp"
show bash launch/local_slurm/up.sh --fresh
show crl sweep local_slurm_demo --runner slurm --out "$OUT"
until [ "$(records $REQUEUE_RUN)" -ge $REQUEUE_AFTER_RECORDS ]; do sleep 1; done
show crl sweep status "$OUT"
show scontrol requeue "$(job_of $REQUEUE_RUN)"
sleep 3
show crl sweep status "$OUT"
while [ -n "$(squeue -h -j "$(jobs_of)")" ]; do sleep 2; done
show sacct --duplicates -X -j "$(jobs_of)" -o JobID,JobName,State,Start,End,Elapsed
show crl sweep status "$OUT"
show grep -h "crl train: stopped\|=== crl sweep" "$OUT/runs/$REQUEUE_RUN/train.log"
show crl report "$OUT"
show cat "$OUT/report.md"
{ echo "# A sweep on the one-machine SLURM cluster, one run requeued on the way"; echo;
  echo "Written by \`bash docs/sweep_local_slurm/transcript.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(sinfo -V))."
  echo "Every command below ran as shown; its output follows it unedited."; echo; echo '```';
  sed "s|$PWD/||g" "$DOC.tmp"; echo '```'; } >"$DOC"
rm "$DOC.tmp"
echo "wrote $DOC"

#!/usr/bin/env bash
# Stop one job's leftovers on a machine that runs several jobs (several runs on one GPU): Ray's
# daemons and vLLM's engine outlive an interrupted VERL driver, and `ray stop` would take every
# job's Ray down. The job's process tree is recorded while it runs, as "pid start-time" (a pid alone
# could be reused by another job), and what is left of it is killed afterwards.
#
#   experiments/process_tree.sh record PID FILE   # until PID exits, every 2 s
#   experiments/process_tree.sh kill FILE         # SIGKILL the recorded processes still alive
set -u
started() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }  # field 22, after the name
descend() { local c; for c in $(pgrep -P "$1"); do echo "$c $(started "$c")"; descend "$c"; done; }
case $1 in
  record)
    : > "$3"
    while kill -0 "$2" 2>/dev/null; do descend "$2" >> "$3"; sort -u -o "$3" "$3"; sleep 2; done ;;
  kill)
    n=0
    while read -r pid t0; do
      [ -n "$t0" ] && [ "$(started "$pid")" = "$t0" ] && kill -9 "$pid" 2>/dev/null && n=$((n + 1))
    done < "$2"
    echo "stopped $n leftover processes of this job" ;;
  *) echo "usage: $0 record PID FILE | kill FILE" >&2; exit 2 ;;
esac

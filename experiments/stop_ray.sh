#!/usr/bin/env bash
# Stop what an interrupted or finished VERL run can leave behind on this machine: Ray's daemons and
# vLLM's engine processes, so the next launch gets the GPU to itself. Used by the GPU job scripts.
# By process title only: a pattern matching any command line that mentions vLLM or Ray would also
# hit the shell that called this script.
{ command -v ray >/dev/null && ray stop --force; } >/dev/null 2>&1 || python3 -m ray.scripts.scripts stop --force >/dev/null 2>&1 || true
pkill -9 -f "^ray::|/raylet|/gcs_server|^VLLM::|EngineCore" >/dev/null 2>&1 || true
sleep 3

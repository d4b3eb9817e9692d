#!/usr/bin/env bash
# Runs a training job and restarts it from its last checkpoint when it fails, like torchrun's
# --max-restarts:
#   launch/supervise.sh [--max-restarts R] [--backoff SECONDS] -- [ddp_run.sh arguments...]
# Every attempt runs launch/ddp_run.sh ARGS --resume (a first attempt without a checkpoint
# starts fresh). Bad input (exit codes 2, 3, 4: config, data, checkpoint) is not retried: it
# would fail the same way. Other failures (a crashed or killed rank, the watchdog, I/O) are
# retried up to R times, waiting SECONDS, then twice as long, and so on. ddp_run.sh finds the
# executable ($DDP_TRAIN, build/ddp_train, or the PATH).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
max_restarts=3
backoff=5
while (($#)); do
  case "$1" in
    --max-restarts) max_restarts="$2"; shift 2 ;;
    --backoff) backoff="$2"; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done

attempt=0
while true; do
  echo "supervise: attempt $((attempt + 1)) of $((max_restarts + 1)): ddp_run.sh $* --resume" >&2
  "$here/ddp_run.sh" "$@" --resume
  code=$?
  if ((code == 0)); then
    ((attempt > 0)) && echo "supervise: finished after $attempt restart(s)" >&2
    exit 0
  fi
  if ((code == 2 || code == 3 || code == 4)); then
    echo "supervise: exit code $code is bad input (config, data or checkpoint); not restarting" >&2
    exit "$code"
  fi
  if ((attempt >= max_restarts)); then
    echo "supervise: giving up after $attempt restart(s); last exit code $code" >&2
    exit "$code"
  fi
  attempt=$((attempt + 1))
  echo "supervise: job failed with exit code $code; restart $attempt of $max_restarts from the last checkpoint in ${backoff}s" >&2
  sleep "$backoff"
  backoff=$((backoff * 2))
done

#!/usr/bin/env bash
# The reference server (VisiOmatic 3.0.7 from PyPI) for the side-by-side benchmark.
#
#   benchmarks/peer.sh setup
#       Create its own venv ($BENCH_DIR/peer-venv, default bench-data/peer-venv)
#       with visiomatic==3.0.7 and numpy<2 (it does not run with numpy 2), once.
#   benchmarks/peer.sh start PORT DATA_DIR CACHE_DIR [WORKERS] [THREADS]
#       Run it in the foreground (exec, so the caller owns the pid) on
#       127.0.0.1:PORT, serving DATA_DIR, with its image cache in CACHE_DIR (and
#       its configuration file and shared cache dictionary next to it);
#       WORKERS (default 2) processes, THREADS engine threads (default: its own
#       default, 1, which gives it the best tile throughput and single-client
#       latency on a 2-core machine). Its API endpoint is /api (IIP queries:
#       /api?FIF=name&JTL=z,n).
#
# Environment: BENCH_DIR (benchmark folder), PEER_PYTHON (interpreter for the venv,
# default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench_dir="${BENCH_DIR:-$here/../bench-data}"
venv="$bench_dir/peer-venv"
version="3.0.7"

setup() {
    mkdir -p "$bench_dir"
    if [[ -x "$venv/bin/visiomatic" ]] \
        && [[ "$("$venv/bin/visiomatic" --version 2>/dev/null)" == *"$version"* ]]; then
        return 0
    fi
    "${PEER_PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install -q -U pip
    "$venv/bin/pip" install -q "visiomatic==$version" "numpy<2"
    "$venv/bin/visiomatic" --version
}

start() {
    local port="$1" data_dir="$2" cache_dir="$3"
    local workers="${4:-2}" threads="${5:-}"
    local extra=()
    if [[ -n "$threads" ]]; then
        extra+=(--thread_count "$threads")
    fi
    mkdir -p "$cache_dir"
    # Its own (absent) configuration file and shared cache dictionary, so that a
    # user's settings or another run never leak into the measurement.
    exec "$venv/bin/visiomatic" \
        --config "$cache_dir.visiomatic.conf" \
        --host 127.0.0.1 --port "$port" --workers "$workers" \
        --no_browser "${extra[@]}" \
        --data_dir "$data_dir" --cache_dir "$cache_dir" \
        --ultradict_cache_file "$cache_dir.ultradict.pkl"
}

case "${1:-}" in
    setup) setup ;;
    start) shift; start "$@" ;;
    *) echo "usage: $0 setup | start PORT DATA_DIR CACHE_DIR [WORKERS] [THREADS]" >&2
       exit 2 ;;
esac

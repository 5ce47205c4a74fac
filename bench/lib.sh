# shellcheck shell=bash
# Helpers shared by the bench/ scripts, sourced by each of them (not run on its own):
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# The scripts set WORK (their temporary directory), PIDS (the processes they start), ROOT and BUILD as they need them.

# Prints a message of the benchmark on stderr.
say() { printf 'bench: %s\n' "$*" >&2; }
# Prints an error and exits with status 1.
die() { say "ERROR: $*"; exit 1; }
# usage [STATUS]: prints the lines USAGE_LINES (e.g. 2,22) of the script, its header comment, and exits with STATUS.
usage() { sed -n "${USAGE_LINES}p" "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

# Files holding the PID of a process started for us by another script (glewlwyd-setup.sh); cleanup stops them too.
PID_FILES=()
# The EXIT trap: stops every process we started (PIDS, and the one in each of PID_FILES), waits for them, runs the
# script's cleanup_last if it defines one, then removes the temporary directory WORK.
cleanup() {
    local pid file
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for file in "${PID_FILES[@]}"; do [ -f "$file" ] && kill "$(cat "$file")" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if declare -F cleanup_last >/dev/null; then cleanup_last; fi
    rm -rf "$WORK"
}
# Stops one process we started, by PID (SIG, default TERM), and waits until it is gone.
stop_pid() {
    local pid=$1 sig=${2:-TERM} i
    kill -"$sig" "$pid" 2>/dev/null || return 0
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
# Prints a free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# release_build: with BUILD=1, builds keyless-cli into .build-release; sets BIN (KEYLESS_CLI, or that binary) and
# dies when it is not there.
release_build() {
    if [ "$BUILD" = 1 ]; then
        say "release build of keyless-cli (.build-release); a full build takes about 7 min"
        swift build -c release --product keyless-cli --scratch-path .build-release >"$WORK/build.log" 2>&1 ||
            { tail -30 "$WORK/build.log" >&2; die "release build failed"; }
    fi
    BIN=${KEYLESS_CLI:-$ROOT/.build-release/release/keyless-cli}   # KEYLESS_CLI: another binary (with --no-build)
    [ -x "$BIN" ] || die "no release binary at $BIN (run without --no-build)"
    say "binary: $BIN (built $(date -r "$BIN" '+%Y-%m-%d %H:%M'))"
}

# wait_healthy PID URL LOG WHAT [SHOW]: waits up to 30 s until URL (a /healthz) answers. Dies if PID exits first,
# after showing LOG (its last 20 lines, or all of it with SHOW=all), or if the time runs out (its last 20 lines).
wait_healthy() {
    local pid=$1 url=$2 log=$3 what=$4 show=${5:-20} i
    for i in $(seq 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            if [ "$show" = all ]; then cat "$log" >&2; else tail -20 "$log" >&2; fi
            die "$what exited"
        fi
        curl -sf --max-time 1 -o /dev/null "$url" && return 0
        sleep 0.1
    done
    tail -20 "$log" >&2; die "$what did not become healthy in 30 s"
}

# All CPUs' busy time, in ticks.
cpu_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
# proc_cpu PID: the process's utime+stime, in ticks.
proc_cpu() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12+$13}' || echo 0; }
# rss_kb PID: the process's VmRSS, in kB (0 when there is none).
rss_kb() { local k v rest; while read -r k v rest; do [ "$k" = VmRSS: ] && { echo "$v"; return; }; done <"/proc/$1/status"; echo 0; }
# CPU seconds of this shell's waited-for children, from `times` written to FILE (not in a subshell: it would see none).
children_cpu() { awk 'NR==2{ split($1,u,"m"); split($2,s,"m"); print u[1]*60+u[2]+s[1]*60+s[2] }' "$1"; }

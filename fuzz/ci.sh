#!/usr/bin/env bash
# Every fuzz target for a fixed time, as CI runs them (.ci/run): one build of
# all targets, then each target from its committed seeds for FUZZ_SECONDS,
# FUZZ_JOBS at a time. Fails if any target crashes, leaks past the RSS
# limit, hangs on one input or does not build, and prints the input that
# did it. See README.md, "In CI".
#
# Environment:
#   FUZZ_SECONDS        per target (default 15)
#   FUZZ_JOBS           targets fuzzed at once (default: the CPU count, at most 2)
#   FUZZ_SANITIZER      cargo fuzz's --sanitizer (default none: see README.md)
#   FUZZ_TARGET_DIR     the build's target directory, absolute (default fuzz/target)
#   LOUPE_FUZZ_OPTIONAL 1: without cargo-fuzz or a compiler that builds the
#                       targets, say so and exit 0 instead of failing
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-15}
if [[ -n ${FUZZ_JOBS:-} ]]; then
    jobs=$FUZZ_JOBS
else
    # Two at a time is what CI's 2 cores give; more would share them.
    jobs=$(nproc 2>/dev/null || echo 1)
    ((jobs > 2)) && jobs=2
fi
sanitizer=${FUZZ_SANITIZER:-none}
# A directory kept between CI runs makes the build incremental.
target_dir=${FUZZ_TARGET_DIR:-target}
# cargo-fuzz passes -Z flags; a stable compiler takes them with this.
export RUSTC_BOOTSTRAP=1

unavailable() {
    echo "fuzz/ci.sh: $*" >&2
    if [[ ${LOUPE_FUZZ_OPTIONAL:-} == 1 ]]; then
        echo "fuzz/ci.sh: SKIPPED (LOUPE_FUZZ_OPTIONAL=1)" >&2
        exit 0
    fi
    echo "fuzz/ci.sh: set LOUPE_FUZZ_OPTIONAL=1 to skip fuzzing where it cannot run" >&2
    exit 1
}

cargo fuzz --version >/dev/null 2>&1 ||
    unavailable "cargo-fuzz is not installed (cargo install cargo-fuzz --version 0.13.2 --locked)"

start=$SECONDS
# One build for all targets: release with debug assertions and overflow
# checks, so an arithmetic overflow is a crash, as in a debug build.
if ! cargo fuzz build --release --debug-assertions --sanitizer "$sanitizer" \
    --target-dir "$target_dir"; then
    # A compiler that cannot build fuzz targets at all (no libFuzzer
    # support) is "unavailable"; a target that no longer compiles is a
    # failure, whatever LOUPE_FUZZ_OPTIONAL says.
    if ! cargo build --quiet --bins --target-dir "$target_dir" 2>/dev/null; then
        echo "fuzz/ci.sh: the targets do not compile" >&2
        exit 1
    fi
    unavailable "cargo fuzz build failed with this toolchain ($(rustc --version))"
fi
build_s=$((SECONDS - start))
triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$target_dir/$triple/release
mapfile -t targets < <(cargo fuzz list)
echo "fuzz/ci.sh: built ${#targets[@]} targets in ${build_s} s; ${seconds} s each, ${jobs} at a time"

work=$(mktemp -d "${TMPDIR:-/tmp}/loupe-fuzz.XXXXXX")
keep_work=0
trap '((keep_work)) || rm -rf "$work"' EXIT

# Fuzzes one target; its log goes to $work/<target>.log.
fuzz_one() {
    local t=$1
    local corpus=$work/corpus/$t artifacts=$work/artifacts/$t/
    mkdir -p "$corpus" "$artifacts"
    local args=(
        -max_total_time="$seconds"
        -rss_limit_mb=2048
        # One input running this long is a hang, not a slow input.
        -timeout=10
        -print_final_stats=1
        -artifact_prefix="$artifacts"
    )
    # The real-segment seed is 6 KB (README.md, Running).
    [[ $t == segment_file ]] && args+=(-max_len=16384)
    # New inputs go to the first directory; the seeds stay as committed.
    local dirs=("$corpus")
    [[ -d seeds/$t ]] && dirs+=("seeds/$t")
    "$bin_dir/$t" "${args[@]}" "${dirs[@]}" >"$work/$t.log" 2>&1
}

# Prints a finished target's result; returns non-zero if it failed.
report() {
    local t=$1 rc=$2
    local execs
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
    if ((rc == 0)); then
        echo "  ok    $t: ${execs:-?} execs"
        return 0
    fi
    echo "  FAIL  $t: libFuzzer exited $rc:"
    # The panic's message (above its backtrace), then libFuzzer's report.
    grep -E -m 2 -A 1 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer' "$work/$t.log" |
        sed 's/^/        /'
    echo "        ..."
    tail -n 12 "$work/$t.log" | sed 's/^/        /'
    local f kept=()
    for f in "$work/artifacts/$t"/*; do
        [[ -e $f ]] || continue
        # Kept where README.md's reproduce commands look.
        mkdir -p "artifacts/$t"
        cp "$f" "artifacts/$t/"
        kept+=("fuzz/artifacts/$t/$(basename "$f")")
    done
    if ((${#kept[@]})); then
        echo "        the input that did it: ${kept[*]}"
        echo "        reproduce (in fuzz/): RUSTC_BOOTSTRAP=1 cargo fuzz run -a -s $sanitizer $t ${kept[0]#fuzz/}"
    fi
    return 1
}

failed=()
declare -A running=()
run_start=$SECONDS
for t in "${targets[@]}"; do
    while ((${#running[@]} >= jobs)); do
        rc=0
        wait -n -p done_pid || rc=$?
        report "${running[$done_pid]}" "$rc" || failed+=("${running[$done_pid]}")
        unset "running[$done_pid]"
    done
    fuzz_one "$t" &
    running[$!]=$t
done
for pid in "${!running[@]}"; do
    rc=0
    wait "$pid" || rc=$?
    report "${running[$pid]}" "$rc" || failed+=("${running[$pid]}")
done
echo "fuzz/ci.sh: build ${build_s} s, fuzzing $((SECONDS - run_start)) s"

if ((${#failed[@]})); then
    keep_work=1
    echo "fuzz/ci.sh: FAILED: ${failed[*]} (logs and corpora kept in $work)" >&2
    exit 1
fi

#!/usr/bin/env bash
# Fuzzes what `edgemass serve` reads from outside: infer request bodies (JSON, and JSON followed by
# binary tensor data) and config.pbtxt files.
#
#   fuzz/run.sh [TARGET...] [-- LIBFUZZER-ARGS...]
#
# With no target it runs all three; the default is 1,000,000 inputs each (-runs=1000000). Each
# run starts from the hand-written requests and configs in fuzz/seeds/TARGET and the corpus of
# earlier runs in fuzz/corpus/TARGET, and adds to the corpus what reaches new code. Crashes land
# in fuzz/artifacts/TARGET. The nightly toolchain and cargo-fuzz are installed with rustup and
# cargo when missing; only these runs use nightly, the workspace stays on its pinned stable
# toolchain. Afterwards `cargo fuzz cmin` (set-cover merge) keeps the corpus small, and
# `cargo test --test integration fuzz_corpus` replays it on stable.
set -euo pipefail
cd "$(dirname "$0")"

case "${1:-}" in
    -h | --help)
        sed -n '2,/^set -euo/p' "$(basename "$0")" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
esac
targets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do targets+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#targets[@]} -eq 0 ] && targets=(infer_json infer_binary config_pbtxt)
for target in "${targets[@]}"; do
    if [ ! -f "fuzz_targets/$target.rs" ]; then
        echo "fuzz: no target \`$target\` (targets: infer_json infer_binary config_pbtxt)" >&2
        exit 2
    fi
done
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(-runs=1000000)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: installing the nightly toolchain (for the fuzz runs only)" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
# The project's own lock file, so the fuzzed code is built from the same crate versions.
[ -f Cargo.lock ] || cp ../Cargo.lock Cargo.lock
mkdir -p target

for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log="target/$target.log"
    echo "fuzz: $target: ${args[*]} (progress in fuzz/$log)" >&2
    start=$(date +%s)
    status=0
    cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- -dict="dict/$target.dict" "${args[@]}" \
        >"$log" 2>&1 || status=$?
    grep -E "^(Done|SUMMARY)|panicked|deadly signal|Test unit written" "$log" >&2 || true
    echo "fuzz: $target finished in $(( $(date +%s) - start )) s, exit $status" >&2
    [ "$status" -eq 0 ] || exit "$status"
    cargo +nightly fuzz cmin "$target" "corpus/$target" -- -set_cover_merge=1 \
        >"target/$target.cmin.log" 2>&1
    echo "fuzz: $target corpus: $(ls "corpus/$target" | wc -l) files, $(du -sh "corpus/$target" | cut -f1)" >&2
done

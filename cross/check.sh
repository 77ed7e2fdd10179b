#!/usr/bin/env bash
# Checks the release artifacts of cross/build.sh: each cross-built binary runs a real model on a
# real photo under qemu-user and must report the same detections as the host build (same count
# and labels, scores and box corners within the tolerance of `compare`) and the shipped sentiment
# student's verdicts on two texts (same labels, scores within 0.002), and each .deb must hold the binary
# for its architecture, the systemd unit, the default config and the model manifests, and its
# binary must need no newer glibc than the package's Depends promises; the .deb and the tarball
# must ship exactly the model manifests Cargo.toml's [package.metadata.release] lists. The
# aarch64 binary also runs onnxruntime from the aarch64 wheel's library (models/fetch.py puts it
# in the cache).
#
# Usage: cross/check.sh HOST_EDGEMASS [TARGET...]   (after cross/build.sh; needs qemu-user, and
#        for aarch64 a mount namespace: root, or unprivileged user namespaces)
# Env:   GLIBC  as given to cross/build.sh (default 2.31; debian checks the "-glibc2.35" artifacts)
set -euo pipefail
cd "$(dirname "$0")/.."

host_bin="$1"
shift
targets=("$@")
((${#targets[@]})) || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
suffix=""
[ "${GLIBC:-2.31}" = debian ] && suffix="-glibc2.35"
cache="${EDGEMASS_MODEL_CACHE:-models/cache}"
photo="$cache/photos/bus.jpg"
# MODEL:PRECISION pairs: the teachers in float, the distilled student in both of its forms.
runs=(blazeface-256:fp32 ppocr-det:fp32 ppocr-det-student:fp32 ppocr-det-student:int8)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The model manifests a release ships (Cargo.toml's [package.metadata.release] models), sorted.
release_models="$(python3 cross/release-models.py | sed 's/$/.model.toml/' | sort | xargs)"

# compare HOST_JSON CROSS_JSON LABEL PRECISION: same detections within the stated tolerance: float
# scores within 0.002 and boxes within 1 px; int8 (each CPU's integer kernels round their
# requantization their own way) scores within 0.02 and boxes within 4 px.
compare() {
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import json, sys
host = [json.loads(l) for l in open(sys.argv[1])]
cross = [json.loads(l) for l in open(sys.argv[2])]
label = sys.argv[3]
max_score, max_box = (0.02, 4.0) if sys.argv[4] == "int8" else (0.002, 1.0)
assert len(host) == len(cross) > 0, f"{label}: {len(cross)} detections, host {len(host)}"
worst_score = worst_box = 0.0
for h, c in zip(host, cross):
    assert h["label"] == c["label"], (h, c)
    worst_score = max(worst_score, abs(h["score"] - c["score"]))
    worst_box = max(worst_box, max(abs(a - b) for a, b in zip(h["box"], c["box"])))
assert worst_score <= max_score and worst_box <= max_box, f"{label}: score diff {worst_score}, box diff {worst_box}"
print(f"{label}: {len(cross)} detections match the host (max score diff {worst_score:.4f}, max box diff {worst_box:.2f} px)")
PY
}

# The shipped sentiment student, on texts it never trained on.
texts=("a wonderful, moving film" "a dull, lifeless mess")
"$host_bin" classify --model models/minilm-sentiment-student.model.toml --json "${texts[@]}" > "$work/host-classify.json"
same_verdicts() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
host = [json.loads(l) for l in open(sys.argv[1])]
cross = [json.loads(l) for l in open(sys.argv[2])]
assert len(host) == len(cross) == 2, f"{sys.argv[3]}: {len(cross)} verdicts, host {len(host)}"
worst = 0.0
for h, c in zip(host, cross):
    assert h["label"] == c["label"], (sys.argv[3], h, c)
    worst = max(worst, abs(h["score"] - c["score"]))
assert worst <= 0.002, f"{sys.argv[3]}: score diff {worst}"
print(f"{sys.argv[3]}: {' / '.join(c['label'] for c in cross)} as on the host (max score diff {worst:.4f})")
PY
}

for run in "${runs[@]}"; do
  model="${run%:*}" precision="${run#*:}"
  "$host_bin" detect --model "models/$model.model.toml" --precision "$precision" --runtime tract \
    --image "$photo" --json > "$work/host-$model-$precision.json"
done

for target in "${targets[@]}"; do
  case "$target" in
    aarch64-unknown-linux-gnu)
      qemu=qemu-aarch64; gnu=aarch64-linux-gnu; deb_arch=arm64; machine="ARM aarch64"
      # Pi 4 (no dot product: tract's SMLAL int8 kernel) and Pi 5 (SDOT kernel).
      cpus=(cortex-a72 cortex-a76) ;;
    armv7-unknown-linux-gnueabihf)
      qemu=qemu-arm; gnu=arm-linux-gnueabihf; deb_arch=armhf; machine="ARM, EABI5"
      cpus=(cortex-a15) ;;
    *) echo "cross/check.sh: unknown target $target" >&2; exit 2 ;;
  esac
  bin="$target_dir/$target/release/edgemass"
  "$qemu" -L "/usr/$gnu" "$bin" --version | tee "$work/version"
  grep -q "$target" "$work/version"
  for cpu in "${cpus[@]}"; do
    for run in "${runs[@]}"; do
      model="${run%:*}" precision="${run#*:}"
      "$qemu" -cpu "$cpu" -L "/usr/$gnu" "$bin" detect --model "models/$model.model.toml" \
        --precision "$precision" --runtime tract --image "$photo" --json > "$work/$target-$cpu-$run.json"
      compare "$work/host-$model-$precision.json" "$work/$target-$cpu-$run.json" "$target ($cpu) $model $precision" "$precision"
    done
    "$qemu" -cpu "$cpu" -L "/usr/$gnu" "$bin" classify --model models/minilm-sentiment-student.model.toml \
      --json "${texts[@]}" > "$work/$target-$cpu-classify.json"
    same_verdicts "$work/host-classify.json" "$work/$target-$cpu-classify.json" "$target ($cpu) minilm-sentiment-student"
    # On tract, `auto` takes the int8 form exactly where the CPU has dot-product instructions.
    "$qemu" -cpu "$cpu" -L "/usr/$gnu" "$bin" bench --model models/ppocr-det-student.model.toml \
      --precision auto --runtime tract --runs 1 --warmup 0 --json > "$work/auto.json"
    expected=fp32
    [ "$cpu" = cortex-a76 ] && expected=int8
    python3 -c 'import json,sys; got = json.load(open(sys.argv[1]))["precision"]; assert got == sys.argv[2], f"{sys.argv[3]}: auto chose {got}, expected {sys.argv[2]}"; print(f"{sys.argv[3]}: auto runs {got}")' \
      "$work/auto.json" "$expected" "$target ($cpu)"
  done

  # aarch64 carries onnxruntime: with the aarch64 wheel's library it gives the host's detections,
  # and a library that cannot be had leaves it on tract (a functional check: qemu times nothing).
  # onnxruntime reads the CPU from /proc/cpuinfo, which under qemu-user is the x86 host's and
  # crashes its ARM parser, so these runs see a Cortex-A76's, bound over it in a mount namespace.
  if [ "$target" = aarch64-unknown-linux-gnu ]; then
    lib="$cache/onnxruntime/aarch64/libonnxruntime.so.1.32.0"
    [ -f "$lib" ] || { echo "cross/check.sh: $lib is missing: python3 models/fetch.py --only onnxruntime" >&2; exit 1; }
    for ((i = 0; i < $(nproc); i++)); do
      printf 'processor\t: %d\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' "$i"
    done > "$work/cpuinfo"
    unshare_args=(--mount)
    [ "$(id -u)" = 0 ] || unshare_args+=(--map-root-user)
    ort_qemu() {
      unshare "${unshare_args[@]}" -- bash -c 'mount --bind "$1" /proc/cpuinfo && shift && exec "$@"' \
        _ "$work/cpuinfo" "$qemu" -cpu cortex-a76 -L "/usr/$gnu" "$bin" "$@"
    }
    for model in blazeface-256 ppocr-det-student; do
      ort_qemu detect --model "models/$model.model.toml" --precision fp32 --runtime onnxruntime \
        --onnxruntime "$lib" --image "$photo" --json > "$work/ort-$model.json"
      compare "$work/host-$model-fp32.json" "$work/ort-$model.json" "$target onnxruntime $model" fp32
    done
    ort_qemu bench --model models/blazeface-256.model.toml --runtime onnxruntime --onnxruntime "$lib" \
      --runs 1 --warmup 0 --json > "$work/ort-bench.json"
    EDGEMASS_ONNXRUNTIME=/nowhere/libonnxruntime.so "$qemu" -L "/usr/$gnu" "$bin" bench \
      --model models/blazeface-256.model.toml --runs 1 --warmup 0 --json > "$work/tract-bench.json" 2> "$work/tract-bench.err"
    python3 - "$work/ort-bench.json" "$work/tract-bench.json" "$work/tract-bench.err" <<'PY'
import json, sys
ran = json.load(open(sys.argv[1]))["runtime"]
assert ran == "onnxruntime", f"aarch64: --runtime onnxruntime ran on {ran}"
fallen = json.load(open(sys.argv[2]))["runtime"]
said = open(sys.argv[3]).read()
assert fallen == "tract" and said.count("does not exist; running on tract") == 1, (fallen, said)
print("aarch64: onnxruntime runs the model; a library that does not exist is one line and tract")
PY
  fi

  deb="dist/edgemass_${version}${suffix}_${deb_arch}.deb"
  dpkg-deb --field "$deb" Architecture | grep -qx "$deb_arch"
  dpkg-deb --contents "$deb" > "$work/contents"
  # Exactly the release's manifests, in the .deb and in the tarball: nothing outside the licence
  # list (the AGPL-3.0 test model) ships.
  tarball="dist/edgemass-$version-$target$suffix.tar.gz"
  tar -tzf "$tarball" > "$work/tar-contents"
  for listing in "$work/contents" "$work/tar-contents"; do
    shipped="$(grep -o '[^/]*\.model\.toml$' "$listing" | sort | xargs)"
    if [ "$shipped" != "$release_models" ]; then
      echo "$deb / $tarball: ships the manifests [$shipped]; Cargo.toml's release models are [$release_models]" >&2
      exit 1
    fi
  done
  for path in ./usr/bin/edgemass ./usr/lib/systemd/system/edgemass.service ./etc/edgemass/edgemass.toml \
              ./usr/share/edgemass/models/blazeface-256.model.toml ./usr/share/edgemass/models/fetch.py \
              ./usr/share/edgemass/models/ppocr-det-student.model.toml \
              ./usr/share/edgemass/models/students/ppocr-det-student.onnx \
              ./usr/share/edgemass/models/students/ppocr-det-student.qdq.onnx \
              ./usr/share/edgemass/models/minilm-sentiment-student.model.toml \
              ./usr/share/edgemass/models/students/minilm-sentiment-student.onnx \
              ./usr/share/edgemass/models/students/minilm-sentiment-student.tokenizer.json \
              ./usr/share/edgemass/firmware-config/demo-texts.txt; do
    grep -q " $path\$" "$work/contents" || { echo "$deb lacks $path" >&2; exit 1; }
  done
  dpkg-deb --extract "$deb" "$work/root-$deb_arch"
  file "$work/root-$deb_arch/usr/bin/edgemass" | grep -q "$machine" || { echo "$deb: binary is not $machine" >&2; exit 1; }
  grep -q "^ProtectSystem=strict" "$work/root-$deb_arch/usr/lib/systemd/system/edgemass.service"
  needs="$(readelf -W --version-info "$work/root-$deb_arch/usr/bin/edgemass" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
  promised="$(dpkg-deb --field "$deb" Depends | sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p')"
  if [ -z "$promised" ] || [ "$(printf '%s\n' "$needs" "$promised" | sort -V | tail -1)" != "$promised" ]; then
    echo "$deb: the binary needs glibc $needs, the package's Depends promises ${promised:-nothing}" >&2
    exit 1
  fi
  echo "$deb: $deb_arch binary ($(stat -c %s "$work/root-$deb_arch/usr/bin/edgemass") bytes, glibc $needs, Depends libc6 >= $promised), unit, config and manifests present; it and its tarball ship exactly the release's manifests: $release_models"
done

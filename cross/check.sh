#!/usr/bin/env bash
# Checks the release artifacts of cross/build.sh: each cross-built binary runs a real model on a
# real photo under qemu-user and must report the same detections as the host build (same count
# and labels, scores within 0.002, box corners within 1 px), and each .deb must hold the binary
# for its architecture, the systemd unit, the default config and the model manifests.
#
# Usage: cross/check.sh HOST_EDGEMASS [TARGET...]   (after cross/build.sh; needs qemu-user)
set -euo pipefail
cd "$(dirname "$0")/.."

host_bin="$1"
shift
targets=("$@")
((${#targets[@]})) || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
cache="${EDGEMASS_MODEL_CACHE:-models/cache}"
photo="$cache/photos/bus.jpg"
models=(blazeface-256 ppocr-det)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for model in "${models[@]}"; do
  "$host_bin" detect --model "models/$model.model.toml" --image "$photo" --json > "$work/host-$model.json"
done

for target in "${targets[@]}"; do
  case "$target" in
    aarch64-unknown-linux-gnu) qemu=qemu-aarch64; gnu=aarch64-linux-gnu; deb_arch=arm64; machine="ARM aarch64" ;;
    armv7-unknown-linux-gnueabihf) qemu=qemu-arm; gnu=arm-linux-gnueabihf; deb_arch=armhf; machine="ARM, EABI5" ;;
    *) echo "cross/check.sh: unknown target $target" >&2; exit 2 ;;
  esac
  bin="$target_dir/$target/release/edgemass"
  "$qemu" -L "/usr/$gnu" "$bin" --version | tee "$work/version"
  grep -q "$target" "$work/version"
  for model in "${models[@]}"; do
    "$qemu" -L "/usr/$gnu" "$bin" detect --model "models/$model.model.toml" --image "$photo" --json \
      > "$work/$target-$model.json"
    python3 - "$work/host-$model.json" "$work/$target-$model.json" "$target" "$model" <<'PY'
import json, sys
host = [json.loads(l) for l in open(sys.argv[1])]
cross = [json.loads(l) for l in open(sys.argv[2])]
target, model = sys.argv[3], sys.argv[4]
assert len(host) == len(cross) > 0, f"{target} {model}: {len(cross)} detections, host {len(host)}"
worst_score = worst_box = 0.0
for h, c in zip(host, cross):
    assert h["label"] == c["label"], (h, c)
    worst_score = max(worst_score, abs(h["score"] - c["score"]))
    worst_box = max(worst_box, max(abs(a - b) for a, b in zip(h["box"], c["box"])))
assert worst_score <= 0.002 and worst_box <= 1.0, f"{target} {model}: score diff {worst_score}, box diff {worst_box}"
print(f"{target} {model}: {len(cross)} detections match the host (max score diff {worst_score:.4f}, max box diff {worst_box:.2f} px)")
PY
  done

  deb="dist/edgemass_${version}_${deb_arch}.deb"
  dpkg-deb --field "$deb" Architecture | grep -qx "$deb_arch"
  dpkg-deb --contents "$deb" > "$work/contents"
  for path in ./usr/bin/edgemass ./usr/lib/systemd/system/edgemass.service ./etc/edgemass/edgemass.toml \
              ./usr/share/edgemass/models/blazeface-256.model.toml ./usr/share/edgemass/models/fetch.py; do
    grep -q " $path\$" "$work/contents" || { echo "$deb lacks $path" >&2; exit 1; }
  done
  dpkg-deb --extract "$deb" "$work/root-$deb_arch"
  file "$work/root-$deb_arch/usr/bin/edgemass" | grep -q "$machine" || { echo "$deb: binary is not $machine" >&2; exit 1; }
  grep -q "^ProtectSystem=strict" "$work/root-$deb_arch/usr/lib/systemd/system/edgemass.service"
  echo "$deb: $deb_arch binary ($(stat -c %s "$work/root-$deb_arch/usr/bin/edgemass") bytes), unit, config and manifests present"
done

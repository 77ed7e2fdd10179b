#!/usr/bin/env bash
# Cross-compiles the edgemass agent for boards and packages it: one stripped binary, a .deb and a
# tarball per target, in dist/.
#
# Usage: cross/build.sh [TARGET...]
#   targets: aarch64-unknown-linux-gnu (Pi 4/5 64-bit, Jetson), armv7-unknown-linux-gnueabihf
#   (Pi OS 32-bit); default both.
# Env:  FEATURES  cargo features (default none; FEATURES=embedded-broker adds the zero-install
#                 demo's broker); aarch64 always gets `onnxruntime` (opened at run time from the
#                 board's libonnxruntime.so; armv7 has no onnxruntime wheel)
#       PROFILE   cargo profile (default release: fat LTO, stripped)
#       GLIBC     the C library the binaries need: 2.31 (default; linked by cargo-zigbuild, runs on
#                 Pi OS bullseye and bookworm, JetPack 5 and 6, Debian 11+, Ubuntu 20.04+) or
#                 debian (Debian's cross linkers, no zig needed; glibc 2.35+, so not bullseye or
#                 JetPack 5; artifact names carry "-glibc2.35")
# Needs: Debian's gcc-aarch64-linux-gnu / gcc-arm-linux-gnueabihf (+ libc6-dev-*-cross: the
#        linkers for GLIBC=debian), cargo-deb (`cargo install cargo-deb`) for the .deb, and for
#        GLIBC=2.31 cargo-zigbuild (`cargo install cargo-zigbuild`) with zig (`pip install
#        ziglang`). No libclang or kernel headers: cameras are read through ffmpeg on the board.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
((${#targets[@]})) || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
features="${FEATURES-}"
profile="${PROFILE:-release}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
glibc="${GLIBC:-2.31}"
case "$glibc" in
  2.31)
    if ! command -v cargo-zigbuild >/dev/null; then
      echo "cross/build.sh: GLIBC=2.31 needs cargo-zigbuild (cargo install cargo-zigbuild; pip install ziglang), or GLIBC=debian for Debian's cross linkers" >&2
      exit 1
    fi
    build=(zigbuild); target_suffix=".2.31"; suffix=""; deb_variant=() ;;
  debian) build=(build); target_suffix=""; suffix="-glibc2.35"; deb_variant=(--variant glibc2-35) ;;
  *) echo "cross/build.sh: GLIBC=$glibc is not supported (2.31 or debian)" >&2; exit 2 ;;
esac
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
# The model manifests a release ships: `models` of [package.metadata.release] in Cargo.toml.
mapfile -t models < <(python3 cross/release-models.py)
((${#models[@]})) || { echo "cross/build.sh: Cargo.toml lists no release models ([package.metadata.release] models)" >&2; exit 1; }
mkdir -p dist

for target in "${targets[@]}"; do
  case "$target" in
    aarch64-unknown-linux-gnu) gnu=aarch64-linux-gnu; deb_arch=arm64 ;;
    armv7-unknown-linux-gnueabihf) gnu=arm-linux-gnueabihf; deb_arch=armhf ;;
    *) echo "cross/build.sh: unknown target $target (aarch64-unknown-linux-gnu or armv7-unknown-linux-gnueabihf)" >&2; exit 2 ;;
  esac
  if ! command -v "$gnu-gcc" >/dev/null; then
    echo "cross/build.sh: $gnu-gcc not found: apt-get install gcc-$gnu" >&2
    exit 1
  fi
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  env_target="${target//-/_}"
  upper="${env_target^^}"
  if [ "$glibc" = debian ]; then
    export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
    export "CC_${env_target}=$gnu-gcc"
    export "AR_${env_target}=$gnu-ar"
  fi
  # The release profile aborts on panic, so Rust code needs no unwind tables (2 MB of .eh_frame).
  if [ "$profile" = release ]; then
    export "CARGO_TARGET_${upper}_RUSTFLAGS=-C force-unwind-tables=no"
  fi

  target_features="$features"
  [ "$target" = aarch64-unknown-linux-gnu ] && target_features="${features:+$features,}onnxruntime"
  echo "== $target ($profile, features: ${target_features:-none}, glibc: $glibc)"
  started=$SECONDS
  cargo "${build[@]}" -p edgemass --bin edgemass --locked --target "$target$target_suffix" \
    --profile "$profile" --no-default-features ${target_features:+--features "$target_features"}
  out_dir="$profile"
  [ "$profile" = dev ] && out_dir=debug
  binary="$target_dir/$target/$out_dir/edgemass"
  echo "built in $((SECONDS - started)) s: $(stat -c %s "$binary") bytes"

  stage="dist/edgemass-$version-$target$suffix"
  rm -rf "$stage"
  mkdir -p "$stage/models/students" "$stage/firmware-config"
  cp "$binary" "$stage/"
  for model in "${models[@]}"; do cp "models/$model.model.toml" "$stage/models/"; done
  cp models/fetch.py "$stage/models/"
  cp models/students/*.onnx "$stage/models/students/"
  cp firmware-config/*.toml "$stage/firmware-config/"
  cp cross/deb/edgemass.service cross/deb/edgemass.toml README.md "$stage/"
  tar -C dist -czf "$stage.tar.gz" "$(basename "$stage")"
  rm -rf "$stage"

  if command -v cargo-deb >/dev/null; then
    cargo deb -p edgemass --no-build --no-strip --target "$target" --profile "$profile" \
      "${deb_variant[@]}" --deb-version "$version" --output "dist/edgemass_${version}${suffix}_${deb_arch}.deb"
  else
    echo "cross/build.sh: cargo-deb not installed; skipping the .deb (cargo install cargo-deb)" >&2
  fi
done
ls -l dist

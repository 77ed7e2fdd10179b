#!/usr/bin/env bash
# Eight views of each photo (flipped, four corner crops, the centre, darker, shrunk onto grey) for
# measuring agreement with a teacher on more boxes than the untouched photos hold.
#
# Usage: compress/scripts/photo_views.sh OUT_DIR PHOTO...
# Needs: ffmpeg.
set -euo pipefail
if (($# < 2)); then
  echo "usage: $0 OUT_DIR PHOTO..." >&2
  exit 2
fi
out=$1
shift
mkdir -p "$out"
declare -A views=(
  [flip]="hflip"
  [tl]="crop=iw*0.7:ih*0.7:0:0"
  [tr]="crop=iw*0.7:ih*0.7:iw*0.3:0"
  [bl]="crop=iw*0.7:ih*0.7:0:ih*0.3"
  [br]="crop=iw*0.7:ih*0.7:iw*0.3:ih*0.3"
  [centre]="crop=iw*0.5:ih*0.5:iw*0.25:ih*0.25"
  [dark]="eq=brightness=-0.15:contrast=0.8"
  [small]="pad=iw*1.6:ih*1.6:(ow-iw)/2:(oh-ih)/2:gray"
)
for photo in "$@"; do
  [ -f "$photo" ] || { echo "$photo: no such photo" >&2; exit 1; }
  base=$(basename "${photo%.*}")
  for view in "${!views[@]}"; do
    ffmpeg -loglevel error -y -i "$photo" -vf "${views[$view]}" "$out/$base-$view.png"
  done
done
echo "wrote $((8 * $#)) views into $out"

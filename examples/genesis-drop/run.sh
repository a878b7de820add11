#!/usr/bin/env bash
# The most complete job swarmdrop does today, end to end on this machine:
# make keys, pack the example drop (keyframes, a checkout page, a 64 MiB patch),
# verify it as a client would, publish a second version, verify again, and show
# what a torrent and the signed targets say. Work goes to target/genesis-drop/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${WORK:-$repo/target/genesis-drop}
cd "$repo"
cargo build --release --quiet --bin swarmdrop
sd=$repo/target/release/swarmdrop

rm -rf "$work" && mkdir -p "$work"
cp -r "$here/assets" "$work/assets"
bash "$here/make-bulk.sh" "$work/assets" "${BULK_MIB:-64}"

echo "== keygen: 3 root keys, any 2 sign a root"
"$sd" keygen --out "$work/keys" --root-threshold 2 --root-keys 3

echo "== pack: version 1"
"$sd" pack "$work/assets" --policy "$here/drop.toml" --keys "$work/keys" --out "$work/published" \
  --tracker http://127.0.0.1:6969/announce --webseed http://127.0.0.1:8080/

echo "== verify against the root we keep out of band"
cp "$work/published/metadata/1.root.json" "$work/trusted-root.json"
"$sd" verify "$work/published" --root "$work/trusted-root.json"

echo "== a live drop adds a segment: version 2"
mkdir -p "$work/assets/frames"
head -c 200000 /dev/zero | openssl enc -aes-128-ctr -nosalt -K 0f0e0d0c0b0a09080706050403020100 -iv 00000000000000000000000000000001 > "$work/assets/frames/f004.png"
"$sd" pack "$work/assets" --policy "$here/drop.toml" --keys "$work/keys" --out "$work/published" \
  --tracker http://127.0.0.1:6969/announce --webseed http://127.0.0.1:8080/
"$sd" verify "$work/published" --root "$work/trusted-root.json"

echo "== tampering is caught: one flipped byte in the patch"
patch=$(ls "$work"/published/targets/bulk/*.patch-1.0.bin)
cp "$patch" "$work/patch.orig"
printf '\xff' | dd of="$patch" bs=1 seek=1000 conv=notrunc status=none
if "$sd" verify "$work/published" --root "$work/trusted-root.json"; then
  echo "verify accepted a tampered asset" >&2; exit 1
fi
cp "$work/patch.orig" "$patch"

echo "== what the patch's torrent says"
torrent=$work/published/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["signed"]["targets"]["bulk/patch-1.0.bin"]["custom"]["p2p"]["torrent"])' "$work/published/metadata/2.targets.json")
"$sd" inspect "$torrent"
echo "== the signed targets"
"$sd" inspect "$work/published/metadata/2.targets.json"
echo "done: $work/published is ready to serve from any static HTTP server"

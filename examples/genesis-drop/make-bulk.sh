#!/usr/bin/env bash
# Writes ASSETS/bulk/patch-1.0.bin: SIZE_MIB MiB (default 64) of deterministic
# pseudo-random bytes (AES-CTR keystream over zeros), so every run packs the same drop.
set -euo pipefail
assets=${1:?usage: make-bulk.sh ASSETS_DIR [SIZE_MIB]}
size_mib=${2:-64}
mkdir -p "$assets/bulk"
head -c "$((size_mib * 1024 * 1024))" /dev/zero \
  | openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000000 \
  > "$assets/bulk/patch-1.0.bin"

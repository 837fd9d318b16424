#!/usr/bin/env bash
# Builds the Debian package: the binary, its manual pages and shell
# completions (generated from the command line's own definitions), then
# `cargo deb --no-build` with the assets of Cargo.toml's
# [package.metadata.deb].
#
#   bash debian/build.sh [--profile release|dev]   # default release
#
# Needs cargo-deb (`cargo install cargo-deb --locked`). Prints the .deb's path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROFILE=release
while [[ $# -gt 0 ]]; do
    case "$1" in
        --profile) PROFILE="$2"; shift 2 ;;
        --profile=*) PROFILE="${1#*=}"; shift ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
# cargo's output directory of a profile: dev builds go to target/debug.
DIR=target/$([[ "$PROFILE" == dev ]] && echo debug || echo "$PROFILE")

cargo build --profile "$PROFILE" --bin custos >&2
rm -rf "$DIR/man" "$DIR/completions"
"$DIR/custos" generate man "$DIR/man" >&2
mkdir -p "$DIR/completions"
"$DIR/custos" generate completions bash > "$DIR/completions/custos"
"$DIR/custos" generate completions zsh > "$DIR/completions/_custos"
"$DIR/custos" generate completions fish > "$DIR/completions/custos.fish"
cargo deb --no-build --profile "$PROFILE" 2>&1 | tail -n 1

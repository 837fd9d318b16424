#!/usr/bin/env bash
# Builds the Debian package (debian/build.sh, with cargo-deb) and checks its
# layout in a clean directory (dpkg -x): the binary runs, the systemd units,
# manual pages and completions are where Debian looks for them, the example
# secrets are 0600, the docs the units point at are there, and the
# maintainer scripts create the custos user.
#
#   bash .ci/package.sh [--profile dev|release]   # default dev (CI: the
#                                                 # layout, not the build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROFILE="dev"
[[ "${1:-}" == "--profile" ]] && PROFILE="$2"

if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --locked --version "^3"
fi
deb="$(bash debian/build.sh --profile "$PROFILE" | grep -o '[^ ]*\.deb' | tail -n 1)"
[[ -f "$deb" ]] || { echo "!!! no package was built" >&2; exit 1; }
echo "package: $deb"

root="$(mktemp -d "${TMPDIR:-/tmp}/custos-deb.XXXXXX")"
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$root/DEBIAN"
fail() { echo "!!! package layout: $*" >&2; exit 1; }

"$root/usr/bin/custos" --version | grep -q '^custos ' || fail "usr/bin/custos does not run"
for f in lib/systemd/system/custos.service lib/systemd/system/custos-backup@.service \
    lib/systemd/system/custos-backup@.timer etc/custos/custos.toml \
    usr/share/doc/custos/operator-guide.md usr/share/doc/custos/api.md \
    usr/share/doc/custos/examples/custos.toml \
    usr/share/man/man1/custos.1 usr/share/man/man1/custos-backup.1 \
    usr/share/bash-completion/completions/custos usr/share/zsh/vendor-completions/_custos \
    usr/share/fish/vendor_completions.d/custos.fish; do
    [[ -f "$root/$f" ]] || fail "missing /$f"
done
# Every Documentation= link of the units resolves inside the package.
grep -h '^Documentation=file://' "$root"/lib/systemd/system/* | sed 's|^Documentation=file://||' |
    while read -r doc; do [[ -f "$root$doc" ]] || fail "a unit points at $doc, which is not shipped"; done
grep -q '^ExecStart=/usr/bin/custos daemon' "$root/lib/systemd/system/custos.service" ||
    fail "the daemon's unit does not run /usr/bin/custos"
# Example secrets are private; nothing else is world-writable.
for s in "$root"/usr/share/doc/custos/examples/example-keys/*.pass \
    "$root"/usr/share/doc/custos/examples/example-keys/*.pgpass \
    "$root"/usr/share/doc/custos/examples/example-keys/token-*; do
    [[ "$(stat -c %a "$s")" == 600 ]] || fail "$(basename "$s") is $(stat -c %a "$s"), not 600"
done
if find "$root" -perm -o+w ! -type l | grep -q .; then fail "world-writable files"; fi
grep -q 'adduser --system' "$root/DEBIAN/postinst" || fail "postinst does not create the custos user"
grep -q '/etc/custos/custos.toml' "$root/DEBIAN/conffiles" || fail "custos.toml is not a conffile"
# The shipped config is valid as it stands.
"$root/usr/bin/custos" config check --config "$root/etc/custos/custos.toml" --quiet >/dev/null 2>&1 ||
    "$root/usr/bin/custos" config check --config "$root/etc/custos/custos.toml"
grep -Eq 'exclude(\\)?-caches' "$root/usr/share/man/man1/custos-backup.1" ||
    fail "custos-backup(1) does not document --exclude-caches"
echo "package layout checked: $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version), $(du -h "$deb" | cut -f1)"

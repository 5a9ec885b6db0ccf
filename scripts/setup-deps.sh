#!/bin/sh
# Install the Debian packages Nitride builds, tests and fuzzes with.
#
# Idempotent: asks dpkg first and calls apt only for what is missing, so a
# second `make` costs a few milliseconds.  Runs as root on a fresh Debian 12
# machine (CI); as another user it only reports what is missing.
set -eu

# Build and libraries (DESIGN.md §4), then test and fuzz tools.
PACKAGES="
meson ninja-build pkg-config gcc clang libclang-rt-14-dev llvm
libssl-dev openssl libjansson-dev libcmocka-dev libevent-dev libinih-dev
libcurl4-openssl-dev libcjose-dev libsqlite3-dev python3-jwcrypto
cryptsetup-bin
python3
p11-kit libp11-kit-dev opensc gnutls-bin libengine-pkcs11-openssl openssh-client nginx-light softhsm2 curl
"

missing=""
for pkg in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	case "$status" in
	"install ok installed") ;;
	*) missing="$missing $pkg" ;;
	esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "setup-deps: missing Debian packages:$missing" >&2
	echo "setup-deps: run 'make setup' as root, or: apt-get install$missing" >&2
	exit 1
fi

echo "setup-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet; refresh once and retry.
# shellcheck disable=SC2086
if ! apt-get install -y --no-install-recommends $missing; then
	apt-get update
	apt-get install -y --no-install-recommends $missing
fi

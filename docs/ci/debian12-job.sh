#!/bin/sh
# The set-up every CI example runs as root on Debian 12 before `cargo xtask`,
# then its arguments: `sh docs/ci/debian12-job.sh cargo xtask test`.
#
# Only what `cargo xtask` cannot install itself: the base packages cargo
# needs and a Rust toolchain (RUST_TOOLCHAIN, e.g. 1.95.0; empty: any).
# Each is skipped when present, so a job on a prepared machine or with a
# warm cache pays nothing. `cargo xtask` installs the rest (Debian
# packages, rust-src, bindgen, cargo-fuzz, QEMU, the kernel) and keys its
# caches.
set -eu

missing=""
for p in ca-certificates curl git gcc libc6-dev; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "debian12-job: apt-get install$missing"
	apt-get update -q
	# shellcheck disable=SC2086 # one word per package
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
PATH="$CARGO_BIN:$PATH"
export PATH
want="${RUST_TOOLCHAIN:-}"
have="$(rustc --version 2>/dev/null || true)"
case "$have" in
"rustc $want"*)
	echo "debian12-job: Rust present: $have"
	;;
*)
	if ! command -v rustup >/dev/null 2>&1; then
		echo "debian12-job: installing rustup (toolchain ${want:-stable})"
		curl -sSf https://sh.rustup.rs |
			sh -s -- -y --profile minimal --default-toolchain "${want:-stable}" \
				--component rustfmt,clippy,rust-src
	else
		echo "debian12-job: rustup toolchain install ${want:-stable} (had: ${have:-none})"
		rustup toolchain install "${want:-stable}" --profile minimal \
			--component rustfmt,clippy,rust-src
		rustup default "${want:-stable}"
	fi
	;;
esac
# A checkout mounted from the host belongs to another user: let git read it
# (the report records the commit).
if command -v git >/dev/null 2>&1 && [ "$(stat -c %u .)" != "$(id -u)" ]; then
	git config --global --add safe.directory "$(pwd)"
fi
echo "debian12-job: $(rustc --version), cache ${IRQSTORM_CACHE:-$HOME/.cache/irqstorm}"
exec "$@"

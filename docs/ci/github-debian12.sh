#!/bin/sh
# GitHub Actions, on the hosted runner: run a command in a debian:12
# container (`cargo xtask` provisions on Debian 12 as root), with
#   - the checkout at /src (reports land in the runner's workspace),
#   - the caches under IRQSTORM_CI_CACHE (irqstorm/, cargo/, rustup/)
#     mounted where `cargo xtask` and rustup look for them, so the host
#     paths actions/cache saves are the paths the container wrote,
#   - /dev/kvm passed in when the runner has it (`--accel auto` then probes
#     KVM and prints which accelerator it chose).
# The container writes as root: the files are handed back to the runner's
# user afterwards, even when the command failed, so the caches can be saved.
#
#   sh docs/ci/github-debian12.sh cargo xtask test
set -u
cache="${IRQSTORM_CI_CACHE:?set IRQSTORM_CI_CACHE to the cache directory}"
mkdir -p "$cache/irqstorm" "$cache/cargo" "$cache/rustup"
kvm=""
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	kvm="--device=/dev/kvm"
	echo "github-debian12: /dev/kvm passed to the container"
else
	echo "github-debian12: no usable /dev/kvm on this runner: the guest runs under TCG"
fi
status=0
# shellcheck disable=SC2086 # $kvm is one option or none
docker run --rm $kvm \
	-v "$GITHUB_WORKSPACE:/src" -w /src \
	-v "$cache/irqstorm:/root/.cache/irqstorm" \
	-v "$cache/cargo:/root/.cargo" \
	-v "$cache/rustup:/root/.rustup" \
	-e CI=true -e RUST_TOOLCHAIN -e CARGO_TERM_COLOR=always \
	"${DEBIAN_IMAGE:-debian:12}" sh docs/ci/debian12-job.sh "$@" || status=$?
sudo chown -R "$(id -u):$(id -g)" "$cache" "$GITHUB_WORKSPACE"
exit "$status"

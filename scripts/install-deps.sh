#!/usr/bin/env bash
# Install the Debian packages cask needs to build and test.
# Idempotent: only packages that are missing are installed, and apt-get
# update runs only when something has to be installed.
set -euo pipefail
PKGS=(
  build-essential pkg-config

  liblz4-dev        # lz4 block compression
  libzstd-dev       # zstd block compression
  liburing-dev      # the engine's asynchronous reads (io_uring)
  libxxhash-dev     # xxh3-128 checksums
  libssl-dev        # SHA-256 checksums (OpenSSL EVP); NBD over TLS (libssl)
  openssl           # the TLS test makes its certificates and keys (tests/integration/nbd_tls.sh)
  libjson-c-dev     # control protocol payloads (JSON)
  libblkid-dev      # pool create: refuse devices and files that hold a filesystem or other signature
  libyaml-dev       # cask apply: YAML manifests
  libmicrohttpd-dev # caskd --metrics: the Prometheus endpoint's HTTP server
  # real clients for the integration tests and the benchmarks
  qemu-utils        # qemu-img, qemu-io, qemu-nbd
  libnbd-bin        # nbdinfo, nbdcopy
  python3-libnbd    # bad-request tests
  fio               # fio with ioengine=nbd
  nbdkit            # benchmark peer (memory plugin)
  libiscsi-bin      # iscsi-ls, iscsi-inq, iscsi-readcapacity16, iscsi-test-cu (the iSCSI conformance suite)
  qemu-block-extra  # qemu's iscsi:// driver (qemu-img, qemu-io over iSCSI)
  tgt               # iSCSI benchmark peer (tgtd)
  # the kernel-initiator test (tests/integration/iscsi_kernel.sh): Debian's kernel under
  # qemu-system-x86_64 -accel tcg, with an initramfs built from these
  qemu-system-x86 linux-image-amd64 open-iscsi busybox-static cpio kmod e2fsprogs
  xz-utils          # unpacks the test fixtures (old-format pools)
  prometheus        # promtool check metrics, and a real scraper in tests/integration/metrics.sh
  # the Python binding (python/): cffi in API mode, and its tests
  python3-cffi python3-dev python3-pytest
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "install-deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

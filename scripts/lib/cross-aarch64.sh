# shellcheck shell=bash
# The linux-aarch64 cross toolchain (docs/cross-targets.md): sourced by scripts/setup.sh, which calls
# setup_cross_aarch64 with --cross. Installed only where a worker should serve linux-aarch64; idempotent (stamped by
# a hash of this file), into $KILN_HOME/toolchains/linux-aarch64:
#   - Debian's cross compiler and user-mode emulator (crossbuild-essential-arm64, qemu-user), with apt-get;
#   - site/: PyPI's aarch64 torch 2.13.0 and what importing it needs (a CUDA build: its nvidia wheels, ~4 GB);
#   - sysroot/: an aarch64 Python 3.11 from Debian's arm64 .debs, unpacked without touching the host's apt setup,
#     plus a fake /proc/cpuinfo and MIDR_EL1 sysfs entry: qemu-user passes the host's x86 cpuinfo through, and
#     torch's aarch64 build (xbyak_aarch64) crashes on it;
#   - toolchain.json: what the worker reads (folders, torch version).

CROSS_AARCH64_TORCH=2.13.0
# Every manylinux tag pip must accept, or it finds no nvidia-nccl-cu13 wheel for the aarch64 torch.
CROSS_AARCH64_PLATFORMS=(manylinux_2_17_aarch64 manylinux_2_18_aarch64 manylinux_2_19_aarch64 manylinux_2_20_aarch64
  manylinux_2_21_aarch64 manylinux_2_22_aarch64 manylinux_2_23_aarch64 manylinux_2_24_aarch64 manylinux_2_25_aarch64
  manylinux_2_26_aarch64 manylinux_2_27_aarch64 manylinux_2_28_aarch64 manylinux2014_aarch64 linux_aarch64)
# What kiln_runtime imports (python/runtime/pyproject.toml's dependencies): the emulated verifier imports the driver,
# which imports kiln_runtime, and the device runtime runs under qemu in the tests.
CROSS_AARCH64_RUNTIME_DEPS=('cryptography>=42' 'tqdm>=4.66' 'urllib3>=2.8,<3')
# An aarch64 CPython 3.11 and the libraries it and torch load, from Debian's arm64 packages.
CROSS_AARCH64_DEBS=(python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libstdc++6 libgcc-s1
  libgomp1 zlib1g libffi8 libssl3 libexpat1 libsqlite3-0 libbz2-1.0 liblzma5 libncursesw6 libtinfo6 libreadline8
  libuuid1 libcrypt1 libnsl2 libtirpc3 libtirpc-common libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0
  libkeyutils1 libcom-err2 libdb5.3 libgdbm6 media-types readline-common gcc-12-base)

cross_aarch64_apt() {
  local log="$KILN_LOG_DIR/apt-cross-aarch64.log"
  if command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1; then return; fi
  command -v apt-get >/dev/null 2>&1 || die "cross aarch64: no apt-get: install crossbuild-essential-arm64 and qemu-user."
  ((EUID == 0)) || die "cross aarch64: run 'sudo apt-get install -y crossbuild-essential-arm64 qemu-user'."
  note "cross aarch64: installing Debian's crossbuild-essential-arm64 and qemu-user ..."
  if ! apt-get install -y -q crossbuild-essential-arm64 qemu-user >"$log" 2>&1; then
    { apt-get update -q && apt-get install -y -q crossbuild-essential-arm64 qemu-user; } >>"$log" 2>&1 || {
      tail -n 20 "$log" >&2
      die "cross aarch64: apt-get install failed (log: $log)."
    }
  fi
}

cross_aarch64_site() {
  local dir=$1 tmp="$1.partial" platform
  local -a tags=()
  for platform in "${CROSS_AARCH64_PLATFORMS[@]}"; do tags+=(--platform "$platform"); done
  rm -rf "$tmp"
  note "cross aarch64: installing PyPI's aarch64 torch $CROSS_AARCH64_TORCH and its nvidia wheels (~4 GB) ..."
  pip_quiet install --no-cache-dir --target "$tmp" --only-binary=:all: --python-version 3.11 --implementation cp \
    --abi cp311 "${tags[@]}" "torch==$CROSS_AARCH64_TORCH" "${CROSS_AARCH64_RUNTIME_DEPS[@]}" || die "cross aarch64: pip install of the aarch64 torch failed."
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

cross_aarch64_sysroot() {
  local root=$1 apt_dir="$1.apt" tmp="$1.partial" deb cpu
  rm -rf "$tmp" "$apt_dir"
  mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs" "$tmp"
  touch "$apt_dir/state/status"
  # A private apt: arm64 package lists in its own state and cache folders; the host's sources, never its state.
  cat >"$apt_dir/apt.conf" <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
Dir::State "$apt_dir/state";
Dir::State::status "$apt_dir/state/status";
Dir::Cache "$apt_dir/cache";
APT::Sandbox::User "root";
EOF
  note "cross aarch64: unpacking an aarch64 Python 3.11 sysroot from Debian's arm64 packages ..."
  APT_CONFIG="$apt_dir/apt.conf" apt-get update -q >"$KILN_LOG_DIR/apt-cross-sysroot.log" 2>&1 ||
    die "cross aarch64: apt-get update (arm64 lists) failed (log: $KILN_LOG_DIR/apt-cross-sysroot.log)."
  (cd "$apt_dir/debs" && APT_CONFIG="$apt_dir/apt.conf" apt-get download -q "${CROSS_AARCH64_DEBS[@]}") \
    >>"$KILN_LOG_DIR/apt-cross-sysroot.log" 2>&1 ||
    die "cross aarch64: apt-get download (arm64 packages) failed (log: $KILN_LOG_DIR/apt-cross-sysroot.log)."
  for deb in "$apt_dir"/debs/*.deb; do dpkg-deb -x "$deb" "$tmp"; done
  # The CPU qemu emulates (-cpu neoverse-n1), as torch reads it: /proc/cpuinfo and MIDR_EL1 (implementer 0x41 Arm,
  # part 0xd0c Neoverse N1). qemu -L resolves absolute paths in the sysroot first.
  mkdir -p "$tmp/proc"
  for cpu in 0 1; do
    printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n' "$cpu"
  done >"$tmp/proc/cpuinfo"
  for cpu in 0 1; do
    mkdir -p "$tmp/sys/devices/system/cpu/cpu$cpu/regs/identification"
    printf '0x00000000413fd0c1\n' >"$tmp/sys/devices/system/cpu/cpu$cpu/regs/identification/midr_el1"
  done
  printf '0-1\n' >"$tmp/sys/devices/system/cpu/online"
  printf '0-1\n' >"$tmp/sys/devices/system/cpu/possible"
  chmod -R a+rX "$tmp"
  [[ -x $tmp/usr/bin/python3.11 ]] || die "cross aarch64: the sysroot has no usr/bin/python3.11."
  rm -rf "$root" "$apt_dir"
  mv "$tmp" "$root"
}

setup_cross_aarch64() {
  local dir stamp="$KILN_STAMP_DIR/cross-aarch64.sha256" want have='' t0 torch
  dir=$(realpath -m "$KILN_HOME/toolchains/linux-aarch64")
  want=$(hash_files "$KILN_ROOT/scripts/lib/cross-aarch64.sh")
  [[ -f $stamp ]] && have=$(<"$stamp")
  if ((force == 0)) && [[ $have == "$want" && -f $dir/toolchain.json ]] &&
    command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1; then
    ok "cross aarch64: up to date ($(show_path "$dir"))"
    return
  fi
  t0=$EPOCHREALTIME
  rm -f "$stamp" "$dir/toolchain.json"
  mkdir -p "$dir" "$KILN_LOG_DIR"
  cross_aarch64_apt
  cross_aarch64_site "$dir/site"
  cross_aarch64_sysroot "$dir/sysroot"
  torch=$(compgen -G "$dir/site/torch-*.dist-info" | head -n 1) || true
  torch=${torch##*/torch-}
  torch=${torch%.dist-info}
  # The local version tag (+cu130) is in torch/version.py, not in the dist-info name.
  torch=$(sed -n "s/^__version__ = '\(.*\)'$/\1/p" "$dir/site/torch/version.py" | head -n 1)
  [[ -n $torch ]] || die "cross aarch64: cannot read the aarch64 torch's version."
  chmod -R a+rX "$dir"
  cat >"$dir/toolchain.json" <<EOF
{
  "name": "linux-aarch64",
  "arch": "aarch64",
  "torch": "$torch",
  "site": "$dir/site",
  "sysroot": "$dir/sysroot",
  "python": "$dir/sysroot/usr/bin/python3.11",
  "qemu": "$(command -v qemu-aarch64)",
  "cxx": "$(command -v aarch64-linux-gnu-g++)"
}
EOF
  printf '%s\n' "$want" >"$stamp"
  ok "cross aarch64: installed ($(du -sh "$dir" | cut -f1), torch $torch) in $(elapsed_since "$t0")"
}

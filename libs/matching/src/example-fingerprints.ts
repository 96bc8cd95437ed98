import type { DeviceFingerprint } from './fingerprint.js';

// Flag lists are real /proc/cpuinfo lines (the worker's host-probe fixtures and a Sapphire Rapids
// build host). The dashboard's resolver playground offers these as presets; the tests and
// docs/fingerprint.md use the same devices.

/** The flags line as /proc/cpuinfo prints it (the runtime sends exactly this list). */
function cpuinfoFlags(line: string): string[] {
  return line.split(' ');
}

const SAPPHIRE_RAPIDS_FLAGS = cpuinfoFlags(
  'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch cpuid_fault ssbd ibrs ibpb stibp ibrs_enhanced fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx_vnni avx512_bf16 wbnoinvd arat avx512vbmi umip pku ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq rdpid bus_lock_detect cldemote movdiri movdir64b fsrm md_clear serialize tsxldtrk ibt amx_bf16 avx512_fp16 amx_tile amx_int8 flush_l1d arch_capabilities',
);

/** Ubuntu 22.04 laptop, Kaby Lake R (AVX2, no AVX-512): x86-64-v3. */
export const AVX2_LAPTOP_FINGERPRINT: DeviceFingerprint = {
  schemaVersion: 1,
  os: 'linux',
  arch: 'x86_64',
  libc: { name: 'glibc', version: '2.35' },
  libstdcxx: { glibcxx: '3.4.30' },
  cpu: {
    model: 'Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz',
    flags: cpuinfoFlags(
      'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb invpcid_single pti ssbd ibrs ibpb stibp tpr_shadow vnmi flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 hle avx2 smep bmi2 erms invpcid rtm mpx rdseed adx smap clflushopt intel_pt xsaveopt xsavec xgetbv1 xsaves dtherm ida arat pln pts hwp hwp_notify hwp_act_window hwp_epp md_clear flush_l1d arch_capabilities',
    ),
  },
  torch: { version: '2.13.0+cpu', cuda: null },
  gpus: [],
  hostname: 'laptop-17',
};

/** Debian 12 server, Sapphire Rapids Xeon (AVX-512): x86-64-v4. */
export const AVX512_SERVER_FINGERPRINT: DeviceFingerprint = {
  schemaVersion: 1,
  os: 'linux',
  arch: 'x86_64',
  libc: { name: 'glibc', version: '2.36' },
  libstdcxx: { glibcxx: '3.4.30' },
  cpu: { model: 'Intel(R) Xeon(R) Platinum 8480+', flags: SAPPHIRE_RAPIDS_FLAGS, x86Level: 4 },
  torch: { version: '2.13.0+cpu', cuda: null },
  gpus: [],
  hostname: 'inference-03',
};

/** Ubuntu 24.04 GPU box: Sapphire Rapids host with one H100 (compute capability 9.0), torch for CUDA 12.8. */
export const H100_BOX_FINGERPRINT: DeviceFingerprint = {
  schemaVersion: 1,
  os: 'linux',
  arch: 'x86_64',
  libc: { name: 'glibc', version: '2.39' },
  libstdcxx: { glibcxx: '3.4.33' },
  cpu: { model: 'Intel(R) Xeon(R) Platinum 8480+', flags: SAPPHIRE_RAPIDS_FLAGS },
  torch: { version: '2.11.0+cu128', cuda: '12.8' },
  gpus: [{ name: 'NVIDIA H100 80GB HBM3', computeCapability: '9.0', driverVersion: '580.159.04' }],
  hostname: 'gpu-h100-01',
};

/** Debian 11 box with a 2010 Westmere Xeon (SSE4.2, no AVX): x86-64-v2. */
export const SSE42_BOX_FINGERPRINT: DeviceFingerprint = {
  schemaVersion: 1,
  os: 'linux',
  arch: 'x86_64',
  libc: { name: 'glibc', version: '2.31' },
  libstdcxx: { glibcxx: '3.4.28' },
  cpu: {
    model: 'Intel(R) Xeon(R) CPU X5670 @ 2.93GHz',
    flags: cpuinfoFlags(
      'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 cx16 xtpr pdcm pcid dca sse4_1 sse4_2 popcnt aes lahf_lm pti ssbd ibrs ibpb stibp tpr_shadow vnmi flexpriority ept vpid dtherm ida arat flush_l1d',
    ),
  },
  torch: { version: '2.13.0+cpu', cuda: null },
  gpus: [],
};

/** Amazon Linux 2023 on Graviton2 (arm64): no x86 artifact fits. */
export const GRAVITON_FINGERPRINT: DeviceFingerprint = {
  schemaVersion: 1,
  os: 'linux',
  arch: 'aarch64',
  libc: { name: 'glibc', version: '2.34' },
  libstdcxx: { glibcxx: '3.4.29' },
  cpu: {
    model: 'Neoverse-N1',
    flags: cpuinfoFlags(
      'fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs',
    ),
  },
  torch: { version: '2.13.0+cpu', cuda: null },
  gpus: [],
};

/**
 * Debian 12 on Graviton2 with PyPI's aarch64 torch 2.13.0 (a CUDA build; no GPU): libstdc++ of GCC 12 (GLIBCXX
 * 3.4.30), which the linux-aarch64 artifacts need (Debian 12's cross compiler links them); the Amazon Linux 2023
 * box above (GCC 11, 3.4.29) is too old for them.
 */
export const DEBIAN_GRAVITON_FINGERPRINT: DeviceFingerprint = {
  ...GRAVITON_FINGERPRINT,
  libc: { name: 'glibc', version: '2.36' },
  libstdcxx: { glibcxx: '3.4.30' },
  torch: { version: '2.13.0+cu130', cuda: '13.0' },
  hostname: 'graviton-1',
};

export const EXAMPLE_FINGERPRINTS: Readonly<Record<string, DeviceFingerprint>> = {
  'avx2-laptop': AVX2_LAPTOP_FINGERPRINT,
  'avx512-server': AVX512_SERVER_FINGERPRINT,
  'h100-box': H100_BOX_FINGERPRINT,
  'sse42-box': SSE42_BOX_FINGERPRINT,
  graviton: GRAVITON_FINGERPRINT,
};

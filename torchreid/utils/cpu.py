"""Two CPU levers: native bf16 detection and glibc's allocator thresholds.

* :func:`native_bf16` says whether the CPU computes bf16 natively (x86 ``avx512_bf16`` or ``amx_bf16``).
  There bf16 autocast is faster than fp32; without them PyTorch emulates bf16 and autocast is many times
  slower (figures: ``docs/results.md``, "Training and feature extraction").
* :func:`tune_malloc` raises glibc's ``M_MMAP_THRESHOLD`` / ``M_TRIM_THRESHOLD`` at run time through
  ``mallopt``. With glibc's defaults a process can hand the large activation buffers of a forward pass back
  to the kernel and take them again every batch (``mmap`` / ``munmap``, heap trimming; how often depends on its
  allocation history), paying a page fault per 4 KiB each time; with higher thresholds the buffers stay in the
  heap and are reused. The environment variables
  ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` do the same but glibc reads them once, when a process
  starts: setting them in ``os.environ`` changes nothing for the running process nor for workers it forks
  (measured: ``benchmarks/perf/bench_cpu_levers.py``). ``mallopt`` settings are part of the process's allocator
  state, so DataLoader workers forked afterwards inherit them.

The module is cheap to import: torch is imported only to ask CUDA about bf16 (:func:`auto_mixed_precision`).
"""
import ctypes
import functools
import logging
import os
import sys
from typing import FrozenSet, Optional

__all__ = ['parse_cpu_flags', 'cpu_flags', 'native_bf16', 'auto_mixed_precision', 'log_cpu_precision_advice',
           'tune_malloc', 'malloc_tuning_wanted', 'MALLOC_ENV_VARS', 'OPT_OUT_ENV_VAR', 'DEFAULT_MMAP_THRESHOLD',
           'DEFAULT_TRIM_THRESHOLD']

logger = logging.getLogger(__name__)

CPUINFO_PATH = '/proc/cpuinfo'
# CPU flags (Linux /proc/cpuinfo names) of native bf16 arithmetic that oneDNN uses for bf16 convolutions/matmuls.
BF16_FLAGS = frozenset({'avx512_bf16', 'amx_bf16'})

# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Thresholds applied by tune_malloc (measured choice: docs/results.md). Blocks below the mmap threshold come from
# the heap and are reused; the heap is given back to the kernel only when more than the trim threshold is free at
# its top. Both are below 2 GiB (mallopt takes a C int).
DEFAULT_MMAP_THRESHOLD = 256 << 20
DEFAULT_TRIM_THRESHOLD = 512 << 20
# A user who sets any of these chose the allocator's behaviour: tune_malloc leaves it alone.
MALLOC_ENV_VARS = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_', 'MALLOC_MMAP_MAX_',
                   'GLIBC_TUNABLES')
# Set to 0 / false / no / off to keep glibc's defaults where torchreid would tune them.
OPT_OUT_ENV_VAR = 'TORCHREID_TUNE_MALLOC'


def parse_cpu_flags(cpuinfo_text: str) -> FrozenSet[str]:
    """The flags every processor of a ``/proc/cpuinfo`` text reports (x86 ``flags`` lines).

    The intersection over processors, so a flag missing on some cores does not count. Empty when the text has
    no ``flags`` line (other architectures, a container hiding it).
    """
    common: Optional[FrozenSet[str]] = None
    for line in cpuinfo_text.splitlines():
        name, sep, value = line.partition(':')
        if not sep or name.strip() != 'flags':
            continue
        flags = frozenset(value.split())
        common = flags if common is None else common & flags
    return common or frozenset()


@functools.lru_cache(maxsize=None)
def cpu_flags(cpuinfo_path: str = CPUINFO_PATH) -> FrozenSet[str]:
    """The CPU flags of this Linux machine (cached); empty elsewhere or when ``cpuinfo_path`` is unreadable."""
    if not sys.platform.startswith('linux'):
        return frozenset()
    try:
        with open(cpuinfo_path, encoding='utf-8', errors='replace') as f:
            return parse_cpu_flags(f.read())
    except OSError as exc:
        logger.debug('cannot read %s (%s): CPU flags unknown', cpuinfo_path, exc)
        return frozenset()


def native_bf16(cpuinfo_path: str = CPUINFO_PATH) -> bool:
    """True when the CPU has native bf16 arithmetic (``avx512_bf16`` or ``amx_bf16``), so bf16 autocast on
    the CPU is faster than fp32 rather than emulated. Linux only (reads ``/proc/cpuinfo``, cached); False
    elsewhere."""
    return bool(cpu_flags(cpuinfo_path) & BF16_FLAGS)


def auto_mixed_precision(device_type: str) -> Optional[str]:
    """The autocast precision ``mixed_precision='auto'`` picks on a device type: ``'bf16'`` where bf16 runs
    natively (a CPU with :func:`native_bf16`, a CUDA GPU with bf16 support), else None (fp32). fp16 is never
    chosen automatically (it needs gradient scaling and can overflow)."""
    if device_type == 'cpu':
        return 'bf16' if native_bf16() else None
    if device_type == 'cuda':
        import torch  # only here: the module stays torch-free to import
        return 'bf16' if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
    return None


def log_cpu_precision_advice(mixed_precision: Optional[str]) -> None:
    """Tell a CPU run what its precision costs: a warning for bf16 autocast on a CPU without native bf16
    (emulated, many times slower than fp32), a hint for fp32 on a CPU with native bf16 (bf16 is faster)."""
    if mixed_precision == 'bf16' and not native_bf16():
        logger.warning("mixed_precision=%r on a CPU without native bf16 (no avx512_bf16 / amx_bf16 flag): autocast "
                       "is emulated there and was 12-50x slower than fp32 in our measurements (docs/results.md); "
                       "use fp32 (mixed_precision=None) with channels_last on this CPU", mixed_precision)
    elif mixed_precision is None and native_bf16():
        logger.info("this CPU computes bf16 natively (%s): mixed_precision='bf16' (or 'auto') was up to 2.5x faster "
                    "than fp32 on such a CPU, 1.8-4.2x with channels_last (docs/results.md), at bf16's lower "
                    "precision", '/'.join(sorted(cpu_flags() & BF16_FLAGS)))


def _glibc() -> Optional[ctypes.CDLL]:
    """The process's C library when it is glibc (it has ``mallopt`` and ``gnu_get_libc_version``), else None."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, 'gnu_get_libc_version') or not hasattr(libc, 'mallopt'):
        return None  # musl (Alpine) and other C libraries
    return libc


def malloc_tuning_wanted() -> bool:
    """False when the user opted out (``TORCHREID_TUNE_MALLOC=0``) or set glibc's malloc variables
    (``MALLOC_*_`` / ``GLIBC_TUNABLES``) themselves; the default tuning then stays out of the way."""
    if os.environ.get(OPT_OUT_ENV_VAR, '').strip().lower() in ('0', 'false', 'no', 'off'):
        return False
    return not any(name in os.environ for name in MALLOC_ENV_VARS)


def tune_malloc(mmap_threshold: int = DEFAULT_MMAP_THRESHOLD, trim_threshold: int = DEFAULT_TRIM_THRESHOLD,
                respect_environment: bool = True) -> bool:
    """Raise glibc's mmap and trim thresholds of this process with ``mallopt``; True when applied.

    Call it before DataLoader workers start: forked workers inherit the setting (spawned ones start fresh).
    A no-op returning False off glibc (macOS, Windows, musl), and, with ``respect_environment``, when
    :func:`malloc_tuning_wanted` says the user chose otherwise. Idempotent: the same thresholds are applied
    and logged once per process.
    """
    for name, value in (('mmap_threshold', mmap_threshold), ('trim_threshold', trim_threshold)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2 ** 31:
            raise ValueError(f'tune_malloc: {name} must be an int in [0, 2**31), got {value!r}')
    if respect_environment and not malloc_tuning_wanted():
        logger.debug('glibc malloc left as configured by the environment (%s or %s)',
                     OPT_OUT_ENV_VAR, '/'.join(MALLOC_ENV_VARS))
        return False
    return _apply_malloc_thresholds(mmap_threshold, trim_threshold)


@functools.lru_cache(maxsize=None)
def _apply_malloc_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    libc = _glibc()
    if libc is None:
        logger.debug('not glibc: malloc thresholds left as they are')
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    ok = (libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
          and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1)
    if ok:
        logger.info('glibc malloc: mmap threshold %d MiB, trim threshold %d MiB (large buffers stay in the heap '
                    'instead of page-faulting in again; %s=0 keeps glibc defaults)',
                    mmap_threshold >> 20, trim_threshold >> 20, OPT_OUT_ENV_VAR)
    else:
        logger.warning('glibc refused mallopt(mmap_threshold=%d, trim_threshold=%d): allocator left at its '
                       'defaults', mmap_threshold, trim_threshold)
    return ok

"""CPU levers (torchreid/utils/cpu.py): native bf16 detection, glibc malloc thresholds, the engine's precision."""
import logging
import subprocess
import sys
import types

import pytest

from torchreid.utils import cpu

CPUINFO_AVX2 = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse sse2 avx avx2 fma
bogomips\t: 4000.00

processor\t: 1
flags\t\t: fpu vme sse sse2 avx avx2 fma
"""
CPUINFO_AVX512_BF16 = CPUINFO_AVX2.replace('avx2 fma', 'avx2 fma avx512f avx512_bf16')
CPUINFO_AMX = CPUINFO_AVX2.replace('avx2 fma', 'avx2 fma amx_tile amx_bf16')
# one core without the flag: not native on every core, so not native
CPUINFO_MIXED = CPUINFO_AVX512_BF16.replace('avx512f avx512_bf16', '', 1)


@pytest.fixture(autouse=True)
def _fresh_caches():
    cpu.cpu_flags.cache_clear()
    cpu._apply_malloc_thresholds.cache_clear()
    yield
    cpu.cpu_flags.cache_clear()
    cpu._apply_malloc_thresholds.cache_clear()


def _cpuinfo(tmp_path, text):
    path = tmp_path / 'cpuinfo'
    path.write_text(text)
    return str(path)


def test_parse_cpu_flags_keeps_flags_of_every_processor():
    assert cpu.parse_cpu_flags(CPUINFO_AVX2) == {'fpu', 'vme', 'sse', 'sse2', 'avx', 'avx2', 'fma'}
    assert 'avx512_bf16' not in cpu.parse_cpu_flags(CPUINFO_MIXED)
    assert 'avx512_bf16' in cpu.parse_cpu_flags(CPUINFO_AVX512_BF16)
    assert cpu.parse_cpu_flags('processor : 0\nFeatures : fp asimd\n') == frozenset()


@pytest.mark.parametrize('text, expected', [(CPUINFO_AVX2, False), (CPUINFO_AVX512_BF16, True),
                                            (CPUINFO_AMX, True), (CPUINFO_MIXED, False)])
def test_native_bf16_reads_the_flags(tmp_path, monkeypatch, text, expected):
    monkeypatch.setattr(sys, 'platform', 'linux')
    assert cpu.native_bf16(_cpuinfo(tmp_path, text)) is expected


def test_native_bf16_false_off_linux_or_unreadable(tmp_path, monkeypatch):
    path = _cpuinfo(tmp_path, CPUINFO_AVX512_BF16)
    monkeypatch.setattr(sys, 'platform', 'darwin')
    assert cpu.native_bf16(path) is False
    monkeypatch.setattr(sys, 'platform', 'linux')
    assert cpu.native_bf16(str(tmp_path / 'missing')) is False


def test_native_bf16_is_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, 'platform', 'linux')
    path = tmp_path / 'cpuinfo'
    path.write_text(CPUINFO_AVX512_BF16)
    assert cpu.native_bf16(str(path)) is True
    path.write_text(CPUINFO_AVX2)  # the CPU does not change under a running process: the first answer stays
    assert cpu.native_bf16(str(path)) is True


class _FakeMallopt:
    """Stands for glibc's ``mallopt``: records the calls, answers ``answer`` (1: accepted, 0: refused)."""

    def __init__(self):
        self.calls = []
        self.answer = 1

    def __call__(self, param, value):
        self.calls.append((param, value))
        return self.answer


@pytest.fixture
def fake_mallopt(monkeypatch):
    for name in (*cpu.MALLOC_ENV_VARS, cpu.OPT_OUT_ENV_VAR):
        monkeypatch.delenv(name, raising=False)
    mallopt = _FakeMallopt()
    monkeypatch.setattr(cpu, '_glibc', lambda: types.SimpleNamespace(mallopt=mallopt))
    return mallopt


def test_tune_malloc_applies_once_and_logs_once(fake_mallopt, caplog):
    with caplog.at_level(logging.INFO, logger=cpu.__name__):
        assert cpu.tune_malloc() is True
        assert cpu.tune_malloc() is True
    assert fake_mallopt.calls == [(-3, cpu.DEFAULT_MMAP_THRESHOLD), (-1, cpu.DEFAULT_TRIM_THRESHOLD)]
    assert len([r for r in caplog.records if 'mmap threshold' in r.getMessage()]) == 1
    assert cpu.tune_malloc(1 << 20, 2 << 20) is True  # other thresholds: applied (and logged) once more
    assert fake_mallopt.calls[2:] == [(-3, 1 << 20), (-1, 2 << 20)]


def test_tune_malloc_is_a_noop_off_glibc(monkeypatch):
    for name in (*cpu.MALLOC_ENV_VARS, cpu.OPT_OUT_ENV_VAR):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, 'platform', 'darwin')
    assert cpu._glibc() is None
    assert cpu.tune_malloc() is False
    monkeypatch.setattr(sys, 'platform', 'linux')
    monkeypatch.setattr(cpu.ctypes, 'CDLL', lambda name: types.SimpleNamespace())  # musl: no glibc symbols
    assert cpu._glibc() is None
    cpu._apply_malloc_thresholds.cache_clear()
    assert cpu.tune_malloc() is False


@pytest.mark.parametrize('env', [{'MALLOC_MMAP_THRESHOLD_': '65536'}, {'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2'},
                                 {'TORCHREID_TUNE_MALLOC': '0'}, {'TORCHREID_TUNE_MALLOC': 'off'}])
def test_tune_malloc_leaves_a_users_choice_alone(fake_mallopt, monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cpu.tune_malloc() is False
    assert fake_mallopt.calls == []
    assert cpu.tune_malloc(respect_environment=False) is True
    assert len(fake_mallopt.calls) == 2


def test_tune_malloc_reports_a_refusal(fake_mallopt, caplog):
    fake_mallopt.answer = 0
    with caplog.at_level(logging.WARNING, logger=cpu.__name__):
        assert cpu.tune_malloc() is False
    assert 'refused' in caplog.text


@pytest.mark.parametrize('bad', [-1, 2 ** 31, 1.5, True, '1M'])
def test_tune_malloc_rejects_bad_thresholds(bad):
    with pytest.raises(ValueError, match='mmap_threshold'):
        cpu.tune_malloc(mmap_threshold=bad)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc check')
def test_tune_malloc_on_the_real_c_library():
    # In a child process: the allocator setting is process-wide and must not change this test process.
    code = ('import ctypes, sys; from torchreid.utils import cpu; '
            'glibc = cpu._glibc() is not None; '
            'print(glibc, cpu.tune_malloc(respect_environment=False), cpu.tune_malloc(respect_environment=False))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    if out[0] == 'False':
        pytest.skip('not glibc')
    assert out == ['True', 'True', 'True']


# ------------------------------------------------------------------ the engine's precision choice and advice

def _engine(mixed_precision):
    from torchreid.engine import Engine
    datamanager = types.SimpleNamespace(num_train_pids=2, train_loader=None, test_loader=None)
    return Engine(datamanager, device='cpu', mixed_precision=mixed_precision, progress=False, tensorboard=False)


@pytest.mark.parametrize('native, expected', [(True, 'bf16'), (False, None)])
def test_engine_auto_precision_follows_native_bf16(fake_mallopt, monkeypatch, native, expected):
    import torch
    monkeypatch.setattr(cpu, 'native_bf16', lambda *a: native)
    engine = _engine('auto')
    assert engine.mixed_precision == expected
    assert engine.amp_dtype == (torch.bfloat16 if native else None)
    assert cpu.auto_mixed_precision('mps') is None


def test_engine_warns_when_bf16_is_emulated(fake_mallopt, monkeypatch, caplog):
    monkeypatch.setattr(cpu, 'native_bf16', lambda *a: False)
    with caplog.at_level(logging.WARNING, logger=cpu.__name__):
        _engine('bf16')
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and 'without native bf16' in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=cpu.__name__):
        _engine(None)  # fp32 on such a CPU: nothing to say about precision
    assert [r for r in caplog.records if 'bf16' in r.getMessage()] == []


def test_engine_hints_bf16_on_a_native_cpu(fake_mallopt, monkeypatch, caplog):
    monkeypatch.setattr(cpu, 'native_bf16', lambda *a: True)
    monkeypatch.setattr(cpu, 'cpu_flags', lambda *a: frozenset({'avx512_bf16'}))
    with caplog.at_level(logging.INFO, logger=cpu.__name__):
        _engine(None)
    hints = [r for r in caplog.records if 'bf16' in r.getMessage()]
    assert [r.levelno for r in hints] == [logging.INFO]
    assert "mixed_precision='bf16'" in hints[0].getMessage() and 'avx512_bf16' in hints[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=cpu.__name__):
        _engine('bf16')  # already bf16 on a native CPU: no warning, no hint
    assert [r for r in caplog.records if 'bf16' in r.getMessage()] == []


def test_engine_on_cpu_tunes_malloc_unless_opted_out(fake_mallopt, monkeypatch):
    _engine(None)
    assert fake_mallopt.calls == [(-3, cpu.DEFAULT_MMAP_THRESHOLD), (-1, cpu.DEFAULT_TRIM_THRESHOLD)]
    cpu._apply_malloc_thresholds.cache_clear()
    monkeypatch.setenv(cpu.OPT_OUT_ENV_VAR, '0')
    _engine(None)
    assert len(fake_mallopt.calls) == 2


def test_config_accepts_auto_precision():
    from tests.baseline.helpers import load_default_config
    dc = load_default_config()
    cfg = dc.get_default_config()
    cfg.train.mixed_precision = 'auto'
    dc.check_cfg(cfg)
    assert dc.engine_kwargs(cfg)['mixed_precision'] == 'auto'

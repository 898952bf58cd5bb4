"""Install the `torchreid` package (SoccerNet-v3 ReID edition).

`pip install -e .` builds the Cython rank extension (``torchreid.metrics.rank_cylib.rank_cy``: the compiled
metric loops and the one-pass per-action scoring, BLAS from ``scipy.linalg.cython_blas``) in place;
`pip install -e ".[test]"` adds the test tools.

The extension is optional. Where it cannot be built (no C compiler, no Cython, a compile or link error) the
install still succeeds, says why in one message and torchreid runs its NumPy implementation (same results,
slower); an extension left in the source tree by an earlier build is then removed, so the code that runs is
the code that was installed. pip prints a build's messages only with ``-v``; torchreid itself warns once at run
time when the compiled code is missing.

Environment:
    TORCHREID_NO_EXTENSION=1   skip the extension on purpose (NumPy implementation only), e.g.
                               ``TORCHREID_NO_EXTENSION=1 pip install -e .``
"""
import os
import os.path as osp
import sys
from importlib.util import find_spec

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = osp.dirname(osp.abspath(__file__))
EXT_NAME = 'torchreid.metrics.rank_cylib.rank_cy'


def read_version():
    namespace = {}
    with open(osp.join(HERE, 'torchreid', '__version__.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def read_long_description():
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


def _skip_reason():
    """Why the extension cannot or must not be built before trying, or None."""
    if os.environ.get('TORCHREID_NO_EXTENSION', '').strip().lower() in ('1', 'true', 'yes', 'on'):
        return 'TORCHREID_NO_EXTENSION is set'
    for module, what in (('Cython', 'Cython'), ('numpy', 'numpy'), ('scipy', 'scipy (cython_blas)')):
        if find_spec(module) is None:
            return f'{what} is not installed in the build environment'
    return None


class OptionalBuildExt(build_ext):
    """``build_ext`` whose failure is not the install's: any reason the extension cannot be built is reported in
    one message and the install goes on without it."""

    skipped = None

    def finalize_options(self):
        super().finalize_options()
        if find_spec('numpy') is not None:
            import numpy as np

            for ext in self.extensions:
                if np.get_include() not in ext.include_dirs:
                    ext.include_dirs.append(np.get_include())

    def run(self):
        reason = _skip_reason()
        if reason is None:
            try:
                super().run()
                return
            except Exception as exc:     # no compiler, compile/link error, Cython error: all optional
                first_line = (str(exc).strip().splitlines() or [''])[0][:300]
                reason = f'{type(exc).__name__}: {first_line}'
        self.skipped = reason
        self._remove_stale_inplace()
        if reason.startswith('TORCHREID_NO_EXTENSION'):
            what, remedy = 'was skipped', 'unset it and reinstall to get it'
        elif reason.endswith('is not installed in the build environment'):
            what = 'could not be built'
            remedy = "install it (or let pip build in its isolated environment) and reinstall to get it"
        else:
            what, remedy = 'could not be built', 'install a C compiler and reinstall to get it'
        sys.stderr.write('\n' + '*' * 100 + f'\nWARNING: the compiled rank extension {what} ({reason}); torchreid '
                         f'uses the NumPy implementation (same results, slower); {remedy}.\n' + '*' * 100 + '\n\n')
        sys.stderr.flush()

    def _remove_stale_inplace(self):
        """An in-place (editable) build copies the extension next to its source; a copy left there by an
        earlier build would still be imported, so it goes."""
        if not self.inplace:
            return
        for ext in self.extensions:
            fullname = self.get_ext_fullname(ext.name)
            path = osp.join(HERE, *fullname.split('.')[:-1], osp.basename(self.get_ext_filename(fullname)))
            if osp.exists(path):
                os.remove(path)
                sys.stderr.write(f'removed the earlier build {osp.relpath(path, HERE)}\n')

    def get_outputs(self):
        return [] if self.skipped else super().get_outputs()

    def get_output_mapping(self):
        return {} if self.skipped else super().get_output_mapping()


ext_modules = [
    Extension(
        EXT_NAME,
        sources=['torchreid/metrics/rank_cylib/rank_cy.pyx'],
        define_macros=[('NPY_NO_DEPRECATED_API', 'NPY_1_7_API_VERSION')],
    )
]

install_requires = [
    'torch>=2.1',
    'torchvision>=0.16',
    'numpy>=1.24',
    'scipy>=1.10',
    'Pillow>=9.0',
    'yacs>=0.1.8',
    'tqdm>=4.60',
    'tensorboard>=2.12',
    'SoccerNet>=0.1.62',
    'safetensors>=0.4',  # weights files that load without unpickling
    'h5py>=3.0',  # CUHK03's MATLAB v7.3 files
    'timm>=1.0',  # transformer / CLIP / EfficientNet backbones
]

_EXPORT = ['onnx>=1.14', 'onnxruntime>=1.16']
extras_require = {
    # The ONNX export is tested in CI too: the test extra brings its runtime.
    'test': ['pytest>=7', 'hypothesis>=6', *_EXPORT],
    'export': _EXPORT,
}

setup(
    name='torchreid',
    version=read_version(),
    description='Person re-identification in PyTorch, built for SoccerNet-v3 player ReID',
    long_description=read_long_description(),
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.9',
    packages=find_packages(include=['torchreid', 'torchreid.*']),
    package_data={'torchreid.metrics.rank_cylib': ['*.pyx']},
    install_requires=install_requires,
    extras_require=extras_require,
    ext_modules=ext_modules,
    cmdclass={'build_ext': OptionalBuildExt},
    zip_safe=False,
)

"""Install the `torchreid` package (SoccerNet-v3 ReID edition).

`pip install -e .` builds the Cython rank extension in place; `pip install -e ".[test]"` adds the test tools.
"""
import os.path as osp

import numpy as np
from setuptools import Extension, find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    namespace = {}
    with open(osp.join(HERE, 'torchreid', '__version__.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def read_long_description():
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


ext_modules = [
    Extension(
        'torchreid.metrics.rank_cylib.rank_cy',
        sources=['torchreid/metrics/rank_cylib/rank_cy.pyx'],
        include_dirs=[np.get_include()],
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
]

extras_require = {
    'test': ['pytest>=7', 'hypothesis>=6'],
    'export': ['onnx>=1.14', 'onnxruntime>=1.16'],
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
    zip_safe=False,
)

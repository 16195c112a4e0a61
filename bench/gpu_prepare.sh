#!/usr/bin/env bash
# Here, before a lent GPU machine that reaches no package index runs bench/gpu_check.sh: the
# wheels the project needs beyond that machine's image (Python 3.12, x86-64; Ray and PyAV are
# left out: too big to carry, and only the build needs them) into .whl/, and the tests' small
# dataset, built by the pipeline, into .gpu_fixtures/small_data. Both are git-ignored.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p .whl .gpu_fixtures
for p in webdataset braceexpand hjson pydantic pydantic-core annotated-types typing-inspection typing-extensions \
         mutagen pypinyin soundfile cffi pycparser soxr; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$p"
done
DS=$($PY -c "import deepspeed; print(deepspeed.__version__)" 2>/dev/null | tail -1)
(cd /tmp && DS_BUILD_OPS=0 "$OLDPWD/$PY" -m pip wheel -q --no-deps --no-build-isolation "deepspeed==$DS" -w "$OLDPWD/.whl")
rm -rf .gpu_fixtures/small_data .gpu_fixtures/tmp
DS_ACCELERATOR=cpu RAY_AUTH_MODE=disabled $PY -c "
import shutil
from pathlib import Path
from tests.conftest import build_small_data
shutil.move(str(build_small_data(Path('.gpu_fixtures/tmp'))), '.gpu_fixtures/small_data')
shutil.rmtree('.gpu_fixtures/tmp')"
du -sh .whl .gpu_fixtures

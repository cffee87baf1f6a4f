# The two README commands. Each does its own set-up on a fresh machine: a virtualenv in
# .venv, the package and its dev tools, and the Fashion-MNIST files.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
FMNIST_DEBIAN := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo test lint data ui bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's package where apt is there and we are root; otherwise torchvision's download.
data: $(STAMP)
	@if [ ! -f $(FMNIST_DEBIAN) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist); \
	fi
	$(PY) -m trainables.data fashion_mnist

test: data
	$(PY) -m ruff check .
	$(PY) -m pytest -q --durations=15

demo: data
	$(PY) -m sweeps run sweeps/quickstart.yaml
	$(PY) -m analysis pareto --experiment quickstart_noisy_arl --out out/quickstart

ui: $(STAMP)
	$(PY) -m sweeps ui

bench: data
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) out

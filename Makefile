# opsvault.aws_backup: `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(abspath $(VENV))/bin
COLLECTIONS := $(abspath build/collections)
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/opsvault/aws_backup
PYTEST_WORKERS ?= 2

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PATH := $(BIN):$(PATH)

.PHONY: help setup demo test unit integration lint sanity clean

help:
	@echo "make demo   run backup and purge end to end against a local moto server"
	@echo "make test   unit, integration (ansible-playbook against moto), ansible-lint and ansible-test sanity"
	@echo "make clean  remove the virtualenv and build folder"

$(VENV)/.installed: requirements-test.txt
	rm -rf $(VENV)
	"$$(scripts/find-python)" -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $(COLLECTION_LINK))
	ln -sfn $(CURDIR) $(COLLECTION_LINK)

setup: $(VENV)/.installed $(COLLECTION_LINK)

demo: setup
	$(BIN)/python scripts/demo.py

unit: setup
	$(BIN)/python -m pytest tests/unit

integration: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests/integration

lint: setup
	$(BIN)/ansible-lint --offline

sanity: setup
	scripts/sanity $(BIN)/python

test: unit integration lint sanity cfn-lint ee

.PHONY: cfn-lint ee
# The backup host's CloudFormation template, and the AWX execution environment's build context.
cfn-lint: setup
	$(BIN)/cfn-lint playbooks/files/backup_host.cfn.yml

ee: setup
	rm -rf build/ee
	$(BIN)/ansible-builder create -f execution-environment.yml -c build/ee

clean:
	rm -rf $(VENV) build

.PHONY: bench
# Side-by-side benchmarks against peer tools on moto behind the AWS-like proxy (minutes; not part of make test).
bench: setup
	$(BIN)/python bench/run.py

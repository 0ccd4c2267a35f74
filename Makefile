# tinystack: the two commands are `make run` (a whole cloud on this machine) and
# `make test` (every test). Both install what they need from Debian (scripts/deps.sh).
BUILD ?= build
DATA ?= /var/lib/tinystack

.PHONY: all deps build run test unit e2e tempest scenario fuzz clean

all: build

deps:
	bash scripts/deps.sh

build:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTS_MODULES= >/dev/null
	ninja -C $(BUILD)

run: deps build
	DATA=$(DATA) BUILD=$(BUILD) bash scripts/run.sh

test: deps
	BUILD=$(BUILD) bash scripts/test.sh

unit:
	BUILD=$(BUILD) bash scripts/test.sh unit

e2e: build
	TS_BUILD=$(BUILD) /usr/bin/python3 -m pytest -q tests/e2e

fuzz:
	BUILD=$(BUILD) bash scripts/test.sh fuzz

# Tempest scenario tests with real TCG guests (~10 min; not part of `make test`)
scenario: deps
	BUILD=$(BUILD) bash scripts/test.sh scenario

clean:
	rm -rf $(BUILD) build-asan build-fuzz

# The two commands that matter:
#   make demo   set up what is missing, build, and run the walkthrough playbook locally
#   make test   set up what is missing, then lint and run every test (what CI runs)

SHELL := /bin/bash
CARGO ?= cargo
DEMO ?= scripts/failover.rhai

.PHONY: setup system-packages demo test lint bench clean-local api-docs deploy-configs screenshot console-vendor

# System packages, installed only when a command is missing (needs root or sudo).
system-packages:
	@missing=""; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	command -v gst-launch-1.0 >/dev/null || missing="$$missing gstreamer1.0-tools gstreamer1.0-plugins-bad gstreamer1.0-plugins-good gstreamer1.0-libav"; \
	command -v nginx >/dev/null || missing="$$missing nginx"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Azurite from the committed lock file; reinstalled when the lock file changes.
node_modules/.amsplay-stamp: package.json package-lock.json | system-packages
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: system-packages node_modules/.amsplay-stamp

# The environment is brought up first (and left up), so the URLs the demo prints keep working;
# `./target/release/amsplay local down` stops it.
demo: setup
	$(CARGO) build --release
	./target/release/amsplay local up
	./target/release/amsplay run $(DEMO)
	@echo
	@./target/release/amsplay local status | grep -E '^(front door|console)'

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -q -- -D warnings

test: setup lint
	$(CARGO) test

# Side-by-side benchmarks; results land in docs/bench.md.
bench: setup
	bench/replicate
	bench/emulator
	bench/encode
	bench/origin
	bench/origin_memory
	bench/sync

clean-local:
	-./target/debug/amsplay local down 2>/dev/null
	rm -rf .amsplay

# Regenerate the README's API table from the engine's metadata (a test checks it is current).
api-docs:
	$(CARGO) run -q -- doc --markdown > target/api.md
	python3 -c "import re,pathlib; p=pathlib.Path('README.md'); t=pathlib.Path('target/api.md').read_text().strip(); s=p.read_text(); a=s.index('<!-- api:start -->')+len('<!-- api:start -->'); b=s.index('<!-- api:end -->'); p.write_text(s[:a]+'\n'+t+'\n'+s[b:])"

# The example nginx edge in deploy/nginx/ (a unit test checks it is what --emit writes).
deploy-configs:
	$(CARGO) run -q -- front --emit nginx --origin http://dc-a.example.net:8080 \
	  --origin http://dc-b.example.net:8080 --listen 0.0.0.0:80 > deploy/nginx/amsplay.conf

# The README's console picture, taken by the console's browser test (docs/console.png).
screenshot: setup
	AMSPLAY_SCREENSHOT=$(CURDIR)/docs/console.png $(CARGO) test --test integration the_console_lists_replicates_plays_and_drills_in_chromium

# The console's hls.js, copied from the npm package package.json pins (a test keeps them equal).
console-vendor: setup
	cp node_modules/hls.js/dist/hls.min.js src/console/vendor/hls.min.js

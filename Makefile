# Release artefacts; see packaging/README.md.
.PHONY: dist dist-x86_64 dist-aarch64 test-packaging

# Static musl binaries for x86_64 and aarch64, .deb and .rpm for each,
# install.sh and SHA256SUMS, into dist/.
dist:
	scripts/dist.sh

dist-x86_64:
	scripts/dist.sh --arch x86_64

dist-aarch64:
	scripts/dist.sh --arch aarch64

test-packaging:
	tests/packaging/run.sh

#!/bin/bash
# EC2 user-data: install and start cwpulse on first boot. Paste it into the
# launch template's user data (Amazon Linux 2023, Ubuntu 22.04+, Debian 12;
# x86_64 or Graviton: install.sh picks the binary for the instance).
#
# Publish the dist/ directory that `make dist` writes (see
# packaging/README.md) and point CWPULSE_RELEASE_URL at it:
#   https://...            any HTTPS server, or an S3 bucket over HTTPS
#   s3://bucket/prefix     a private bucket the instance role can read
#                          (needs the aws CLI, which Amazon Linux 2023 ships)
# The instance role also needs cloudwatch:PutMetricData and, for the
# AutoScalingGroupName dimension, autoscaling:DescribeAutoScalingInstances.
set -euo pipefail

CWPULSE_RELEASE_URL="https://downloads.example.com/cwpulse/v0.1.0"
# Optional: pin install.sh itself (sha256sum dist/install.sh). The binary is
# always checked against SHA256SUMS in the release directory.
INSTALL_SH_SHA256=""

release=/var/tmp/cwpulse-release
mkdir -p "$release"
case $CWPULSE_RELEASE_URL in
s3://*)
	aws s3 cp --quiet "${CWPULSE_RELEASE_URL%/}/install.sh" "$release/install.sh"
	aws s3 cp --quiet "${CWPULSE_RELEASE_URL%/}/SHA256SUMS" "$release/SHA256SUMS"
	arch=$(uname -m)
	aws s3 cp --quiet "${CWPULSE_RELEASE_URL%/}/cwpulse-linux-$arch" "$release/cwpulse-linux-$arch"
	url=$release
	;;
*)
	curl -fsSL --retry 5 --retry-connrefused -o "$release/install.sh" "${CWPULSE_RELEASE_URL%/}/install.sh"
	url=$CWPULSE_RELEASE_URL
	;;
esac
if [[ -n $INSTALL_SH_SHA256 ]]; then
	echo "$INSTALL_SH_SHA256  $release/install.sh" | sha256sum --check --strict
fi

bash "$release/install.sh" --url "$url" \
	--namespace "CWPulse" \
	--health-url "http://127.0.0.1:8080/actuator/health"
rm -rf "$release"

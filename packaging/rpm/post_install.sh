# cwpulse .rpm %post ($1: 1 on install, 2 on upgrade).
# Create the system user, reload systemd. Following Fedora/Amazon Linux
# practice the service is not started by the package; its preset decides
# whether it is enabled: `systemctl enable --now cwpulse` to run it.
if ! getent passwd cwpulse >/dev/null 2>&1; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers /usr/lib/sysusers.d/cwpulse.conf || :
	else
		useradd --system --user-group --home-dir /var/lib/cwpulse --no-create-home \
			--shell /usr/sbin/nologin --comment "cwpulse metrics agent" cwpulse || :
	fi
fi
install -d -m 0750 -o cwpulse -g cwpulse /var/lib/cwpulse 2>/dev/null || :
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
	systemctl preset cwpulse.service >/dev/null 2>&1 || :
fi

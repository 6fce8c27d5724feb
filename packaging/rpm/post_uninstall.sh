# cwpulse .rpm %postun ($1: 0 on erase, 1 on upgrade): reload systemd and
# restart a running agent onto the new binary after an upgrade. Config and
# spool are kept on erase (remove /etc/cwpulse and /var/lib/cwpulse by hand).
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart cwpulse.service >/dev/null 2>&1 || :
	fi
fi

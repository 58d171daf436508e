# statusmotd %post: on first install, enable the service (not start it: the
# packaged /etc/statusmotd/mapping.toml names no cluster yet). On upgrade,
# restart it if it runs, so the new binary serves.
systemctl daemon-reload >/dev/null 2>&1 || :
if [ "$1" -eq 1 ]; then
    systemctl enable statusmotd.service >/dev/null 2>&1 || :
else
    systemctl try-restart statusmotd.service >/dev/null 2>&1 || :
fi
exit 0

# statusmotd %preun: on removal (not upgrade), stop and disable the service.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now statusmotd.service >/dev/null 2>&1 || :
fi
exit 0

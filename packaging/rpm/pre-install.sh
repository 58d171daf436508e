# statusmotd %pre: create the static system user the service runs as.
getent group statusmotd >/dev/null || groupadd --system statusmotd
getent passwd statusmotd >/dev/null || \
    useradd --system --gid statusmotd --no-create-home \
        --home-dir /var/lib/statusmotd --shell /sbin/nologin \
        --comment "statusmotd service" statusmotd
exit 0

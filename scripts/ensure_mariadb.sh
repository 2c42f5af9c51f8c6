#!/usr/bin/env bash
# Makes sure MariaDB answers on 127.0.0.1:3306 for root with an empty password (the local/test default):
# installs the Debian package if absent, starts the server if stopped, and allows root over TCP.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

ping_tcp() { mysqladmin --protocol=tcp -h127.0.0.1 -P3306 -uroot --password= ping >/dev/null 2>&1; }

if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
  log "installing mariadb-server"; apt_install mariadb-server
fi
if ! mysqladmin ping >/dev/null 2>&1 && ! ping_tcp; then
  log "starting MariaDB"
  $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
  $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
    || $SUDO service mariadb start
  for _ in $(seq 1 60); do mysqladmin ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
if ! ping_tcp; then
  # Fresh Debian installs authenticate root by unix socket only; allow the empty-password TCP login
  # that the tests and the local demo use (this is a development machine, never production).
  log "enabling root login over TCP for local development"
  $SUDO mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;"
fi
ping_tcp || { log "MariaDB is not reachable on 127.0.0.1:3306"; exit 1; }
log "MariaDB is up on 127.0.0.1:3306"

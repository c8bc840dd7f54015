# The coordinator's part of postinst and postrm (packaging/maint/coordinator.sh).
USER_NAME=jfs-milvus
COORDINATOR_SECRET=coordinator-mysql-password

setup_role() {
	if ! getent passwd "$USER_NAME" >/dev/null; then
		adduser --quiet --system --group --no-create-home --home /nonexistent "$USER_NAME"
	fi
	[ -d "$SECRETS" ] || install -d -m 0711 "$SECRETS"
	# The coordinator runs as $USER_NAME: it must be able to reach its secret file (names stay unlisted).
	if [ "$(stat -c %a "$SECRETS")" = 700 ]; then
		chmod 0711 "$SECRETS"
	fi
	make_secret "$SECRETS/$COORDINATOR_SECRET" "$USER_NAME:$USER_NAME"
}

check_config_command() {
	# runuser, not sudo: Debian installs no sudo by default.
	echo "runuser -u $USER_NAME -- jfs-milvus-coordinator check-config $CONFIG"
}

check_config() {
	runuser -u "$USER_NAME" -- jfs-milvus-coordinator check-config "$CONFIG"
}

remove_role() {
	:
}

# Purge removes the coordinator's config, its secret and its user. The cluster's state lives in MySQL.
purge_role() {
	rm -f "$SECRETS/$COORDINATOR_SECRET"
	if getent passwd "$USER_NAME" >/dev/null && command -v deluser >/dev/null; then
		deluser --quiet --system "$USER_NAME" >/dev/null || true
	fi
	if getent group "$USER_NAME" >/dev/null && command -v delgroup >/dev/null; then
		delgroup --quiet --system "$USER_NAME" >/dev/null || true
	fi
}

# The agent's part of postinst and postrm (packaging/maint/agent.sh).
STATE_DIR=/var/lib/jfs-milvus
AGENT_SECRETS="meta-password mysql-password reader-mysql-password"

setup_role() {
	install -d -m 0755 "$STATE_DIR"
	[ -d "$SECRETS" ] || install -d -m 0711 "$SECRETS"
	for name in $AGENT_SECRETS; do
		make_secret "$SECRETS/$name" root:root
	done
}

check_config_command() {
	echo "jfs-milvus-agent check-config $CONFIG"
}

check_config() {
	jfs-milvus-agent check-config "$CONFIG"
}

# The agent links /sbin/mount.juicefs to the juicefs it runs; once that was this package's, the link is dead.
remove_dead_mount_helper() {
	target=$(readlink /sbin/mount.juicefs 2>/dev/null) || return 0
	case "$target" in
		"$LIBDIR"/*) [ -e "$target" ] || rm -f /sbin/mount.juicefs ;;
	esac
}

remove_role() {
	remove_dead_mount_helper
}

# Purge removes the agent's config, secrets and state. It leaves the JuiceFS line in /etc/fstab, the mount,
# the data on the volume and the Milvus container, with Milvus's local files under $STATE_DIR/milvus.
purge_role() {
	for name in $AGENT_SECRETS; do
		rm -f "$SECRETS/$name"
	done
	rm -f "$SECRETS"/juicefs-*.env
	for dropin in /etc/systemd/system/*.mount.d/jfs-milvus.conf; do
		[ -e "$dropin" ] || continue
		rm -f "$dropin"
		rmdir "${dropin%/*}" 2>/dev/null || true
	done
	remove_dead_mount_helper
	if [ -d "$STATE_DIR" ]; then
		find "$STATE_DIR" -mindepth 1 -maxdepth 1 ! -name milvus -exec rm -rf {} +
		if ! rmdir "$STATE_DIR" 2>/dev/null; then
			echo "$PACKAGE: kept $STATE_DIR/milvus (Milvus's local config, logs and WAL, which its container may still use)" >&2
		fi
	fi
	if grep -qs '[[:space:]]juicefs[[:space:]]' /etc/fstab; then
		echo "$PACKAGE: left the JuiceFS line in /etc/fstab, the mount and its data as they are" >&2
	fi
}

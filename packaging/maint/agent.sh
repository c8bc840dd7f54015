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

# Agents before the mount helper linked /sbin/mount.juicefs to their juicefs; once that was this package's, the
# link is dead.
remove_dead_mount_helper() {
	target=$(readlink /sbin/mount.juicefs 2>/dev/null) || return 0
	case "$target" in
		"$LIBDIR"/*) [ -e "$target" ] || rm -f /sbin/mount.juicefs ;;
	esac
}

# A writer's mount unit is started read-write through a runtime drop-in; without the agent, a restart of the
# unit must come up read-only, as at boot.
remove_mode_dropins() {
	for dropin in /run/systemd/system/*.mount.d/jfs-milvus-mode.conf; do
		[ -e "$dropin" ] || continue
		rm -f "$dropin"
		rmdir "${dropin%/*}" 2>/dev/null || true
	done
}

remove_role() {
	remove_dead_mount_helper
	remove_mode_dropins
}

# The env files the agent wrote, wherever juicefs.secrets_dir put them (agent.yaml is gone by now): its fstab
# lines name each (jfs-milvus.env-file=PATH, escaped the fstab way), the drop-ins of older agents too.
agent_env_files() {
	sed -n 's/.*[[:space:],]jfs-milvus\.env-file=\([^,[:space:]]*\).*/\1/p' /etc/fstab 2>/dev/null |
		sed 's/\\040/ /g; s/\\011/\t/g; s/\\134/\\/g'
	for dropin in /etc/systemd/system/*.mount.d/jfs-milvus.conf; do
		if [ -e "$dropin" ]; then
			sed -n 's/^EnvironmentFile=//p' "$dropin" | sed 's/%%/%/g'
		fi
	done
}

# One env file, if it is what the agent writes; its folder too, once empty.
remove_env_file() {
	case "${1##*/}" in
		juicefs-*.env) ;;
		*) return 0 ;;
	esac
	[ -f "$1" ] || return 0
	head -n 1 "$1" | grep -q '^# Written by jfs-milvus-agent' || return 0
	rm -f "$1"
	rmdir "${1%/*}" 2>/dev/null || true
}

# Purge removes the agent's config, secrets and state. It leaves the JuiceFS line in /etc/fstab, the mount,
# the data on the volume and the Milvus container, with Milvus's local files under $STATE_DIR/milvus.
purge_role() {
	for name in $AGENT_SECRETS; do
		rm -f "$SECRETS/$name"
	done
	agent_env_files | while IFS= read -r env_file; do
		remove_env_file "$env_file"
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
	if grep -qs -e 'jfs-milvus\.juicefs=' -e '[[:space:]]juicefs[[:space:]]' /etc/fstab; then
		echo "$PACKAGE: left the JuiceFS line in /etc/fstab (it no longer mounts: its helper went with the package), the mount and its data as they are" >&2
	fi
}

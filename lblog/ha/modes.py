"""The choices `lblog collect` offers for HA state (no imports: read on every cron run)."""

DRBD_MODES = ("auto", "proc", "drbdsetup", "none")
CLUSTER_MODES = ("pacemaker", "heartbeat", "rgmanager", "none")
PRIVATE_TEMPLATE = "/vz/private/{ve}"

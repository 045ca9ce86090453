"""Pure gateway policies: functions over plain snapshots that return decisions as data."""

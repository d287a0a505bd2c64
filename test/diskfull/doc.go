// Package diskfull runs a provider whose data directory is on a small
// filesystem that fills up (a tmpfs the test mounts, as root), while its
// users chat: writes are refused with storage_full and nothing is
// acknowledged that was not stored, reads go on, and once space returns
// everything works again without a restart and the database is sound
// (docs/reliability.md, "Disk full").
package diskfull

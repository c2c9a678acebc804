"""The daemon around the core: composition, HTTP (status page, API, metrics), records, logs, notify."""

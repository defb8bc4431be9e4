"""The loop and the API the CLI calls: the Zoo, routing, turns, the runner, schedules,
the watcher, autocommit, approvals, reports."""

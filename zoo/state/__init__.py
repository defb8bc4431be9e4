"""What lasts, knowing nothing of the loop: the home, atomic files, task files, the
journal, memory, leases, step logs, spend."""

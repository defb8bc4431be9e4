"""The `zoo` command: parse, call the engine, render. Decides nothing."""

"""What an agent may do: its tools, path confinement, the commands it runs and their jail."""
